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
	running) [ -f "$CASE_DIR/slow" ] && sleep 2; echo "running?" >>"$EVENTS"; [ -f "$CASE_DIR/is-running" ] ;;
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
hotplug() {
	local t0 t1
	t0="$(date +%s%N)"
	ACTION="$1" INTERFACE="$2" DEVICE=eth1 $RUN_SH -c ". '$REPO/files/dproxy.hotplug'" </dev/null
	t1="$(date +%s%N)"
	ELAPSED_MS=$(((t1 - t0) / 1000000))
	settle
}

# Wait until the background part has finished: the event log stops growing.
settle() {
	local n=0 last=-1 cur
	while [ "$n" -lt 60 ]; do
		cur="$(wc -c <"$EVENTS")"
		if [ "$cur" = "$last" ] && ! pgrep -f "$CASE_DIR/bin/" >/dev/null 2>&1; then
			break
		fi
		last="$cur"
		sleep 0.1
		n=$((n + 1))
	done
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

case_never_blocks() {
	setup
	touch "$CASE_DIR/slow"
	hotplug ifup wan
	[ "$ELAPSED_MS" -lt 1500 ] || fail "hotplug took ${ELAPSED_MS} ms with a slow init script"
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
