#!/bin/sh
# The procd init script (files/dproxy.init) run against our procd/UCI
# stand-ins, under whichever shell runs this file (run.sh uses busybox sh and
# dash). Usage: SHELL_NAME RESULTS_FILE
# shellcheck shell=sh
# shellcheck disable=SC3043,SC2034,SC1091,SC2317,SC2012

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SUITE="init[$1]"
RESULTS="$2"
. "$HERE/lib.sh"
. "$HERE/procd-stubs.sh"

# --- fixture ---------------------------------------------------------------

# setup [ujail]: a scratch router: config dir, filesystem root, stub tools.
setup() {
	ROOT="$CASE_DIR/root"
	mkdir -p "$ROOT/etc/config" "$ROOT/tmp/resolv.conf.d" "$ROOT/var/run" \
		"$CASE_DIR/config" "$CASE_DIR/bin"
	echo "127.0.0.1 localhost" >"$ROOT/etc/hosts"
	echo "root:x:0:0:root:/root:/bin/ash" >"$ROOT/etc/passwd"
	echo "root:x:0:" >"$ROOT/etc/group"
	echo "nameserver 192.0.2.1" >"$ROOT/tmp/resolv.conf.d/resolv.conf.auto"
	if [ "$1" = ujail ]; then
		mkdir -p "$ROOT/sbin" "$ROOT/etc/capabilities"
		printf '#!/bin/sh\n' >"$ROOT/sbin/ujail"
		chmod 755 "$ROOT/sbin/ujail"
		cp "$REPO/files/dproxy.capabilities.json" "$ROOT/etc/capabilities/dproxy.json"
	fi

	FAKE_UCI_DIR="$ROOT/etc/config"
	FAKE_UCI_LOG="$CASE_DIR/uci.log"
	PROCD_LOG="$CASE_DIR/procd.log"
	export FAKE_UCI_DIR FAKE_UCI_LOG
	: >"$PROCD_LOG"
	: >"$FAKE_UCI_LOG"
	cp "$REPO/files/dproxy.config" "$FAKE_UCI_DIR/dproxy"
	cp "$HERE/fixtures/${DHCP_FIXTURE:-dhcp}" "$FAKE_UCI_DIR/dhcp"

	ln -s "$HERE/fake-uci" "$CASE_DIR/bin/uci"
	cat >"$CASE_DIR/bin/logger" <<EOF
#!/bin/sh
echo "\$*" >>"$CASE_DIR/logger.log"
EOF
	cat >"$CASE_DIR/bin/dnsmasq-init" <<EOF
#!/bin/sh
echo "\$*" >>"$CASE_DIR/dnsmasq.log"
# How many times dproxy had been stopped when dnsmasq was told to reload.
[ "\$1" = reload ] && grep -c '^procd_kill' "$PROCD_LOG" >>"$CASE_DIR/dnsmasq.kills"
[ "\$1" = running ] && { [ -f "$CASE_DIR/dnsmasq.running" ]; exit \$?; }
exit 0
EOF
	chmod 755 "$CASE_DIR/bin/logger" "$CASE_DIR/bin/dnsmasq-init"
	touch "$CASE_DIR/dnsmasq.running" "$CASE_DIR/logger.log" "$CASE_DIR/dnsmasq.log"
	PATH="$CASE_DIR/bin:$PATH"

	load_init_script "$REPO/files/dproxy.init"
	FSROOT="$ROOT"
	DNSMASQ_INIT="$CASE_DIR/bin/dnsmasq-init"
	# netifd's view of the LAN interfaces, for replace mode.
	lan_ipaddrs() { case "$1" in lan) echo 192.168.1.1 ;; iot) echo 10.9.0.1 ;; esac; }
	lan_ipaddrs6() { case "$1" in lan) echo fd00:1::1 ;; esac; }
	# The canonical form of the untouched dhcp config, to compare with.
	uci export dhcp >"$CASE_DIR/dhcp.orig"
	uci show dhcp | sort >"$CASE_DIR/dhcp.orig.show"
}

# cfg OPTION=VALUE...: change the shipped dproxy config (lists: OPTION+=V).
cfg() {
	local kv
	for kv in "$@"; do
		case "$kv" in
			*+=*) uci add_list "dproxy.main.${kv%%+=*}=${kv#*+=}" ;;
			*=) uci -q delete "dproxy.main.${kv%=}" ;;
			*) uci set "dproxy.main.$kv" ;;
		esac
	done
	uci commit dproxy
}

# The recorded procd instance: the lines from open to close of the instance.
instance() {
	sed -n '/^procd_open_instance/,/^procd_close_instance/p' "$PROCD_LOG"
}

expect_instance() {
	cat >"$CASE_DIR/instance.want"
	instance >"$CASE_DIR/instance.got"
	assert_file_eq "procd instance" "$CASE_DIR/instance.want" "$CASE_DIR/instance.got"
}

# insert_after LINE FILE <INPUT: copy INPUT, adding FILE's lines after the
# first line equal to LINE.
insert_after() {
	awk -v line="$1" -v add="$2" '
		{ print }
		$0 == line && !done { while ((getline l < add) > 0) print l; done = 1 }
	'
}

mark() {
	echo "--- $*" >>"$PROCD_LOG"
	echo "--- $*" >>"$FAKE_UCI_LOG"
}

commits() {
	grep -c '^uci commit dhcp' "$FAKE_UCI_LOG"
}

# --- cases: the script itself ---------------------------------------------

