#!/usr/bin/env python3
"""`make bench`: dproxy side by side with dnsmasq and unbound (one thread).

All three forward to the same authoritative server (nsd, serving a generated
zone) that sits behind +20 ms of round-trip delay; dnsperf drives them over
loopback one after another, each scenario on a freshly started server.

Network: the whole bench runs inside network namespaces it creates itself
(nothing touches the host's interfaces).  The client namespace holds the load
generator and the three servers on its own 127.0.0.1; nsd lives in a second
namespace behind a veth pair (10.53.0.0/30, only inside those namespaces) with
`netem delay 10ms` on both ends.  Where netem is unavailable the bench falls
back to a UDP delay relay (bench/relay.py) on the namespace's loopback, and
where namespaces are unavailable (not root) everything runs on the host's
loopback with free ports.  The output says which one was used.

Usage: bench.py [--quick] [--out FILE] [--command TEXT]
Environment: BENCH_ONLY=phase,... runs only those phases (hot, cold, mixed, start,
callgrind, local, persist, dot, dot-cg, doh, blocklist, blocklist-cg, dnssec, dnssec-cg, and dot-ab
only when named; dot and dot-cg are in bench/dot.py, dot-ab in bench/dotab.py, doh in bench/doh.py,
dnssec and dnssec-cg in bench/dnssec.py, and use
DPROXY_FULL_BIN, default target/bench-full/release/dproxy), DPROXY_BIN (default target/release/dproxy), BENCH_NET=auto|netem|relay|host
(veth = the netem topology without netem: a plumbing test only), BENCH_KEEP=1 keeps the work
directory and dnsperf outputs.
"""
import argparse
import bisect
import os
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# bench/dot.py imports its helpers from this module, also when this runs as a script.
sys.modules.setdefault("bench", sys.modules[__name__])
import dnssec  # noqa: E402
import dot  # noqa: E402
import dotab  # noqa: E402
import doh  # noqa: E402

REPO = os.path.dirname(HERE)
ZONE = "bench.example"
DELAY_MS = 20
AUTH_NS_ADDR = "10.53.0.2"      # nsd, inside the auth namespace (netem mode)
CLIENT_NS_ADDR = "10.53.0.1"    # our end of the veth, inside the client namespace
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Counts (and time bounds, seconds) per profile.  Every dnsperf run is bounded
# by both a count (-n passes over a file of known size) and a time (-l).
PROFILES = {
    "full": dict(hot_names=1000, hot_secs=10, cold_names=50000, cold_secs=40,
                 mixed_names=100000, mixed_queries=500000, mixed_secs=60,
                 outstanding=100, cg_queries=20000, cg_secs=60, starts=5, rounds=3,
                 leases=10000, hosts=50000, local_secs=5, block_domains=1000000),
    "quick": dict(hot_names=1000, hot_secs=3, cold_names=10000, cold_secs=20,
                  mixed_names=100000, mixed_queries=100000, mixed_secs=30,
                  outstanding=100, cg_queries=10000, cg_secs=60, starts=3, rounds=2,
                  leases=10000, hosts=50000, local_secs=2, block_domains=1000000),
}
# A phase that would start after this many seconds is skipped (and says so),
# so that one run stays within 15 minutes even when every bound is reached.
BUDGET_S = {"full": 720, "quick": 150}
ZIPF_S = 1.0
# Queries in flight during the callgrind window (1 makes valgrind's wake-up
# latency dominate the run time and is no more repeatable).
CG_INFLIGHT = int(os.environ.get("BENCH_CG_INFLIGHT", "10"))
SEED = 20260501

SERVERS = ("dproxy", "dnsmasq", "unbound")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- DNS bits

def dns_query(name, qid, qtype=1):
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack(">HH", qtype, 1)


def _skip_name(buf, off):
    while True:
        ln = buf[off]
        if ln == 0:
            return off + 1
        if ln & 0xC0 == 0xC0:
            return off + 2
        off += 1 + ln


def dns_parse(buf):
    """-> (id, rcode, ancount, first A address or None)."""
    qid, flags, qd, an = struct.unpack(">HHHH", buf[:8])
    addr = None
    try:
        off = 12
        for _ in range(qd):
            off = _skip_name(buf, off) + 4
        for _ in range(an):
            off = _skip_name(buf, off)
            rtype, _, _, rdlen = struct.unpack(">HHIH", buf[off:off + 10])
            off += 10
            if rtype == 1 and rdlen == 4:
                addr = socket.inet_ntoa(buf[off:off + 4])
                break
            off += rdlen
    except (IndexError, struct.error):
        pass
    return qid, flags & 0xF, an, addr


