#!/bin/sh
# Runtime check for the packages feed CI, run on the target after install:
#   test.sh <package name> <version>
# dproxy --version must print the package version (without -rN).
# shellcheck shell=sh

[ "$1" = dproxy ] || exit 0
want="${2:-$PKG_VERSION}"
want="${want%-r*}"
got="$(dproxy --version 2>&1)" || exit 1
[ "$got" = "$want" ] || {
	echo "dproxy --version printed '$got', expected '$want'" >&2
	exit 1
}