case_sourcing_has_no_side_effects() {
	mkdir -p "$CASE_DIR/bin"
	PROCD_LOG="$CASE_DIR/procd.log"
	FAKE_UCI_LOG="$CASE_DIR/uci.log"
	export FAKE_UCI_LOG
	ln -s "$HERE/fake-uci" "$CASE_DIR/bin/uci"
	PATH="$CASE_DIR/bin:$PATH"
	before="$(ls -A "$CASE_DIR")"
	load_init_script "$REPO/files/dproxy.init"
	assert_eq "records after sourcing" "extra_command link_up|extra_command link_down|" \
		"$(tr '\n' '|' <"$PROCD_LOG")"
	assert_eq "uci calls while sourcing" "" "$(cat "$FAKE_UCI_LOG" 2>/dev/null)"
	mv "$PROCD_LOG" "$PROCD_LOG.kept"
	assert_eq "files created" "$before" "$(ls -A "$CASE_DIR" | sed '/^procd.log.kept$/d')"
}

case_header() {
	setup
	assert_eq "USE_PROCD" 1 "$USE_PROCD"
	assert_eq "START (dnsmasq is 19)" 18 "$START"
	[ "$START" -lt 19 ] || fail "START must come before dnsmasq's 19"
	[ -n "$STOP" ] || fail "STOP is not set"
	assert_eq "shebang" "#!/bin/sh /etc/rc.common" "$(head -n 1 "$REPO/files/dproxy.init")"
	assert_eq "EXTRA_COMMANDS" "link_up link_down" "$EXTRA_COMMANDS"
}

case_extra_commands_without_extra_command() {
	# rc.common before 21.02 has no extra_command(): EXTRA_COMMANDS is used.
	PROCD_LOG="$CASE_DIR/procd.log"
	EXTRA_COMMANDS=
	# shellcheck disable=SC1090,SC1091
	. "$REPO/files/dproxy.init"
	assert_eq "EXTRA_COMMANDS" "link_up link_down" "$EXTRA_COMMANDS"
}

# --- cases: the stand-ins read a config as OpenWrt does -------------------

# What the real uci and functions.sh (built from OpenWrt's sources) gave for
# the same files: unnamed sections named cfg<position><hash of the type>,
# usable as names; config_load includes staged changes, and keeps the options
# (not the lists) of the package loaded before it.
case_stand_ins_read_config_as_openwrt_does() {
	local v
	setup
	uci -P /var/state -S -n export dhcp | grep '^config ' >"$CASE_DIR/got"
	printf '%s\n' "config dnsmasq 'cfg01411c'" "config dhcp 'lan'" "config dhcp 'wan'" \
		"config odhcpd 'odhcpd'" >"$CASE_DIR/want"
	assert_file_eq "export -n" "$CASE_DIR/want" "$CASE_DIR/got"
	assert_eq "get by uci's name" lan "$(uci get dhcp.cfg01411c.domain)"
	uci set dhcp.lan.ignore=1
	config_load dproxy
	config_load dhcp
	assert_eq "sections" "cfg01411c lan wan odhcpd" "$CONFIG_SECTIONS"
	config_get v lan ignore
	assert_eq "staged change" 1 "$v"
	config_get v cfg01411c domain
	assert_eq "unnamed section" lan "$v"
	config_get v main port
	assert_eq "option of the package loaded before" 1296 "$v"
	config_get v main listen
	assert_eq "list of the package loaded before" "" "$v"
	uci revert dhcp
}

# --- cases: procd instance --------------------------------------------------

case_disabled_starts_nothing() {
	setup ujail
	start
	assert_no_match "instance" '^procd_open_instance' "$PROCD_LOG"
	assert_line "service still registered (procd drops old instances)" \
		"procd_open_service dproxy $REPO/files/dproxy.init" "$PROCD_LOG"
	assert_eq "dhcp commits" 0 "$(commits)"
	assert_eq "dnsmasq calls" "" "$(cat "$CASE_DIR/dnsmasq.log")"
}

case_enabled_with_jail() {
	setup ujail
	cfg enabled=1
	start
	expect_instance <<'EOF'
procd_open_instance
procd_set_param command /usr/sbin/dproxy -c /var/etc/dproxy/dproxy.conf
procd_set_param file /etc/config/dproxy
procd_set_param reload_signal HUP
procd_set_param respawn
procd_set_param stdout 1
procd_set_param stderr 1
procd_set_param pidfile /var/run/dproxy.pid
procd_set_param user dproxy
procd_set_param capabilities /etc/capabilities/dproxy.json
procd_set_param no_new_privs 1
procd_add_jail dproxy log ronly
procd_add_jail_mount /var/etc/dproxy /etc/hosts /etc/passwd /etc/group
procd_add_jail_mount_rw /tmp /var/run/dproxy
procd_close_instance
EOF
	assert_line "reload trigger" "procd_add_reload_trigger dproxy" "$PROCD_LOG"
	assert_count "triggers" '^procd_add_(reload|interface|config)_trigger' "$PROCD_LOG" 1
	[ -d "$ROOT/var/run/dproxy" ] || fail "control socket directory not created"
	assert_eq "dhcp commits (mode off)" 0 "$(commits)"
	assert_eq "capabilities file" \
		'CAP_NET_BIND_SERVICE' \
		"$(tr -d ' \t\n' <"$REPO/files/dproxy.capabilities.json" | grep -o 'CAP_[A-Z_]*' | sort -u)"
}