def wait_answer(port, name, timeout, proc=None, interval=0.002, want_addr=None, host="127.0.0.1",
                nxdomain=False):
    """Ask NAME every INTERVAL s until a NOERROR answer with data arrives (with
    NXDOMAIN: until an NXDOMAIN answer arrives).
    Returns the monotonic time of that answer, or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(interval)
    deadline = time.monotonic() + timeout
    qid = random.randrange(65536)
    try:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                return None
            qid = (qid + 1) & 0xFFFF
            try:
                s.sendto(dns_query(name, qid), (host, port))
            except OSError:
                pass
            end = time.monotonic() + interval
            while time.monotonic() < end:
                try:
                    data = s.recv(4096)
                except (socket.timeout, OSError):
                    break
                t = time.monotonic()
                if len(data) >= 12:
                    _, rcode, an, addr = dns_parse(data)
                    if nxdomain and rcode == 3:
                        return t
                    if rcode == 0 and an > 0 and (want_addr is None or addr == want_addr):
                        return t
    finally:
        s.close()
    return None


# ---------------------------------------------------------------- /proc

def cpu_seconds(pid):
    """CPU time of every thread of PID: the nanosecond run time from
    /proc/PID/task/*/schedstat where the kernel has it, else utime+stime from
    /proc/PID/stat (clock ticks, 10 ms)."""
    if CPU_SOURCE == "schedstat":
        total = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
        return total / 1e9
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK     # utime + stime


CPU_SOURCE = "schedstat" if os.path.exists("/proc/self/schedstat") else "stat"


def vm_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(200):
        port = random.randrange(20000, 60000)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, \
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                u.bind(("127.0.0.1", port))
                t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


# ---------------------------------------------------------------- server configs

# unbound's cache sizes and limits as the bench's forwarders run it; unbound_conf's
# `tuning` changes or (with None) drops entries.
UNBOUND_TUNING = {"msg-cache-size": "128m", "rrset-cache-size": "256m", "num-queries-per-thread": 1024,
                  "outgoing-range": 2048, "prefetch": "no"}


def unbound_conf(work, port, *, interface="127.0.0.1", threads=1, tls_service=None, modules="iterator",
                 trust_anchor=None, tuning=None, access="127.0.0.0/8", tls_cert_bundle=None, includes=(),
                 forward=None, forward_tls_name=None, stub_zones=(), stub_addr=None, control=None):
    """The text of an unbound.conf for every unbound the benches start: in the foreground
    (-d -p) without chroot, syslog, log file or remote control, working in WORK; what
    differs between them is a parameter.

    port: the DNS port on INTERFACE, or with tls_service=(key, pem) the DNS-over-TLS port
    (TCP only); modules, trust_anchor: module-config, and the anchor of a validator;
    tuning: over UNBOUND_TUNING; access: the network allowed to ask; tls_cert_bundle: the
    CA that checks a TLS upstream; includes: files included after the server clause;
    forward: (address, port) of the upstream for ".", over TLS with the name
    forward_tls_name if given; stub_zones: zone names served by stub_addr (address, port);
    control: the path of a remote-control socket (unbound-control -c CONF), else none.
    """
    s = ["server:"]
    if tls_service:
        key, pem = tls_service
        s += [f"interface: {interface}@{port}", f"tls-port: {port}", f'tls-service-key: "{key}"',
              f'tls-service-pem: "{pem}"', "do-udp: no",
              # No UDP listener, but UDP to its own upstream: with do-udp off alone, unbound
              # also asks its upstream over TCP, and on that pipelined connection a burst of
              # misses waits about 40 ms for nsd's later answers (bench/dotprobe.py: two
              # answers at once, the rest 40-48 ms later; none with this line). Clients that
              # send their queries in bursts paid that wait on most misses.
              "udp-upstream-without-downstream: yes"]
    else:
        s += [f"interface: {interface}", f"port: {port}"]
    s += ["do-ip6: no", f"num-threads: {threads}", 'chroot: ""', 'username: ""', f'directory: "{work}"',
          'pidfile: ""', "use-syslog: no", 'logfile: ""', "verbosity: 0", f'module-config: "{modules}"']
    if trust_anchor:
        s.append(f'trust-anchor: "{trust_anchor}"')
    s.append("do-not-query-localhost: no")
    s += [f"{k}: {v}" for k, v in {**UNBOUND_TUNING, **(tuning or {})}.items() if v is not None]
    s.append(f"access-control: {access} allow")
    if tls_cert_bundle:
        s.append(f'tls-cert-bundle: "{tls_cert_bundle}"')
    text = "\n    ".join(s) + "\n"
    text += "".join(f'include: "{x}"\n' for x in includes)
    if control:
        text += f'remote-control:\n    control-enable: yes\n    control-interface: "{control}"\n'
        text += "    control-use-cert: no\n"
    else:
        text += "remote-control:\n    control-enable: no\n"
    if forward:
        text += 'forward-zone:\n    name: "."\n'
        if forward_tls_name:
            text += "    forward-tls-upstream: yes\n"
        text += f"    forward-addr: {forward[0]}@{forward[1]}"
        text += f"#{forward_tls_name}\n" if forward_tls_name else "\n"
    text += "".join(f'stub-zone:\n    name: "{z}"\n    stub-addr: {stub_addr[0]}@{stub_addr[1]}\n'
                    for z in stub_zones)
    return text


def nsd_conf(work, listen, port, zones, *, name="nsd", tcp_count=1000, extra=()):
    """The text of an nsd.conf for the benches' nsd: in the foreground, one server process,
    no chroot, no rate limit, no remote control, its files in WORK named NAME.*; ZONES:
    {zone name: zone file in WORK}; tcp_count: None keeps nsd's default; extra: more
    "key: value" lines of the server clause."""
    s = ["server:", f"ip-address: {listen}", f"port: {port}", "server-count: 1", 'username: ""', 'chroot: ""',
         f'zonesdir: "{work}"', 'database: ""', f'zonelistfile: "{work}/{name}.zonelist"',
         f'xfrdfile: "{work}/{name}.xfrd"', f'xfrdir: "{work}"', f'pidfile: "{work}/{name}.pid"',
         f'logfile: "{work}/{name}.log"', "verbosity: 0", "hide-version: yes", "do-ip6: no", *extra,
         "rrl-ratelimit: 0", "rrl-whitelist-ratelimit: 0"]
    if tcp_count is not None:
        s.append(f"tcp-count: {tcp_count}")
    text = "\n    ".join(s) + "\n"
    text += "remote-control:\n    control-enable: no\n"
    text += "".join(f'zone:\n    name: "{z}"\n    zonefile: "{f}"\n' for z, f in zones.items())
    return text


def dproxy_conf(path, port, server, control_socket, *, cache_kib=16384, options=None, lists=None):
    """Writes a UCI config for dproxy as the benches run it (PATH): listening on
    127.0.0.1:PORT, one upstream SERVER, warnings only, no rebind protection (the zones'
    addresses are private), run as root like the peers (dnsmasq --user=root, unbound
    username ""): the work directory is root's, and callgrind writes at exit.
    options: more `option` lines {name: value}; lists: `list` lines {name: [values]}."""
    lines = ["config dproxy 'main'",
             f"\tlist listen '127.0.0.1:{port}'",
             f"\tlist server '{server}'",
             f"\toption cache_size '{cache_kib}'",
             "\toption log_level 'warn'",
             "\toption rebind_protection '0'",
             "\toption user 'root'",
             f"\toption control_socket '{control_socket}'"]
    lines += [f"\toption {k} '{v}'" for k, v in (options or {}).items()]
    lines += [f"\tlist {k} '{v}'" for k, vs in (lists or {}).items() for v in vs]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------- data

def addr_of(i):
    # 198.18.0.0/15 is reserved for benchmarking (RFC 2544).
    return f"198.{18 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"


def generate(work, p):
    """Zone, query files and local-name files; all deterministic (fixed seed)."""
    names = {"h": p["hot_names"], "c": p["cold_names"], "m": p["mixed_names"]}
    full = PROFILES["full"]
    zone_counts = {"h": full["hot_names"], "c": full["cold_names"], "m": full["mixed_names"]}
    with open(f"{work}/{ZONE}.zone", "w") as z:
        z.write(f"$ORIGIN {ZONE}.\n$TTL 86400\n"
                f"@ IN SOA ns.{ZONE}. admin.{ZONE}. 1 3600 600 86400 3600\n"
                f"@ IN NS ns.{ZONE}.\nns IN A 198.18.255.254\n")
        i = 0
        for pre in ("h", "c", "m"):
            for k in range(zone_counts[pre]):
                z.write(f"{pre}{k} IN A {addr_of(i)}\n")
                i += 1
        for k in range(64):                      # readiness / start-up probes
            z.write(f"ready{k} IN A 198.19.255.{k}\n")
    with open(f"{work}/hot.txt", "w") as f:
        for k in range(names["h"]):
            f.write(f"h{k}.{ZONE} A\n")
    with open(f"{work}/cold.txt", "w") as f:
        for k in range(names["c"]):
            f.write(f"c{k}.{ZONE} A\n")
    # Zipf(s) over the mixed names; rank r is name m<perm[r]>.
    rng = random.Random(SEED)
    m = names["m"]
    perm = list(range(m))
    rng.shuffle(perm)
    cum, acc = [], 0.0
    for r in range(1, m + 1):
        acc += 1.0 / r ** ZIPF_S
        cum.append(acc)
    seen = set()
    with open(f"{work}/mixed.txt", "w") as f:
        for _ in range(p["mixed_queries"]):
            r = bisect.bisect_left(cum, rng.random() * acc)
            n = perm[min(r, m - 1)]
            seen.add(n)
            f.write(f"m{n}.{ZONE} A\n")
    with open(f"{work}/cg.txt", "w") as f:
        for k in range(p["cg_queries"]):
            f.write(f"h{k % names['h']}.{ZONE} A\n")
    # Issue 3: a dnsmasq lease file and a hosts file.
    now = int(time.time())
    with open(f"{work}/dhcp.leases", "w") as f:
        for k in range(p["leases"]):
            mac = "02:00:%02x:%02x:%02x:%02x" % ((k >> 24) & 255, (k >> 16) & 255, (k >> 8) & 255, k & 255)
            f.write(f"{now + 86400} {mac} 10.{100 + (k >> 16)}.{(k >> 8) & 255}.{k & 255} lease{k} 01:{mac}\n")
    with open(f"{work}/hosts", "w") as f:
        f.write("# generated by bench/bench.py: 50,000 lines\n")
        for k in range(p["hosts"] - 1):
            if k % 10 == 9:
                f.write(f"fd00::{k >> 16:x}:{k & 0xFFFF:x}\thost{k}6 host{k}6.lan\n")
            else:
                f.write(f"172.{16 + (k >> 16)}.{(k >> 8) & 255}.{k & 255}\thost{k} host{k}.lan\n")
    with open(f"{work}/local.txt", "w") as f:
        lrng = random.Random(SEED + 1)
        for _ in range(1000):
            if lrng.random() < 0.5:
                f.write(f"lease{lrng.randrange(p['leases'])}.lan A\n")
            else:
                k = lrng.randrange(p["hosts"] - 1)
                f.write(f"host{k}6.lan AAAA\n" if k % 10 == 9 else f"host{k}.lan A\n")
    # dnsmasq can only read its lease file as the DHCP server, so for the
    # comparison it gets the leases as a second hosts file.
    with open(f"{work}/leases-as-hosts", "w") as f:
        for k in range(p["leases"]):
            f.write(f"10.{100 + (k >> 16)}.{(k >> 8) & 255}.{k & 255}\tlease{k} lease{k}.lan\n")
    open(f"{work}/empty-hosts", "w").close()
    return {"mixed_distinct": len(seen)}


# Blocklist names: labels per name as in published ad/tracker lists (most are a
# registrable domain plus one or two labels), TLDs weighted towards com.
BL_LABELS = [(2, 30), (3, 45), (4, 17), (5, 6), (6, 2)]
BL_TLDS = [("com", 45), ("net", 10), ("org", 4), ("io", 3), ("ru", 3), ("de", 3), ("info", 3),
           ("xyz", 3), ("co.uk", 2), ("com.br", 2), ("top", 3), ("online", 2), ("cn", 3), ("fr", 2),
           ("jp", 2), ("site", 2), ("app", 2), ("tk", 3), ("pl", 2), ("in", 1)]
BL_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"


def generate_blocklist(work, n):
    """N distinct domains (seeded), written as the three servers read them: dnsmasq
    `address=/name/` lines (also what dproxy loads), unbound `local-zone` lines; plus
    the query file of blocked names (listed names and subdomains of them).
    -> (first listed name, mean name length)."""
    rng = random.Random(SEED + 2)
    labels = [k for k, w in BL_LABELS for _ in range(w)]
    tlds = [t for t, w in BL_TLDS for _ in range(w)]
    seen = set()
    names = []
    while len(names) < n:
        tld = rng.choice(tlds)
        parts = []
        for _ in range(max(1, rng.choice(labels) - tld.count(".") - 1)):
            ln = min(30, max(1, int(rng.expovariate(1 / 8)) + 2))
            parts.append("".join(rng.choices(BL_CHARS, k=ln)))
        name = ".".join(parts) + "." + tld
        if name not in seen:
            seen.add(name)
            names.append(name)
    seen = None
    with open(f"{work}/bl-dnsmasq.conf", "w") as f:
        f.writelines(f"address=/{x}/\n" for x in names)
    with open(f"{work}/bl-unbound.conf", "w") as f:
        f.write("server:\n")
        f.writelines(f'    local-zone: "{x}" always_nxdomain\n' for x in names)
    with open(f"{work}/bl-empty.conf", "w") as f:
        f.write("server:\n")
    with open(f"{work}/blocked.txt", "w") as f:
        for k in range(10000):
            x = names[rng.randrange(n)]
            f.write(f"{x} A\n" if k % 2 else f"www.{x} A\n")
    mean = sum(map(len, names)) / n
    return names[0], mean


# ---------------------------------------------------------------- processes

class Procs:
    def __init__(self, work):
        self.work = work
        self.live = []

    def start(self, name, cmd, **kw):
        logf = open(f"{self.work}/{name}.log", "ab")
        p = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw)
        logf.close()
        p.bench_name = name
        self.live.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, grace=5.0):
        if p.poll() is None:
            try:
                p.send_signal(sig)
                p.wait(grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.live:
            self.live.remove(p)
        return p.returncode

    def stop_all(self):
        for p in list(reversed(self.live)):
            self.stop(p, grace=2.0)

    def tail(self, name, lines=3):
        try:
            with open(f"{self.work}/{name}.log", errors="replace") as f:
                return " | ".join(l.strip() for l in f.readlines()[-lines:] if l.strip())
        except OSError:
            return ""


def round_cell(vals, metric, fmt, summed=False):
    """One client's cell in a table of interleaved rounds, and the value its ratios use:
    the sum over the rounds for counts (SUMMED: queries lost), else the median with the
    lowest and highest round in brackets. FMT(x, metric) writes a number."""
    if summed:
        v = sum(vals)
        return v, fmt(v, metric)
    v = statistics.median(vals)
    spread = f" ({fmt(min(vals), metric)}–{fmt(max(vals), metric)})" if len(vals) > 1 else ""
    return v, fmt(v, metric) + spread


def callgrind_total(path):
    """The instructions counted in a callgrind output file (its `totals:` line), or None."""
    total = None
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.startswith("totals:"):
                    total = int(line.split()[1])
    return total


def run_dnsperf(work, tag, port, qfile, passes, secs, outstanding, timeout=5, extra=()):
    """Runs dnsperf -v (plus EXTRA options) and returns its summary plus percentiles
    computed from the per-query latencies it prints."""
    out = f"{work}/dnsperf-{tag}.out"
    cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", qfile,
           "-n", str(passes), "-l", str(secs), "-q", str(outstanding), "-t", str(timeout), "-v", *extra]
    t0 = time.monotonic()
    with open(out, "w") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    res = {"client_cpu": ru.ru_utime + ru.ru_stime, "wall": wall}
    lat = []
    rcodes = {}
    with open(out) as f:
        for line in f:
            if line.startswith("> "):
                parts = line.split()
                try:
                    lat.append(float(parts[-1]))
                except ValueError:
                    continue
                rcodes[parts[1]] = rcodes.get(parts[1], 0) + 1
            elif ":" in line:
                k, _, v = line.partition(":")
                k = k.strip()
                v = v.strip()
                if k in ("Queries sent", "Queries completed", "Queries lost"):
                    res[k.split()[1]] = int(v.split()[0])
                elif k == "Queries per second":
                    res["qps"] = float(v.split()[0])
                elif k == "Run time (s)":
                    res["runtime"] = float(v.split()[0])
    if p.returncode != 0 or "completed" not in res:
        raise RuntimeError(f"dnsperf failed ({p.returncode}), see {out}")
    lat.sort()
    if lat:
        res["p50"] = lat[int(0.50 * (len(lat) - 1))]
        res["p99"] = lat[int(0.99 * (len(lat) - 1))]
    res["rcodes"] = rcodes
    if not os.environ.get("BENCH_KEEP"):
        os.unlink(out)
    return res


# ---------------------------------------------------------------- servers

class Bench:
    def __init__(self, args, work, net):
        self.a = args
        self.p = PROFILES["quick" if args.quick else "full"]
        self.work = work
        self.net = net                      # dict: mode, upstream (addr, port), note
        self.procs = Procs(work)
        self.bin = os.environ.get("DPROXY_BIN", os.path.join(REPO, "target/release/dproxy"))
        self.res = {}                       # (section, metric) -> {server: value}
        self.notes = []
        self.available = {}
        self.versions = {}
        self.seq = 0
        self.deadline = time.monotonic() + BUDGET_S["quick" if args.quick else "full"]

    # -- per-server command lines
    def server_cmd(self, srv, port, tag, upstream=None, extra=None):
        ua, up = upstream or self.net["upstream"]
        extra = extra or {}
        w = self.work
        if srv == "dproxy":
            conf = f"{w}/dproxy-{tag}.conf"
            options = {k: extra[k] for k in ("domain", "persist_file") if k in extra}
            lists = {"hosts": extra.get("hosts", [f"{w}/empty-hosts"]),
                     "leasefile": extra.get("leasefiles", []),
                     "blocklist": extra.get("blocklists", [])}
            dproxy_conf(conf, port, f"{ua}:{up}", f"{w}/dproxy-{tag}.sock",
                        cache_kib=extra.get("cache_kib", 16384), options=options, lists=lists)
            return [self.bin, "-c", conf]
        if srv == "dnsmasq":
            cmd = ["dnsmasq", "-k", "-C", "/dev/null", "--no-resolv", "--no-hosts",
                   f"--server={ua}#{up}", f"--port={port}", "--listen-address=127.0.0.1",
                   "--bind-interfaces", f"--cache-size={extra.get('dnsmasq_cache', 150000)}",
                   "--user=root", "--log-facility=-", f"--pid-file={w}/dnsmasq-{tag}.pid"]
            for h in extra.get("hosts", []):
                cmd.append(f"--addn-hosts={h}")
            for bl in extra.get("blocklists", []):
                cmd.append(f"--conf-file={bl}")
            if "domain" in extra:
                cmd += [f"--domain={extra['domain']}", "--expand-hosts", "--local=/lan/"]
            return cmd
        if srv == "unbound":
            conf = f"{w}/unbound-{tag}.conf"
            with open(conf, "w") as f:
                f.write(unbound_conf(w, port, includes=extra.get("unbound_include", ()), forward=(ua, up)))
            return ["unbound", "-d", "-p", "-c", conf]
        raise ValueError(srv)

    def start_server(self, srv, tag, wrap=None, ready_timeout=10.0, probe_interval=0.002, **kw):
        port = free_port()
        cmd = self.server_cmd(srv, port, tag, **kw)
        if wrap:
            cmd = wrap + cmd
        self.seq += 1
        t0 = time.monotonic()
        p = self.procs.start(f"{srv}-{tag}", cmd)
        t = wait_answer(port, f"ready{self.seq % 64}.{ZONE}", ready_timeout, proc=p, interval=probe_interval)
        if t is None:
            rc = self.procs.stop(p)
            raise RuntimeError(f"{srv} gave no answer within {ready_timeout:.0f} s "
                               f"(exit status {rc}; log: {self.procs.tail(f'{srv}-{tag}')})")
        p.port = port
        p.ready = t - t0
        return p

    def put(self, section, metric, srv, value):
        self.res.setdefault((section, metric), {})[srv] = value

    # -- scenarios
    def measure(self, srv, proc, name, qfile, passes, secs, outstanding, tag=""):
        """One bounded dnsperf run against a running server -> metrics dict."""
        rss0 = vm_kib(proc.pid, "VmRSS")
        c0 = cpu_seconds(proc.pid)
        r = run_dnsperf(self.work, f"{srv}-{name}{tag}", proc.port, qfile, passes, secs, outstanding)
        c1 = cpu_seconds(proc.pid)
        if proc.poll() is not None:
            raise RuntimeError(f"{srv} exited during {name}: {self.procs.tail(proc.bench_name)}")
        m = {
            "QPS": r["qps"],
            "queries lost": r["lost"],
            "p50 latency (ms)": r.get("p50", 0) * 1000,
            "p99 latency (ms)": r.get("p99", 0) * 1000,
            "server CPU µs/query": (c1 - c0) / max(r["completed"], 1) * 1e6,
            "peak RSS (MiB)": vm_kib(proc.pid, "VmHWM") / 1024,
            "server CPU load (%)": (c1 - c0) / r["runtime"] * 100,
            "dnsperf CPU load (%)": r["client_cpu"] / r["wall"] * 100,
        }
        if name == "mixed":
            rss1 = vm_kib(proc.pid, "VmRSS")
            m["RSS growth per cached name (bytes)"] = (rss1 - rss0) * 1024 / self.meta["mixed_distinct"]
        bad = {k: v for k, v in r["rcodes"].items() if k != "NOERROR"}
        if bad:
            self.notes.append(f"{srv} {name}: non-NOERROR answers {bad}")
        if passes == 1 and r["sent"] < sum(1 for _ in open(qfile)):
            self.notes.append(f"{srv} {name}: stopped by the {secs} s time bound after {r['sent']:,} queries")
        log(f"  {srv:8} {name:5}{tag} qps {r['qps']:9.0f} lost {r['lost']:5d} "
            f"p50 {m['p50 latency (ms)']:7.3f} ms p99 {m['p99 latency (ms)']:7.3f} ms "
            f"cpu {m['server CPU µs/query']:6.2f} µs/q  hwm {m['peak RSS (MiB)']:6.1f} MiB  "
            f"(server {m['server CPU load (%)']:.0f}% dnsperf {m['dnsperf CPU load (%)']:.0f}% of a core)")
        return m

    def record(self, sec, srv, runs):
        """Median of each metric over the rounds (lost: the sum)."""
        for metric in runs[0]:
            vals = [r[metric] for r in runs]
            self.put(sec, metric, srv, sum(vals) if metric == "queries lost" else statistics.median(vals))

    def hot(self, servers):
        """All servers up at once (idle ones cost nothing), each warmed up, then
        ROUNDS interleaved runs so that a change in machine load hits every
        server alike; the table shows the median round."""
        w = self.work
        p = self.p
        procs, runs = {}, {}
        try:
            for srv in servers:
                try:
                    procs[srv] = self.start_server(srv, "hot")
                except RuntimeError as e:
                    self.notes.append(f"{srv} hot: n/a: {e}")
                    continue
                warm = run_dnsperf(w, f"{srv}-hot-warm", procs[srv].port, f"{w}/hot.txt", 2, 30, 100)
                if warm["completed"] < warm["sent"]:
                    self.notes.append(f"{srv}: {warm['lost']} queries lost during the hot warm-up")
                runs[srv] = []
            for rnd in range(p["rounds"]):
                for srv in procs:
                    try:
                        runs[srv].append(self.measure(srv, procs[srv], "hot", f"{w}/hot.txt", 1000000,
                                                      p["hot_secs"], 100, tag=f"-r{rnd + 1}"))
                    except RuntimeError as e:
                        self.notes.append(f"{srv} hot: {e}")
        finally:
            for proc in procs.values():
                self.procs.stop(proc)
        for srv, rr in runs.items():
            if rr:
                self.record("hot", srv, rr)
                if statistics.median(r["dnsperf CPU load (%)"] for r in rr) > 90:
                    self.notes.append(f"{srv} hot: dnsperf used > 90 % of a core: the load generator is "
                                      "the limit; compare CPU µs/query")

    def scenario(self, name, srv):
        """cold or mixed: a freshly started server, one pass over the file."""
        w = self.work
        p = self.p
        kw = {}
        if srv == "dproxy" and name == "cold":
            kw["extra"] = {"persist_file": f"{w}/dproxy.persist"}
        proc = self.start_server(srv, name, **kw)
        try:
            secs = p[f"{name}_secs"]
            m = self.measure(srv, proc, name, f"{w}/{name}.txt", 1, secs, p["outstanding"])
        finally:
            self.procs.stop(proc)
        self.record(name, srv, [m])

    def startup(self, srv):
        """Exec to first (forwarded) answer, median of a few starts."""
        times = []
        for k in range(self.p["starts"]):
            port = free_port()
            cmd = self.server_cmd(srv, port, f"start{k}")
            t0 = time.monotonic()
            proc = self.procs.start(f"{srv}-start", cmd)
            t = wait_answer(port, f"ready{40 + k}.{ZONE}", 10, proc=proc, interval=0.001)
            self.procs.stop(proc)
            if t is None:
                return
            times.append((t - t0) * 1000)
        self.put("start-up", "exec → first answer (ms, incl. one 20 ms upstream RTT)", srv,
                 statistics.median(times))

    def cg_run(self, srv, tag, hits, extra=None, qfile=None, ready_timeout=60):
        """One server under callgrind from exec to exit: start, warm-up with
        the hot names, then HITS cached answers (if any; from QFILE if given),
        SIGTERM. -> (instructions, answers counted in the hit run)."""
        w = self.work
        out = f"{w}/callgrind-{srv}-{tag}.out"
        wrap = ["valgrind", "--tool=callgrind", "--vgdb=no", f"--callgrind-out-file={out}",
                "--dump-line=no", "--compress-strings=no"]
        # a slow probe, so that about one probe query reaches the server in
        # both runs (each one costs a forwarded query)
        proc = self.start_server(srv, f"cg{tag}", wrap=wrap, ready_timeout=ready_timeout,
                                 probe_interval=0.25, extra=extra)
        r = None
        try:
            warm = run_dnsperf(w, f"{srv}-cg{tag}-warm", proc.port, f"{w}/hot.txt", 2, 60, 20)
            if warm["completed"] < warm["sent"]:
                raise RuntimeError(f"{warm['lost']} warm-up queries lost under valgrind")
            if hits:
                r = run_dnsperf(w, f"{srv}-cg{tag}", proc.port, qfile or f"{w}/cg.txt", 1,
                                self.p["cg_secs"], CG_INFLIGHT)
        finally:
            self.procs.stop(proc, grace=30)
        total = callgrind_total(out)
        if not total:
            raise RuntimeError(f"callgrind wrote no totals ({self.procs.tail(f'{srv}-cg{tag}')})")
        if r is not None and r["lost"]:
            self.notes.append(f"{srv} callgrind: {r['lost']} of {r['sent']} queries lost under valgrind")
        return total, (r["completed"] if r else 0)

    def callgrind(self, srv):
        """Instructions per cached answer: two runs under callgrind that differ
        only in the N hits at the end (same start, same warm-up); the
        difference of their totals over the difference of their answers.
        Needs no vgdb (callgrind_control cannot always reach a process that
        sleeps in the kernel)."""
        base, _ = self.cg_run(srv, "base", 0)
        total, answers = self.cg_run(srv, "hits", self.p["cg_queries"])
        if answers == 0:
            raise RuntimeError("no answers under valgrind")
        self.put("callgrind", "instructions per cached answer", srv, (total - base) / answers)
        log(f"  {srv:8} callgrind: ({total:,} − {base:,}) instructions / {answers:,} answers "
            f"= {(total - base) / answers:,.0f}")

    def local_names(self, srv):
        """Issue 3: 10,000 leases + 50,000-line hosts: exec → first answer from
        them, then local answers at speed."""
        w = self.work
        p = self.p
        if srv == "dproxy":
            # A copy of its own: the reload measurement below appends to it.
            shutil.copyfile(f"{w}/hosts", f"{w}/hosts-dproxy")
            extra = {"hosts": [f"{w}/hosts-dproxy"], "leasefiles": [f"{w}/dhcp.leases"],
                     "domain": "lan"}
        else:
            # dnsmasq's default cache size: with --cache-size=150000 it needs
            # ~20 s to read these hosts files.
            extra = {"hosts": [f"{w}/hosts", f"{w}/leases-as-hosts"], "domain": "lan",
                     "dnsmasq_cache": 150}
        k = p["leases"] - 1
        want = f"10.{100 + (k >> 16)}.{(k >> 8) & 255}.{k & 255}"
        port = free_port()
        cmd = self.server_cmd(srv, port, "local", extra=extra)
        t0 = time.monotonic()
        proc = self.procs.start(f"{srv}-local", cmd)
        try:
            t = wait_answer(port, f"lease{k}.lan", 10, proc=proc, interval=0.001, want_addr=want)
            if t is None:
                raise RuntimeError(f"no answer for lease{k}.lan from the lease file within 10 s")
            self.put("local names", "exec → answer from 10k leases + 50k hosts (ms)", srv,
                     (t - t0) * 1000)
            run_dnsperf(w, f"{srv}-local-warm", port, f"{w}/local.txt", 1, 30, 100)
            c0 = cpu_seconds(proc.pid)
            r = run_dnsperf(w, f"{srv}-local", port, f"{w}/local.txt", 100000, p["local_secs"], 100)
            c1 = cpu_seconds(proc.pid)
            hwm = vm_kib(proc.pid, "VmHWM")
            steady = vm_kib(proc.pid, "VmRSS")
            reload = self.local_reload(proc, port) if srv == "dproxy" else None
        finally:
            self.procs.stop(proc)
        if reload is not None:
            self.put("local names", "peak RSS during a hosts file reload ÷ RSS before", srv, reload)
        self.put("local names", "QPS", srv, r["qps"])
        self.put("local names", "server CPU µs/query", srv, (c1 - c0) / max(r["completed"], 1) * 1e6)
        self.put("local names", "peak RSS (MiB)", srv, hwm / 1024)
        self.put("local names", "steady RSS after the queries (MiB)", srv, steady / 1024)
        bad = {k2: v for k2, v in r["rcodes"].items() if k2 != "NOERROR"}
        if bad:
            self.notes.append(f"{srv} local names: non-NOERROR answers {bad}")

    def local_reload(self, proc, port):
        """dproxy re-reads a changed hosts file by itself (poll): append one line,
        wait for its name to answer, and compare the peak RSS since just before
        (VmHWM reset through clear_refs, which needs root) with the RSS before.
        None where the reset is not allowed."""
        try:
            with open(f"/proc/{proc.pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError as e:
            self.notes.append(f"dproxy local names reload: VmHWM not reset ({e}), not measured")
            return None
        before = vm_kib(proc.pid, "VmRSS")
        with open(f"{self.work}/hosts-dproxy", "a") as f:
            f.write("198.18.254.1\treloadprobe\n")
        if wait_answer(port, "reloadprobe.lan", 10, proc=proc, interval=0.01) is None:
            raise RuntimeError("the appended hosts line did not answer within 10 s")
        return vm_kib(proc.pid, "VmHWM") / before

    def bl_extra(self, srv, listed):
        w = self.work
        if srv == "dproxy":
            return {"blocklists": [f"{w}/bl-dnsmasq.conf" if listed else f"{w}/empty-hosts"]}
        if srv == "dnsmasq":
            return {"blocklists": [f"{w}/bl-dnsmasq.conf"] if listed else []}
        return {"unbound_include": [f"{w}/bl-unbound.conf" if listed else f"{w}/bl-empty.conf"]}

    def blocklist(self, srv):
        """A 1,000,000-domain blocklist: exec → first blocked answer, RSS growth per
        listed domain (against the same server started without the list), CPU per
        blocked query and per passed (cached) query with the list loaded."""
        w = self.work
        p = self.p
        n = p["block_domains"]
        sec = f"blocklist ({n:,} domains)"
        base = self.start_server(srv, "bl-base", extra=self.bl_extra(srv, False))
        rss0 = vm_kib(base.pid, "VmRSS")
        self.procs.stop(base)
        port = free_port()
        cmd = self.server_cmd(srv, port, "bl", extra=self.bl_extra(srv, True))
        t0 = time.monotonic()
        proc = self.procs.start(f"{srv}-bl", cmd)
        try:
            t = wait_answer(port, self.bl_first, 300, proc=proc, interval=0.005, nxdomain=True)
            if t is None:
                raise RuntimeError(f"no NXDOMAIN for {self.bl_first} within 300 s "
                                   f"({self.procs.tail(f'{srv}-bl')})")
            self.put(sec, "exec → first blocked answer (ms)", srv, (t - t0) * 1000)
            self.put(sec, "CPU to load (s)", srv, cpu_seconds(proc.pid))
            rss1 = vm_kib(proc.pid, "VmRSS")
            self.put(sec, "RSS growth per listed domain (bytes)", srv, (rss1 - rss0) * 1024 / n)
            self.put(sec, "peak RSS (MiB)", srv, vm_kib(proc.pid, "VmHWM") / 1024)
            run_dnsperf(w, f"{srv}-bl-warm", port, f"{w}/blocked.txt", 1, 30, 100)
            c0 = cpu_seconds(proc.pid)
            r = run_dnsperf(w, f"{srv}-blocked", port, f"{w}/blocked.txt", 100000, p["local_secs"], 100)
            c1 = cpu_seconds(proc.pid)
            self.put(sec, "server CPU µs/blocked query", srv, (c1 - c0) / max(r["completed"], 1) * 1e6)
            bad = {k: v for k, v in r["rcodes"].items() if k != "NXDOMAIN"}
            if bad:
                self.notes.append(f"{srv} blocklist: blocked queries not answered NXDOMAIN: {bad}")
            run_dnsperf(w, f"{srv}-bl-hot-warm", port, f"{w}/hot.txt", 2, 30, 100)
            c0 = cpu_seconds(proc.pid)
            r = run_dnsperf(w, f"{srv}-bl-hot", port, f"{w}/hot.txt", 100000, p["local_secs"], 100)
            c1 = cpu_seconds(proc.pid)
            self.put(sec, "server CPU µs/passed (cached) query", srv,
                     (c1 - c0) / max(r["completed"], 1) * 1e6)
            bad = {k: v for k, v in r["rcodes"].items() if k != "NOERROR"}
            if bad:
                self.notes.append(f"{srv} blocklist: passed queries not answered NOERROR: {bad}")
        finally:
            self.procs.stop(proc)

    def blocklist_cg(self):
        """dproxy's instructions per cached (passed) answer and per blocked answer with
        the 1,000,000-domain list loaded, against per cached answer without a list
        (the hit path's cost of the lookup)."""
        sec = f"blocklist ({self.p['block_domains']:,} domains)"
        plain = self.bl_extra("dproxy", False)
        listed = self.bl_extra("dproxy", True)
        base0, _ = self.cg_run("dproxy", "bl0-base", 0, extra=plain)
        tot0, ans0 = self.cg_run("dproxy", "bl0-hits", self.p["cg_queries"], extra=plain)
        base1, _ = self.cg_run("dproxy", "bl1-base", 0, extra=listed, ready_timeout=600)
        tot1, ans1 = self.cg_run("dproxy", "bl1-hits", self.p["cg_queries"], extra=listed,
                                 ready_timeout=600)
        totb, ansb = self.cg_run("dproxy", "bl1-blocked", self.p["cg_queries"], extra=listed,
                                 qfile=f"{self.work}/blocked.txt", ready_timeout=600)
        if not (ans0 and ans1 and ansb):
            raise RuntimeError("no answers under valgrind")
        i0, i1, ib = (tot0 - base0) / ans0, (tot1 - base1) / ans1, (totb - base1) / ansb
        self.put(sec, "instructions per cached answer, no list", "dproxy", i0)
        self.put(sec, "instructions per cached answer, list loaded", "dproxy", i1)
        self.put(sec, "instructions per blocked answer, list loaded", "dproxy", ib)
        log(f"  dproxy blocklist callgrind: cached {i0:,.0f} without the list, {i1:,.0f} with it; "
            f"blocked {ib:,.0f}")

    def persist(self):
        """Issue 8: restart dproxy on the persist file written after the cold
        run (upstream unreachable, so only the loaded cache can answer)."""
        pf = f"{self.work}/dproxy.persist"
        if not os.path.exists(pf):
            raise RuntimeError("dproxy wrote no persist file on SIGTERM after the cold run")
        dead = ("127.0.0.1", free_port())          # nothing listens there
        port = free_port()
        cmd = self.server_cmd("dproxy", port, "persist", upstream=dead, extra={"persist_file": pf})
        t0 = time.monotonic()
        proc = self.procs.start("dproxy-persist", cmd)
        try:
            k = self.p["cold_names"] - 1
            t = wait_answer(port, f"c{k}.{ZONE}", 10, proc=proc, interval=0.001)
        finally:
            self.procs.stop(proc)
        if t is None:
            raise RuntimeError("no answer from the persisted cache within 10 s")
        with open(pf, "rb") as f:
            size = len(f.read())
        self.put("persist", f"exec → cached answer from a {self.p['cold_names']:,}-name persist file (ms)",
                 "dproxy", (t - t0) * 1000)
        self.notes.append(f"dproxy persist file after the cold run: {size / 1024:.0f} KiB")

    # -- whole run
    def check_dproxy(self):
        if not os.access(self.bin, os.X_OK):
            return f"{self.bin} not found (run `make build`)"
        try:
            ver = subprocess.run([self.bin, "--version"], capture_output=True, text=True, timeout=5).stdout.strip()
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"{self.bin} --version failed: {e}"
        self.versions["dproxy"] = ver
        self.dproxy_id, self.dproxy_digest = binary_id(self.bin, ver)
        try:
            p = self.start_server("dproxy", "probe", ready_timeout=5)
        except RuntimeError as e:
            return f"{self.bin} ({ver}) does not answer DNS yet: {e}"
        self.procs.stop(p)
        return None

    def safe(self, what, fn, *args):
        if time.monotonic() > self.deadline:
            msg = f"{what}: n/a: skipped, the run's time budget is spent"
            log(msg)
            self.notes.append(msg)
            return
        try:
            fn(*args)
        except Exception as e:                 # one failing row must not sink the run
            msg = f"{what}: n/a: {e}"
            log(msg)
            self.notes.append(msg)

    def run(self):
        w = self.work
        log("generating zone and query files")
        self.meta = generate(w, self.p)
        self.versions["dnsmasq"] = subprocess.run(["dnsmasq", "--version"], capture_output=True,
                                                  text=True).stdout.split("\n")[0].split()[2]
        self.versions["unbound"] = re.search(r"Version (\S+)", subprocess.run(
            ["unbound", "-V"], capture_output=True, text=True).stdout).group(1)
        self.versions["nsd"] = re.search(r"NSD version (\S+)", subprocess.run(
            ["nsd", "-v"], capture_output=True, text=True).stderr).group(1)
        self.versions["dnsperf"] = re.search(r"Version (\S+)", subprocess.run(
            ["dnsperf", "-h"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout).group(1)
        self.start_auth()
        why = self.check_dproxy()
        self.available = {s: True for s in SERVERS}
        if why:
            self.available["dproxy"] = False
            self.dproxy_na = why
            log(f"dproxy column is n/a: {why}")
        servers = [s for s in SERVERS if self.available[s]]
        only = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))

        def want(phase):
            return not only or phase in only

        if want("hot"):
            log(f"scenario hot ({self.p['rounds']} interleaved rounds)")
            self.safe("hot", self.hot, servers)
        for sc in ("cold", "mixed"):
            if want(sc):
                log(f"scenario {sc}")
                for s in servers:
                    self.safe(f"{s} {sc}", self.scenario, sc, s)
        if want("start"):
            log("start-up")
            for s in servers:
                self.safe(f"{s} start-up", self.startup, s)
        if want("callgrind"):
            log("callgrind")
            for s in servers:
                self.safe(f"{s} callgrind", self.callgrind, s)
        if want("local"):
            log("local names")
            for s in ("dproxy", "dnsmasq"):
                if self.available[s]:
                    self.safe(f"{s} local names", self.local_names, s)
        if want("persist") and self.available["dproxy"]:
            log("persist file")
            self.safe("dproxy persist", self.persist)
        if want("dot"):
            log("DoT: dproxy-full, unbound (forward-tls-upstream) and stubby over one DoT upstream")
            self.safe("DoT", dot.run_dot, self)
        if want("doh"):
            log("DoH: dproxy-full over DoH (dnsdist, HTTP/1.1) next to dproxy-full over DoT")
            self.safe("DoH", doh.run_doh, self)
        if only and "dot-ab" in only:
            log("DoT side by side: dproxy-full and BENCH_DOT_BEFORE at the same time")
            self.safe("DoT side by side", dotab.run_dot_ab, self)
        if want("dot-cg") and self.available["dproxy"]:
            log("callgrind: full build against plain build")
            self.safe("callgrind full build", dot.run_dot_cg, self)
        if want("blocklist") or (only and "blocklist-cg" in only):
            log(f"blocklist: generating {self.p['block_domains']:,} domains")
            self.bl_first, mean = generate_blocklist(w, self.p["block_domains"])
            self.notes.append(f"blocklist: {self.p['block_domains']:,} generated domains, mean length "
                              f"{mean:.1f} bytes; dproxy and dnsmasq read the same address=/name/ file, "
                              "unbound the same names as local-zone always_nxdomain")
        if want("blocklist"):
            for s in servers:
                self.safe(f"{s} blocklist", self.blocklist, s)
        if only and "blocklist-cg" in only and self.available["dproxy"]:
            log("blocklist callgrind")
            self.safe("dproxy blocklist callgrind", self.blocklist_cg)
        if want("dnssec") or want("dnssec-cg"):
            # a budget of its own, so that the phases before keep theirs
            self.deadline = max(self.deadline, time.monotonic()) + dnssec.BUDGET_S["quick" if self.a.quick else "full"]
        if want("dnssec"):
            log("DNSSEC: dproxy-full, unbound and dnsmasq validating over one signed hierarchy")
            self.safe("DNSSEC", dnssec.run_dnssec, self)
        if want("dnssec-cg"):
            log("callgrind: validated hits against plain hits, full build")
            self.safe("callgrind DNSSEC hits", dnssec.run_dnssec_cg, self)

    def start_auth(self):
        w = self.work
        mode = self.net["mode"]
        if mode in ("netem", "veth"):
            listen, port = AUTH_NS_ADDR, 53
            wrap = ["ip", "netns", "exec", self.net["auth_ns"]]
        else:
            listen, port = "127.0.0.1", free_port()
            wrap = []
        with open(f"{w}/nsd.conf", "w") as f:
            f.write(nsd_conf(w, listen, port, {ZONE: f"{ZONE}.zone"}))
        log(f"starting nsd ({mode})")
        self.nsd = self.procs.start("nsd", wrap + ["nsd", "-d", "-c", f"{w}/nsd.conf"])
        self.net["auth_direct"] = (listen, port)     # nsd without the delay (the DoT server's upstream)
        if mode in ("netem", "veth"):
            self.net["upstream"] = (listen, port)
        else:
            rport = free_port()
            self.procs.start("relay", [sys.executable, os.path.join(HERE, "relay.py"),
                                       "127.0.0.1", str(rport), "127.0.0.1", str(port), str(DELAY_MS)])
            self.net["upstream"] = ("127.0.0.1", rport)
        ua, up = self.net["upstream"]
        if wait_answer(up, f"ready0.{ZONE}", 60, proc=self.nsd, host=ua, interval=0.1) is None:
            raise RuntimeError(f"nsd does not answer: {self.procs.tail('nsd')} {open(w + '/nsd.log').read()[-300:]}")
        rtts = []
        for k in range(10):
            t0 = time.monotonic()
            t = wait_answer(up, f"h{k}.{ZONE}", 2, host=ua, interval=0.5)
            rtts.append((t - t0) * 1000 if t else float("nan"))
        self.net["rtt"] = statistics.median(rtts)
        log(f"upstream RTT through the delay: {self.net['rtt']:.1f} ms")

    # -- output
    def table(self):
        v = self.versions
        cols = [f"dproxy {v.get('dproxy', '')}".strip(), f"dnsmasq {v['dnsmasq']}",
                f"unbound {v['unbound']} (1 thread)", "dproxy ÷ dnsmasq", "dproxy ÷ unbound"]
        out = []
        out.append(f"| scenario | metric | {' | '.join(cols)} |")
        out.append("|" + "---|" * (2 + len(cols)))
        no_ratio = ("queries lost", "server CPU load (%)", "dnsperf CPU load (%)")
        for (sec, metric), vals in self.res.items():
            row = []
            for s in SERVERS:
                x = vals.get(s)
                row.append(fmt(x, metric) if x is not None else "n/a")
            for peer in ("dnsmasq", "unbound"):
                a, b = vals.get("dproxy"), vals.get(peer)
                if metric in no_ratio or a is None or not b or (peer == "dnsmasq" and "RSS growth" in metric):
                    row.append("—")
                else:
                    row.append(f"{a / b:.2f}")
            out.append(f"| {sec} | {metric} | {' | '.join(row)} |")
        return "\n".join(out)

    def report(self, argv):
        p = self.p
        net = self.net
        cpu = "?"
        try:
            with open("/proc/cpuinfo") as f:
                cpu = re.search(r"model name\s*:\s*(.*)", f.read()).group(1)
        except (OSError, AttributeError):
            pass
        delay = {"netem": "netem delay 10 ms on both ends of a veth pair into nsd's own network namespace",
                 "veth": "NONE (BENCH_NET=veth: the netem topology without netem, a plumbing test)",
                 "relay": "netem unavailable here: UDP delay relay (bench/relay.py) holding each query 20 ms, "
                          "on the loopback of the bench's own network namespace",
                 "host": "no network namespace (BENCH_NET=host, or not root): UDP delay relay (bench/relay.py) holding each "
                         "query 20 ms, on the host loopback"}[net["mode"]]
        lines = [
            f"## dproxy benchmark ({'quick' if self.a.quick else 'full'} profile)",
            "",
            f"Command: `{argv}` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"{os.cpu_count()} × {cpu}, load average {self.loadavg} at start, {loadavg()} at the end "
            "(other work on the machine shows up here).",
            f"Upstream: nsd {v_(self.versions, 'nsd')} serving {ZONE} "
            f"({PROFILES['full']['hot_names'] + PROFILES['full']['cold_names'] + PROFILES['full']['mixed_names']:,} names); "
            f"delay: {delay}; measured RTT {net.get('rtt', float('nan')):.1f} ms.",
            f"Load: dnsperf {v_(self.versions, 'dnsperf')}, UDP, one thread; "
            f"hot = {p['hot_names']:,} names after a warm-up pass, 100 outstanding, median of "
            f"{p['rounds']} interleaved rounds of {p['hot_secs']} s; "
            f"cold = {p['cold_names']:,} unseen names once, {p['outstanding']} outstanding; "
            f"mixed = {p['mixed_queries']:,} queries Zipf(s={ZIPF_S}) over {p['mixed_names']:,} names "
            f"(seed {SEED}, {self.meta['mixed_distinct']:,} distinct), {p['outstanding']} outstanding. "
            "Each scenario on a freshly started server.",
            f"dproxy binary: {getattr(self, 'dproxy_id', 'n/a')}.",
            "",
            self.table(),
            "",
            dot.table(self),
            dotab.table(self),
            doh.table(self),
            dnssec.table(self),
        ]
        if not self.available.get("dproxy"):
            lines.append(f"**dproxy: n/a** — {self.dproxy_na}")
            lines.append("")
        if getattr(self, "dproxy_digest", None):
            try:
                now_id, now_digest = binary_id(self.bin, self.versions.get("dproxy", ""))
            except OSError:
                now_id, now_digest = "gone", None
            if now_digest != self.dproxy_digest:
                self.notes.insert(0, f"**the dproxy binary changed during this run** (now: {now_id}): "
                                  "rows measured after that time used the new binary; run again")
        if self.notes:
            lines.append("Notes:")
            lines += [f"- {n}" for n in self.notes]
            lines.append("")
        lines.append("Peers: dnsmasq with --cache-size=150000 and its default --dns-forward-max=150 "
                     "(dnsperf keeps ≤ 100 queries in flight, so the limit is never hit; raising it to 1000 "
                     "doubles dnsmasq's instructions per cached answer, as it scans its forward table every "
                     "turn); unbound with num-threads 1, iterator only (no validation), 128 MiB msg + "
                     "256 MiB rrset cache; dproxy with cache_size 16384 KiB, rebind_protection 0 and user root "
                     "(all three run as root).")
        lines.append("")
        lines.append("dnsmasq allocates its whole cache (--cache-size=150000) at start, so its RSS "
                     "growth per cached name is ~0; its memory per entry shows in peak RSS instead.")
        lines.append("")
        src = {"schedstat": "its on-CPU time from /proc/PID/task/*/schedstat: what /proc/PID/stat "
                            "counts as utime+stime, in ns instead of 10 ms ticks",
               "stat": "utime+stime from /proc/PID/stat"}[CPU_SOURCE]
        lines.append(f"CPU µs/query = the server's CPU time over the run ÷ answered queries ({src}); "
                     "peak RSS = VmHWM; p50/p99 from dnsperf -v per-query latencies; "
                     "callgrind = user-space instructions of a run with start, warm-up and "
                     f"{p['cg_queries']:,} hits minus those of a run with start and warm-up only, ÷ answered "
                     f"hits ({CG_INFLIGHT} in flight; kernel work in syscalls is not counted). "
                     "Ratios: dproxy ÷ peer, below 1 is better except for QPS.")
        return "\n".join(lines) + "\n"


