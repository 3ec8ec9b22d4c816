#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs the Python tools it needs into .venv,
# starts one moto_server on a free loopback port, then runs fmt, clippy and every test.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/venv.sh
export PATH="$root/.venv/bin:$PATH"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" >"${TMPDIR:-/tmp}/vertex-broker-moto.log" 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then break; fi
  sleep 0.1
done
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
echo "==> moto_server on $AWS_ENDPOINT_URL"

echo "==> cfn-lint and sam validate --lint (template.yaml)"
SAM_CLI_TELEMETRY=0 cfn-lint template.yaml
SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 sam validate --lint --template template.yaml

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> Lambda packages (x86_64): build, then check layout and ELF architecture"
bash scripts/package.sh x86_64
python3 scripts/check_package.py x86_64
echo "==> sam build (the README's deploy build, x86_64 here: no arm64 Rust std on this machine)"
sam_dir="${CARGO_TARGET_DIR:-target}/sam"
LAYER_ARCH=x86_64 SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 \
  sam build --parameter-overrides Architecture=x86_64 --build-dir "$sam_dir" >"${TMPDIR:-/tmp}/vertex-broker-sam.log" 2>&1 ||
  { cat "${TMPDIR:-/tmp}/vertex-broker-sam.log"; exit 1; }
for artifact in RotationFunction/bootstrap VertexProxyFunction/bootstrap \
  BrokerLayer/extensions/vertex-broker-extension BrokerLayer/vertex-broker-wrapper; do
  test -x "$sam_dir/$artifact" || { echo "sam build did not produce $artifact" >&2; exit 1; }
done
echo "sam build: 4 artifacts in $sam_dir"

echo "==> cargo test"
log="${TMPDIR:-/tmp}/vertex-broker-test.log"
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary (the last cargo line is a doc-test run of 0).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