case_jail_mounts_follow_the_config() {
	setup ujail
	cfg enabled=1 persist_file=/tmp/dproxy/cache "hosts+=/etc/hosts.d" "leasefile+=/tmp/odhcpd.leases"
	mkdir -p "$ROOT/etc/hosts.d"
	start
	# The cache directory is created for the daemon; missing lease files and
	# /tmp/hosts are created so they can be mounted, as dnsmasq's init does.
	expect_instance <<'EOF'
procd_open_instance
procd_set_param command /usr/sbin/dproxy -c /var/etc/dproxy/dproxy.conf
procd_set_param file /etc/config/dproxy
procd_set_param reload_signal HUP
procd_set_param respawn
procd_set_param stdout 1
procd_set_param stderr 1
procd_set_param pidfile /var/run/dproxy.pid
procd_set_param user dproxy
procd_set_param capabilities /etc/capabilities/dproxy.json
procd_set_param no_new_privs 1
procd_add_jail dproxy log ronly
procd_add_jail_mount /var/etc/dproxy /tmp/resolv.conf.d /etc/hosts /tmp/hosts /etc/hosts.d /tmp/dhcp.leases /tmp/odhcpd.leases /etc/passwd /etc/group
procd_add_jail_mount_rw /tmp/dproxy /var/run/dproxy
procd_close_instance
EOF
	[ -d "$ROOT/tmp/dproxy" ] || fail "cache directory not created"
	[ -f "$ROOT/tmp/dhcp.leases" ] || fail "lease file not created"
	[ -d "$ROOT/tmp/hosts" ] || fail "/tmp/hosts not created"
}

case_no_ujail_runs_as_user_without_jail() {
	setup
	cfg enabled=1
	start
	expect_instance <<'EOF'
procd_open_instance
procd_set_param command /usr/sbin/dproxy -c /var/etc/dproxy/dproxy.conf
procd_set_param file /etc/config/dproxy
procd_set_param reload_signal HUP
procd_set_param respawn
procd_set_param stdout 1
procd_set_param stderr 1
procd_set_param pidfile /var/run/dproxy.pid
procd_set_param user dproxy
procd_close_instance
EOF
}

case_no_ujail_low_port_starts_as_root() {
	# procd cannot give CAP_NET_BIND_SERVICE without ujail: start as root,
	# the daemon drops to 'option user' itself.
	setup
	cfg enabled=1 port=53
	start
	assert_no_match "user" '^procd_set_param user' "$PROCD_LOG"
	assert_no_match "jail" '^procd_add_jail' "$PROCD_LOG"
	assert_line "command" "procd_set_param command /usr/sbin/dproxy -c /var/etc/dproxy/dproxy.conf" "$PROCD_LOG"
}

case_user_root_means_no_user() {
	setup ujail
	cfg enabled=1 user=root
	start
	assert_no_match "user" '^procd_set_param user' "$PROCD_LOG"
	assert_no_match "jail" '^procd_add_jail' "$PROCD_LOG"
}

case_link_signals_by_name() {
	setup
	link_up
	link_down
	assert_eq "signals" "procd_send_signal dproxy * USR1|procd_send_signal dproxy * USR2|" \
		"$(grep '^procd_send_signal' "$PROCD_LOG" | tr '\n' '|')"
	assert_no_match "signal numbers" '^procd_send_signal .* [0-9]+$' "$PROCD_LOG"
}

case_reload_same_config_keeps_process() {
	setup ujail
	cfg enabled=1
	start
	mark reload
	cfg log_level=debug
	reload
	sed -n '/^--- reload/,$p' "$PROCD_LOG" >"$CASE_DIR/after"
	assert_no_match "kill on reload" '^procd_kill' "$CASE_DIR/after"
	assert_line "reload re-registers (procd sends HUP)" \
		"procd_set_param reload_signal HUP" "$CASE_DIR/after"
}

case_reload_restarts_when_mounts_change() {
	setup ujail
	cfg enabled=1
	start
	mark reload
	cfg persist_file=/tmp/dproxy/cache
	reload
	sed -n '/^--- reload/,$p' "$PROCD_LOG" >"$CASE_DIR/after"
	assert_count "kill on reload" '^procd_kill dproxy' "$CASE_DIR/after" 1
	assert_line "new mounts" "procd_add_jail_mount_rw /tmp/dproxy /var/run/dproxy" "$CASE_DIR/after"
}

case_reload_restarts_when_port_or_listen_changes() {
	# What LuCI's Save & Apply does after a port change: procd's config
	# trigger runs reload. A SIGHUP alone would keep the old sockets while
	# dnsmasq (forward mode) is pointed at the new port.
	setup ujail
	cfg enabled=1 dnsmasq_integration=forward
	start
	mark reload
	cfg port=1299
	reload
	sed -n '/^--- reload/,$p' "$PROCD_LOG" >"$CASE_DIR/after"
	assert_count "restart for a new port" '^procd_kill dproxy' "$CASE_DIR/after" 1
	assert_eq "dnsmasq forwards to the new port" "127.0.0.1#1299" "$(uci get dhcp.@dnsmasq[0].server)"
	mark reload-listen
	cfg "listen+=127.0.0.53"
	reload
	sed -n '/^--- reload-listen/,$p' "$PROCD_LOG" >"$CASE_DIR/after"
	assert_count "restart for a new listen list" '^procd_kill dproxy' "$CASE_DIR/after" 1
	mark reload-same
	cfg log_level=debug
	reload
	sed -n '/^--- reload-same/,$p' "$PROCD_LOG" >"$CASE_DIR/after"
	assert_no_match "no restart for another option" '^procd_kill' "$CASE_DIR/after"
}

case_reload_after_disable_stops() {
	setup ujail
	cfg enabled=1
	start
	mark reload
	cfg enabled=0
	reload
	sed -n '/^--- reload/,$p' "$PROCD_LOG" >"$CASE_DIR/after"
	assert_no_match "instance" '^procd_open_instance' "$CASE_DIR/after"
	assert_line "service set without instances" "procd_close_service" "$CASE_DIR/after"
}

case_unknown_mode_is_off() {
	setup
	cfg enabled=1 dnsmasq_integration=bogus
	start
	assert_eq "dhcp commits" 0 "$(commits)"
	assert_line "log" "-t dproxy unknown dnsmasq_integration 'bogus', using 'off'" "$CASE_DIR/logger.log"
}

