# Assertions shared by the OpenWrt tests (sourced; POSIX sh).
# Each test case runs as `case_NAME` in a subshell through run_case, which
# writes one "PASS name" or "FAIL name: why" line to $RESULTS.
# shellcheck shell=sh
# shellcheck disable=SC3043,SC2034

fail() {
	echo "    $*" >>"$CASE_ERRORS"
	return 1
}

# assert_eq WHAT EXPECTED ACTUAL
assert_eq() {
	[ "$2" = "$3" ] && return 0
	fail "$1: expected [$2], got [$3]"
}

# assert_file_eq WHAT EXPECTED_FILE ACTUAL_FILE
assert_file_eq() {
	cmp -s "$2" "$3" && return 0
	fail "$1 differs:"
	diff -u "$2" "$3" | sed 's/^/      /' >>"$CASE_ERRORS"
	return 1
}

# assert_grep WHAT FIXED_LINE FILE: FILE has exactly this line
assert_line() {
	grep -qxF -- "$2" "$3" 2>/dev/null && return 0
	fail "$1: no line [$2] in $(basename "$3")"
}

assert_no_line() {
	grep -qxF -- "$2" "$3" 2>/dev/null || return 0
	fail "$1: unexpected line [$2] in $(basename "$3")"
}

assert_no_match() {
	grep -qE -- "$2" "$3" 2>/dev/null || return 0
	fail "$1: unexpected match of /$2/ in $(basename "$3"): $(grep -E -- "$2" "$3" | head -n 3 | tr '\n' '|')"
}

assert_count() {
	local n
	n="$(grep -cE -- "$2" "$3" 2>/dev/null)"
	[ "${n:-0}" = "$4" ] && return 0
	fail "$1: /$2/ matched ${n:-0} times in $(basename "$3"), expected $4"
}

# run_case NAME: run case_NAME in a subshell with its own scratch directory.
run_case() {
	local name="$1" dir
	dir="$(mktemp -d "${TMPDIR:-/tmp}/owrt-test.XXXXXX")"
	CASE_ERRORS="$dir/.errors"
	: >"$CASE_ERRORS"
	if (CASE_DIR="$dir"; cd "$dir" && "case_$name") >"$dir/.out" 2>&1 && [ ! -s "$CASE_ERRORS" ]; then
		echo "PASS $SUITE/$name" >>"$RESULTS"
	else
		{
			echo "FAIL $SUITE/$name"
			cat "$CASE_ERRORS"
			[ -s "$CASE_ERRORS" ] || sed 's/^/      | /' "$dir/.out" | tail -n 20
		} >>"$RESULTS"
	fi
	# KEEP_CASE_DIR=1 keeps each case's scratch directory, to look into.
	if [ -n "${KEEP_CASE_DIR:-}" ]; then
		echo "kept $dir" >>"$RESULTS"
	else
		rm -rf "$dir"
	fi
}
