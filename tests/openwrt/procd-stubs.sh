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

# --- UCI shell API (config_load sources the committed file) ----------------

_cfg_vars=
_cfg_section=
_cfg_anon=0

_cfg_name_ok() {
	case "$1" in
		''|*[!A-Za-z0-9_]*) return 1 ;;
	esac
}

_cfg_store() {
	# _cfg_store VAR VALUE
	eval "$1=\$2"
	_cfg_vars="$_cfg_vars $1"
}

config() {
	local name="$2"
	if [ -z "$name" ]; then
		_cfg_anon=$((_cfg_anon + 1))
		name="cfg$_cfg_anon"
	fi
	_cfg_name_ok "$name" || { echo "stub: bad section name $name" >&2; return 1; }
	_cfg_section="$name"
	_cfg_store "CFG_${name}__TYPE" "$1"
	CFG_SECTIONS="${CFG_SECTIONS:+$CFG_SECTIONS }$name"
}

option() {
	_cfg_name_ok "$1" || return 1
	_cfg_store "CFG_${_cfg_section}_$1" "$2"
}

list() {
	local n joined
	_cfg_name_ok "$1" || return 1
	eval "n=\${CFG_${_cfg_section}_$1__N:-0}"
	n=$((n + 1))
	_cfg_store "CFG_${_cfg_section}_$1__N" "$n"
	_cfg_store "CFG_${_cfg_section}_$1__$n" "$2"
	eval "joined=\${CFG_${_cfg_section}_$1}"
	_cfg_store "CFG_${_cfg_section}_$1" "${joined:+$joined }$2"
}

config_load() {
	local v
	record "config_load $1"
	for v in $_cfg_vars; do
		unset "$v"
	done
	_cfg_vars=
	_cfg_anon=0
	CFG_SECTIONS=
	# shellcheck disable=SC1090
	[ -f "$FAKE_UCI_DIR/$1" ] && . "$FAKE_UCI_DIR/$1"
	return 0
}

# config_get VAR SECTION OPTION [DEFAULT] | config_get SECTION OPTION
config_get() {
	local _v
	if [ $# -eq 2 ]; then
		eval "echo \"\${CFG_$1_$2}\""
		return 0
	fi
	eval "_v=\${CFG_$2_$3-__unset__}"
	[ "$_v" = __unset__ ] && _v="$4"
	eval "$1=\$_v"
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
	local sec="$1" opt="$2" fn="$3" n i=1 v
	shift 3
	eval "n=\${CFG_${sec}_${opt}__N:-0}"
	while [ "$i" -le "$n" ]; do
		eval "v=\${CFG_${sec}_${opt}__$i}"
		"$fn" "$v" "$@"
		i=$((i + 1))
	done
}

config_foreach() {
	local fn="$1" type="$2" s t
	shift 2
	for s in $CFG_SECTIONS; do
		eval "t=\${CFG_${s}__TYPE}"
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
