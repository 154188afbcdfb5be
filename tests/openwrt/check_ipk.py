#!/usr/bin/python3 -S
"""Checks a dproxy .ipk the way opkg will see it.

    check_ipk.py [--qemu RUNNER | --native] [--no-elf] [--package NAME] IPK ARCH VERSION-rRELEASE

Structure (a gzipped tar of ./debian-binary, ./control.tar.gz,
./data.tar.gz), debian-binary "2.0", the control fields, conffiles and
maintainer scripts, the exact file list with modes, root ownership
everywhere, Installed-Size, the binary's ELF header against ARCH, and that
the binary prints the version with --version (under qemu with --qemu, run
directly with --native). Prints one line per problem; exits 1 if any.
"""
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile

# OpenWrt arch -> (ELF class, byte order, e_machine)
ELF = {
    "mips_24kc": (1, 2, 8),
    "mipsel_24kc": (1, 1, 8),
    "arm_cortex-a7_neon-vfpv4": (1, 1, 40),
    "aarch64_generic": (2, 1, 183),
    "x86_64": (2, 1, 62),
}

DATA_FILES = {
    "./usr/sbin/dproxy": 0o755,
    "./etc/init.d/dproxy": 0o755,
    "./etc/config/dproxy": 0o600,
    "./etc/hotplug.d/iface/30-dproxy": 0o644,
    "./etc/hotplug.d/ntp/30-dproxy": 0o644,
    "./etc/uci-defaults/50-dproxy": 0o755,
    "./etc/capabilities/dproxy.json": 0o644,
    "./usr/libexec/rpcd/luci.dproxy": 0o755,
}
# What the full package adds: the DNSSEC root trust anchors.
FULL_DATA_FILES = {
    "./usr/share/dproxy/root-anchors.ds": 0o644,
}
CONTROL_FILES = {
    "./control": 0o644,
    "./conffiles": 0o644,
    "./postinst": 0o755,
    "./prerm": 0o755,
}
APK_VERSION = re.compile(
    r"^[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc|p)[0-9]*)*-r[0-9]+$")

problems = []


def problem(msg):
    problems.append(msg)


def open_tgz(data, what):
    try:
        return tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")
    except (tarfile.TarError, OSError) as exc:
        problem(f"{what}: not a gzipped tar ({exc})")
        return None


def check_members(tar, expected, what):
    files = {}
    for m in tar.getmembers():
        if m.uid != 0 or m.gid != 0:
            problem(f"{what}: {m.name} owned by {m.uid}:{m.gid}, not root")
        if m.isdir():
            if m.mode & 0o777 != 0o755:
                problem(f"{what}: directory {m.name} has mode {m.mode & 0o777:o}")
            continue
        if not m.isfile():
            problem(f"{what}: {m.name} is not a regular file")
            continue
        files[m.name] = m
    if sorted(files) != sorted(expected):
        problem(f"{what}: files {sorted(files)}, expected {sorted(expected)}")
    for name, mode in expected.items():
        if name in files and files[name].mode & 0o7777 != mode:
            problem(f"{what}: {name} has mode {files[name].mode & 0o7777:o}, expected {mode:o}")
    return files


def parse_control(text):
    fields = {}
    last = None
    for line in text.splitlines():
        if line.startswith(" ") and last:
            fields[last] += "\n" + line
        elif ":" in line:
            last, value = line.split(":", 1)
            fields[last] = value.strip()
    return fields


def check_elf(blob, arch):
    want = ELF.get(arch)
    if want is None:
        problem(f"unknown arch {arch}")
        return
    if blob[:4] != b"\x7fELF":
        problem("usr/sbin/dproxy is not an ELF file")
        return
    ei_class, ei_data = blob[4], blob[5]
    order = "big" if ei_data == 2 else "little"
    machine = int.from_bytes(blob[18:20], order)
    if (ei_class, ei_data, machine) != want:
        problem(f"usr/sbin/dproxy: ELF class/order/machine {(ei_class, ei_data, machine)}, expected {want} for {arch}")


