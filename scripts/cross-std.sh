#!/bin/sh
# Prints the path of a sysroot holding std built for a router target, building it
# first if this machine has none for these exact settings yet.
#
#   CROSS_STD_CARGO='<cargo command>' scripts/cross-std.sh <triple> <release|test> <args...>
#   scripts/cross-std.sh --have <triple> <release|test> <args...>   (is it there? 0/1)
#
# CROSS_STD_CARGO is the cross cargo command (mk/cross.mk; the target dir is set
# here), <args...> what builds std with it: -Zbuild-std..., the profile and the
# rustflags of the builds that will use this sysroot.
#
# Why: the mips targets have no prebuilt std, so every cross build compiled std from
# source with -Zbuild-std, two of them per target (the release binaries' and the unit
# tests'), in every clone: about 85 of the 150-170 CPU-seconds of a target's first
# builds. std depends only on the compiler, its sources and these settings, like the
# std that rustup ships for other targets, so it is built once per machine and kept in
# ~/.cache/dproxy/std (override: DPROXY_STD_CACHE), next to zig and the VM kernels.
# The cache key is a hash of everything that goes into it: the compiler's version and
# commit, the std sources' version, the target, the args above, .cargo/config.toml,
# the [profile.*] sections of Cargo.toml but for their comment lines and for
# [profile.test-release] (used by no cross build; its tests run on the host). Any
# change to a setting gives a new key and a new build; nothing is ever used that was
# built with other settings, and a comment edit costs no rebuild.
#
# How: a probe crate (an empty program for "release", a library with one test for
# "test", as the unit tests are built) is built with -Zbuild-std and the same settings
# in its own target dir; everything it built except itself is std and its
# dependencies, copied into <sysroot>/lib/rustlib/<triple>/lib, where rustc looks with
# --sysroot. Built beside and renamed into place: two clones at once never see half a
# sysroot.
set -eu

usage() {
    echo "usage: CROSS_STD_CARGO='<cargo command>' $0 <triple> <release|test> <std build args...>" >&2
    echo "       $0 --have <triple> <release|test> <std build args...>" >&2
    exit 2
}
# --have: only say (exit status 0 or 1) whether the sysroot is there; nothing is built.
have=no
if [ "${1:-}" = --have ]; then
    have=yes
    shift
fi
if [ $# -lt 2 ] || { [ $have = no ] && [ -z "${CROSS_STD_CARGO:-}" ]; }; then usage; fi
triple=$1
kind=$2
shift 2
case $kind in release | test) ;; *) usage ;; esac

here=$(cd "$(dirname "$0")/.." && pwd)
cache=${DPROXY_STD_CACHE:-$HOME/.cache/dproxy}/std

# The daemon's profiles, which decide how std is compiled: into the key, and the probe
# is built with them.
profiles=$(sed -n '/^\[profile\./,/^\[[^p]/p' "$here/Cargo.toml" | sed '$ {/^\[[^p]/d}')
# What of them goes into the key: the settings of the profiles a cross build uses.
key_profiles=$(printf '%s\n' "$profiles" |
    awk '/^\[/ { skip = ($0 == "[profile.test-release]") } !skip && !/^[[:space:]]*(#|$)/')

# The key: the clone's own path is left out (a flag may name a file in it), so every
# clone of the same tree shares one std.
key=$( (
    /usr/bin/rustc -vV
    cat /usr/lib/rustlib/src/rust/src/version 2>/dev/null || true
    dpkg-query -W -f '${Version}\n' rust-web-src 2>/dev/null || true
    echo "$triple $kind"
    printf '%s\n' "$@" | sed "s#$here#@ROOT@#g"
    cat "$here/.cargo/config.toml"
    printf '%s\n' "$key_profiles"
) | sha256sum | cut -c1-16)
sysroot=$cache/$triple-$kind-$key
libdir=lib/rustlib/$triple/lib

if [ -f "$sysroot/complete" ]; then
    [ $have = yes ] || echo "$sysroot"
    exit 0
fi
[ $have = no ] || exit 1

work=$here/target/cross/std-$triple-$kind
rm -rf "$work"
mkdir -p "$work/probe/src"
{
    printf '[package]\nname = "dproxy-std-probe"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n\n'
    printf '# Its own workspace: never part of the daemon'"'"'s build.\n[workspace]\n\n'
    printf '%s\n' "$profiles"
} >"$work/probe/Cargo.toml"
if [ "$kind" = release ]; then
    echo 'fn main() {}' >"$work/probe/src/main.rs"
    sub="build --release"
    out=release
else
    printf '#[test]\nfn probe() {}\n' >"$work/probe/src/lib.rs"
    sub="test --no-run --lib"
    out=debug
fi

echo "cross-std: building std for $triple ($kind) once for this machine, into $sysroot" >&2
# From the clone's root, so that its .cargo/config.toml (linkers, rustflags) applies
# as in the real build. CROSS_STD_CARGO is split into words on purpose.
# shellcheck disable=SC2086
(cd "$here" && env CARGO_TARGET_DIR="$work/target" $CROSS_STD_CARGO $sub --target "$triple" \
    --manifest-path "$work/probe/Cargo.toml" "$@" >&2) ||
    { echo "cross-std: building std for $triple ($kind) failed" >&2; exit 1; }

tmp=$sysroot.tmp$$
rm -rf "$tmp"
mkdir -p "$tmp/$libdir"
n=0
for f in "$work/target/$triple/$out/deps"/lib*.rlib; do
    case ${f##*/} in libdproxy_std_probe-*) continue ;; esac
    cp "$f" "$tmp/$libdir/"
    n=$((n + 1))
done
if [ "$n" -lt 5 ] || ! ls "$tmp/$libdir"/libstd-*.rlib >/dev/null 2>&1; then
    echo "cross-std: no std among what the probe built ($work/target/$triple/$out/deps)" >&2
    rm -rf "$tmp"
    exit 1
fi
/usr/bin/rustc -vV >"$tmp/complete"
# Another clone may have put the same sysroot there meanwhile: keep that one.
if mv -T "$tmp" "$sysroot" 2>/dev/null; then :; else rm -rf "$tmp"; fi
rm -rf "$work"
[ -f "$sysroot/complete" ] || { echo "cross-std: $sysroot is incomplete" >&2; exit 1; }
echo "$sysroot"
