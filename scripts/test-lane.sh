#!/bin/sh
# Runs make targets one after the other and prints how long each took, so that
# a `make test` log says where its time went:
#   scripts/test-lane.sh <lane name> <make> <target>...
# `make test` runs two such lanes side by side (see the Makefile). Each target
# runs in a serial make of its own (the parallel make's job slots and output
# buffering are taken out of MAKEFLAGS; -n, -k and VAR=value stay), so the steps
# of one lane never overlap; the first failure stops the lane and is its exit status.
set -u
lane=$1
make=$2
shift 2
MAKEFLAGS=$(printf ' %s\n' "${MAKEFLAGS:-}" | sed -e 's/ --jobserver-auth=[^ ]*//g' \
    -e 's/ --jobserver-fds=[^ ]*//g' -e 's/ -j[0-9]*//g' -e 's/ --output-sync=[^ ]*//g' \
    -e 's/ -O[a-z]*//g' -e 's/^ //')
export MAKEFLAGS
lane_start=$(date +%s)
for target in "$@"; do
    start=$(date +%s)
    echo "== [$lane] $target"
    if ! $make --no-print-directory "$target"; then
        echo "== [$lane] $target FAILED after $(($(date +%s) - start)) s"
        exit 1
    fi
    echo "== [$lane] $target: $(($(date +%s) - start)) s"
done
echo "== [$lane] done in $(($(date +%s) - lane_start)) s"
