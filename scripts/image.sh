#!/usr/bin/env bash
# Builds the container image vertex-broker:dev (IMAGE=name:tag to rename) for ARCH (x86_64, the
# default, or arm64): the CLI (without the dev sandbox's emulator) and the layer's extension,
# linked statically against musl with cargo-lambda's zig (the cross toolchain of
# scripts/package.sh), copied into `FROM scratch` with the CA bundle and the layer's wrapper.
# Docker's classic builder, no base image pulled. Installs the musl target's standard library
# and cargo-lambda when missing.
# usage: scripts/image.sh [x86_64|arm64]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
arch=${1:-${ARCH:-x86_64}}
image=${IMAGE:-vertex-broker:dev}
case "$arch" in
  x86_64) triple=x86_64-unknown-linux-musl; platform=amd64 ;;
  arm64) triple=aarch64-unknown-linux-musl; platform=arm64 ;;
  *) echo "usage: scripts/image.sh x86_64|arm64 (ARCH=$arch is neither)" >&2; exit 2 ;;
esac
bash scripts/apt.sh ca-certificates
rustc_for_target=$(bash scripts/rust-for-target.sh "$triple")
if [ -n "$rustc_for_target" ]; then export RUSTC="$rustc_for_target"; fi
# Its own target directory: tests build the image from inside `cargo test`, which holds the
# main one's lock; the musl artifacts would be apart from the others anyway.
target=${CARGO_TARGET_DIR:-$root/target}/image-cargo
started=$(date +%s)
# One build, features `cli` (the CLI without `dev`); the extension links only what it runs. zig
# (cargo-lambda's, as in scripts/package.sh) compiles aws-lc-sys's C and links against the musl
# it ships, statically, for either architecture on either host. cargo-lambda puts each binary in
# lambda-ARCH/NAME/bootstrap: one directory per architecture, as tests build both at once.
bash scripts/venv.sh
PATH="$root/.venv/bin:$PATH" CARGO_TARGET_DIR="$target" cargo lambda build --release --locked \
  --target "$triple" --lambda-dir "$target/lambda-$arch" --no-default-features --features cli \
  --bin vertex-broker --bin vertex-broker-extension
cli="$target/lambda-$arch/vertex-broker/bootstrap"
extension="$target/lambda-$arch/vertex-broker-extension/bootstrap"
out="$target/context/$arch"
rm -rf "$out" && mkdir -p "$out/etc/ssl/certs" "$out/opt/extensions"
cp "$cli" "$out/vertex-broker"
cp "$extension" "$out/opt/extensions/vertex-broker-extension"
cp layer/vertex-broker-wrapper "$out/opt/vertex-broker-wrapper"
chmod 0755 "$out/vertex-broker" "$out/opt/extensions/vertex-broker-extension" "$out/opt/vertex-broker-wrapper"
cp /etc/ssl/certs/ca-certificates.crt "$out/etc/ssl/certs/ca-certificates.crt"
chmod 0644 "$out/etc/ssl/certs/ca-certificates.crt"
# The unprivileged user, named, for tools that look it up.
printf 'vertex-broker:x:65532:65532:vertex-broker:/nonexistent:/sbin/nologin\n' >"$out/etc/passwd"
printf 'vertex-broker:x:65532:\n' >"$out/etc/group"
cp image/Dockerfile "$out/Dockerfile"
# The classic builder builds for this host only; an image of copied files differs between
# platforms in its config's architecture alone, which image_platform.py then sets (Docker 20.10's
# --platform fails on FROM scratch). Then the images this tag replaced go (ours only).
DOCKER_BUILDKIT=0 docker build --quiet -t "$image" "$out" >/dev/null
if [ "$(docker image inspect "$image" --format '{{.Architecture}}')" != "$platform" ]; then
  python3 scripts/image_platform.py "$image" "$platform"
fi
docker image prune --force --filter label=org.opencontainers.image.title=vertex-broker >/dev/null
size=$(docker image inspect "$image" --format '{{.Size}}')
echo "image $image ($arch): $((size / 1024 / 1024)) MiB ($size bytes), built in $(( $(date +%s) - started )) s"
