#!/usr/bin/env bash
# Installs the named Debian packages that are not installed yet (root, or through sudo); prints
# nothing when all are. A name with an architecture (libc6:arm64) enables that architecture in
# dpkg first (multiarch). Used by the test and bench commands for tools not on PyPI or npm.
# usage: scripts/apt.sh PACKAGE...
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "error: install ${missing[*]} (Debian package names) with your package manager, then rerun" >&2
  exit 2
fi
sudo=()
if [ "$(id -u)" != 0 ]; then sudo=(sudo); fi
echo "==> installing ${missing[*]} from Debian's packages" >&2
for p in "${missing[@]}"; do
  case "$p" in
    *:*)
      arch=${p#*:}
      if [ "$arch" != "$(dpkg --print-architecture)" ] && ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
        "${sudo[@]}" dpkg --add-architecture "$arch"
      fi
      ;;
  esac
done
"${sudo[@]}" apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
