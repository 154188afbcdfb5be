#!/bin/sh
# Runs make targets one after the other and prints how long each took, so that
# a `make test` log says where its time went:
#   scripts/test-lane.sh <lane name> <make> <target>...
# `make test` runs two such lanes side by side (see the Makefile). Each target
# runs in a serial make of its own (the parallel make's job slots and output
# buffering are taken out of MAKEFLAGS; -n, -k and VAR=value stay), so the steps
# of one lane never overlap; the first failure stops the lane and is its exit status.
# Each step's line also gives the CPU seconds (user and system) it and everything
# it waited for used: on a shared machine the wall time is mostly the others' load.
set -u
lane=$1
make=$2
shift 2
MAKEFLAGS=$(printf ' %s\n' "${MAKEFLAGS:-}" | sed -e 's/ --jobserver-auth=[^ ]*//g' \
    -e 's/ --jobserver-fds=[^ ]*//g' -e 's/ -j[0-9]*//g' -e 's/ --output-sync=[^ ]*//g' \
    -e 's/ -O[a-z]*//g' -e 's/^ //')
export MAKEFLAGS
cpu=$(mktemp)
trap 'rm -f "$cpu"' EXIT
lane_start=$(date +%s)
lane_cpu=0
for target in "$@"; do
    start=$(date +%s)
    echo "== [$lane] $target"
    : >"$cpu"
    # GNU time comes with scripts/install-deps.sh, which may run in this very lane:
    # until it is there a step runs untimed (cpu 0 s).
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -f '%U %S' -o "$cpu" "$make" --no-print-directory "$target"
    else
        "$make" --no-print-directory "$target"
    fi
    status=$?
    used=$(awk 'NF == 2 && $1 ~ /^[0-9.]+$/ { printf "%.0f", $1 + $2 }' "$cpu")
    used=${used:-0}
    lane_cpu=$((lane_cpu + used))
    if [ "$status" -ne 0 ]; then
        echo "== [$lane] $target FAILED after $(($(date +%s) - start)) s (cpu $used s)"
        exit 1
    fi
    echo "== [$lane] $target: $(($(date +%s) - start)) s (cpu $used s)"
done
echo "== [$lane] done in $(($(date +%s) - lane_start)) s (cpu $lane_cpu s)"
