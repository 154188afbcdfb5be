#!/bin/sh
# Installs what `make vm-test` needs on a Debian 12 machine, on top of
# scripts/cross-setup.sh (which builds the binaries that go into the VMs):
#   - qemu-system-arm (arm and aarch64) and qemu-system-mips (mips and mipsel);
#   - for the big-endian MIPS kernel, which Debian does not ship: Debian's
#     linux-source-6.1, gcc-mips-linux-gnu and the kernel's build tools;
#   - cpio is not needed: tests/vm/run.py writes the initramfs itself.
# Idempotent: with everything present it only checks, in well under a second.
set -eu

need=""
for pair in /usr/bin/qemu-system-arm:qemu-system-arm /usr/bin/qemu-system-aarch64:qemu-system-arm \
            /usr/bin/qemu-system-mips:qemu-system-mips /usr/bin/qemu-system-mipsel:qemu-system-mips \
            /usr/bin/mips-linux-gnu-gcc:gcc-mips-linux-gnu /usr/src/linux-source-6.1.tar.xz:linux-source-6.1 \
            /usr/bin/flex:flex /usr/bin/bison:bison /usr/bin/bc:bc /usr/bin/make:make \
            /usr/include/libelf.h:libelf-dev /usr/bin/xz:xz-utils; do
    path=${pair%%:*}
    pkg=${pair#*:}
    [ -e "$path" ] || case " $need " in *" $pkg "*) ;; *) need="$need $pkg" ;; esac
done

if [ -n "$need" ]; then
    echo "vm-setup: apt-get install$need"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
    # shellcheck disable=SC2086
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
        install -y -qq --no-install-recommends $need >/dev/null
fi
echo "vm-setup: ok"
