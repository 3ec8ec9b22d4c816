#!/usr/bin/env bash
# The whole test suite, on a fresh machine: first the unit tier (no moto, no network), then it
# installs the Python tools it needs into .venv and
# Google's Node and Go clients (scripts/clients.sh), starts one moto_server on a free loopback
# port, lints the template, runs fmt and clippy, builds and checks the Lambda zips for both
# architectures, runs `sam build`, then every test.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# A CI run builds once from nothing: incremental compilation's caches would only take disk (the
# workspace's crates twice over) and time. Local runs keep them.
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi

# The unit tier first: no moto, no network, no Google clients (seconds once built); a failure
# here stops the run before anything is installed.
echo "==> unit tests (cargo test --lib)"
unit_log="${TMPDIR:-/tmp}/vertex-broker-test-unit.log"
cargo test --workspace --locked --lib 2>&1 | tee "$unit_log" # pipefail: a failure ends the run

bash scripts/clients.sh
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
python3 scripts/lint_template.py # once per combination of Minting, CredentialSource, impersonation
echo "==> the container image's examples: cfn-lint (ECS sidecar), kubernetes-validate (EKS pod)"
cfn-lint examples/ecs-sidecar/template.yaml
kubernetes-validate --strict --quiet -k 1.29.0 examples/kubernetes/*.yaml
SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 sam validate --lint --template template.yaml

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The library as the Lambda binaries build it (fewer features): nothing left unused or undocumented.
cargo clippy --locked -p vertex-broker --lib --no-default-features -- -D warnings
cargo clippy --locked -p vertex-broker --lib --no-default-features --features broker -- -D warnings
# The container image's CLI: without `dev` and its emulator.
cargo clippy --locked -p vertex-broker --bins --no-default-features --features cli -- -D warnings
# The fuzz targets (make fuzz runs them on nightly) still compile against the library. fuzz/ is
# its own workspace: share the main target directory rather than build a second one in fuzz/.
echo "==> cargo check of the fuzz targets"
cargo check --locked --manifest-path fuzz/Cargo.toml --bins --target-dir "${CARGO_TARGET_DIR:-$root/target}"
# The shipped Lambda binaries compile only what they run: no CLI parser, no Google emulator.
echo "==> dependency trees of the Lambda binaries"
for spec in "-p vertex-broker --no-default-features --features broker" "-p vertex-broker-rotation" "-p vertex-broker-minter" "-p vertex-proxy"; do
  # shellcheck disable=SC2086 # the spec is words on purpose
  if cargo tree --locked -e normal $spec --prefix none | grep -E '^(google-emulator|axum|clap) '; then
    echo "cargo tree -e normal $spec: the Lambda binary's tree must not hold the crates above" >&2
    exit 1
  fi
done
# Binaries of the other architecture run under qemu-user, with that architecture's glibc from
# Debian (multiarch: qemu-user 7.2 hangs in pthread_create when pointed at the cross compilers'
# copy with -L). check_package.py starts each packaged binary; the tests below run again on them.
case "$(uname -m)" in
  x86_64) native=x86_64 foreign=arm64 qemu=qemu-aarch64-static glibc=libc6:arm64 ;;
  aarch64) native=arm64 foreign=x86_64 qemu=qemu-x86_64-static glibc=libc6:amd64 ;;
esac
bash scripts/apt.sh qemu-user-static "$glibc"
for arch in x86_64 arm64; do
  echo "==> Lambda packages ($arch): build, then check layout and ELF architecture"
  bash scripts/package.sh "$arch"
  python3 scripts/check_package.py "$arch"
done
echo "==> sam build (the README's deploy build: the template's default architecture, arm64)"
sam_dir="${CARGO_TARGET_DIR:-target}/sam"
arm64_rustc=$(bash scripts/rust-for-target.sh aarch64-unknown-linux-gnu)
sam_env=()
if [ -n "$arm64_rustc" ]; then sam_env=(RUSTC="$arm64_rustc"); fi
env "${sam_env[@]}" SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 \
  sam build --build-dir "$sam_dir" >"${TMPDIR:-/tmp}/vertex-broker-sam.log" 2>&1 ||
  { cat "${TMPDIR:-/tmp}/vertex-broker-sam.log"; exit 1; }
python3 scripts/check_package.py --sam-build arm64 "$sam_dir"

echo "==> the container images: Docker's daemon, then make image for both architectures (size, build time)"
bash scripts/docker.sh
IMAGE=vertex-broker:test bash scripts/image.sh "$native"
IMAGE="vertex-broker:test-$foreign" bash scripts/image.sh "$foreign"
bash scripts/binfmt.sh # tests/image.rs runs the $foreign image under qemu-user

echo "==> cargo test (the integration tests: moto, the emulator, Google's clients)"
log="${TMPDIR:-/tmp}/vertex-broker-test.log"
qemu_log="${TMPDIR:-/tmp}/vertex-broker-test-qemu.log"
# The tests' own files (clean HOMEs, Go builds, browser profiles, credential files) go to one
# scratch directory, removed when the run ends, pass or fail.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/vertex-broker-tests.XXXXXX")
chmod 0755 "$scratch" # containers in tests/image.rs read files under it as another user
trap 'kill $moto_pid 2>/dev/null || true; rm -rf "$scratch"' EXIT
export TMPDIR="$scratch"
set +e
cargo test --workspace --locked --no-fail-fast --bins --test '*' 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The Lambda binary tests again, on the packaged binaries of the other architecture under
# qemu-user: the arm64 extension registers, serves, handles INVOKE and SHUTDOWN, the arm64
# bootstrap completes a rotation and the arm64 minter fills a token secret, like the ones cargo
# built.
echo "==> tests/extension.rs, rotation/ and minter/tests/bootstrap.rs on the packaged $foreign binaries, under $qemu"
unpacked=$(cd "${CARGO_TARGET_DIR:-target}/package/$foreign" && pwd)/unpacked
python3 - "$(dirname "$unpacked")" "$unpacked" <<'PY'
import os, shutil, sys, zipfile
package, out = sys.argv[1], sys.argv[2]
shutil.rmtree(out, ignore_errors=True)
for name in ("layer", "rotation", "minter"):
    with zipfile.ZipFile(os.path.join(package, f"{name}.zip")) as z:
        z.extractall(os.path.join(out, name))
        for member in z.namelist():
            os.chmod(os.path.join(out, name, member), 0o755)
PY
qemu_path=$(command -v "$qemu")
# --workspace, as above: the same features, so the same test binaries run again, none rebuilt
# (one package alone resolves other features and builds every dependency a second time).
VERTEX_BROKER_TEST_EXTENSION="$qemu_path $unpacked/layer/extensions/vertex-broker-extension" \
  VERTEX_BROKER_TEST_BOOTSTRAP="$qemu_path $unpacked/rotation/bootstrap" \
  VERTEX_BROKER_TEST_MINTER="$qemu_path $unpacked/minter/bootstrap" \
  cargo test --workspace --locked --no-fail-fast --test extension --test bootstrap 2>&1 | tee "$qemu_log"
qemu_status=${PIPESTATUS[0]}
if [ "$status" -eq 0 ]; then status=$qemu_status; fi
set -e
# One closing line over every test binary (the last cargo line is a doc-test run of 0); the
# re-runs under qemu are counted apart, since they run tests already counted once.
count='/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }'
tests=$(awk "$count END { printf \"%d passed, %d failed\", p, f }" "$unit_log" "$log")
rerun=$(awk "$count END { printf \"%d passed, %d failed\", p, f }" "$qemu_log")
echo "tests: $tests; re-run on the packaged $foreign binaries under qemu: $rerun"
echo "disk: target directory $(du -sh "${CARGO_TARGET_DIR:-$root/target}" | cut -f1), $(df -h --output=avail "$root" | tail -1 | tr -d ' ') left"
exit "$status"
