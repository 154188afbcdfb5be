#!/bin/sh
# The NTP hotplug script (files/dproxy.ntp-hotplug) across ACTION x stratum,
# with a stub dproxy binary and logger, the fake uci, and a real Unix socket
# file standing for the control socket.
# Usage: SHELL_NAME RESULTS_FILE; the script is run by the shell named
# (busybox or dash), sourced the way hotplug-call does it.
# shellcheck shell=sh
# shellcheck disable=SC3043,SC2034,SC1091

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SHELL_NAME="$1"
SUITE="ntp-hotplug[$1]"
RESULTS="$2"
. "$HERE/lib.sh"

case "$SHELL_NAME" in
	busybox) RUN_SH="busybox sh" ;;
	*) RUN_SH="$SHELL_NAME" ;;
esac

# make_socket PATH: a Unix socket file, as a listening daemon leaves it.
make_socket() {
	mkdir -p "$(dirname "$1")"
	python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$1"
}

# setup: the shipped config with the control socket in the case directory, a
# socket file there, and stub tools on PATH. The stub dproxy records its
# arguments; with the file 'slow' it first waits for the gate; `ctl stats`
# shows clock=unsynced, or clock=synced with the file 'synced'.
setup() {
	mkdir -p "$CASE_DIR/config" "$CASE_DIR/bin"
	FAKE_UCI_DIR="$CASE_DIR/config"
	export FAKE_UCI_DIR
	cp "$REPO/files/dproxy.config" "$FAKE_UCI_DIR/dproxy"
	ln -s "$HERE/fake-uci" "$CASE_DIR/bin/uci"
	PATH="$CASE_DIR/bin:$PATH"
	SOCK="$CASE_DIR/run/dproxy.sock"
	uci set dproxy.main.control_socket="$SOCK"
	uci commit dproxy
	make_socket "$SOCK"
	EVENTS="$CASE_DIR/events"
	: >"$EVENTS"
	cat >"$CASE_DIR/bin/dproxy" <<EOF2
#!/bin/sh
[ -f "$CASE_DIR/slow" ] && read -r _ <"$CASE_DIR/gate"
echo "dproxy \$*" >>"$EVENTS"
if [ "\$3 \$4" = "$SOCK stats" ]; then
	echo "link=up"
	[ -f "$CASE_DIR/synced" ] && echo "clock=synced" || echo "clock=unsynced"
fi
[ ! -f "$CASE_DIR/ctl-fails" ]
EOF2
	cat >"$CASE_DIR/bin/logger" <<EOF2
#!/bin/sh
echo "logger \$*" >>"$EVENTS"
EOF2
	chmod 755 "$CASE_DIR/bin/dproxy" "$CASE_DIR/bin/logger"
	DPROXY_BIN="$CASE_DIR/bin/dproxy"
	export DPROXY_BIN
}

# ntp_hotplug ACTION STRATUM: as hotplug-call runs it (sourced, in a subshell,
# the environment of busybox ntpd), then wait for its background work: the
# run inherits fd 9, the write end of a fifo, as does everything it starts in
# the background, so the fifo reads end of file when the last of them exits.
ntp_hotplug() {
	ntp_hotplug_start "$@"
	ntp_hotplug_wait "$@"
}

ntp_hotplug_start() {
	FIFO="$CASE_DIR/done.fifo"
	rm -f "$FIFO"
	mkfifo "$FIFO"
	timeout 30 cat "$FIFO" >/dev/null &
	READER=$!
	# shellcheck disable=SC2086  # RUN_SH and IN_NS are commands and their arguments
	ACTION="$1" stratum="$2" freq_drift_ppm=0 offset=0.001 poll_interval=64 \
		timeout 20 ${IN_NS:-} $RUN_SH -c ". '$REPO/files/dproxy.ntp-hotplug'" </dev/null 9>"$FIFO"
	[ $? = 124 ] && fail "ACTION=$1 stratum=$2: the hotplug script blocked (killed after 20 s)"
	return 0
}

ntp_hotplug_wait() {
	wait "$READER" || fail "ACTION=$1 stratum=$2: background work still running after 30 s"
	rm -f "$FIFO"
}

events() {
	tr '\n' '|' <"$EVENTS"
}

stats_event() {
	echo "dproxy ctl --socket $SOCK stats|"
}

synced_events() {
	echo "dproxy ctl --socket $SOCK time-synced|logger -t dproxy NTP synchronised (stratum $1): certificate dates are checked in full|"
}

case_matrix() {
	setup
	local action stratum want
	for action in stratum step periodic unsync ''; do
		for stratum in 1 2 15 16 ''; do
			: >"$EVENTS"
			ntp_hotplug "$action" "$stratum"
			want=
			case "$action:$stratum" in
				stratum:16) ;;
				stratum:) want="$(synced_events '?')" ;;
				stratum:*) want="$(synced_events "$stratum")" ;;
				step:16 | step: | periodic:16 | periodic:) ;;
				step:* | periodic:*) want="$(stats_event)$(synced_events "$stratum")" ;;
			esac
			assert_eq "ACTION=$action stratum=$stratum" "$want" "$(events)"
		done
	done
}

