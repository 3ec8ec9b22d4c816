#!/usr/bin/env bash
# Installs Google's own client libraries that tests/broker.rs runs against the broker:
#   Python google-auth          .venv (scripts/venv.sh, tests/requirements.txt)
#   Node google-auth-library    tests/node/node_modules (npm ci, tests/node/package-lock.json)
#   Go x/oauth2/google          Debian's golang-go and golang-golang-x-oauth2-google-dev
# Prints nothing when everything is already installed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

bash "$root/scripts/venv.sh"

apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "error: install $* (Debian package names), then rerun" >&2
    exit 2
  fi
  echo "==> installing $* from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then apt_install nodejs npm; fi
node_dir="$root/tests/node"
stamp="$node_dir/node_modules/.package-lock.sha256"
want=$(sha256sum "$node_dir/package-lock.json" | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> installing google-auth-library into tests/node/node_modules"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
fi

if ! command -v go >/dev/null || [ ! -d /usr/share/gocode/src/golang.org/x/oauth2/google ]; then
  apt_install golang-go golang-golang-x-oauth2-google-dev
fi
