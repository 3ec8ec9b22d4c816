#!/usr/bin/env bash
# Benchmarks (release build). Installs what it needs (moto into .venv, wrk and nginx from Debian's
# packages), prints ratios against baselines measured in the same run, asserts nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/venv.sh
bash scripts/apt.sh wrk nginx
cargo bench --locked -p vertex-broker-rotation --bench rotation
cargo bench --locked -p vertex-broker --bench broker
cargo bench --locked -p vertex-broker --bench mint_path
cargo bench --locked -p vertex-broker --bench gateway
cargo bench --locked -p vertex-broker --bench gateway_nginx
cargo bench --locked -p vertex-broker --bench first_token
