#!/usr/bin/env bash
# Lambda artifacts for one architecture (x86_64 or arm64) in $CARGO_TARGET_DIR (default
# target)/package/ARCH/:
#   rotation.zip      bootstrap                                  (the rotation function)
#   minter.zip        bootstrap                                  (central minting's function)
#   layer.zip         extensions/vertex-broker-extension,
#                     vertex-broker-wrapper                      (the broker layer, /opt/...)
#   vertex-proxy.zip  bootstrap                                  (the example function)
# Installs cargo-lambda (with zig, the cross linker) into .venv through scripts/venv.sh, and the
# target's Rust standard library through scripts/rust-for-target.sh when it is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
arch=${1:-x86_64}
case "$arch" in
  x86_64) flag=--x86-64; triple=x86_64-unknown-linux-gnu ;;
  arm64) flag=--arm64; triple=aarch64-unknown-linux-gnu ;;
  *) echo "usage: scripts/package.sh x86_64|arm64" >&2; exit 2 ;;
esac
# A foreign architecture needs its standard library: rust-for-target.sh finds or installs one.
rustc_for_target=$(bash scripts/rust-for-target.sh "$triple")
if [ -n "$rustc_for_target" ]; then export RUSTC="$rustc_for_target"; fi
bash scripts/venv.sh # installs cargo-lambda (tests/requirements.txt)
export PATH="$root/.venv/bin:$PATH"

cargo lambda build --release --locked "$flag" -p vertex-broker-rotation --bin bootstrap
cargo lambda build --release --locked "$flag" -p vertex-broker-minter --bin vertex-broker-minter
cargo lambda build --release --locked "$flag" -p vertex-proxy --bin vertex-proxy
# The extension takes the library with the broker only: no CLI, no emulator (Cargo.toml [features]).
cargo lambda build --release --locked "$flag" --extension -p vertex-broker --bin vertex-broker-extension \
  --no-default-features --features broker

target=${CARGO_TARGET_DIR:-target}
out="$target/package/$arch"
rm -rf "$out" && mkdir -p "$out"
python3 - "$out" "$target" <<'PY'
import os, stat, sys, zipfile
out, target = sys.argv[1], sys.argv[2]
def pack(name, files):
    with zipfile.ZipFile(os.path.join(out, name), "w", zipfile.ZIP_DEFLATED) as z:
        for src, dst in files:
            info = zipfile.ZipInfo(dst)
            info.external_attr = (stat.S_IFREG | 0o755) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(src, "rb") as f:
                z.writestr(info, f.read())
lam = os.path.join(target, "lambda")
pack("rotation.zip", [(f"{lam}/bootstrap/bootstrap", "bootstrap")])
pack("minter.zip", [(f"{lam}/vertex-broker-minter/bootstrap", "bootstrap")])
pack("vertex-proxy.zip", [(f"{lam}/vertex-proxy/bootstrap", "bootstrap")])
pack("layer.zip", [
    (f"{lam}/extensions/vertex-broker-extension", "extensions/vertex-broker-extension"),
    ("layer/vertex-broker-wrapper", "vertex-broker-wrapper"),
])
for name in sorted(os.listdir(out)):
    print(f"{out}/{name}: {os.path.getsize(os.path.join(out, name))} bytes")
PY
