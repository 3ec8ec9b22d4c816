#!/usr/bin/env bash
# Builds the container image vertex-broker:dev (IMAGE=name:tag to rename) for ARCH (x86_64, the
# default): the CLI and the layer's extension linked statically against musl on this host, copied
# into `FROM scratch` with the CA bundle and the layer's wrapper. Docker's classic builder, no base
# image pulled. Installs the musl target (rustup) and musl-tools (Debian) when missing.
# usage: scripts/image.sh [x86_64]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
arch=${1:-${ARCH:-x86_64}}
image=${IMAGE:-vertex-broker:dev}
case "$arch" in
  x86_64) triple=x86_64-unknown-linux-musl; cc=musl-gcc ;;
  *) echo "scripts/image.sh: ARCH=$arch is not built yet; use x86_64" >&2; exit 2 ;;
esac
bash scripts/apt.sh musl-tools ca-certificates
rustup target list --installed | grep -qx "$triple" || rustup target add "$triple"
# Its own target directory: tests build the image from inside `cargo test`, which holds the
# main one's lock; the musl artifacts would be apart from the others anyway.
target=${CARGO_TARGET_DIR:-$root/target}/image-cargo
started=$(date +%s)
# aws-lc-sys compiles C: musl-gcc for the musl target. Static, so the binaries run in scratch.
env "CC_${triple//-/_}=$cc" RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --locked --target "$triple" --target-dir "$target" \
  --bin vertex-broker --bin vertex-broker-extension
out="$target/context/$arch"
rm -rf "$out" && mkdir -p "$out/etc/ssl/certs" "$out/opt/extensions"
cp "$target/$triple/release/vertex-broker" "$out/vertex-broker"
cp "$target/$triple/release/vertex-broker-extension" "$out/opt/extensions/vertex-broker-extension"
cp layer/vertex-broker-wrapper "$out/opt/vertex-broker-wrapper"
strip "$out/vertex-broker" "$out/opt/extensions/vertex-broker-extension"
chmod 0755 "$out/vertex-broker" "$out/opt/extensions/vertex-broker-extension" "$out/opt/vertex-broker-wrapper"
cp /etc/ssl/certs/ca-certificates.crt "$out/etc/ssl/certs/ca-certificates.crt"
chmod 0644 "$out/etc/ssl/certs/ca-certificates.crt"
# The unprivileged user, named, for tools that look it up.
printf 'vertex-broker:x:65532:65532:vertex-broker:/nonexistent:/sbin/nologin\n' >"$out/etc/passwd"
printf 'vertex-broker:x:65532:\n' >"$out/etc/group"
cp image/Dockerfile "$out/Dockerfile"
DOCKER_BUILDKIT=0 docker build --quiet -t "$image" "$out" >/dev/null
size=$(docker image inspect "$image" --format '{{.Size}}')
echo "image $image ($arch): $((size / 1024 / 1024)) MiB ($size bytes), built in $(( $(date +%s) - started )) s"
