"""Run a program with the kernel's randomness out of reach, for real.

Two real failures, no change to the program under test:
  - a seccomp filter makes the getrandom system call fail with ENOSYS (as on a
    kernel without it, or under a sandbox that forbids it);
  - in a private mount namespace, /dev/urandom is /dev/null (reads give nothing),
    as in a chroot or jail without a usable /dev.

The filter is a few classic-BPF instructions installed with prctl() in the child
between fork and exec; it is inherited by everything the child executes. Needs
root (for the mount namespace) and an architecture listed in GETRANDOM.
"""
import ctypes
import errno
import os
import platform
import struct
import subprocess

# System call numbers of getrandom, and the audit architecture the filter checks.
GETRANDOM = {
    "x86_64": (318, 0xC000003E),    # AUDIT_ARCH_X86_64
    "aarch64": (278, 0xC00000B7),   # AUDIT_ARCH_AARCH64
}

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000

BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_RET_K = 0x06


def supported():
    return platform.machine() in GETRANDOM and os.geteuid() == 0


def _insn(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)


def _filter_bytes():
    nr, arch = GETRANDOM[platform.machine()]
    prog = [
        _insn(BPF_LD_W_ABS, 0, 0, 4),             # seccomp_data.arch
        _insn(BPF_JEQ_K, 1, 0, arch),
        _insn(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),  # another ABI: leave alone
        _insn(BPF_LD_W_ABS, 0, 0, 0),             # seccomp_data.nr
        _insn(BPF_JEQ_K, 0, 1, nr),
        _insn(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.ENOSYS),
        _insn(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ]
    return b"".join(prog), len(prog)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _deny_getrandom():
    code, n = _filter_bytes()
    buf = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(n, ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        os._exit(97)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        os._exit(98)


def run(argv, no_urandom=True, timeout=10, **kw):
    """Runs argv without getrandom (and, if no_urandom, without /dev/urandom)."""
    if no_urandom:
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount --bind /dev/null /dev/urandom && exec "$@"', "sh"] + list(argv)
    return subprocess.run(argv, preexec_fn=_deny_getrandom, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, **kw)


def popen(argv, **kw):
    """Starts argv without getrandom (/dev/urandom stays): for a program that runs on."""
    return subprocess.Popen(argv, preexec_fn=_deny_getrandom, stdin=subprocess.DEVNULL, **kw)
