#!/usr/bin/env python3
"""Boots a real kernel of a router architecture under qemu-system (TCG) with an
initramfs holding a cross-built dproxy and the test program as PID 1, and judges
the result lines the test program prints on the serial console.

  run.py --target armv7 --dproxy dist/dproxy-...-armv7-... --init .../dproxy-vm-init \
         --kernel vmlinuz [--module dummy.ko] [--timeout 300] [--log console.log]

Fails when a check reports FAIL, when an expected check is missing, or when the
"done" line does not come within the time bound. Prints each check, the kernel's
boot time and the boot-to-result time. Standard library only.
"""
import argparse
import os
import re
import selectors
import subprocess
import sys
import time

# qemu machine per target; -cpu is what the cross builds are made for (see CROSS.md).
MACHINES = {
    "armv7": (["qemu-system-arm", "-M", "virt", "-cpu", "cortex-a15"], "ttyAMA0"),
    "aarch64": (["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a53"], "ttyAMA0"),
    "mips": (["qemu-system-mips", "-M", "malta", "-cpu", "24Kc"], "ttyS0"),
    "mipsel": (["qemu-system-mipsel", "-M", "malta", "-cpu", "24Kc"], "ttyS0"),
}

# Every line the test program must print, in its order.
CHECKS = [
    "system", "network", "getifaddrs", "config", "start", "privdrop",
    "udp_forward", "udp_cache", "tcp_forward", "tcp_cache", "hosts_inotify",
    "local_onlink", "local_refused", "batch_miss", "batch_hit",
    "sighup", "sigusr2", "sigterm", "persist", "sigterm_again",
]

LINE = re.compile(r"VMTEST (\S+) (ok|FAIL)(?: (.*))?$")
DONE = re.compile(r"VMTEST done\b(.*)$")

PASSWD = b"root:x:0:0:root:/:/bin/false\nnobody:x:65534:65534:nobody:/:/bin/false\n"
GROUP = b"root:x:0:\nnogroup:x:65534:\n"


class Cpio:
    """An uncompressed newc archive, written without root (device nodes included)."""

    def __init__(self):
        self.out = bytearray()
        self.ino = 1

    def _entry(self, name, mode, data=b"", rdev=(0, 0)):
        name_b = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1],
                  len(name_b), 0]
        self.ino += 1
        self.out += b"070701" + b"".join(b"%08x" % f for f in fields)
        self.out += name_b
        self.out += b"\0" * (-len(self.out) % 4)
        self.out += data
        self.out += b"\0" * (-len(self.out) % 4)

    def dir(self, name):
        self._entry(name, 0o040755)

    def file(self, name, data, mode=0o644):
        self._entry(name, 0o100000 | mode, data)

    def chardev(self, name, major, minor):
        self._entry(name, 0o020600, rdev=(major, minor))

    def finish(self):
        self._entry("TRAILER!!!", 0)
        self.out += b"\0" * (-len(self.out) % 512)
        return bytes(self.out)


def initramfs(args):
    c = Cpio()
    for d in ["bin", "dev", "etc", "lib", "lib/modules", "proc", "sys", "tmp"]:
        c.dir(d)
    # The kernel opens /dev/console for PID 1 before anything is mounted.
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/null", 1, 3)
    with open(args.init, "rb") as f:
        c.file("init", f.read(), 0o755)
    with open(args.dproxy, "rb") as f:
        c.file("bin/dproxy", f.read(), 0o755)
    c.file("etc/passwd", PASSWD)
    c.file("etc/group", GROUP)
    if args.module:
        with open(args.module, "rb") as f:
            c.file("lib/modules/dummy.ko", f.read())
    return c.finish()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True, choices=sorted(MACHINES))
    ap.add_argument("--dproxy", required=True)
    ap.add_argument("--init", required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--module", default="")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()

    os.makedirs(args.workdir, exist_ok=True)
    rd = os.path.join(args.workdir, "initramfs.cpio")
    with open(rd, "wb") as f:
        f.write(initramfs(args))
    log_path = os.path.join(args.workdir, "console.log")

    qemu, console = MACHINES[args.target]
    cmd = qemu + [
        "-m", "256", "-nodefaults", "-display", "none", "-serial", "stdio",
        "-no-reboot", "-kernel", args.kernel, "-initrd", rd,
        "-append", "console=%s rdinit=/init panic=-1 quiet" % console,
    ]
    print("vm-test %s: %s" % (args.target, " ".join(cmd)), flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    results = {}
    done_at = None
    done_info = ""
    first_at = None
    pending = b""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    with open(log_path, "wb") as log:
        deadline = start + args.timeout
        while done_at is None and time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, min(1.0, deadline - time.monotonic()))):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break  # qemu exited
            log.write(chunk)
            log.flush()
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                text = raw.decode("utf-8", "replace").rstrip("\r")
                m = LINE.search(text)
                if m:
                    if first_at is None:
                        first_at = time.monotonic() - start
                    name, verdict, detail = m.group(1), m.group(2), m.group(3) or ""
                    results[name] = (verdict, detail)
                    print("  %-14s %-4s %s" % (name, verdict, detail), flush=True)
                    continue
                m = DONE.search(text)
                if m:
                    done_at = time.monotonic() - start
                    done_info = m.group(1).strip()
        # The test program powers off; give qemu a moment, then stop it.
        try:
            proc.wait(timeout=15 if done_at is not None else 1)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    problems = []
    for name in CHECKS:
        if name not in results:
            problems.append("%s: no result line" % name)
        elif results[name][0] != "ok":
            problems.append("%s: %s" % (name, results[name][1]))
    for name, (verdict, detail) in results.items():
        if name not in CHECKS and verdict != "ok":
            problems.append("%s: %s" % (name, detail))
    if done_at is None:
        problems.append("no 'VMTEST done' line within %.0f s (qemu status %s)"
                        % (args.timeout, proc.returncode))
    if problems:
        with open(log_path, "rb") as f:
            tail = f.read()[-4000:].decode("utf-8", "replace")
        print("---- console (last 4000 bytes of %s) ----\n%s\n----" % (log_path, tail))
        print("vm-test %s: FAILED\n  %s" % (args.target, "\n  ".join(problems)))
        return 1
    print("vm-test %s: %d checks passed; first result %.1f s, boot to result %.1f s (%s)"
          % (args.target, len(CHECKS), first_at or 0.0, done_at, done_info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
