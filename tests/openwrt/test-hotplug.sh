#!/bin/sh
# The hotplug script (files/dproxy.hotplug) across ACTION x INTERFACE, with a
# stub init script, stub logger and ubus, and the fake uci.
# Usage: SHELL_NAME RESULTS_FILE; the script is run by the shell named
# (busybox or dash), sourced the way hotplug-call does it.
# shellcheck shell=sh
# shellcheck disable=SC3043,SC2034,SC1091

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SHELL_NAME="$1"
SUITE="hotplug[$1]"
RESULTS="$2"
. "$HERE/lib.sh"

case "$SHELL_NAME" in
	busybox) RUN_SH="busybox sh" ;;
	*) RUN_SH="$SHELL_NAME" ;;
esac

# setup: config dir with the shipped config, enabled; stub tools on PATH.
setup() {
	mkdir -p "$CASE_DIR/config" "$CASE_DIR/bin"
	FAKE_UCI_DIR="$CASE_DIR/config"
	export FAKE_UCI_DIR
	cp "$REPO/files/dproxy.config" "$FAKE_UCI_DIR/dproxy"
	ln -s "$HERE/fake-uci" "$CASE_DIR/bin/uci"
	PATH="$CASE_DIR/bin:$PATH"
	uci set dproxy.main.enabled=1
	uci commit dproxy
	EVENTS="$CASE_DIR/events"
	: >"$EVENTS"
	# The init script: 'enabled' and 'running' answer from files, the
	# link commands are recorded. 'running' can be made slow.
	cat >"$CASE_DIR/bin/dproxy-init" <<EOF2
#!/bin/sh
case "\$1" in
	enabled) [ -f "$CASE_DIR/is-enabled" ] ;;
	running) [ -f "$CASE_DIR/slow" ] && read -r _ <"$CASE_DIR/gate"; echo "running?" >>"$EVENTS"; [ -f "$CASE_DIR/is-running" ] ;;
	link_up|link_down) echo "init \$1" >>"$EVENTS" ;;
	*) echo "init unexpected \$*" >>"$EVENTS"; exit 1 ;;
esac
EOF2
	cat >"$CASE_DIR/bin/logger" <<EOF2
#!/bin/sh
echo "logger \$*" >>"$EVENTS"
EOF2
	# ubus: interfaces listed in the file 'up' are up.
	cat >"$CASE_DIR/bin/ubus" <<EOF2
#!/bin/sh
iface="\${3#network.interface.}"
if grep -qx "\$iface" "$CASE_DIR/up" 2>/dev/null; then
	echo '{"up":true,"pending":false}'
else
	echo '{"up":false,"pending":false}'
fi
EOF2
	chmod 755 "$CASE_DIR/bin/dproxy-init" "$CASE_DIR/bin/logger" "$CASE_DIR/bin/ubus"
	touch "$CASE_DIR/is-enabled" "$CASE_DIR/is-running" "$CASE_DIR/up"
	DPROXY_INIT="$CASE_DIR/bin/dproxy-init"
	export DPROXY_INIT
}

# hotplug ACTION INTERFACE: run it as hotplug-call does (sourced, in a
# subshell, environment from netifd), then wait for its background work.
# The run inherits fd 9, the write end of a fifo, and so does everything it
# starts in the background (only fds 0-2 are redirected there): the fifo
# reads end of file exactly when the last of them has exited.
hotplug() {
	hotplug_start "$@"
	hotplug_wait "$@"
}

# hotplug_start ACTION INTERFACE: the part netifd waits for. It must return
# on its own; after 20 s it is killed and the case fails.
hotplug_start() {
	FIFO="$CASE_DIR/done.fifo"
	rm -f "$FIFO"
	mkfifo "$FIFO"
	timeout 30 cat "$FIFO" >/dev/null &
	READER=$!
	# shellcheck disable=SC2086  # RUN_SH is a command and its arguments
	ACTION="$1" INTERFACE="$2" DEVICE=eth1 timeout 20 $RUN_SH -c ". '$REPO/files/dproxy.hotplug'" \
		</dev/null 9>"$FIFO"
	[ $? = 124 ] && fail "ACTION=$1 INTERFACE=$2: the hotplug script blocked (killed after 20 s)"
	return 0
}

hotplug_wait() {
	wait "$READER" || fail "ACTION=$1 INTERFACE=$2: background work still running after 30 s"
	rm -f "$FIFO"
}

events() {
	tr '\n' '|' <"$EVENTS"
}

case_matrix() {
	setup
	local action iface want
	for action in ifup ifdown ifupdate ifup-failed free reload create ''; do
		for iface in wan wan6 lan loopback wwan ''; do
			: >"$EVENTS"
			hotplug "$action" "$iface"
			want=
			case "$action:$iface" in
				ifup:wan|ifup:wan6)
					want="running?|init link_up|logger -t dproxy $iface ifup: link_up|" ;;
				ifdown:wan|ifdown:wan6)
					want="running?|init link_down|logger -t dproxy $iface ifdown: link_down|" ;;
			esac
			assert_eq "ACTION=$action INTERFACE=$iface" "$want" "$(events)"
		done
	done
}

case_other_wan_interfaces() {
	setup
	uci -q delete dproxy.main.wan_interface
	uci add_list dproxy.main.wan_interface=wwan
	uci commit dproxy
	hotplug ifup wwan
	assert_eq "wwan up" "running?|init link_up|logger -t dproxy wwan ifup: link_up|" "$(events)"
	: >"$EVENTS"
	hotplug ifup wan
	assert_eq "wan no longer listed" "" "$(events)"
}

case_disabled_in_config() {
	setup
	uci set dproxy.main.enabled=0
	uci commit dproxy
	hotplug ifup wan
	hotplug ifdown wan
	assert_eq "events" "" "$(events)"
}

case_service_not_enabled() {
	setup
	rm "$CASE_DIR/is-enabled"
	hotplug ifup wan
	assert_eq "events" "" "$(events)"
}

case_service_not_running() {
	setup
	rm "$CASE_DIR/is-running"
	hotplug ifup wan
	hotplug ifdown wan6
	assert_eq "events" "running?|running?|" "$(events)"
}

case_link_down_waits_for_the_last_wan() {
	setup
	echo wan6 >"$CASE_DIR/up"
	hotplug ifdown wan
	assert_eq "wan down, wan6 up" \
		"running?|logger -t dproxy wan down, wan6 still up: staying online|" "$(events)"
	: >"$EVENTS"
	: >"$CASE_DIR/up"
	hotplug ifdown wan6
	assert_eq "wan6 down too" "running?|init link_down|logger -t dproxy wan6 ifdown: link_down|" "$(events)"
}

# 'running' (a ubus call to procd) blocks until the test opens the gate: the
# hotplug script must return before that, and signal once it is open.
case_never_blocks() {
	setup
	touch "$CASE_DIR/slow"
	mkfifo "$CASE_DIR/gate"
	hotplug_start ifup wan
	assert_eq "events while 'running' blocks" "" "$(events)"
	timeout 10 sh -c "echo open >\"$CASE_DIR/gate\""
	hotplug_wait ifup wan
	assert_eq "still signalled" "running?|init link_up|logger -t dproxy wan ifup: link_up|" "$(events)"
}

case_no_config() {
	setup
	rm "$FAKE_UCI_DIR/dproxy"
	hotplug ifup wan
	assert_eq "events" "" "$(events)"
}

for c in matrix other_wan_interfaces disabled_in_config service_not_enabled \
	service_not_running link_down_waits_for_the_last_wan never_blocks no_config; do
	run_case "$c"
done
