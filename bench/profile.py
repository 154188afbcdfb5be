#!/usr/bin/env python3
"""Where dproxy's CPU goes: perf samples of a running daemon under dnsperf load,
grouped by the system call they were taken in (`make profile`).

Two phases on the host loopback, each against a freshly started dproxy that
forwards to a local dnsmasq answering every name under profile.test at once
(no delay, so the phases measure dproxy, not the wait):
  hot   1,000 names asked twice to warm the cache, then repeated for PROFILE_SECS
  cold  names never asked before, for PROFILE_SECS
Each phase prints the server CPU per answered query and the share of perf's
samples in each system call, in the kernel outside system calls, and in
dproxy's own code. Not part of `make test`; needs perf (linux-perf).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import Procs, cpu_seconds, free_port, run_dnsperf, wait_answer  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECS = int(os.environ.get("PROFILE_SECS", "4"))
ZONE = "profile.test"
# The libc entry points of the calls dproxy makes; every sample below one is counted there.
CALLS = {"__sendmmsg": "sendmmsg", "__recvmmsg": "recvmmsg", "epoll_wait": "epoll_wait",
         "__socket": "socket", "__libc_connect": "connect", "__send": "send",
         "__libc_recv": "recv", "epoll_ctl": "epoll_ctl", "__close": "close"}


def dproxy_conf(work, port, up):
    user = "\toption user 'root'\n" if os.geteuid() == 0 else ""
    return (f"config dproxy 'main'\n\toption port '{port}'\n\tlist listen '127.0.0.1'\n"
            f"\tlist server '127.0.0.1:{up}'\n\toption resolvfile '/dev/null'\n"
            f"\toption control_socket '{work}/ctl.sock'\n\toption cache_size '16384'\n"
            f"\toption rebind_protection '0'\n\toption prefetch '0'\n\toption log_level 'warn'\n"
            f"{user}")


def shares(data):
    """Percent of samples per system call (callers' view), kernel-only and dproxy-only."""
    out = subprocess.run(["perf", "report", "-i", data, "--children", "--stdio", "-g", "none",
                          "--percent-limit", "0.5", "--sort", "sym"],
                         capture_output=True, text=True).stdout
    calls = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 4 and f[0].endswith("%") and f[-1] in CALLS:
            calls[f[-1]] = float(f[0].rstrip("%"))
    out = subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio",
                          "--sort", "dso"], capture_output=True, text=True).stdout
    dsos = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 2 and f[0].endswith("%"):
            dsos[f[1]] = float(f[0].rstrip("%"))
    return calls, dsos


def phase(work, procs, name, qfile, warm):
    port, up = free_port(), free_port()
    dm = procs.start(f"dnsmasq-{name}", [
        "dnsmasq", "-k", f"--port={up}", "--listen-address=127.0.0.1", "--bind-interfaces",
        "--no-resolv", "--no-hosts", f"--address=/{ZONE}/192.0.2.1", "--cache-size=0",
        "--local-ttl=3600", f"--pid-file={work}/dnsmasq-{name}.pid"])
    conf = f"{work}/dproxy-{name}.conf"
    with open(conf, "w") as f:
        f.write(dproxy_conf(work, port, up))
    px = procs.start(f"dproxy-{name}", [os.environ.get("DPROXY_BIN", f"{REPO}/target/release/dproxy"),
                                        "-c", conf])
    try:
        if wait_answer(port, f"ready.{ZONE}", 5, proc=px) is None:
            raise RuntimeError(f"dproxy gave no answer: {procs.tail(f'dproxy-{name}')}")
        if warm:
            run_dnsperf(work, f"{name}-warm", port, qfile, 2, 30, 100)
        data = f"{work}/{name}.data"
        perf = subprocess.Popen(["perf", "record", "-q", "-g", "-o", data, "-p", str(px.pid),
                                 "--", "sleep", str(SECS + 1)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        c0 = cpu_seconds(px.pid)
        r = run_dnsperf(work, name, port, qfile, 1 if not warm else 1000000, SECS, 100)
        c1 = cpu_seconds(px.pid)
        perf.wait(timeout=SECS + 30)
    finally:
        procs.stop(px)
        procs.stop(dm)
    calls, dsos = shares(data)
    us = (c1 - c0) / max(r["completed"], 1) * 1e6
    print(f"\n{name}: {r['completed']:,} answers, {r['qps']:,.0f} QPS, server CPU {us:.2f} µs/query "
          f"(perf: {SECS} s, dnsperf 100 in flight)")
    print("  share of dproxy's samples")
    for c in CALLS:
        if c in calls:
            print(f"  {calls[c]:6.1f} %  in {CALLS[c]}()")
    for dso, pct in sorted(dsos.items(), key=lambda kv: -kv[1]):
        print(f"  {pct:6.1f} %  self time in {dso}")


def main():
    for tool in ("perf", "dnsperf", "dnsmasq"):
        if not shutil.which(tool):
            sys.exit(f"profile: {tool} is missing (make profile installs it)")
    work = tempfile.mkdtemp(prefix="dproxy-profile.")
    procs = Procs(work)
    try:
        with open(f"{work}/hot.txt", "w") as f:
            f.writelines(f"h{i}.{ZONE} A\n" for i in range(1000))
        with open(f"{work}/cold.txt", "w") as f:
            f.writelines(f"c{i}.{ZONE} A\n" for i in range(SECS * 100000))
        phase(work, procs, "hot", f"{work}/hot.txt", warm=True)
        phase(work, procs, "cold", f"{work}/cold.txt", warm=False)
    finally:
        procs.stop_all()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
