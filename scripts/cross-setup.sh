#!/bin/sh
# Installs what `make cross` and `make cross-test` need on a Debian 12 machine:
#   - Debian's Rust 1.96 (rustc-web, cargo-web) and its std sources (rust-web-src),
#     used with -Zbuild-std because the mips targets have no prebuilt std;
#   - qemu-user-static to run the results, file to check them;
#   - zig from PyPI as C toolchain and linker, in ~/.cache/dproxy/zig-<version>
#     (override: DPROXY_ZIG_CACHE), linked from .tools/bin/zig.
# The Debian toolchain lives in /usr/bin and is always called by full path, so
# rustup's toolchain (first on PATH) stays in charge of the host build.
# Idempotent: with everything present it only checks, in well under a second.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
# zig outside the clone, like the VM kernels (scripts/vm-kernel.sh): zig keys its own
# cache (~/.cache/zig: musl's libc.a and libunwind.a, built for each target at the first
# link, 35-40 CPU-seconds a target) on the path of its install, so a zig inside each
# clone made every clone build them again; one install per machine builds them once.
zig_cache=${DPROXY_ZIG_CACHE:-$HOME/.cache/dproxy}
zig_version=0.17.1
venv="$zig_cache/zig-$zig_version"
zig_link="$here/.tools/bin/zig"

# Debian packages, by a file each one provides.
need=""
for pair in /usr/bin/rustc:rustc-web /usr/bin/cargo:cargo-web \
            /usr/lib/rustlib/src/rust/library/std/Cargo.toml:rust-web-src \
            /usr/bin/qemu-mips-static:qemu-user-static /usr/bin/file:file; do
    path=${pair%%:*}
    pkg=${pair#*:}
    [ -e "$path" ] || need="$need $pkg"
done
/usr/bin/python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need="$need python3-venv"

if [ -n "$need" ]; then
    echo "cross-setup: apt-get install$need"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # shellcheck disable=SC2086
    $sudo env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

# Compiler and std sources must come from the same release: a 1.95 compiler on
# 1.96 sources fails with unknown lang items deep inside core.
rustc_ver=$(dpkg-query -W -f '${Version}' rustc-web)
src_ver=$(dpkg-query -W -f '${Version}' rust-web-src)
if [ "$rustc_ver" != "$src_ver" ]; then
    echo "cross-setup: rustc-web $rustc_ver but rust-web-src $src_ver; install matching versions" >&2
    exit 1
fi
# The compiler's own idea of its version must match the sources' own stamp.
rustc_short=$(/usr/bin/rustc --version | awk '{print $2}')
src_short=$(cat /usr/lib/rustlib/src/rust/src/version 2>/dev/null || echo unknown)
if [ "$rustc_short" != "$src_short" ]; then
    echo "cross-setup: /usr/bin/rustc is $rustc_short but the std sources are $src_short" >&2
    exit 1
fi

# zig, pinned, in its own venv (the test venv in .tools/venv is not touched).
find_zig() {
    for z in "$venv"/lib/python3*/site-packages/ziglang/zig; do
        if [ -x "$z" ]; then echo "$z"; return 0; fi
    done
    return 1
}
zig_bin=$(find_zig || true)
if [ -z "$zig_bin" ] || [ "$("$zig_bin" version 2>/dev/null)" != "$zig_version" ]; then
    echo "cross-setup: zig $zig_version in $venv"
    mkdir -p "$zig_cache"
    # Installed beside, then renamed into place: two clones setting up at once never
    # see half an install (only zig itself is used from it, which finds its lib dir
    # next to itself, so the venv may move).
    tmp="$venv.tmp$$"
    rm -rf "$tmp"
    /usr/bin/python3 -m venv "$tmp"
    "$tmp/bin/pip" install -q --disable-pip-version-check "ziglang==$zig_version"
    # A broken or other install in the way goes; one that another clone has just
    # put there stays, and this one is dropped.
    if [ -e "$venv" ] && [ "$(find_zig | xargs -r -I{} {} version 2>/dev/null)" != "$zig_version" ]; then
        rm -rf "$venv"
    fi
    mv -T "$tmp" "$venv" 2>/dev/null || rm -rf "$tmp"
    zig_bin=$(find_zig)
fi
# A stable path for the linker wrappers in cross/.
if [ "$(readlink "$zig_link" 2>/dev/null || true)" != "$zig_bin" ]; then
    mkdir -p "$(dirname "$zig_link")"
    ln -sfn "$zig_bin" "$zig_link"
fi

echo "cross-setup: ok (rustc $rustc_short, zig $zig_version)"
