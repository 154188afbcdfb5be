#!/bin/sh
# Checks a built .ipk (make test-openwrt-ipk):
#   check-ipk.sh [--qemu RUNNER] IPK ARCH VERSION-rRELEASE
# The work is done by check_ipk.py; this wrapper only finds python and, for
# --qemu, makes sure the emulator is there.
# shellcheck shell=sh
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
if [ "${1:-}" = --qemu ]; then
	command -v "$2" >/dev/null 2>&1 || { echo "check-ipk: $2 not found (make cross-setup)" >&2; exit 1; }
fi
exec python3 "$here/check_ipk.py" "$@"