# private_run SOCKET...: later hotplug runs see a /var/run of their own (a
# tmpfs in a mount namespace, never this machine's) holding just these socket
# files, so that the built-in default paths can be tried. Needs root.
private_run() {
	local s
	{
		echo 'mount -t tmpfs dproxy-test-run /var/run || exit 97'
		for s in "$@"; do
			echo "mkdir -p '$(dirname "$s")' &&"
			echo "python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' '$s' || exit 98"
		done
		echo 'exec "$@"'
	} >"$CASE_DIR/private-run.sh"
	IN_NS="unshare --mount --propagation private sh $CASE_DIR/private-run.sh"
}

# Without the option the default socket is used, or the default of older
# versions when only that one is there (a daemon started before an upgrade).
unset_socket_case() {
	setup
	uci -q delete dproxy.main.control_socket
	uci commit dproxy
	private_run "$@"
	ntp_hotplug stratum 3
}

case_default_socket_when_not_configured() {
	unset_socket_case /var/run/dproxy/dproxy.sock
	assert_eq "events" "$(SOCK=/var/run/dproxy/dproxy.sock synced_events 3)" "$(events)"
}

case_old_default_socket_when_only_it_exists() {
	unset_socket_case /var/run/dproxy.sock
	assert_eq "events" "$(SOCK=/var/run/dproxy.sock synced_events 3)" "$(events)"
}

case_default_socket_preferred_over_the_old_one() {
	unset_socket_case /var/run/dproxy/dproxy.sock /var/run/dproxy.sock
	assert_eq "events" "$(SOCK=/var/run/dproxy/dproxy.sock synced_events 3)" "$(events)"
}

case_no_default_socket_nothing_told() {
	unset_socket_case
	assert_eq "events" "" "$(events)"
}

# An empty control_socket turns the daemon's socket off. It can only be
# written into the file by hand (`uci set` with '' deletes the option), and
# uci reads it as unset: the hotplug script looks at the default paths, where
# no daemon listens, and tells nothing.
case_control_socket_off() {
	setup
	sed "s|^\([[:space:]]*option control_socket \).*|\1''|" "$FAKE_UCI_DIR/dproxy" >"$CASE_DIR/dproxy.new"
	mv "$CASE_DIR/dproxy.new" "$FAKE_UCI_DIR/dproxy"
	grep -q "option control_socket ''" "$FAKE_UCI_DIR/dproxy" || fail "control_socket not emptied"
	private_run
	ntp_hotplug stratum 3
	assert_eq "events" "" "$(events)"
}


case_daemon_not_running() {
	setup
	rm "$SOCK"
	ntp_hotplug stratum 3
	assert_eq "events" "" "$(events)"
}

case_no_config() {
	setup
	rm "$FAKE_UCI_DIR/dproxy"
	private_run /var/run/dproxy/dproxy.sock
	ntp_hotplug stratum 3
	assert_eq "events" "$(SOCK=/var/run/dproxy/dproxy.sock synced_events 3)" "$(events)"
}

case_binary_missing() {
	setup
	DPROXY_BIN="$CASE_DIR/bin/absent"
	ntp_hotplug stratum 3
	assert_eq "events" "" "$(events)"
}

case_ctl_error_is_not_logged_as_synced() {
	setup
	touch "$CASE_DIR/ctl-fails"
	ntp_hotplug stratum 3
	assert_eq "events" "dproxy ctl --socket $SOCK time-synced|" "$(events)"
}

# A restarted dproxy is told on the next periodic or step event; one that is
# synced already is only asked (no time-synced, no log line every 11 minutes).
case_periodic_tells_only_an_unsynced_daemon() {
	setup
	ntp_hotplug periodic 2
	assert_eq "unsynced" "$(stats_event)$(synced_events 2)" "$(events)"
	touch "$CASE_DIR/synced"
	: >"$EVENTS"
	ntp_hotplug periodic 2
	assert_eq "synced" "$(stats_event)" "$(events)"
	: >"$EVENTS"
	ntp_hotplug step 3
	assert_eq "synced, step" "$(stats_event)" "$(events)"
}

# The ctl call blocks until the test opens the gate: the hotplug script must
# return before that, and the call still happens once it is open.
case_never_blocks() {
	setup
	touch "$CASE_DIR/slow"
	mkfifo "$CASE_DIR/gate"
	ntp_hotplug_start stratum 2
	assert_eq "events while ctl blocks" "" "$(events)"
	timeout 10 sh -c "echo open >\"$CASE_DIR/gate\""
	ntp_hotplug_wait stratum 2
	assert_eq "still told" "$(synced_events 2)" "$(events)"
}

for c in matrix daemon_not_running binary_missing \
	ctl_error_is_not_logged_as_synced never_blocks periodic_tells_only_an_unsynced_daemon; do
	run_case "$c"
done
# The default paths: in a mount namespace of their own.
if [ "$(id -u)" = 0 ] && unshare --mount --propagation private true 2>/dev/null; then
	ns_skip=
else
	ns_skip="needs root for a mount namespace"
fi
for c in default_socket_when_not_configured old_default_socket_when_only_it_exists \
	default_socket_preferred_over_the_old_one no_default_socket_nothing_told no_config \
	control_socket_off; do
	if [ -n "$ns_skip" ]; then
		echo "SKIP $SUITE/$c ($ns_skip)" >>"$RESULTS"
	else
		run_case "$c"
	fi
done