# --- cases: dnsmasq integration ---------------------------------------------

case_forward_edits_and_restores_dhcp() {
	setup
	cfg enabled=1 dnsmasq_integration=forward
	start
	uci export dhcp >"$CASE_DIR/dhcp.forward"
	printf '%s\n' \
		"	option dproxy_noresolv '-'" \
		"	option noresolv '1'" \
		"	list server '127.0.0.1#1296'" \
		"	option dproxy_mode 'forward'" \
		"	option dproxy_target '127.0.0.1#1296'" >"$CASE_DIR/add"
	insert_after "	option ednspacket_max '1232'" "$CASE_DIR/add" <"$CASE_DIR/dhcp.orig" >"$CASE_DIR/dhcp.want"
	assert_file_eq "dhcp in forward mode" "$CASE_DIR/dhcp.want" "$CASE_DIR/dhcp.forward"
	assert_eq "dnsmasq reloaded" "running|reload|" "$(tr '\n' '|' <"$CASE_DIR/dnsmasq.log")"
	assert_count "log lines" 'dnsmasq integration: forward' "$CASE_DIR/logger.log" 1

	mark second start
	start
	assert_eq "dhcp commits after two starts" 1 "$(commits)"
	assert_eq "dnsmasq reloads after two starts" 1 "$(grep -c reload "$CASE_DIR/dnsmasq.log")"
	uci export dhcp >"$CASE_DIR/dhcp.now"
	assert_file_eq "dhcp after second start" "$CASE_DIR/dhcp.forward" "$CASE_DIR/dhcp.now"

	stop
	uci export dhcp >"$CASE_DIR/dhcp.now"
	assert_file_eq "dhcp after stop" "$CASE_DIR/dhcp.orig" "$CASE_DIR/dhcp.now"
	assert_eq "dnsmasq reloads after stop" 2 "$(grep -c reload "$CASE_DIR/dnsmasq.log")"
	stop
	assert_eq "dhcp commits after two stops" 2 "$(commits)"
	assert_eq "uncommitted dhcp changes" "" "$(uci changes dhcp)"
}

case_forward_keeps_domain_servers_and_restores_custom_config() {
	DHCP_FIXTURE=dhcp-custom setup
	cfg enabled=1 dnsmasq_integration=forward listen= "listen+=[::1]:5353" "listen+=0.0.0.0:5300"
	start
	# Both dnsmasq instances forward to dproxy; the target is the first
	# IPv4 listen entry (0.0.0.0 means loopback for dnsmasq).
	for s in main guest; do
		assert_eq "$s noresolv" 1 "$(uci get "dhcp.$s.noresolv")"
		assert_eq "$s target" "127.0.0.1#5300" "$(uci get "dhcp.$s.dproxy_target")"
	done
	assert_eq "main servers" "/corp.example/10.0.0.1 127.0.0.1#5300" "$(uci get dhcp.main.server)"
	assert_eq "guest servers" "127.0.0.1#5300" "$(uci get dhcp.guest.server)"
	assert_eq "main previous noresolv" 0 "$(uci get dhcp.main.dproxy_noresolv)"
	assert_eq "lan pool untouched" "6,192.168.1.2" "$(uci get dhcp.lan.dhcp_option)"
	stop
	uci show dhcp | sort >"$CASE_DIR/dhcp.now.show"
	assert_file_eq "dhcp after stop" "$CASE_DIR/dhcp.orig.show" "$CASE_DIR/dhcp.now.show"
	assert_eq "server order" "/corp.example/10.0.0.1 9.9.9.9 149.112.112.112" "$(uci get dhcp.main.server)"
}

case_forward_restore_keeps_servers_added_meanwhile() {
	DHCP_FIXTURE=dhcp-custom setup
	cfg enabled=1 dnsmasq_integration=forward
	start
	uci add_list dhcp.main.server=/home.example/10.0.0.2
	uci commit dhcp
	stop
	assert_eq "servers" "/corp.example/10.0.0.1 9.9.9.9 149.112.112.112 /home.example/10.0.0.2" \
		"$(uci get dhcp.main.server)"
}

case_replace_edits_and_restores_dhcp() {
	setup ujail
	cfg enabled=1 dnsmasq_integration=replace
	start
	expect_instance <<'EOF'
procd_open_instance
procd_set_param command /usr/sbin/dproxy -c /var/etc/dproxy/dproxy.conf -l 127.0.0.1:53 -l [::1]:53 -l 192.168.1.1:53 -l [fd00:1::1]:53
procd_set_param file /etc/config/dproxy
procd_set_param reload_signal HUP
procd_set_param respawn
procd_set_param stdout 1
procd_set_param stderr 1
procd_set_param pidfile /var/run/dproxy.pid
procd_set_param user dproxy
procd_set_param capabilities /etc/capabilities/dproxy.json
procd_set_param no_new_privs 1
procd_add_jail dproxy log ronly
procd_add_jail_mount /var/etc/dproxy /etc/hosts /etc/passwd /etc/group
procd_add_jail_mount_rw /tmp /var/run/dproxy
procd_close_instance
EOF
	assert_line "LAN trigger" "procd_add_interface_trigger interface.* lan /etc/init.d/dproxy reload" "$PROCD_LOG"
	assert_no_line "no trigger for the ignored wan pool" \
		"procd_add_interface_trigger interface.* wan /etc/init.d/dproxy reload" "$PROCD_LOG"

	uci export dhcp >"$CASE_DIR/dhcp.replace"
	printf '%s\n' \
		"	option dproxy_port '-'" \
		"	option port '0'" \
		"	option dproxy_mode 'replace'" \
		"	option dproxy_target '53'" >"$CASE_DIR/add"
	insert_after "	option ednspacket_max '1232'" "$CASE_DIR/add" <"$CASE_DIR/dhcp.orig" >"$CASE_DIR/dhcp.step"
	printf '%s\n' \
		"	list dhcp_option '6,0.0.0.0'" \
		"	option dproxy_dhcp_option '6,0.0.0.0'" >"$CASE_DIR/add"
	insert_after "	option ra 'server'" "$CASE_DIR/add" <"$CASE_DIR/dhcp.step" >"$CASE_DIR/dhcp.want"
	assert_file_eq "dhcp in replace mode" "$CASE_DIR/dhcp.want" "$CASE_DIR/dhcp.replace"

	start
	assert_eq "dhcp commits after two starts" 1 "$(commits)"
	stop
	stop
	uci export dhcp >"$CASE_DIR/dhcp.now"
	assert_file_eq "dhcp after stop" "$CASE_DIR/dhcp.orig" "$CASE_DIR/dhcp.now"
	assert_eq "dhcp commits" 2 "$(commits)"
}

