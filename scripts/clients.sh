#!/usr/bin/env bash
# Installs the real clients the tests run against the broker:
#   Python google-auth, google-genai, openai, anthropic[vertex]
#                               .venv (scripts/venv.sh, tests/requirements.txt)
#   Node google-auth-library, @google/genai
#                               tests/node/node_modules (npm ci, tests/node/package-lock.json)
#   Go x/oauth2/google          Debian's golang-go and golang-golang-x-oauth2-google-dev
#   Java google-auth-library    Debian's libgoogle-auth-java, run from source by a headless JDK
#   Chromium                    Debian's chromium, headless: the browser the guards must refuse
#   nginx, tinyproxy, openssl   Debian's: TLS in front of the emulator, a CONNECT proxy, a test CA
#                               (the gateway's way to Vertex, tests/gateway_upstream.rs)
# Prints nothing when everything is already installed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

bash "$root/scripts/venv.sh"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then bash "$root/scripts/apt.sh" nodejs npm; fi
node_dir="$root/tests/node"
stamp="$node_dir/node_modules/.package-lock.sha256"
want=$(sha256sum "$node_dir/package-lock.json" | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> installing google-auth-library and @google/genai into tests/node/node_modules"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
fi

bash "$root/scripts/apt.sh" golang-go golang-golang-x-oauth2-google-dev
bash "$root/scripts/apt.sh" default-jdk-headless libgoogle-auth-java
bash "$root/scripts/apt.sh" chromium
bash "$root/scripts/apt.sh" nginx tinyproxy openssl
