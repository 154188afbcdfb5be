#!/bin/sh
# Installs what the luci-app-dproxy tests need: Node.js and npm from Debian,
# and ESLint and jsmin from npm at the versions pinned in
# tests/luci/package-lock.json, into .tools/luci. Idempotent.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
tools="$here/.tools/luci"

need=""
command -v node >/dev/null 2>&1 || need="$need nodejs"
command -v npm >/dev/null 2>&1 || need="$need npm"
if [ -n "$need" ]; then
    echo "luci-deps: apt-get install$need"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    # shellcheck disable=SC2086
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $need >/dev/null
fi

# Reinstall when the pinned versions changed.
if ! cmp -s "$here/tests/luci/package-lock.json" "$tools/package-lock.json" ||
   [ ! -d "$tools/node_modules/eslint" ]; then
    echo "luci-deps: npm ci in $tools"
    rm -rf "$tools"
    mkdir -p "$tools"
    cp "$here/tests/luci/package.json" "$here/tests/luci/package-lock.json" "$tools/"
    (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "luci-deps: ok (node $(node --version))"
