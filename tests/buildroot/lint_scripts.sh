#!/bin/sh
# Lints every shell script the Buildroot package ships (and the cross-build
# scripts): shellcheck as POSIX sh, then a parse by busybox sh (Buildroot's
# /bin/sh) and by dash. Checks the systemd unit with systemd-analyze when it
# is installed. Exit status 1 if anything is reported.
set -u

here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here" || exit 1
failures=0

for f in buildroot/package/dproxy/S50dproxy buildroot/package/dproxy/if-up \
         buildroot/package/dproxy/if-down scripts/cross-setup.sh cross/zig-cc \
         cross/qemu-run cross/*-cc tests/buildroot/s50_test.sh tests/buildroot/lint_scripts.sh; do
	[ -f "$f" ] || continue
	shellcheck -s sh "$f" || { echo "shellcheck: $f" >&2; failures=$((failures + 1)); }
	busybox sh -n "$f" || { echo "busybox sh -n: $f" >&2; failures=$((failures + 1)); }
	dash -n "$f" || { echo "dash -n: $f" >&2; failures=$((failures + 1)); }
	[ -x "$f" ] || { echo "not executable: $f" >&2; failures=$((failures + 1)); }
done

unit=buildroot/package/dproxy/dproxy.service
if command -v systemd-analyze >/dev/null 2>&1; then
	# verify wants the programs to exist: point them at /bin/true.
	tmp=$(mktemp -d)
	sed 's|/usr/bin/dproxy|/bin/true|' "$unit" >"$tmp/dproxy.service"
	out=$(systemd-analyze verify --man=no "$tmp/dproxy.service" 2>&1)
	rc=$?
	rm -rf "$tmp"
	if [ $rc -ne 0 ] || [ -n "$out" ]; then
		echo "systemd-analyze verify $unit: $out" >&2
		failures=$((failures + 1))
	fi
else
	echo "lint_scripts: systemd-analyze not installed, $unit not verified"
fi

if [ "$failures" -ne 0 ]; then
	echo "script lint: $failures problem(s)" >&2
	exit 1
fi
echo "script lint: ok"
