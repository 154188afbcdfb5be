# Stand-ins for what an OpenWrt init script finds around it: the UCI shell
# API of /lib/functions.sh, rc.common and procd.sh. Written for these tests;
# every procd_* call is recorded as one line in $PROCD_LOG, every `uci` call
# by the fake uci in $FAKE_UCI_LOG.
#
# Use: load_init_script FILE, which reproduces rc.common's order: default
# functions, then the init script, then the procd versions of start, stop,
# reload and running.
# shellcheck shell=sh
# shellcheck disable=SC3043,SC2034,SC2317,SC2119,SC2120

record() {
	local line="$*"
	while :; do
		case "$line" in
			*' ') line="${line% }" ;;
			*) break ;;
		esac
	done
	echo "$line" >>"$PROCD_LOG"
}

# --- UCI shell API ----------------------------------------------------------
# What OpenWrt's /lib/functions.sh and /lib/config/uci.sh do, written for these
# tests: config_load evals `uci -P /var/state -S -n export PKG` (so staged
# changes count, and unnamed sections come with uci's names, cfgNNHHHH); an
# option lands in CONFIG_<section>_<option>, a list also in _ITEM<n> and
# _LENGTH. A new config_load clears the lists and the section list of the
# package loaded before, but not its options: they stay visible under a
# section of the same name. config_get gives the default for an empty value
# too (uci has no empty options).

config_set() {
	eval "CONFIG_$1_$2=\$3"
}

package() { return 0; }

config() {
	local name="$2"
	CONFIG_NUM_SECTIONS=$((CONFIG_NUM_SECTIONS + 1))
	name="${name:-cfg$CONFIG_NUM_SECTIONS}"
	CONFIG_SECTIONS="${CONFIG_SECTIONS:+$CONFIG_SECTIONS }$name"
	CONFIG_SECTION="$name"
	config_set "$name" TYPE "$1"
}

option() {
	local name="$1"
	shift
	config_set "$CONFIG_SECTION" "$name" "$*"
}

list() {
	local name="$1" len
	shift
	config_get len "$CONFIG_SECTION" "${name}_LENGTH" 0
	[ "$len" = 0 ] && CONFIG_LIST_STATE="${CONFIG_LIST_STATE:+$CONFIG_LIST_STATE }${CONFIG_SECTION}_$name"
	len=$((len + 1))
	config_set "$CONFIG_SECTION" "${name}_ITEM$len" "$*"
	config_set "$CONFIG_SECTION" "${name}_LENGTH" "$len"
	eval "CONFIG_${CONFIG_SECTION}_$name=\"\${CONFIG_${CONFIG_SECTION}_$name:+\$CONFIG_${CONFIG_SECTION}_$name }\$*\""
}

config_load() {
	local var data
	record "config_load $1"
	[ -n "$IPKG_INSTROOT" ] && return 0
	for var in $CONFIG_LIST_STATE; do
		eval "CONFIG_$var= CONFIG_${var}_LENGTH="
	done
	CONFIG_LIST_STATE='' CONFIG_SECTIONS='' CONFIG_NUM_SECTIONS=0 CONFIG_SECTION=''
	if command -v uci >/dev/null 2>&1; then
		data="$(uci -P /var/state -S -n export "$1" 2>/dev/null)" || return 1
		eval "$data"
	elif [ -f "$FAKE_UCI_DIR/$1" ]; then
		# test-package.sh's root has no uci (nor python for the fake one):
		# read the committed file as uci would export it.
		# shellcheck disable=SC1090
		. "$FAKE_UCI_DIR/$1"
	fi
	return 0
}

# config_get VAR SECTION OPTION [DEFAULT] | config_get SECTION OPTION
config_get() {
	case "$3" in
		# unquoted, as in functions.sh: the value is split and globbed
		'') eval echo "\${CONFIG_${1}_${2}:-\${4}}" ;;
		*) eval "$1=\${CONFIG_${2}_${3}:-\${4}}" ;;
	esac
}

config_get_bool() {
	local _b
	config_get _b "$2" "$3" "$4"
	case "$_b" in
		1|on|true|yes|enabled) _b=1 ;;
		0|off|false|no|disabled) _b=0 ;;
		*) _b="$4" ;;
	esac
	eval "$1=\$_b"
}

config_list_foreach() {
	local sec="$1" opt="$2" fn="$3" len i=1 v
	shift 3
	config_get len "$sec" "${opt}_LENGTH"
	[ -n "$len" ] || return 0
	while [ "$i" -le "$len" ]; do
		config_get v "$sec" "${opt}_ITEM$i"
		"$fn" "$v" "$@"
		i=$((i + 1))
	done
}

config_foreach() {
	local fn="$1" type="$2" s t
	if [ $# -ge 2 ]; then shift 2; else shift $#; fi
	for s in $CONFIG_SECTIONS; do
		config_get t "$s" TYPE
		[ -z "$type" ] || [ "$t" = "$type" ] || continue
		"$fn" "$s" "$@"
	done
}

# --- procd.sh ----------------------------------------------------------------

# FAKE_RUNNING follows what procd would do: a service set with an instance
# runs, one set without instances or deleted (procd_kill) does not.
procd_open_service() {
	_svc_instances=0
	record "procd_open_service $*"
}
procd_close_service() {
	service_triggers
	record "procd_close_service $*"
	FAKE_RUNNING="$_svc_instances"
}
procd_open_instance() { record "procd_open_instance $*"; }
procd_close_instance() {
	_svc_instances=1
	record "procd_close_instance $*"
}
procd_set_param() { record "procd_set_param $*"; }
procd_append_param() { record "procd_append_param $*"; }
procd_add_jail() { record "procd_add_jail $*"; }
procd_add_jail_mount() { record "procd_add_jail_mount $*"; }
procd_add_jail_mount_rw() { record "procd_add_jail_mount_rw $*"; }
procd_add_reload_trigger() { record "procd_add_reload_trigger $*"; }
procd_add_interface_trigger() { record "procd_add_interface_trigger $*"; }
procd_add_config_trigger() { record "procd_add_config_trigger $*"; }
procd_send_signal() { record "procd_send_signal $*"; }
procd_kill() {
	FAKE_RUNNING=0
	record "procd_kill $*"
}

# --- rc.common -----------------------------------------------------------------

load_init_script() {
	initscript="$1"
	EXTRA_COMMANDS=
	extra_command() {
		record "extra_command $1"
		EXTRA_COMMANDS="${EXTRA_COMMANDS:+$EXTRA_COMMANDS }$1"
	}
	start_service() { return 0; }
	stop_service() { return 0; }
	service_triggers() { return 0; }
	enable() { record "rc enable"; }
	disable() { record "rc disable (rc.common's)"; }
	enabled() { [ "$FAKE_ENABLED" = 1 ] || [ -e "$FSROOT/etc/rc.d/S${START}dproxy" ]; }
	restart() {
		trap '' TERM
		stop "$@"
		start "$@"
	}
	shutdown() { stop; }

	# shellcheck disable=SC1090
	. "$initscript"

	rc_procd() {
		procd_open_service dproxy "$initscript"
		"$@"
		procd_close_service
	}
	start() { rc_procd start_service "$@"; }
	stop() {
		stop_service "$@"
		procd_kill dproxy "$1"
	}
	reload() {
		if type reload_service >/dev/null 2>&1; then
			reload_service "$@"
		else
			start
		fi
	}
	running() { [ "$FAKE_RUNNING" = 1 ]; }
}
