#!/usr/bin/env bash
# Lets this machine run the other architecture's images (arm64 on x86_64, x86_64 on arm64) in
# Docker: registers qemu-user-static's binfmt_misc handler with the F flag, so the kernel opens
# the emulator once, here, and containers need no copy of it. Mounts binfmt_misc when it is not
# mounted; replaces a handler registered without F (it would look for qemu inside containers).
# Installs qemu-user-static when missing (scripts/apt.sh). Needs root, or sudo.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
case "$(uname -m)" in
  x86_64) name=qemu-aarch64 ;;
  aarch64) name=qemu-x86_64 ;;
  *) echo "scripts/binfmt.sh: no foreign architecture known for $(uname -m)" >&2; exit 2 ;;
esac
bash "$root/scripts/apt.sh" qemu-user-static
sudo=()
if [ "$(id -u)" != 0 ]; then sudo=(sudo); fi
dir=/proc/sys/fs/binfmt_misc
if [ ! -e "$dir/register" ]; then
  "${sudo[@]}" mount -t binfmt_misc binfmt_misc "$dir" || {
    echo "error: cannot mount binfmt_misc at $dir (a container without the privilege to): run the other architecture's image on a host of that architecture" >&2
    exit 2
  }
fi
if [ -e "$dir/$name" ] && ! grep -q '^flags: .*F' "$dir/$name"; then
  echo -1 | "${sudo[@]}" tee "$dir/$name" >/dev/null
fi
if [ ! -e "$dir/$name" ]; then
  "${sudo[@]}" tee "$dir/register" <"/usr/lib/binfmt.d/$name.conf" >/dev/null
fi
if ! grep -qx enabled "$dir/$name"; then
  echo 1 | "${sudo[@]}" tee "$dir/$name" >/dev/null
fi
