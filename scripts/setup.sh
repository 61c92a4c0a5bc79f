#!/usr/bin/env bash
# Installs what ipr needs to build, test and serve, from Debian's packages and
# (for the gateway's client tests) the npm registry. Idempotent: packages that
# are already installed are left alone and nothing is printed for them.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

pkgs=(build-essential clang pkg-config
      libcjson-dev libutf8proc-dev libxxhash-dev libsqlite3-dev zlib1g-dev
      libmicrohttpd-dev libcurl4-openssl-dev
      python3-numpy wrk sqlite3 curl time)
# Node.js and npm: Debian's packages only where no node is installed already
# (a machine with NodeSource's nodejs has npm inside it, and Debian's npm
# package conflicts with that).
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
        echo "setup: apt-get could not install: ${missing[*]}" >&2
        echo "setup: install them by hand (Debian 12 package names) and run this again" >&2
        exit 1
    fi
fi

# Node packages for the gateway tests (the official openai client).
if [ -f "$here/tests/node/package.json" ] && [ ! -d "$here/tests/node/node_modules/openai" ]; then
    echo "setup: installing the test's npm packages"
    (cd "$here/tests/node" && npm install --no-audit --no-fund --silent) || {
        echo "setup: npm install failed in tests/node" >&2; exit 1; }
fi
exit 0
