#!/usr/bin/env bash
# Installs the Debian tools the tests drive as real peers: promtool (package
# prometheus) checks /metrics, headless Chromium loads the status page.
# Idempotent; apt-get runs only for what is missing.
set -euo pipefail
missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "tools.sh: installing ${missing[*]}" >&2
. "$(dirname "$0")/lib.sh"
apt_install --no-install-recommends "${missing[@]}"