case_replace_keeps_owner_dns_option_and_port() {
	DHCP_FIXTURE=dhcp-custom setup
	cfg enabled=1 dnsmasq_integration=replace
	start
	assert_eq "main port" 0 "$(uci get dhcp.main.port)"
	assert_eq "main previous port" 53 "$(uci get dhcp.main.dproxy_port)"
	assert_eq "guest port" 0 "$(uci get dhcp.guest.port)"
	assert_eq "lan DNS option (owner's)" "6,192.168.1.2" "$(uci get dhcp.lan.dhcp_option)"
	assert_eq "iot DNS option (ours)" "6,0.0.0.0" "$(uci get dhcp.iot.dhcp_option)"
	assert_line "command" "procd_set_param command /usr/sbin/dproxy -c /var/etc/dproxy/dproxy.conf -l 127.0.0.1:53 -l [::1]:53 -l 192.168.1.1:53 -l [fd00:1::1]:53 -l 10.9.0.1:53" "$PROCD_LOG"
	stop
	uci show dhcp | sort >"$CASE_DIR/dhcp.now.show"
	assert_file_eq "dhcp after stop" "$CASE_DIR/dhcp.orig.show" "$CASE_DIR/dhcp.now.show"
}

# Sections as OpenWrt has them: unnamed ones (edited under the names uci
# gives them), pools without an interface or ignored, a dnsmasq section named
# like dproxy's own. The LAN addresses come in the order of the pools.
case_replace_with_unnamed_sections_and_several_pools() {
	DHCP_FIXTURE=dhcp-pools setup
	cfg enabled=1 dnsmasq_integration=replace
	start
	assert_line "command" "procd_set_param command /usr/sbin/dproxy -c /var/etc/dproxy/dproxy.conf -l 127.0.0.1:53 -l [::1]:53 -l 10.9.0.1:53 -l 192.168.1.1:53 -l [fd00:1::1]:53" "$PROCD_LOG"
	assert_eq "interface triggers" \
		"procd_add_interface_trigger interface.* iot /etc/init.d/dproxy reload|procd_add_interface_trigger interface.* lan /etc/init.d/dproxy reload|" \
		"$(grep '^procd_add_interface_trigger' "$PROCD_LOG" | tr '\n' '|')"
	assert_eq "unnamed dnsmasq port" 0 "$(uci get 'dhcp.@dnsmasq[0].port')"
	assert_eq "unnamed dnsmasq previous port" - "$(uci get 'dhcp.@dnsmasq[0].dproxy_port')"
	assert_eq "main port" 0 "$(uci get dhcp.main.port)"
	assert_eq "main previous port" 5353 "$(uci get dhcp.main.dproxy_port)"
	assert_eq "unnamed pool DNS option (ours)" "6,0.0.0.0" "$(uci get 'dhcp.@dhcp[0].dhcp_option')"
	assert_eq "lan DNS option (owner's)" "6,192.168.1.2" "$(uci get dhcp.lan.dhcp_option)"
	assert_eq "pool without interface" "" "$(uci -q get dhcp.guest.dhcp_option)"
	assert_eq "ignored pool" "" "$(uci -q get dhcp.wan.dhcp_option)"
	assert_eq "dhcp commits" 1 "$(commits)"
	start
	assert_eq "dhcp commits after a second start" 1 "$(commits)"
	stop
	uci export dhcp >"$CASE_DIR/dhcp.now"
	assert_file_eq "dhcp after stop" "$CASE_DIR/dhcp.orig" "$CASE_DIR/dhcp.now"
}

case_forward_with_unnamed_sections() {
	DHCP_FIXTURE=dhcp-pools setup
	cfg enabled=1 dnsmasq_integration=forward
	start
	for s in '@dnsmasq[0]' main; do
		assert_eq "$s server" "127.0.0.1#1296" "$(uci get "dhcp.$s.server")"
		assert_eq "$s noresolv" 1 "$(uci get "dhcp.$s.noresolv")"
		assert_eq "$s previous noresolv" - "$(uci get "dhcp.$s.dproxy_noresolv")"
	done
	assert_eq "pool options" "" "$(uci show dhcp | grep 'dhcp_option=.*0\.0\.0\.0')"
	mark reload
	cfg port=1299
	reload
	assert_eq "server after a port change" "127.0.0.1#1299" "$(uci get 'dhcp.@dnsmasq[0].server')"
	stop
	uci export dhcp >"$CASE_DIR/dhcp.now"
	assert_file_eq "dhcp after stop" "$CASE_DIR/dhcp.orig" "$CASE_DIR/dhcp.now"
}