def binary_id(path, ver):
    import hashlib
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    st = os.stat(path)
    return (f"{path} {ver}, {st.st_size:,} bytes, sha256 {digest}…, built "
            f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(st.st_mtime))}"), digest


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def v_(d, k):
    return d.get(k, "?")


def fmt(x, metric):
    if metric == "QPS":
        return f"{x:,.0f}"
    if metric == "queries lost":
        return str(x)
    if "latency" in metric or metric.startswith("exec"):
        return f"{x:.3f}" if x < 10 else f"{x:.1f}"
    if "instructions" in metric or "bytes" in metric:
        return f"{x:,.0f}"
    if "%" in metric:
        return f"{x:.0f}"
    return f"{x:.2f}"


# ---------------------------------------------------------------- network setup (outer)

def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def reap_stale_namespaces():
    """Remove namespaces left by a bench run that was killed hard."""
    r = sh("ip", "netns", "list", check=False)
    for line in r.stdout.splitlines():
        m = re.match(r"(dpbench-[ca]-(\d+))\b", line)
        if m and not os.path.exists(f"/proc/{m.group(2)}"):
            sh("ip", "netns", "del", m.group(1), check=False)


def setup_network(want, created):
    """-> net dict; appends every namespace it creates to CREATED."""
    if want == "host":
        return {"mode": "host"}
    if os.geteuid() != 0:
        if want != "auto":
            raise SystemExit("BENCH_NET=%s needs root (network namespaces)" % want)
        return {"mode": "host"}
    reap_stale_namespaces()
    cns, ans = f"dpbench-c-{os.getpid()}", f"dpbench-a-{os.getpid()}"
    if sh("ip", "netns", "add", cns, check=False).returncode != 0:
        if want != "auto":
            raise SystemExit("cannot create a network namespace")
        return {"mode": "host"}
    created.append(cns)
    sh("ip", "-n", cns, "link", "set", "lo", "up")
    if want in ("auto", "netem", "veth"):
        ok = sh("ip", "netns", "add", ans, check=False).returncode == 0
        if ok:
            created.append(ans)
            steps = [
                ("ip", "-n", cns, "link", "add", "dpb0", "type", "veth", "peer", "name", "dpb1", "netns", ans),
                ("ip", "-n", cns, "addr", "add", f"{CLIENT_NS_ADDR}/30", "dev", "dpb0"),
                ("ip", "-n", ans, "addr", "add", f"{AUTH_NS_ADDR}/30", "dev", "dpb1"),
                ("ip", "-n", cns, "link", "set", "dpb0", "up"),
                ("ip", "-n", ans, "link", "set", "dpb1", "up"),
                ("ip", "-n", ans, "link", "set", "lo", "up"),
                ("ip", "netns", "exec", cns, "tc", "qdisc", "add", "dev", "dpb0", "root", "netem",
                 "delay", f"{DELAY_MS // 2}ms", "limit", "100000"),
                ("ip", "netns", "exec", ans, "tc", "qdisc", "add", "dev", "dpb1", "root", "netem",
                 "delay", f"{DELAY_MS // 2}ms", "limit", "100000"),
            ]
            for st in steps:
                r = sh(*st, check=False)
                if r.returncode != 0 and want == "veth" and "netem" in st:
                    log("BENCH_NET=veth: no netem, the veth path has NO delay (plumbing test only)")
                    continue
                if r.returncode != 0:
                    ok = False
                    why = f"`{' '.join(st[3:])}`: {r.stderr.strip()}"
                    break
        else:
            why = "cannot create a second namespace"
        if ok:
            return {"mode": "veth" if want == "veth" else "netem", "client_ns": cns, "auth_ns": ans}
        if want in ("netem", "veth"):
            raise SystemExit(f"netem setup failed: {why}")
        log(f"netem unavailable ({why}); falling back to the delay relay")
        if ans in created:
            sh("ip", "netns", "del", ans, check=False)
            created.remove(ans)
    return {"mode": "relay", "client_ns": cns}


