#!/bin/sh
# The package as a router gets it: the .ipk that scripts/mkipk.sh makes (with
# the host build of the daemon) is unpacked with its modes into a scratch root,
# with the user opkg would create for Require-User. The init script's
# start_service runs in that root against the procd stand-ins; the daemon is
# then started exactly as procd would start it (the recorded command, as the
# recorded user, in the root), must answer, and must apply a config change
# made the way `uci commit` makes it (new file, mode 0600, renamed over the
# old) after the init script's reload and procd's SIGHUP.
#
# Needs root (chroot, a private network namespace); otherwise every case is
# SKIPped. Usage: DPROXY_BIN=... test-package.sh RESULTS_FILE
# shellcheck shell=sh
# shellcheck disable=SC3043,SC2034,SC1091,SC2317

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SUITE=package
RESULTS="$1"
. "$HERE/lib.sh"

# The package's user, as opkg's default_postinst would add it.
PKG_UID=65450

skip_reason() {
	[ "$(id -u)" = 0 ] || { echo "needs root"; return; }
	[ -x "${DPROXY_BIN:-}" ] || { echo "set DPROXY_BIN to a host build"; return; }
	for t in unshare chroot dig ip busybox ldd; do
		command -v "$t" >/dev/null 2>&1 || { echo "$t is missing"; return; }
	done
	unshare --net true 2>/dev/null || echo "cannot create a network namespace"
}

# Copies a dynamically linked program's libraries into the root.
copy_libs() {
	local lib
	for lib in $(ldd "$1" | grep -o '/[^ ]*'); do
		[ -e "$ROOT$lib" ] && continue
		mkdir -p "$ROOT$(dirname "$lib")"
		cp -L "$lib" "$ROOT$lib"
	done
}

# setup: the scratch router with the package installed.
setup() {
	ROOT="$CASE_DIR/root"
	local ipk="$CASE_DIR/dist" out
	mkdir -p "$ROOT" "$ipk"
	out="$(sh "$REPO/scripts/mkipk.sh" --arch x86_64 --binary "$DPROXY_BIN" \
		--version 0.0.1 --release 1 --out "$ipk" 2>&1)" || { fail "mkipk: $out"; return 1; }
	mkdir "$CASE_DIR/ipk"
	if ! tar -xzf "$ipk"/dproxy_0.0.1-r1_x86_64.ipk -C "$CASE_DIR/ipk" ||
		! tar -xzpf "$CASE_DIR/ipk/data.tar.gz" --same-owner -C "$ROOT"; then
		fail "cannot unpack the .ipk"
		return 1
	fi
	assert_eq "mode of /etc/config/dproxy in the package" 600 "$(stat -c %a "$ROOT/etc/config/dproxy")"
	mkdir -p "$ROOT/bin" "$ROOT/tmp" "$ROOT/var/run" "$ROOT/lib/test" "$ROOT/dev"
	mknod -m 666 "$ROOT/dev/null" c 1 3
	chmod 1777 "$ROOT/tmp"
	cp "$(command -v busybox)" "$ROOT/bin/busybox"
	for t in sh awk cat chmod chown cp dirname grep mkdir mv rm sed touch; do
		ln -s busybox "$ROOT/bin/$t"
	done
	copy_libs "$ROOT/bin/busybox"
	copy_libs "$ROOT/usr/sbin/dproxy"
	cp "$HERE/procd-stubs.sh" "$ROOT/lib/test/"
	printf 'root:x:0:0:root:/root:/bin/sh\ndproxy:x:%s:%s:dproxy:/var/run/dproxy:/bin/false\n' \
		"$PKG_UID" "$PKG_UID" >"$ROOT/etc/passwd"
	printf 'root:x:0:\ndproxy:x:%s:\n' "$PKG_UID" >"$ROOT/etc/group"
	printf '127.0.0.1 localhost\n192.0.2.7 pkgtest\n' >"$ROOT/etc/hosts"
	# No logd: logger writes to a file.
	printf '#!/bin/sh\necho "$*" >>/tmp/logger.log\n' >"$ROOT/bin/logger"
	chmod 755 "$ROOT/bin/logger"
	# opkg's default_postinst enables the service.
	mkdir -p "$ROOT/etc/rc.d"
	ln -s ../init.d/dproxy "$ROOT/etc/rc.d/S18dproxy"
	return 0
}

# as_uci OPTION VALUE: change the config the way `uci commit` does: a new
# file, mode 0600, renamed over the old one.
as_uci() {
	local f="$ROOT/etc/config/dproxy"
	sed "s|^\([ 	]*option $1 \).*|\1'$2'|" "$f" >"$f.uci-new"
	grep -q "^[ 	]*option $1 '$2'" "$f.uci-new" || printf "\toption %s '%s'\n" "$1" "$2" >>"$f.uci-new"
	chmod 0600 "$f.uci-new"
	mv -f "$f.uci-new" "$f"
}

# uci_delete OPTION: delete an option the way `uci delete; uci commit` does.
uci_delete() {
	local f="$ROOT/etc/config/dproxy"
	grep -v "^[ 	]*option $1 " "$f" >"$f.uci-new"
	chmod 0600 "$f.uci-new"
	mv -f "$f.uci-new" "$f"
}

# initd ACTION: the init script in the root, with the procd stand-ins.
initd() {
	chroot "$ROOT" /bin/sh -c '
		PROCD_LOG=/tmp/procd.log FAKE_UCI_DIR=/etc/config
		. /lib/test/procd-stubs.sh
		load_init_script /etc/init.d/dproxy
		'"$1" >>"$CASE_DIR/initd.out" 2>&1
}

# The instance procd would run: its command and user.
instance_param() {
	sed -n "s/^procd_set_param $1 //p" "$ROOT/tmp/procd.log" | tail -n 1
}