# /etc/config/dhcp is read with its uncommitted changes, as uci get read it.
case_uncommitted_dhcp_changes_count() {
	DHCP_FIXTURE=dhcp-pools setup
	uci set dhcp.lan.ignore=1
	cfg enabled=1 dnsmasq_integration=replace
	start
	assert_line "command" "procd_set_param command /usr/sbin/dproxy -c /var/etc/dproxy/dproxy.conf -l 127.0.0.1:53 -l [::1]:53 -l 10.9.0.1:53" "$PROCD_LOG"
}

# After /etc/config/dhcp was read, dproxy's config is read without what dhcp's
# section 'main' holds (functions.sh's config_load would keep its options):
# a reload with nothing changed keeps the daemon, its user and its mounts.
case_dhcp_section_named_main_is_not_read_as_dproxys() {
	DHCP_FIXTURE=dhcp-pools setup ujail
	echo "nameserver 192.0.2.2" >"$ROOT/etc/dnsmasq-main.resolv"
	cfg enabled=1 dnsmasq_integration=replace resolvfile= user= port=
	start
	instance >"$CASE_DIR/instance.first"
	assert_line "user" "procd_set_param user dproxy" "$CASE_DIR/instance.first"
	assert_no_match "mounts" 'dnsmasq-main' "$CASE_DIR/instance.first"
	mark reload
	reload
	sed -n '/^--- reload/,$p' "$PROCD_LOG" >"$CASE_DIR/after"
	assert_no_match "restart" '^procd_kill' "$CASE_DIR/after"
	sed -n '/^procd_open_instance/,/^procd_close_instance/p' "$CASE_DIR/after" >"$CASE_DIR/instance.again"
	assert_file_eq "instance after reload" "$CASE_DIR/instance.first" "$CASE_DIR/instance.again"
	mark restart
	restart
	sed -n '/^--- restart/,$p' "$PROCD_LOG" | sed -n '/^procd_open_instance/,/^procd_close_instance/p' >"$CASE_DIR/instance.again"
	assert_file_eq "instance after restart" "$CASE_DIR/instance.first" "$CASE_DIR/instance.again"
}

# uci is started once per config read, not once per section and option: a
# start with nothing to change reads dproxy's config, /etc/config/dhcp for
# the plan and for the integration, and asks for uncommitted dhcp changes.
case_start_runs_uci_once_per_config() {
	DHCP_FIXTURE=dhcp-pools setup
	cfg enabled=1 dnsmasq_integration=replace
	start
	: >"$FAKE_UCI_LOG"
	start
	printf '%s\n' "uci -P /var/state -S -n export dproxy" "uci -P /var/state -S -n export dhcp" \
		"uci -P /var/state -S -n export dhcp" "uci -q changes dhcp" >"$CASE_DIR/uci.want"
	assert_file_eq "uci calls of a start" "$CASE_DIR/uci.want" "$FAKE_UCI_LOG"
	cfg dnsmasq_integration=off
	: >"$FAKE_UCI_LOG"
	start
	assert_count "uci reads of single options" '^uci (-q )?get ' "$FAKE_UCI_LOG" 0
}

case_mode_switch_by_reload() {
	setup ujail
	cfg enabled=1 dnsmasq_integration=forward
	start
	mark reload
	cfg dnsmasq_integration=replace
	reload
	sed -n '/^--- reload/,$p' "$PROCD_LOG" >"$CASE_DIR/after"
	assert_count "restart (command line changed)" '^procd_kill dproxy' "$CASE_DIR/after" 1
	assert_eq "noresolv gone" "" "$(uci -q get dhcp.@dnsmasq[0].noresolv)"
	assert_eq "server gone" "" "$(uci -q get dhcp.@dnsmasq[0].server)"
	assert_eq "port" 0 "$(uci get dhcp.@dnsmasq[0].port)"
	assert_eq "mode" replace "$(uci get dhcp.@dnsmasq[0].dproxy_mode)"
	mark reload off
	cfg dnsmasq_integration=off
	reload
	uci export dhcp >"$CASE_DIR/dhcp.now"
	assert_file_eq "dhcp back to original" "$CASE_DIR/dhcp.orig" "$CASE_DIR/dhcp.now"
}

case_disabling_in_config_restores_dhcp() {
	setup
	cfg enabled=1 dnsmasq_integration=forward
	start
	cfg enabled=0
	reload
	uci export dhcp >"$CASE_DIR/dhcp.now"
	assert_file_eq "dhcp" "$CASE_DIR/dhcp.orig" "$CASE_DIR/dhcp.now"
}

# The boot links that `/etc/init.d/dproxy enable` makes.
enabled_at_boot() {
	mkdir -p "$ROOT/etc/rc.d"
	ln -s ../init.d/dproxy "$ROOT/etc/rc.d/S18dproxy"
	ln -s ../init.d/dproxy "$ROOT/etc/rc.d/K10dproxy"
}

case_disable_command_restores_dhcp() {
	setup
	cfg enabled=1 dnsmasq_integration=replace
	enabled_at_boot
	start
	disable
	uci export dhcp >"$CASE_DIR/dhcp.now"
	assert_file_eq "dhcp" "$CASE_DIR/dhcp.orig" "$CASE_DIR/dhcp.now"
	assert_eq "boot links" "" "$(ls -A "$ROOT/etc/rc.d")"
}

case_shutdown_keeps_dhcp() {
	setup
	cfg enabled=1 dnsmasq_integration=forward
	start
	uci export dhcp >"$CASE_DIR/dhcp.forward"
	shutdown
	assert_line "stopped" "procd_kill dproxy" "$PROCD_LOG"
	uci export dhcp >"$CASE_DIR/dhcp.now"
	assert_file_eq "dhcp after shutdown" "$CASE_DIR/dhcp.forward" "$CASE_DIR/dhcp.now"
	assert_eq "dhcp commits" 1 "$(commits)"
	# and the next boot changes nothing
	start
	assert_eq "dhcp commits after boot" 1 "$(commits)"
}

