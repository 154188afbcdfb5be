#!/bin/sh
# Runs buildroot/package/dproxy/S50dproxy for real, under busybox sh with
# busybox's start-stop-daemon, against a dproxy binary on loopback:
# start, status, reload keeps the cache (and re-reads hosts), the ifupdown
# hooks' USR1/USR2 leave it running, restart, stop, and a bad config refused.
#
#   tests/buildroot/s50_test.sh [path/to/dproxy]   (default target/release/dproxy)
# shellcheck disable=SC2015 # ok() always succeeds: A && ok || fail is safe
set -u

here=$(cd "$(dirname "$0")/../.." && pwd)
pkg="$here/buildroot/package/dproxy"
dnstool="$here/tests/cross/dnstool.py"
bin=$(realpath "${1:-$here/target/release/dproxy}")
[ -x "$bin" ] || { echo "s50_test: no binary at $bin" >&2; exit 1; }

tmp=$(mktemp -d /tmp/dproxy-s50.XXXXXX)
# Started as root, the daemon drops to an unprivileged user and must still
# read the hosts file.
chmod 755 "$tmp"
upstream_pid=""
failures=0

cleanup() {
	if [ -s "$tmp/dproxy.pid" ]; then kill "$(cat "$tmp/dproxy.pid")" 2>/dev/null; fi
	if [ -n "$upstream_pid" ]; then kill "$upstream_pid" 2>/dev/null; fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "  ok: $*"; }

# Busybox applets first on PATH, as on a Buildroot system.
mkdir "$tmp/bin"
for applet in start-stop-daemon sleep cat rm kill; do
	ln -s "$(command -v busybox)" "$tmp/bin/$applet"
done
PATH="$tmp/bin:$PATH"
export PATH
# DPROXY_RUNDIR stands for /var/run/dproxy: the init script must create it.
export DPROXY_BIN="$bin" DPROXY_PIDFILE="$tmp/dproxy.pid" DPROXY_DEFAULTS="$tmp/default" \
	DPROXY_RUNDIR="$tmp/run"

# The init script and the hooks as Buildroot's /bin/sh (busybox ash) runs them.
s50() { busybox sh "$pkg/S50dproxy" "$@"; }
hook() { IFACE=$2 MODE=$3 PHASE=$4 busybox sh "$pkg/$1"; }

# A counting upstream on a free port.
mkdir "$tmp/up"
python3 "$dnstool" upstream --state "$tmp/up" --answer 198.51.100.7 &
upstream_pid=$!
i=0
while [ ! -s "$tmp/up/port" ]; do
	i=$((i + 1)); [ $i -gt 100 ] && { echo "s50_test: upstream did not start" >&2; exit 1; }
	sleep 0.1
done
up_port=$(cat "$tmp/up/port")
port=$(python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import dnstool; print(dnstool.free_port())' "$here/tests/cross")

printf '192.0.2.1\trouter.lan router\n' >"$tmp/hosts"
cat >"$tmp/dproxy.conf" <<CONF
config dproxy 'main'
	list listen '127.0.0.1'
	option port '$port'
	list server '127.0.0.1:$up_port'
	list hosts '$tmp/hosts'
	option control_socket '$tmp/run/dproxy.sock'
	option log_level 'warn'
CONF
echo "DPROXY_ARGS=\"-c $tmp/dproxy.conf\"" >"$tmp/default"

q() { python3 "$dnstool" query --timeout 1 "$port" "$1"; }
upstream_count() { grep -cix "$1" "$tmp/up/queries"; }
wait_answer() {
	i=0
	until q "$1" >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -gt 50 ] && return 1
		sleep 0.2
	done
}
pid() { cat "$tmp/dproxy.pid" 2>/dev/null; }
# Alive and not a zombie (a daemonized child may wait a while to be reaped).
alive() {
	[ -r "/proc/$1/stat" ] || return 1
	[ "$(sed 's/.*) //' "/proc/$1/stat" | cut -d ' ' -f 1)" != Z ]
}

echo "S50dproxy test: $bin on 127.0.0.1:$port"

# The configuration the package installs must pass the daemon's own check.
out=$("$bin" -c "$pkg/dproxy.conf" --check-config 2>&1) && ok "shipped dproxy.conf: $out" \
	|| fail "shipped dproxy.conf: $out"

