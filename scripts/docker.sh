#!/usr/bin/env bash
# Makes sure a Docker daemon answers: when none does, installs Debian's docker.io if needed and
# starts dockerd the way this machine allows (no iptables, no bridge, vfs storage; containers then
# run with --network host), logging to $TMPDIR/vertex-broker-dockerd.log.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if docker info >/dev/null 2>&1; then exit 0; fi
bash "$root/scripts/apt.sh" docker.io
sudo=()
if [ "$(id -u)" != 0 ]; then sudo=(sudo); fi
log="${TMPDIR:-/tmp}/vertex-broker-dockerd.log"
echo "==> starting dockerd (log: $log)" >&2
nohup "${sudo[@]}" dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs >"$log" 2>&1 &
for _ in $(seq 1 120); do
  if docker info >/dev/null 2>&1; then exit 0; fi
  sleep 0.5
done
echo "dockerd did not answer within 60 s; its log:" >&2
tail -20 "$log" >&2
exit 1