case_upgrade_ends_in_forward_mode() {
	# opkg upgrade: default_prerm stops the old version (PKG_UPGRADE=1, no
	# disable), default_postinst starts the new one.
	setup
	cfg enabled=1 dnsmasq_integration=forward
	start
	uci export dhcp >"$CASE_DIR/dhcp.forward"
	stop
	cp "$REPO/files/dproxy.config" "$CASE_DIR/new-config"   # conffile kept: unchanged
	start
	uci export dhcp >"$CASE_DIR/dhcp.now"
	assert_file_eq "dhcp after upgrade" "$CASE_DIR/dhcp.forward" "$CASE_DIR/dhcp.now"
}

case_dnsmasq_not_running_is_not_started() {
	setup
	rm -f "$CASE_DIR/dnsmasq.running"
	cfg enabled=1 dnsmasq_integration=forward
	start
	assert_eq "dnsmasq calls" "running|" "$(tr '\n' '|' <"$CASE_DIR/dnsmasq.log")"
	assert_eq "dhcp commits" 1 "$(commits)"
}

case_forward_target_from_ipv6_only_listen() {
	setup
	cfg enabled=1 dnsmasq_integration=forward listen= "listen+=::1"
	start
	assert_eq "server" "::1#1296" "$(uci get dhcp.@dnsmasq[0].server)"
}

# --- cases: the daemon's copy of the config -------------------------------

# The daemon runs as its own user and cannot read /etc/config/dproxy (0600
# root): it gets a copy it can read, refreshed before every reload's SIGHUP.
case_daemon_reads_a_copy_of_the_config() {
	setup ujail
	chmod 600 "$ROOT/etc/config/dproxy"
	cfg enabled=1 user=nobody
	start
	assert_line "command" \
		"procd_set_param command /usr/sbin/dproxy -c /var/etc/dproxy/dproxy.conf" "$PROCD_LOG"
	assert_line "procd watches the uci file" "procd_set_param file /etc/config/dproxy" "$PROCD_LOG"
	copy="$ROOT/var/etc/dproxy/dproxy.conf"
	[ -f "$copy" ] || { fail "no copy at /var/etc/dproxy/dproxy.conf"; return; }
	assert_file_eq "copy" "$ROOT/etc/config/dproxy" "$copy"
	assert_eq "copy mode" 600 "$(stat -c %a "$copy")"
	if [ "$(id -u)" = 0 ]; then
		assert_eq "copy owner" nobody "$(stat -c %U "$copy")"
	fi
	assert_line "jail sees the copy's directory" \
		"procd_add_jail_mount /var/etc/dproxy /etc/hosts /etc/passwd /etc/group" "$PROCD_LOG"
	mark reload
	cfg cache_size=2048
	reload
	assert_file_eq "copy after reload" "$ROOT/etc/config/dproxy" "$copy"
	assert_eq "files left in /var/etc/dproxy" "dproxy.conf" "$(ls -A "$ROOT/var/etc/dproxy")"
}

# A copy that cannot be written: one error line, and the running daemon is
# not stopped (procd would stop it if the reload registered no instance).
case_failed_copy_keeps_the_daemon_and_logs_one_line() {
	setup ujail
	cfg enabled=1
	start
	rm -rf "$ROOT/var/etc/dproxy"
	echo "not a directory" >"$ROOT/var/etc/dproxy"
	: >"$CASE_DIR/logger.log"
	mark reload
	cfg cache_size=2048
	reload
	sed -n '/^--- reload/,$p' "$PROCD_LOG" >"$CASE_DIR/after"
	assert_line "instance kept" "procd_close_instance" "$CASE_DIR/after"
	assert_eq "running" 1 "$FAKE_RUNNING"
	assert_count "error lines" '^-t dproxy error: cannot copy /etc/config/dproxy to /var/etc/dproxy/dproxy.conf: .+' \
		"$CASE_DIR/logger.log" 1
}

# Started as root (a port below 1024 without ujail), the daemon drops to
# 'option user', or to its own default nobody: that user gets the copy.
case_copy_belongs_to_the_user_the_daemon_drops_to() {
	[ "$(id -u)" = 0 ] || return 0
	setup
	cfg enabled=1 port=53 user=
	start
	assert_no_match "procd user" '^procd_set_param user' "$PROCD_LOG"
	assert_eq "owner" nobody "$(stat -c %U "$ROOT/var/etc/dproxy/dproxy.conf")"
}

# --- cases: the control socket ---------------------------------------------

# Unset, the option means the daemon's default socket: its directory is made
# for the daemon's user (procd starts it as that user, and /var/run is root's)
# and is writable inside the jail.
case_unset_control_socket_gets_its_own_directory() {
	setup ujail
	cfg enabled=1 control_socket=
	start
	assert_line "rw mounts" "procd_add_jail_mount_rw /tmp /var/run/dproxy" "$PROCD_LOG"
	[ -d "$ROOT/var/run/dproxy" ] || fail "/var/run/dproxy not created"
	assert_no_match "logged" 'control_socket' "$CASE_DIR/logger.log"
}

# A config of an older version that names /var/run/dproxy.sock: the daemon,
# started as its own user, cannot create it there, and nothing may be
# created in /var/run for it; the log says what to do.
case_old_default_socket_logs_what_to_do() {
	setup
	cfg enabled=1 control_socket=/var/run/dproxy.sock
	start
	assert_count "error line" \
		'^-t dproxy error: control_socket /var/run/dproxy.sock: user dproxy cannot create a socket in /var/run, .*delete the option \(default /var/run/dproxy/dproxy.sock\).* uci delete dproxy.main.control_socket; uci commit dproxy; /etc/init.d/dproxy reload$' \
		"$CASE_DIR/logger.log" 1
	assert_line "still started as" "procd_set_param user dproxy" "$PROCD_LOG"
	# Once per start or reload, not once per look at the config.
	reload
	assert_count "error lines after a reload" 'error: control_socket' "$CASE_DIR/logger.log" 2
}

