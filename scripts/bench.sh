#!/usr/bin/env bash
# Benchmarks (release build). Installs moto into .venv like the tests; prints ratios against
# baselines measured in the same run, asserts nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/venv.sh
cargo bench --locked -p vertex-broker-rotation --bench rotation