out=$(s50 start) || fail "start: $out"
[ -s "$tmp/dproxy.pid" ] || fail "start wrote no pidfile"
wait_answer router.lan || fail "no answer for the hosts name after start"
[ "$(q router.lan)" = 192.0.2.1 ] && ok "start: $out; answers router.lan" \
	|| fail "router.lan: $(q router.lan)"

out=$(s50 status); rc=$?
[ $rc -eq 0 ] && ok "status: $out" || fail "status after start: rc $rc, $out"

# The control socket in the directory the init script made for it.
out=$("$bin" ctl -c "$tmp/dproxy.conf" stats 2>&1) && ok "ctl stats on $tmp/run/dproxy.sock" \
	|| fail "ctl stats: $out"

q www.example.com >/dev/null || fail "no answer for www.example.com"
[ "$(q www.example.com)" = 198.51.100.7 ] || fail "www.example.com from cache"
[ "$(upstream_count www.example.com)" = 1 ] && ok "forwarded once, then from cache" \
	|| fail "upstream saw $(upstream_count www.example.com) queries, expected 1"

# Reload: same process, cache kept, hosts file re-read.
before=$(pid)
printf '192.0.2.2\tnas.lan\n' >>"$tmp/hosts"
out=$(s50 reload) || fail "reload: $out"
sleep 0.5
[ "$(pid)" = "$before" ] && alive "$before" || fail "reload did not keep the process"
[ "$(q www.example.com)" = 198.51.100.7 ] || fail "no answer for www.example.com after reload"
[ "$(upstream_count www.example.com)" = 1 ] && ok "reload: $out; cache kept" \
	|| fail "reload lost the cache (upstream saw $(upstream_count www.example.com) queries)"
[ "$(q nas.lan)" = 192.0.2.2 ] && ok "reload re-read the hosts file" \
	|| fail "nas.lan not answered after reload"

# The ifupdown hooks signal the running daemon; loopback is ignored.
hook if-down eth0 stop pre-down || fail "if-down hook failed"
hook if-up eth0 start post-up || fail "if-up hook failed"
hook if-up lo start post-up || fail "if-up hook failed for lo"
sleep 0.3
alive "$before" && q router.lan >/dev/null && ok "if-down/if-up hooks (USR2/USR1)" \
	|| fail "daemon gone or silent after the ifupdown hooks"

# Restart: a new process with an empty cache.
out=$(s50 restart) || fail "restart: $out"
wait_answer router.lan || fail "no answer after restart"
[ -n "$(pid)" ] && [ "$(pid)" != "$before" ] || fail "restart kept pid $before"
q www.example.com >/dev/null
[ "$(upstream_count www.example.com)" = 2 ] && ok "restart: new pid $(pid)" \
	|| fail "after restart upstream saw $(upstream_count www.example.com) queries, expected 2"

last=$(pid)
out=$(s50 stop) || fail "stop: $out"
if alive "$last"; then fail "pid $last still running after stop"; fi
[ -e "$tmp/dproxy.pid" ] && fail "stop left the pidfile"
q router.lan >/dev/null 2>&1 && fail "still answering after stop"
out=$(s50 status); rc=$?
[ $rc -eq 3 ] && ok "stop; status: $out" || fail "status after stop: rc $rc, $out"

# A broken configuration is refused up front.
echo "config dproxy 'main'" >"$tmp/bad.conf"
printf "\toption port 'not-a-port'\n" >>"$tmp/bad.conf"
echo "DPROXY_ARGS=\"-c $tmp/bad.conf\"" >"$tmp/default"
out=$(s50 start 2>&1); rc=$?
[ $rc -ne 0 ] && [ ! -s "$tmp/dproxy.pid" ] && ok "bad config refused: $(echo "$out" | head -n 1)" \
	|| fail "start with a bad config: rc $rc, $out"

out=$(s50 frobnicate); rc=$?
[ $rc -eq 1 ] || fail "unknown command: rc $rc"

if [ "$failures" -ne 0 ]; then
	echo "S50dproxy test: $failures failure(s)" >&2
	exit 1
fi
echo "S50dproxy test: ok"