def main(argv):
    runner = None
    native = False
    elf = True
    package = "dproxy"
    args = list(argv)
    while args and args[0].startswith("--"):
        opt = args.pop(0)
        if opt == "--qemu":
            runner = args.pop(0)
        elif opt == "--native":
            native = True
        elif opt == "--no-elf":
            elf = False
        elif opt == "--package":
            package = args.pop(0)
        else:
            sys.exit(f"unknown option {opt}")
    if len(args) != 3:
        sys.exit(__doc__)
    path, arch, version = args

    want_name = f"{package}_{version}_{arch}.ipk"
    if os.path.basename(path) != want_name:
        problem(f"file name {os.path.basename(path)}, expected {want_name}")
    if not APK_VERSION.match(version):
        problem(f"version {version} does not parse for apk")

    try:
        with open(path, "rb") as f:
            outer_bytes = f.read()
    except OSError as exc:
        problem(f"cannot read {path}: {exc}")
        return
    if outer_bytes[:2] != b"\x1f\x8b":
        problem("outer archive is not gzip (an .ipk is a gzipped tar, not ar)")
    outer = open_tgz(outer_bytes, "outer archive")
    if outer is None:
        return
    names = [m.name for m in outer.getmembers()]
    if names != ["./debian-binary", "./control.tar.gz", "./data.tar.gz"]:
        problem(f"outer members {names}")
    for m in outer.getmembers():
        if m.uid or m.gid:
            problem(f"outer archive: {m.name} owned by {m.uid}:{m.gid}")
    members = {m.name: outer.extractfile(m).read() for m in outer.getmembers() if m.isfile()}
    if members.get("./debian-binary") != b"2.0\n":
        problem(f"debian-binary is {members.get('./debian-binary')!r}")

    ctl = open_tgz(members.get("./control.tar.gz", b""), "control.tar.gz")
    data = open_tgz(members.get("./data.tar.gz", b""), "data.tar.gz")
    if ctl is None or data is None:
        return
    ctl_files = check_members(ctl, CONTROL_FILES, "control.tar.gz")
    want_data = dict(DATA_FILES)
    if package == "dproxy-full":
        want_data.update(FULL_DATA_FILES)
    data_files = check_members(data, want_data, "data.tar.gz")

    def read(tar, files, name):
        return tar.extractfile(files[name]).read() if name in files else b""

    fields = parse_control(read(ctl, ctl_files, "./control").decode())
    size = sum(m.size for m in data_files.values())
    want = {
        "Package": package,
        "Version": version,
        "Architecture": arch,
        "Section": "net",
        "Installed-Size": str(size),
        "Require-User": "dproxy:dproxy",
    }
    for key, value in want.items():
        if fields.get(key) != value:
            problem(f"control: {key} is {fields.get(key)!r}, expected {value!r}")
    for key in ("Depends", "Source", "License", "Description", "Maintainer"):
        if not fields.get(key):
            problem(f"control: no {key}")
    # dproxy-full replaces dproxy (the dnsmasq/dnsmasq-full pattern) and needs
    # the CA bundle; the plain package names neither.
    depends = [d.strip() for d in fields.get("Depends", "").split(",")]
    if package == "dproxy-full":
        for key in ("Provides", "Conflicts"):
            if fields.get(key) != "dproxy":
                problem(f"control: {key} is {fields.get(key)!r}, expected 'dproxy'")
        if "ca-bundle" not in depends:
            problem(f"control: Depends {depends} lacks ca-bundle")
    else:
        for key in ("Provides", "Conflicts"):
            if key in fields:
                problem(f"control: {key} in the plain package")
        if "ca-bundle" in depends:
            problem("control: the plain package depends on ca-bundle")
    if read(ctl, ctl_files, "./conffiles") != b"/etc/config/dproxy\n":
        problem(f"conffiles is {read(ctl, ctl_files, './conffiles')!r}")
    for script, call in (("./postinst", "default_postinst"), ("./prerm", "default_prerm")):
        text = read(ctl, ctl_files, script).decode()
        if not text.startswith("#!/bin/sh\n") or call not in text:
            problem(f"{script} does not call {call}")
        for sh in (["busybox", "sh", "-n"], ["dash", "-n"]):
            r = subprocess.run(sh, input=text.encode(), capture_output=True)
            if r.returncode:
                problem(f"{script}: {' '.join(sh)}: {r.stderr.decode().strip()}")

    config = read(data, data_files, "./etc/config/dproxy").decode()
    if "option enabled '0'" not in config:
        problem("etc/config/dproxy does not ship option enabled '0'")

    binary = read(data, data_files, "./usr/sbin/dproxy")
    if elf:
        check_elf(binary, arch)
    if runner or native:
        with tempfile.TemporaryDirectory() as tmp:
            exe = os.path.join(tmp, "dproxy")
            with open(exe, "wb") as f:
                f.write(binary)
            os.chmod(exe, 0o755)
            cmd = ([runner] if runner else []) + [exe, "--version"]
            try:
                r = subprocess.run(cmd, capture_output=True, timeout=60)
                out = r.stdout.decode().strip()
                if r.returncode != 0 or out != version.rsplit("-r", 1)[0]:
                    problem(f"{' '.join(cmd[:1] + ['dproxy', '--version'])}: exit {r.returncode}, "
                            f"printed {out!r} {r.stderr.decode().strip()!r}")
            except (OSError, subprocess.TimeoutExpired) as exc:
                problem(f"cannot run the binary: {exc}")


if __name__ == "__main__":
    main(sys.argv[1:])
    for p in problems:
        print(f"check_ipk: {p}")
    if not problems:
        print(f"check_ipk: {sys.argv[-3]} ok")
    sys.exit(1 if problems else 0)
