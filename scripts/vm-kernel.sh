#!/bin/sh
# Prints the kernel `make vm-test TARGET=...` boots, fetching or building it once:
#
#   scripts/vm-kernel.sh mips|mipsel|armv7|aarch64
#   -> line 1: the kernel image; line 2: dummy.ko for it, or empty when built in
#
# armv7, aarch64, mipsel: Debian 12's own kernels (armmp, arm64, 4kc-malta), fetched
# with `apt-get download` through a private apt state for that one foreign
# architecture, so the machine's dpkg and apt configuration stay untouched.
# mips: Debian has no big-endian MIPS port; the kernel is built from Debian's
# linux-source-6.1 with gcc-mips-linux-gnu and tests/vm/kernel/malta-be.config.
# Everything is cached under ~/.cache/dproxy/vm (override: DPROXY_VM_CACHE), the
# built kernel keyed by the hash of its config and the source version, so only
# the first run on a machine pays.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
cache=${DPROXY_VM_CACHE:-$HOME/.cache/dproxy/vm}
target=${1:-}
mkdir -p "$cache"

say() { echo "vm-kernel: $*" >&2; }

debian_kernel() { # debian-arch metapackage flavour
    arch=$1 meta=$2 flavour=$3
    dir="$cache/debian-$arch-$meta"
    if [ ! -f "$dir/ready" ]; then
        apt_dir="$cache/apt-$arch"
        mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/state"
        echo "deb http://deb.debian.org/debian bookworm main" >"$apt_dir/sources.list"
        set -- -q -o "Dir::State=$apt_dir/state" -o "Dir::State::Lists=$apt_dir/lists" \
            -o Dir::State::status=/dev/null -o "Dir::Cache=$apt_dir/cache" \
            -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/nonexistent \
            -o "APT::Architecture=$arch" -o "APT::Architectures=$arch" \
            -o Acquire::Languages=none -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false \
            -o APT::Sandbox::User="$(id -un)"
        say "fetching the $arch package lists (private apt state in $apt_dir)"
        apt-get "$@" update >&2
        # The metapackage names the current ABI's image package.
        pkg=$(apt-cache "$@" depends "$meta" | sed -n "s/^ *Depends: \(linux-image-[0-9].*-$flavour\)$/\1/p" | head -n 1)
        [ -n "$pkg" ] || { say "cannot resolve $meta for $arch"; exit 1; }
        rm -rf "$dir" && mkdir -p "$dir/deb"
        say "apt-get download $pkg:$arch"
        (cd "$dir/deb" && apt-get "$@" download "$pkg:$arch" >&2)
        dpkg-deb -x "$dir"/deb/*.deb "$dir/root"
        # Keep the kernel, its config and the one module the test loads.
        cp "$dir"/root/boot/vmlinuz-* "$dir/vmlinuz"
        cp "$dir"/root/boot/config-* "$dir/config"
        find "$dir/root/lib/modules" -name dummy.ko -exec cp {} "$dir/dummy.ko" \;
        ls "$dir/root/lib/modules" >"$dir/version"
        rm -rf "$dir/deb" "$dir/root" "$apt_dir"
        [ -f "$dir/vmlinuz" ] && [ -f "$dir/dummy.ko" ] || { say "no kernel or dummy.ko in $pkg"; exit 1; }
        touch "$dir/ready"
    fi
    echo "$dir/vmlinuz"
    echo "$dir/dummy.ko"
}

mips_kernel() {
    config="$here/tests/vm/kernel/malta-be.config"
    src=/usr/src/linux-source-6.1.tar.xz
    version=$(dpkg-query -W -f '${Version}' linux-source-6.1)
    key=$( (cat "$config"; echo "$version") | sha256sum | cut -c1-16)
    dir="$cache/kernel-mips-$key"
    if [ ! -f "$dir/vmlinux" ]; then
        build="$cache/build-mips-$key"
        rm -rf "$build" && mkdir -p "$build"
        say "building the big-endian malta kernel (linux-source-6.1 $version) in $build"
        start=$(date +%s)
        tar -xf "$src" -C "$build"
        tree="$build/linux-source-6.1"
        grep -v '^#' "$config" >"$build/fragment"
        kmake() { make -s -C "$tree" ARCH=mips CROSS_COMPILE=mips-linux-gnu- "$@"; }
        KCONFIG_ALLCONFIG="$build/fragment" kmake allnoconfig >&2
        # Options whose dependencies are not met vanish silently: check each one.
        while read -r line; do
            grep -qx "$line" "$tree/.config" || { say "config option did not take: $line"; exit 1; }
        done <"$build/fragment"
        nice -n 10 make -s -C "$tree" ARCH=mips CROSS_COMPILE=mips-linux-gnu- \
            -j"$(nproc)" vmlinux >&2
        mkdir -p "$dir"
        cp "$tree/vmlinux" "$dir/vmlinux.tmp"
        cp "$tree/.config" "$dir/config"
        echo $(($(date +%s) - start)) >"$dir/build-seconds"
        mv "$dir/vmlinux.tmp" "$dir/vmlinux"
        rm -rf "$build"
        say "built in $(cat "$dir/build-seconds") s: $dir/vmlinux"
    fi
    echo "$dir/vmlinux"
    echo ""
}

case $target in
    armv7) debian_kernel armhf linux-image-armmp armmp ;;
    aarch64) debian_kernel arm64 linux-image-arm64 arm64 ;;
    mipsel) debian_kernel mipsel linux-image-4kc-malta 4kc-malta ;;
    mips) mips_kernel ;;
    *) echo "usage: $0 mips|mipsel|armv7|aarch64" >&2; exit 2 ;;
esac