def outer(args, argv):
    created = []
    try:
        net = setup_network(os.environ.get("BENCH_NET", "auto"), created)
    except BaseException:
        for ns in created:
            sh("ip", "netns", "del", ns, check=False)
        raise
    inner_cmd = [sys.executable, os.path.abspath(__file__), "--inner", net["mode"]] + argv
    if net.get("client_ns"):
        inner_cmd = ["ip", "netns", "exec", net["client_ns"]] + inner_cmd
        if net.get("auth_ns"):
            inner_cmd += ["--auth-ns", net["auth_ns"]]
    child = None

    def on_signal(signum, _frame):
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)
    rc = 1
    try:
        child = subprocess.Popen(inner_cmd, start_new_session=True)
        rc = child.wait()
    except KeyboardInterrupt:
        log("interrupted")
        rc = 130
    finally:
        if child is not None:
            # The inner run and every server it started share its process group.
            for sig, wait in ((signal.SIGTERM, 8.0), (signal.SIGKILL, 2.0)):
                try:
                    os.killpg(child.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    child.wait(wait)
                except subprocess.TimeoutExpired:
                    pass
                time.sleep(0.2)
                if sig == signal.SIGTERM:
                    try:
                        os.killpg(child.pid, 0)
                    except ProcessLookupError:
                        break
        for ns in created:
            sh("ip", "netns", "del", ns, check=False)
    return rc


def inner(args, argv_display):
    net = {"mode": args.inner}
    if args.auth_ns:
        net["auth_ns"] = args.auth_ns
    work = tempfile.mkdtemp(prefix="dproxy-bench.")
    b = Bench(args, work, net)
    b.loadavg = loadavg()

    def on_signal(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    t0 = time.monotonic()
    try:
        b.run()
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        b.procs.stop_all()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"work directory kept: {work}")
    text = b.report(argv_display)
    text += f"\nTotal bench time {time.monotonic() - t0:.0f} s.\n"
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    log(f"table written to {args.out}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller counts (~2 min)")
    ap.add_argument("--out", default="/tmp/dproxy-bench/latest.md", help="markdown output file")
    ap.add_argument("--command", default=None, help="command line to print in the report")
    ap.add_argument("--inner", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--auth-ns", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    display = args.command or ("make bench-quick" if args.quick else "make bench")
    for tool in ("nsd", "dnsmasq", "unbound", "dnsperf"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"bench: {tool} not found (run scripts/install-deps.sh)")
    os.environ["PATH"] += ":/usr/sbin:/sbin"
    if args.inner:
        return inner(args, display)
    passthrough = [a for a in sys.argv[1:]]
    return outer(args, passthrough)


if __name__ == "__main__":
    sys.exit(main())