# Started as root, the daemon binds its socket before it drops root: the old
# path works then, and nothing is logged.
case_old_default_socket_started_as_root_logs_nothing() {
	setup
	cfg enabled=1 port=53 control_socket=/var/run/dproxy.sock
	start
	assert_no_match "procd user" '^procd_set_param user' "$PROCD_LOG"
	assert_no_match "logged" 'control_socket' "$CASE_DIR/logger.log"
}

# Started as root, the daemon drops to 'option user' (or nobody) and then
# writes the clock marker next to its socket: the directory is that user's.
case_socket_dir_belongs_to_the_user_the_daemon_drops_to() {
	[ "$(id -u)" = 0 ] || return 0
	setup
	cfg enabled=1 port=53 user= control_socket=
	start
	assert_no_match "procd user" '^procd_set_param user' "$PROCD_LOG"
	assert_eq "owner" nobody "$(stat -c %U "$ROOT/var/run/dproxy")"
}

# --- cases: disable ---------------------------------------------------------

# Disabling hands port 53 back to dnsmasq: dproxy is stopped before dnsmasq
# is reloaded, and a later reload (procd's config trigger, reload_config)
# neither starts it nor re-applies the integration.
case_disable_in_replace_mode_leaves_one_owner_of_port_53() {
	setup
	cfg enabled=1 dnsmasq_integration=replace
	enabled_at_boot
	start
	: >"$CASE_DIR/dnsmasq.kills"
	mark disable
	disable
	assert_eq "dproxy stopped before dnsmasq reloaded" 1 "$(head -n 1 "$CASE_DIR/dnsmasq.kills")"
	assert_eq "running after disable" 0 "$FAKE_RUNNING"
	uci export dhcp >"$CASE_DIR/dhcp.now"
	assert_file_eq "dhcp after disable" "$CASE_DIR/dhcp.orig" "$CASE_DIR/dhcp.now"
	mark reload
	reload
	sed -n '/^--- reload/,$p' "$PROCD_LOG" >"$CASE_DIR/after"
	assert_no_match "instance after reload" '^procd_open_instance' "$CASE_DIR/after"
	uci export dhcp >"$CASE_DIR/dhcp.now"
	assert_file_eq "dhcp after reload of a disabled service" "$CASE_DIR/dhcp.orig" "$CASE_DIR/dhcp.now"
}

case_disable_in_forward_mode_stops_too() {
	setup
	cfg enabled=1 dnsmasq_integration=forward
	start
	disable
	assert_eq "running after disable" 0 "$FAKE_RUNNING"
	reload
	uci export dhcp >"$CASE_DIR/dhcp.now"
	assert_file_eq "dhcp after disable and reload" "$CASE_DIR/dhcp.orig" "$CASE_DIR/dhcp.now"
}

# Mode off: disable only removes the boot links, as rc.common's does.
case_disable_in_mode_off_keeps_running() {
	setup
	cfg enabled=1
	start
	disable
	assert_eq "running after disable" 1 "$FAKE_RUNNING"
	assert_no_match "kill" '^procd_kill' "$PROCD_LOG"
}

# uci enabled=0 and a reload in replace mode: dproxy stops before dnsmasq
# gets port 53 back.
case_disabling_in_config_stops_before_handover() {
	setup
	cfg enabled=1 dnsmasq_integration=replace
	start
	: >"$CASE_DIR/dnsmasq.kills"
	cfg enabled=0
	reload
	assert_eq "dproxy stopped before dnsmasq reloaded" 1 "$(head -n 1 "$CASE_DIR/dnsmasq.kills")"
}

for c in sourcing_has_no_side_effects header extra_commands_without_extra_command \
	stand_ins_read_config_as_openwrt_does \
	disabled_starts_nothing enabled_with_jail jail_mounts_follow_the_config \
	no_ujail_runs_as_user_without_jail no_ujail_low_port_starts_as_root \
	user_root_means_no_user link_signals_by_name reload_same_config_keeps_process \
	reload_restarts_when_mounts_change reload_restarts_when_port_or_listen_changes \
	reload_after_disable_stops unknown_mode_is_off \
	forward_edits_and_restores_dhcp forward_keeps_domain_servers_and_restores_custom_config \
	forward_restore_keeps_servers_added_meanwhile replace_edits_and_restores_dhcp \
	replace_keeps_owner_dns_option_and_port mode_switch_by_reload \
	replace_with_unnamed_sections_and_several_pools forward_with_unnamed_sections \
	uncommitted_dhcp_changes_count dhcp_section_named_main_is_not_read_as_dproxys \
	start_runs_uci_once_per_config \
	disabling_in_config_restores_dhcp disable_command_restores_dhcp shutdown_keeps_dhcp \
	upgrade_ends_in_forward_mode dnsmasq_not_running_is_not_started \
	forward_target_from_ipv6_only_listen daemon_reads_a_copy_of_the_config \
	copy_belongs_to_the_user_the_daemon_drops_to failed_copy_keeps_the_daemon_and_logs_one_line \
	unset_control_socket_gets_its_own_directory old_default_socket_logs_what_to_do \
	old_default_socket_started_as_root_logs_nothing socket_dir_belongs_to_the_user_the_daemon_drops_to \
	disable_in_replace_mode_leaves_one_owner_of_port_53 disable_in_forward_mode_stops_too \
	disable_in_mode_off_keeps_running disabling_in_config_stops_before_handover; do
	run_case "$c"
done
