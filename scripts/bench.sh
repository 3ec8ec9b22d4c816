#!/usr/bin/env bash
# Benchmarks (release build). Installs what it needs (moto into .venv, wrk from Debian's
# packages), prints ratios against baselines measured in the same run, asserts nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/venv.sh
if ! command -v wrk >/dev/null; then
  echo "==> installing wrk"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk; else sudo apt-get update -qq && sudo apt-get install -y -qq wrk; fi
fi
cargo bench --locked -p vertex-broker-rotation --bench rotation
cargo bench --locked -p vertex-broker --bench broker