# Starts the recorded command as the recorded user in the root, in this
# case's network namespace (the caller runs the case in one).
spawn_daemon() {
	local cmd user uid gid
	cmd="$(instance_param command)"
	user="$(instance_param user)"
	[ -n "$cmd" ] || { fail "the init script started no instance"; return 1; }
	uid=0 gid=0
	if [ -n "$user" ]; then
		uid="$(awk -F: -v u="$user" '$1 == u { print $3 }' "$ROOT/etc/passwd")"
		gid="$(awk -F: -v u="$user" '$1 == u { print $4 }' "$ROOT/etc/passwd")"
		[ -n "$uid" ] || { fail "procd user '$user' is not in /etc/passwd"; return 1; }
	fi
	echo "spawn as $uid:$gid: $cmd" >>"$CASE_DIR/initd.out"
	# shellcheck disable=SC2086  # the recorded command is split as procd splits it
	chroot --userspec="$uid:$gid" --groups="$gid" "$ROOT" $cmd \
		</dev/null >>"$CASE_DIR/daemon.log" 2>&1 &
	DAEMON=$!
	echo "$DAEMON" >>"$DAEMON_PIDS"
}

# wait_until WHAT COMMAND...: retries COMMAND for up to 10 s.
wait_until() {
	local what="$1" n=0
	shift
	while ! "$@" >/dev/null 2>&1; do
		n=$((n + 1))
		if [ "$n" -ge 100 ] || ! kill -0 "$DAEMON" 2>/dev/null; then
			fail "$what (daemon log: $(tail -n 3 "$CASE_DIR/daemon.log" | tr '\n' '|'))"
			return 1
		fi
		sleep 0.1
	done
}

answers() {
	dig +short +time=1 +tries=1 -p "$1" @127.0.0.1 pkgtest A | grep -qx 192.0.2.7
}

budget_is() {
	[ "$(chroot "$ROOT" /usr/sbin/dproxy ctl stats | sed -n 's/^cache_budget=//p')" = "$1" ]
}

# The whole router life: start, answer, uci change, reload, change in force.
start_change_reload() {
	local port="$1"
	initd start
	spawn_daemon || return 1
	wait_until "no answer on port $port after start" answers "$port" || return 1
	wait_until "ctl stats (the config's control socket) does not show cache_size 1024" \
		budget_is 1048576 || return 1
	as_uci cache_size 2048
	assert_eq "mode after uci commit" 600 "$(stat -c %a "$ROOT/etc/config/dproxy")"
	# procd knows the instance runs.
	initd "FAKE_RUNNING=1; reload"
	# procd: the instance's file changed, so it sends the reload signal.
	kill -HUP "$DAEMON"
	wait_until "cache_size 2048 not in force after reload" budget_is 2097152 || return 1
	answers "$port" || fail "no answer after the reload"
}

stop_daemon() {
	[ -n "${DAEMON:-}" ] || return 0
	kill "$DAEMON" 2>/dev/null
	wait "$DAEMON" 2>/dev/null
	return 0
}

# procd starts the daemon as the package's user (port 1296).
case_stock_install_answers_and_reloads() {
	setup || return
	as_uci enabled 1
	start_change_reload 1296
	stop_daemon
}

# A port below 1024 without ujail: procd starts the daemon as root and it
# drops to 'option user' itself, as in replace mode.
case_root_start_with_drop_answers_and_reloads() {
	setup || return
	as_uci enabled 1
	as_uci port 53
	start_change_reload 53
	assert_eq "procd user" "" "$(instance_param user)"
	stop_daemon
}

# With control_socket deleted, procd starts the daemon as the package's user:
# it must create its default socket, and `dproxy ctl` (as root, reading
# /etc/config/dproxy) must find it there.
case_unset_control_socket_ctl_works() {
	setup || return
	as_uci enabled 1
	uci_delete control_socket
	start_change_reload 1296
	assert_eq "procd user" dproxy "$(instance_param user)"
	assert_eq "socket" "$PKG_UID 600 socket" \
		"$(stat -c '%u %a %F' "$ROOT/var/run/dproxy/dproxy.sock" 2>&1)"
	stop_daemon
}

# The same when procd starts it as root and it drops to 'option user'.
case_unset_control_socket_root_start_ctl_works() {
	setup || return
	as_uci enabled 1
	as_uci port 53
	uci_delete control_socket
	start_change_reload 53
	assert_eq "procd user" "" "$(instance_param user)"
	# The directory is the user's it dropped to (the clock marker is written there).
	assert_eq "socket directory" "$PKG_UID" "$(stat -c '%u' "$ROOT/var/run/dproxy" 2>&1)"
	stop_daemon
}

# Inside the network namespace: one case, then whatever daemon it left.
if [ "${2:-}" = --case ]; then
	ip link set lo up
	DAEMON_PIDS="$(mktemp)"
	run_case "$3"
	while read -r pid; do
		kill "$pid" 2>/dev/null
	done <"$DAEMON_PIDS"
	rm -f "$DAEMON_PIDS"
	exit 0
fi

reason="$(skip_reason)"
for c in stock_install_answers_and_reloads root_start_with_drop_answers_and_reloads \
	unset_control_socket_ctl_works unset_control_socket_root_start_ctl_works; do
	if [ -n "$reason" ]; then
		echo "SKIP $SUITE/$c ($reason)" >>"$RESULTS"
	else
		# A network namespace of its own: loopback only, port 53 free.
		unshare --net sh "$HERE/test-package.sh" "$RESULTS" --case "$c" ||
			echo "FAIL $SUITE/$c: could not run in a network namespace" >>"$RESULTS"
	fi
done
