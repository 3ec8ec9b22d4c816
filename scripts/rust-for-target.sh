#!/usr/bin/env bash
# Prints the path of a rustc that can build for TRIPLE, installing that target's standard library
# when none is present, in this order:
#   1. the rustup toolchain's own sysroot (the usual case after `rustup target add TRIPLE`);
#   2. `rustup target add TRIPLE` (needs static.rust-lang.org);
#   3. Debian's rustc-web at /usr/bin/rustc when it already has that library, else
#   4. Debian's rustc-web with the target's libstd-rust-web-dev through dpkg multiarch (needs root
#      and apt; for machines that reach Debian's mirrors but not rustup's).
# Everything it says goes to stderr; stdout carries only the rustc path.
# usage: scripts/rust-for-target.sh aarch64-unknown-linux-gnu
set -euo pipefail
triple=${1:?usage: scripts/rust-for-target.sh TRIPLE}

has_std() { [ -d "$("$1" --print sysroot)/lib/rustlib/$triple/lib" ]; }

rustc_path=$(command -v rustc)
if has_std "$rustc_path"; then echo "$rustc_path"; exit 0; fi

echo "rust-for-target: no $triple standard library in $(rustc --print sysroot); trying rustup target add" >&2
if command -v rustup >/dev/null && timeout 300 rustup target add "$triple" >&2 && has_std "$rustc_path"; then
  echo "$rustc_path"
  exit 0
fi

case "$triple" in
  aarch64-unknown-linux-gnu) deb_arch=arm64 ;;
  x86_64-unknown-linux-gnu) deb_arch=amd64 ;;
  *) deb_arch= ;;
esac
debian_rustc=/usr/bin/rustc
if [ "$debian_rustc" != "$rustc_path" ] && [ -x "$debian_rustc" ] && has_std "$debian_rustc"; then
  echo "rust-for-target: building $triple with $("$debian_rustc" --version)" >&2
  echo "$debian_rustc"
  exit 0
fi
if [ -n "$deb_arch" ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "rust-for-target: rustup could not add $triple; installing Debian's rustc-web and libstd-rust-web-dev:$deb_arch" >&2
  if [ "$deb_arch" != "$(dpkg --print-architecture)" ]; then dpkg --add-architecture "$deb_arch"; fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    rustc-web "libstd-rust-web-dev:$deb_arch" >&2
  if [ -x "$debian_rustc" ] && has_std "$debian_rustc"; then
    echo "rust-for-target: building $triple with $("$debian_rustc" --version)" >&2
    echo "$debian_rustc"
    exit 0
  fi
fi

echo "error: no Rust standard library for $triple. Install it with: rustup target add $triple" >&2
exit 2
