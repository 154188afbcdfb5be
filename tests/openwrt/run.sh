#!/bin/sh
# All OpenWrt packaging tests that need no cross build (make test-openwrt-scripts):
#   1. shellcheck -s sh, busybox sh -n and dash -n on every shell script
#   2. the init script against the procd/UCI stand-ins, under busybox sh and dash
#   3. the hotplug scripts (iface: ACTION x INTERFACE, ntp: ACTION x stratum),
#      under busybox sh and dash
#   4. the feed Makefile with stub OpenWrt includes, test.sh, mkipk.sh
#   5. the package installed in a scratch root, its daemon started as the init
#      script says, answering and applying a reload (needs root and DPROXY_BIN)
# Ends with "N passed, N failed"; exits 1 if anything failed.
# shellcheck shell=sh
set -u

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/owrt-run.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT INT TERM

for tool in shellcheck busybox dash make python3 tar gzip; do
	command -v "$tool" >/dev/null 2>&1 || { echo "run.sh: $tool is missing (make deps)" >&2; exit 1; }
done

# 1. Static checks.
lint="$WORK/lint"
: >"$lint"
for f in files/dproxy.init files/dproxy.hotplug files/dproxy.ntp-hotplug files/dproxy.uci-defaults \
	openwrt/net/dproxy/test.sh scripts/mkipk.sh \
	tests/openwrt/run.sh tests/openwrt/lib.sh tests/openwrt/procd-stubs.sh \
	tests/openwrt/test-init.sh tests/openwrt/test-hotplug.sh tests/openwrt/test-ntp-hotplug.sh \
	tests/openwrt/test-feed.sh \
	tests/openwrt/check-ipk.sh tests/openwrt/test-package.sh; do
	for check in "shellcheck -s sh" "busybox sh -n" "dash -n"; do
		if out="$(cd "$REPO" && $check "$f" 2>&1)"; then
			echo "PASS lint/${check%% *}:$f" >>"$lint"
		else
			{ echo "FAIL lint/${check%% *}:$f"; echo "$out" | sed 's/^/    /'; } >>"$lint"
		fi
	done
done
for f in tests/openwrt/fake-uci tests/openwrt/check_ipk.py; do
	if out="$(python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read())' "$REPO/$f" 2>&1)"; then
		echo "PASS lint/python:$f" >>"$lint"
	else
		{ echo "FAIL lint/python:$f"; echo "$out" | sed 's/^/    /'; } >>"$lint"
	fi
done
python3 -m json.tool "$REPO/files/dproxy.capabilities.json" >/dev/null 2>&1 &&
	echo "PASS lint/json:files/dproxy.capabilities.json" >>"$lint" ||
	echo "FAIL lint/json:files/dproxy.capabilities.json" >>"$lint"

# 2-4. The suites; the two shells run side by side.
busybox sh "$HERE/test-init.sh" busybox "$WORK/init-busybox" &
p1=$!
dash "$HERE/test-init.sh" dash "$WORK/init-dash" &
p2=$!
busybox sh "$HERE/test-hotplug.sh" busybox "$WORK/hotplug-busybox"
dash "$HERE/test-hotplug.sh" dash "$WORK/hotplug-dash"
busybox sh "$HERE/test-ntp-hotplug.sh" busybox "$WORK/ntp-hotplug-busybox"
dash "$HERE/test-ntp-hotplug.sh" dash "$WORK/ntp-hotplug-dash"
sh "$HERE/test-feed.sh" "$WORK/feed"
sh "$HERE/test-package.sh" "$WORK/package"
wait "$p1" "$p2"

cat "$lint" "$WORK/init-busybox" "$WORK/init-dash" "$WORK/hotplug-busybox" \
	"$WORK/hotplug-dash" "$WORK/ntp-hotplug-busybox" "$WORK/ntp-hotplug-dash" \
	"$WORK/feed" "$WORK/package" >"$WORK/all" 2>/dev/null
cat "$WORK/all"
passed="$(grep -c '^PASS ' "$WORK/all")"
failed="$(grep -c '^FAIL ' "$WORK/all")"
skipped="$(grep -c '^SKIP ' "$WORK/all")"
echo "openwrt: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
