#!/usr/bin/env bash
# Finds a rustc that can build for TRIPLE, installing that target's standard library when none
# is present, in this order:
#   1. the rustup toolchain's own sysroot (the usual case after `rustup target add TRIPLE`);
#   2. `rustup target add TRIPLE` (needs static.rust-lang.org);
#   3. Debian's rustc-web with the target's libstd-rust-web-dev through dpkg multiarch
#      (scripts/apt.sh; for machines that reach Debian's mirrors but not rustup's).
# Prints nothing when the default rustc will do, else the path of the rustc to use (for RUSTC).
# Everything else it says goes to stderr.
# usage: scripts/rust-for-target.sh aarch64-unknown-linux-gnu
set -euo pipefail
triple=${1:?usage: scripts/rust-for-target.sh TRIPLE}

has_std() { [ -x "$1" ] && [ -d "$("$1" --print sysroot)/lib/rustlib/$triple/lib" ]; }

rustc_path=$(command -v rustc)
if has_std "$rustc_path"; then exit 0; fi

echo "rust-for-target: no $triple standard library in $(rustc --print sysroot); trying rustup target add" >&2
if command -v rustup >/dev/null && timeout 300 rustup target add "$triple" >&2 && has_std "$rustc_path"; then
  exit 0
fi

debian_rustc=/usr/bin/rustc
case "$triple" in
  aarch64-unknown-linux-gnu) deb_arch=arm64 ;;
  x86_64-unknown-linux-gnu) deb_arch=amd64 ;;
  *) deb_arch= ;;
esac
if [ "$debian_rustc" != "$rustc_path" ] && ! has_std "$debian_rustc" && [ -n "$deb_arch" ]; then
  echo "rust-for-target: rustup could not add $triple; trying Debian's rustc-web" >&2
  bash "$(dirname "$0")/apt.sh" rustc-web "libstd-rust-web-dev:$deb_arch" >&2 || true
fi
if [ "$debian_rustc" != "$rustc_path" ] && has_std "$debian_rustc"; then
  echo "rust-for-target: building $triple with $("$debian_rustc" --version)" >&2
  echo "$debian_rustc"
  exit 0
fi

echo "error: no Rust standard library for $triple. Install it with: rustup target add $triple" >&2
exit 2
