#!/usr/bin/env python3
"""`make soak`: hours of router life, squeezed into SOAK_MINUTES (default 20).

The real daemon on loopback, as a router runs it (started as root, dropping to
`nobody`, persist file, control socket, hosts and lease files, upstreams from a
resolv.conf), under a steady mixed load:

  * dnsperf, Zipf(1) over 50,000 names of a generated zone, rate-limited to
    SOAK_QPS (default 300) queries per second, one 60 s run per minute;
  * TCP clients (SOAK_TCP, default 4) on persistent connections, each asking a
    Zipf name every 100 ms;
  * a probe asking, ten times a second, a name it keeps in the cache, a name
    the cache has never seen, and a local name.

Upstream: nsd serving the zone on 127.0.0.1, behind two UDP delay relays
(bench/relay.py, +20 ms) on port 53 of 127.77.0.1 and 127.77.0.2, which the
resolv.conf names (a resolv.conf has no port).

Meanwhile a fault script on a fixed seed (SOAK_SEED) does, one at a time, what
routers do: link down/up by signal and by `ctl`; nsd killed and restarted;
resolv.conf rewritten (by rename and in place); hosts and lease files rewritten
(by rename and in place); SIGHUP storms (ten in a second); a full persist write
(SIGTERM) with `kill -9` in the middle of it, then a restart; the config made
invalid (SIGHUP) and valid again.

Every minute it records RSS, open descriptors, dnsperf's queries per second and
losses, and the probe's and TCP clients' results classified by what the fault
script was doing at the time.  The run fails (exit 1) if any of these is not 0:
answers lost or failed while the link was up, the upstream alive and the daemon
running; SERVFAIL for a cached name while the link was down; crashes; a persist
file that does not load after a kill -9; or if RSS leaves the memory budget or
trends upwards, or the descriptors are not flat.

Output: a table on stdout and in OUT_DIR/soak.md, per-minute records in
OUT_DIR/soak.jsonl, the fault log in OUT_DIR/faults.log, and OUT_DIR/soak.png
(RSS and queries per second over time) when matplotlib is importable.

Usage: soak.py [--minutes N] [--out DIR]
Environment: DPROXY_BIN, SOAK_MINUTES, SOAK_SEED, SOAK_QPS, SOAK_TCP.
Needs root (port 53 on loopback for the relays, and the drop to `nobody`).
"""
import argparse
import bisect
import ctypes
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

# bench/ is this script's directory, so on the path: the port and nsd config helpers of make bench.
from bench import free_port, nsd_conf

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
ZONE = "soak.example"
NAMES = 50_000
HOT = 20                  # names the probe keeps in the cache
DELAY_MS = 20
RELAYS = ("127.77.0.1", "127.77.0.2")
CACHE_KIB = 2048
MEMORY_KIB = 4096
PERSIST_INTERVAL = 60
# After a fault ends, how long before the daemon is held to "nothing lost" again:
# link up is immediate (1 s margin); after an upstream restart, the daemon may have
# marked it failed and re-probes every 5 s; after a restart it must load and listen.
GRACE_LINK = 1.0
GRACE_UPSTREAM = 7.0
GRACE_RESTART = 1.0
PROBE_TIMEOUT = 2.0
TCP_TIMEOUT = 3.0


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- DNS bits

def dns_query(name, qid, qtype=1):
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack(">HH", qtype, 1)


def rcode_of(buf):
    """-> (id, rcode, ancount) or None."""
    if len(buf) < 12:
        return None
    qid, flags, _, an = struct.unpack(">HHHH", buf[:8])
    return qid, flags & 0xF, an


def udp_ask(host, port, name, timeout):
    """-> 'ok', 'nodata', 'servfail', 'nxdomain', 'rcodeN' or 'lost'."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        qid = random.randrange(65536)
        try:
            s.sendto(dns_query(name, qid), (host, port))
            deadline = time.monotonic() + timeout
            while True:
                s.settimeout(max(0.001, deadline - time.monotonic()))
                data = s.recv(4096)
                r = rcode_of(data)
                if r and r[0] == qid:
                    return classify(r)
        except OSError:
            return "lost"


def classify(r):
    _, rcode, an = r
    if rcode == 0:
        return "ok" if an else "nodata"
    return {2: "servfail", 3: "nxdomain"}.get(rcode, f"rcode{rcode}")


# ---------------------------------------------------------------- /proc

def proc_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


# ---------------------------------------------------------------- persist file

def persist_file_ok(path):
    """The persist file's own checks (magic, format, CRC-32 over the rest), in
    Python: -> (ok, why)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return False, "missing"
    if len(data) < 28 or data[:8] != b"DPROXYC\0":
        return False, "not a dproxy cache file (%d bytes)" % len(data)
    if zlib.crc32(data[:-4]) != struct.unpack(">I", data[-4:])[0]:
        return False, "checksum mismatch (%d bytes)" % len(data)
    return True, "%d entries" % struct.unpack(">I", data[20:24])[0]


class Inotify:
    """Just enough inotify (ctypes) to see the persist temporary file appear."""
    IN_CREATE = 0x100

    def __init__(self, directory):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if self.libc.inotify_add_watch(self.fd, directory.encode(), self.IN_CREATE) < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch")

    def wait_for(self, name, timeout):
        import select
        deadline = time.monotonic() + timeout
        want = name.encode()
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            if not r:
                break
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            off = 0
            while off + 16 <= len(buf):
                _, _, _, ln = struct.unpack_from("iIII", buf, off)
                got = buf[off + 16:off + 16 + ln].rstrip(b"\0")
                off += 16 + ln
                if got == want:
                    return True
        return False

    def close(self):
        os.close(self.fd)


# ---------------------------------------------------------------- timeline

class Timeline:
    """What the fault script did when: intervals in which the daemon may be excused.

    Kinds: 'link' (told down), 'upstream' (nsd dead), 'daemon' (not running).
    A probe result counts as "link up, upstream alive, daemon running" only if its
    whole span [sent, answered] lies outside every interval (each widened by its
    grace at the end)."""
    GRACE = {"link": GRACE_LINK, "upstream": GRACE_UPSTREAM, "daemon": GRACE_RESTART}

    def __init__(self):
        self.lock = threading.Lock()
        self.open = {}                # kind -> start
        self.closed = []              # (kind, start, end)

    def begin(self, kind):
        with self.lock:
            self.open[kind] = time.monotonic()

    def end(self, kind):
        with self.lock:
            start = self.open.pop(kind, None)
            if start is not None:
                self.closed.append((kind, start, time.monotonic()))

    def _intervals(self, kind, grace):
        now = time.monotonic()
        with self.lock:
            out = [(s, e + (self.GRACE[k] if grace else 0.0)) for k, s, e in self.closed if k == kind]
            if kind in self.open:
                out.append((self.open[kind], now + 3600))
        return out

    def clear(self, t0, t1):
        """Link up, upstream alive and daemon running (and settled) all through [t0, t1]."""
        for kind in self.GRACE:
            for s, e in self._intervals(kind, True):
                if s <= t1 and t0 <= e:
                    return False
        return True

    def link_down_only(self, t0, t1):
        """Told down all through [t0, t1] (after a 0.2 s margin for the signal), daemon up."""
        inside = any(s + 0.2 <= t0 and t1 <= e for s, e in self._intervals("link", False))
        if not inside:
            return False
        return not any(s <= t1 and t0 <= e for s, e in self._intervals("daemon", True))


# ---------------------------------------------------------------- the soak

class Soak:
    def __init__(self, args):
        self.minutes = args.minutes
        self.out = args.out
        self.seed = args.seed
        self.qps = args.qps
        self.tcp_clients = args.tcp
        self.bin = os.environ.get("DPROXY_BIN", os.path.join(REPO, "target/release/dproxy"))
        self.work = tempfile.mkdtemp(prefix="dproxy-soak-")
        os.chmod(self.work, 0o755)
        self.files = os.path.join(self.work, "files")     # the daemon's own files
        os.makedirs(self.files)
        os.chmod(self.files, 0o777)
        self.stop = threading.Event()
        self.timeline = Timeline()
        self.lock = threading.Lock()
        self.results = []             # (t_sent, t_done, kind, result)
        self.perf = []                # dnsperf runs: dict
        self.faults = []              # (t, text)
        self.crashes = []
        self.persist_checks = []      # (ok, why)
        self.rss_before_kill = []     # KiB, at the end of each daemon's life
        self.kill_times = []          # s since the start
        self.daemon = None
        self.daemon_lock = threading.Lock()
        self.nsd = None
        self.relays = []
        self.port = None
        self.t0 = None
        self.zipf = None
        self.miss_seq = 0
        self.hosts_gen = 0
        self.lease_gen = 0
        self.resolv_gen = 0

    # -- files
    def path(self, name):
        return os.path.join(self.files, name)

    def generate(self):
        rng = random.Random(self.seed)
        with open(os.path.join(self.work, f"{ZONE}.zone"), "w") as z:
            z.write(f"$ORIGIN {ZONE}.\n$TTL 120\n"
                    f"@ IN SOA ns.{ZONE}. admin.{ZONE}. 1 3600 600 86400 60\n"
                    f"@ IN NS ns.{ZONE}.\nns IN A 198.18.255.254\n")
            for k in range(NAMES):
                # Mixed TTLs, so that entries expire, are refreshed and served stale.
                ttl = (30, 120, 600, 3600)[k % 4]
                z.write(f"n{k} {ttl} IN A 198.{18 + (k >> 16)}.{(k >> 8) & 255}.{k & 255}\n")
            for k in range(HOT):
                z.write(f"hot{k} 86400 IN A 198.19.254.{k}\n")
            z.write("*.miss 300 IN A 198.19.253.1\n")
        # Zipf(1) over the names, rank r is name n<perm[r]>.
        perm = list(range(NAMES))
        rng.shuffle(perm)
        cum, acc = [], 0.0
        for r in range(1, NAMES + 1):
            acc += 1.0 / r
            cum.append(acc)
        self.zipf = (perm, cum, acc)
        with open(os.path.join(self.work, "zipf.txt"), "w") as f:
            for _ in range(200_000):
                f.write(f"n{self.zipf_name(rng)}.{ZONE} A\n")
        self.write_hosts(rename=True)
        self.write_leases(rename=True)
        self.write_resolv(rename=True)

    def zipf_name(self, rng):
        perm, cum, acc = self.zipf
        return perm[min(bisect.bisect_left(cum, rng.random() * acc), NAMES - 1)]

    def _write(self, path, text, rename):
        if rename:
            tmp = path + ".new"
            with open(tmp, "w") as f:
                f.write(text)
            os.chmod(tmp, 0o644)
            os.rename(tmp, path)
        else:
            # In place: truncate and write, as an editor without a rename does.
            with open(path, "w") as f:
                f.write(text)

    def write_hosts(self, rename):
        self.hosts_gen += 1
        g = self.hosts_gen
        lines = ["# soak hosts, generation %d" % g, "192.168.1.1\trouter router.lan"]
        lines += ["192.168.1.%d\thost%d-%d" % (10 + k, g, k) for k in range(20)]
        self._write(self.path("hosts"), "\n".join(lines) + "\n", rename)

    def write_leases(self, rename):
        self.lease_gen += 1
        g = self.lease_gen
        exp = int(time.time()) + 86400
        lines = ["%d 02:00:00:00:00:01 192.168.1.100 printer 01:02:00:00:00:00:01" % exp]
        lines += ["%d 02:00:00:00:%02x:%02x 192.168.1.%d phone%d-%d *" % (exp, g & 255, k, 120 + k, g, k)
                  for k in range(20)]
        self._write(self.path("dhcp.leases"), "\n".join(lines) + "\n", rename)

    def write_resolv(self, rename):
        self.resolv_gen += 1
        forms = [[RELAYS[0]], [RELAYS[1]], [RELAYS[1], RELAYS[0]], [RELAYS[0], RELAYS[1]]]
        servers = forms[self.resolv_gen % len(forms)]
        text = "# Interface wan (generation %d)\n" % self.resolv_gen
        text += "".join("nameserver %s\n" % s for s in servers) + "search lan\n"
        self._write(self.path("resolv.conf"), text, rename)

    def write_config(self, valid=True):
        lines = ["config dproxy 'main'",
                 "\tlist listen '127.0.0.1'",
                 f"\toption port '{self.port}'",
                 f"\toption resolvfile '{self.path('resolv.conf')}'",
                 f"\tlist hosts '{self.path('hosts')}'",
                 f"\tlist leasefile '{self.path('dhcp.leases')}'",
                 "\toption domain 'lan'",
                 f"\toption cache_size '{CACHE_KIB}'",
                 f"\toption memory_limit '{MEMORY_KIB}'",
                 f"\toption persist_file '{self.path('cache')}'",
                 f"\toption persist_interval '{PERSIST_INTERVAL}'",
                 f"\toption control_socket '{self.path('dproxy.sock')}'",
                 "\toption rebind_protection '0'",
                 "\toption user 'nobody'",
                 "\toption log_level 'info'"]
        if not valid:
            lines.append("\toption cache_size 'lots'")
        text = "\n".join(lines) + "\n"
        with open(os.path.join(self.work, "dproxy.conf.new"), "w") as f:
            f.write(text)
        os.chmod(os.path.join(self.work, "dproxy.conf.new"), 0o644)
        os.rename(os.path.join(self.work, "dproxy.conf.new"), os.path.join(self.work, "dproxy.conf"))

    # -- processes
    def start_nsd(self):
        w = self.work
        if not os.path.exists(f"{w}/nsd.conf"):
            self.nsd_port = free_port()
            with open(f"{w}/nsd.conf", "w") as f:
                f.write(nsd_conf(w, "127.0.0.1", self.nsd_port, {ZONE: f"{ZONE}.zone"}, tcp_count=None))
        with open(f"{w}/nsd.out", "ab") as logf:
            self.nsd = subprocess.Popen(["nsd", "-d", "-c", f"{w}/nsd.conf"], stdout=logf,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if udp_ask("127.0.0.1", self.nsd_port, f"hot0.{ZONE}", 0.2) == "ok":
                return
            if self.nsd.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("nsd does not answer; see %s/nsd.log" % w)

    def start_relays(self):
        for addr in RELAYS:
            with open(f"{self.work}/relay-{addr}.out", "ab") as logf:
                p = subprocess.Popen([sys.executable, os.path.join(HERE, "relay.py"), addr, "53",
                                      "127.0.0.1", str(self.nsd_port), str(DELAY_MS)],
                                     stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            self.relays.append(p)
        for addr in RELAYS:
            deadline = time.monotonic() + 20
            while udp_ask(addr, 53, f"hot0.{ZONE}", 0.3) != "ok":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"relay on {addr}:53 does not answer (port 53 taken?)")
                time.sleep(0.1)

    def start_daemon(self):
        with open(os.path.join(self.work, "dproxy.log"), "ab") as logf:
            p = subprocess.Popen([self.bin, "-c", os.path.join(self.work, "dproxy.conf")],
                                 stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise RuntimeError("dproxy exited at start: %s" % self.log_tail())
            if udp_ask("127.0.0.1", self.port, "router.lan", 0.2) == "ok":
                with self.daemon_lock:
                    self.daemon = p
                return p
        raise RuntimeError("dproxy does not answer at start: %s" % self.log_tail())

    def log_tail(self, n=5):
        try:
            with open(os.path.join(self.work, "dproxy.log"), errors="replace") as f:
                return " | ".join(l.strip() for l in f.readlines()[-n:])
        except OSError:
            return ""

    def pid(self):
        with self.daemon_lock:
            return self.daemon.pid if self.daemon else None

    def signal(self, sig):
        with self.daemon_lock:
            if self.daemon and self.daemon.poll() is None:
                self.daemon.send_signal(sig)

    def ctl(self, *words):
        r = subprocess.run([self.bin, "ctl", "--socket", self.path("dproxy.sock")] + list(words),
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise RuntimeError("ctl %s: %s%s" % (" ".join(words), r.stdout, r.stderr))
        return r.stdout

    # -- load
    def record(self, t0, t1, kind, result):
        with self.lock:
            self.results.append((t0, t1, kind, result))

    def probe_loop(self):
        k = 0
        while not self.stop.is_set():
            t_next = time.monotonic() + 0.1
            k += 1
            if k % 3 == 0:
                name, kind = f"hot{k % HOT}.{ZONE}", "cached"
            elif k % 3 == 1:
                self.miss_seq += 1
                name, kind = f"m{self.miss_seq}.miss.{ZONE}", "miss"
            else:
                name, kind = ("router.lan", "printer.lan", "router")[k % 3], "local"
            t0 = time.monotonic()
            res = udp_ask("127.0.0.1", self.port, name, PROBE_TIMEOUT)
            self.record(t0, time.monotonic(), kind, res)
            self.stop.wait(max(0.0, t_next - time.monotonic()))

    def tcp_loop(self, idx):
        rng = random.Random(self.seed * 100 + idx)
        sock = None
        while not self.stop.is_set():
            t_next = time.monotonic() + 0.1
            name = f"n{self.zipf_name(rng)}.{ZONE}"
            t0 = time.monotonic()
            res = "lost"
            try:
                if sock is None:
                    sock = socket.create_connection(("127.0.0.1", self.port), timeout=TCP_TIMEOUT)
                sock.settimeout(TCP_TIMEOUT)
                qid = rng.randrange(65536)
                q = dns_query(name, qid)
                sock.sendall(struct.pack(">H", len(q)) + q)
                hdr = self._recv_exact(sock, 2)
                data = self._recv_exact(sock, struct.unpack(">H", hdr)[0])
                r = rcode_of(data)
                res = classify(r) if r and r[0] == qid else "mismatch"
            except (OSError, ValueError):
                if sock is not None:
                    sock.close()
                sock = None
            self.record(t0, time.monotonic(), "tcp", res)
            self.stop.wait(max(0.0, t_next - time.monotonic()))
        if sock is not None:
            sock.close()

    @staticmethod
    def _recv_exact(sock, n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ValueError("connection closed")
            buf += chunk
        return buf

    def dnsperf_loop(self):
        qfile = os.path.join(self.work, "zipf.txt")
        minute = 0
        while not self.stop.is_set():
            # One run per minute, within it, so that each minute's figures are its own.
            start = self.t0 + 60 * minute
            minute += 1
            if self.stop.wait(max(0.0, start - time.monotonic())):
                break
            secs = int(max(1, start + 57 - time.monotonic()))
            t0 = time.monotonic()
            cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(self.port), "-d", qfile,
                   "-l", str(secs), "-n", "100", "-Q", str(self.qps), "-q", "100", "-t", "2"]
            self.perf_proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                              text=True)
            out, _ = self.perf_proc.communicate()
            res = {"t0": t0, "t1": time.monotonic()}
            for line in out.splitlines():
                k, _, v = line.partition(":")
                k, v = k.strip(), v.strip()
                if k in ("Queries sent", "Queries completed", "Queries lost"):
                    res[k.split()[1]] = int(v.split()[0])
                elif k == "Queries per second":
                    res["qps"] = float(v.split()[0])
                elif k.startswith("Response codes"):
                    res["rcodes"] = v
            with self.lock:
                self.perf.append(res)

    # -- faults
    def fault(self, text):
        t = time.monotonic() - self.t0
        self.faults.append((t, text))
        log(f"fault: {text}")

    def check_alive(self):
        """A daemon that exited without us killing it is a crash: count it, restart it."""
        with self.daemon_lock:
            p = self.daemon
        if p is not None and p.poll() is not None:
            self.crashes.append((time.monotonic() - self.t0, p.returncode))
            log(f"CRASH: dproxy exited with {p.returncode}: {self.log_tail()}")
            self.timeline.begin("daemon")
            self.start_daemon()
            self.timeline.end("daemon")

    def f_link(self, rng, how):
        hold = rng.uniform(8, 20)
        self.fault(f"link down by {how} for {hold:.0f} s")
        self.timeline.begin("link")
        if how == "signal":
            self.signal(signal.SIGUSR2)
        else:
            self.ctl("link", "down")
        self.stop.wait(hold)
        if how == "signal":
            self.signal(signal.SIGUSR1)
        else:
            self.ctl("link", "up")
        self.timeline.end("link")

    def f_upstream(self, rng):
        dead = rng.uniform(5, 15)
        how = rng.choice(["SIGKILL", "SIGTERM"])
        self.fault(f"nsd killed ({how}), restarted after {dead:.0f} s")
        self.timeline.begin("upstream")
        self.nsd.send_signal(getattr(signal, how))
        self.nsd.wait(10)
        self.stop.wait(dead)
        self.start_nsd()
        self.timeline.end("upstream")

    def f_resolv(self, rng):
        rename = rng.random() < 0.5
        self.write_resolv(rename)
        self.fault("resolv.conf rewritten (%s), generation %d" % ("rename" if rename else "in place",
                                                                  self.resolv_gen))

    def f_hosts(self, rng):
        rename = rng.random() < 0.5
        if rng.random() < 0.5:
            self.write_hosts(rename)
            self.fault("hosts rewritten (%s)" % ("rename" if rename else "in place"))
        else:
            self.write_leases(rename)
            self.fault("lease file rewritten (%s)" % ("rename" if rename else "in place"))

    def f_hup_storm(self, rng):
        self.fault("SIGHUP storm: 10 in a second")
        for _ in range(10):
            self.signal(signal.SIGHUP)
            time.sleep(0.1)

    def f_bad_config(self, rng):
        secs = rng.uniform(3, 8)
        self.fault(f"config invalid for {secs:.0f} s (SIGHUP), then valid again (SIGHUP)")
        self.write_config(valid=False)
        self.signal(signal.SIGHUP)
        self.stop.wait(secs)
        self.write_config(valid=True)
        self.signal(signal.SIGHUP)

    def f_kill9_persist(self, rng):
        """SIGTERM starts the full persist write at exit; kill -9 as soon as its
        temporary file appears, i.e. in the middle of it. Then the file must be
        either the old one or the new one, and the restarted daemon must load it."""
        tmpname = ".cache.tmp"
        ino = Inotify(self.files)
        self.timeline.begin("daemon")
        with self.daemon_lock:
            p = self.daemon
            self.daemon = None
        self.rss_before_kill.append(proc_kib(p.pid, "VmRSS"))
        self.kill_times.append(time.monotonic() - self.t0)
        p.send_signal(signal.SIGTERM)
        mid = ino.wait_for(tmpname, 5.0)
        p.kill()
        p.wait(10)
        ino.close()
        ok, why = persist_file_ok(self.path("cache"))
        before = os.path.getsize(os.path.join(self.work, "dproxy.log"))
        self.start_daemon()
        self.timeline.end("daemon")
        with open(os.path.join(self.work, "dproxy.log"), errors="replace") as f:
            f.seek(before)
            text = f.read()
        loaded = [l for l in text.splitlines() if "loaded" in l and "cache" in l]
        refused = [l for l in text.splitlines() if "starting with an empty cache" in l]
        good = ok and bool(loaded) and not refused
        self.persist_checks.append((good, why))
        self.fault("kill -9 in a persist write (%s): file %s; restart: %s" % (
            "temporary file seen" if mid else "temporary file NOT seen", why,
            (loaded or refused or ["no load line"])[0].split("] ")[-1]))

    def fault_loop(self):
        rng = random.Random(self.seed)
        # Let the first periodic persist write happen before the first kill -9.
        self.stop.wait(10)
        plan = [("link-signal", lambda: self.f_link(rng, "signal")),
                ("link-ctl", lambda: self.f_link(rng, "ctl")),
                ("upstream", lambda: self.f_upstream(rng)),
                ("resolv", lambda: self.f_resolv(rng)),
                ("hosts", lambda: self.f_hosts(rng)),
                ("hup-storm", lambda: self.f_hup_storm(rng)),
                ("bad-config", lambda: self.f_bad_config(rng)),
                ("kill9-persist", lambda: self.f_kill9_persist(rng))]
        queue = []
        while not self.stop.is_set():
            if not queue:
                # Rounds of every fault in a shuffled order: each kind comes up within
                # any eight in a row, and the order still varies.
                queue = list(plan)
                rng.shuffle(queue)
                if time.monotonic() - self.t0 < PERSIST_INTERVAL + 10:
                    # The first kill -9 comes after a periodic persist write.
                    queue.sort(key=lambda f: f[0] == "kill9-persist")
            name, fn = queue.pop(0)
            try:
                fn()
            except Exception as e:          # a fault that cannot be applied is a finding
                self.fault(f"{name} FAILED: {e}")
                self.crashes.append((time.monotonic() - self.t0, f"fault {name}: {e}"))
            self.stop.wait(rng.uniform(3, 10))

    # -- per-minute records
    def minute_record(self, minute, t_from, t_to, rss_base):
        pid = self.pid()
        rss = proc_kib(pid, "VmRSS") if pid else None
        fds = fd_count(pid) if pid else None
        with self.lock:
            res = [r for r in self.results if t_from <= r[0] < t_to]
            perf = [p for p in self.perf if t_from <= p["t0"] < t_to]
        up_lost = up_fail = down_cached_servfail = down_cached = up_n = 0
        other = {}
        for t0, t1, kind, result in res:
            span_end = max(t1, t0 + (PROBE_TIMEOUT if result == "lost" else 0))
            if self.timeline.clear(t0, span_end):
                up_n += 1
                if result == "lost":
                    up_lost += 1
                elif result != "ok":
                    up_fail += 1
                    other[f"{kind}:{result}"] = other.get(f"{kind}:{result}", 0) + 1
            elif kind == "cached" and self.timeline.link_down_only(t0, span_end):
                down_cached += 1
                if result != "ok":
                    down_cached_servfail += 1
        q = sum(p.get("completed", 0) for p in perf)
        secs = sum(p["t1"] - p["t0"] for p in perf) or 1
        return {"minute": minute, "rss_kib": rss, "fds": fds,
                "qps": round(sum(p.get("qps", 0) * (p["t1"] - p["t0"]) for p in perf) / secs, 1) if perf else None,
                "dnsperf_completed": q, "dnsperf_lost": sum(p.get("lost", 0) for p in perf),
                "checked_up": up_n, "lost_up": up_lost, "failed_up": up_fail, "failed_up_detail": other,
                "cached_down": down_cached, "servfail_cached_down": down_cached_servfail,
                "crashes": len(self.crashes), "persist_ok": sum(1 for g, _ in self.persist_checks if g),
                "persist_bad": sum(1 for g, _ in self.persist_checks if not g),
                "faults": len(self.faults), "rss_base_kib": rss_base,
                "restarts": len(self.kill_times) + len(self.crashes)}

    # -- main
    def run(self):
        if os.geteuid() != 0:
            raise SystemExit("soak.py needs root (port 53 on loopback for the relays, user drop)")
        self.port = free_port()
        log(f"work directory {self.work}; generating the zone and files (seed {self.seed})")
        self.generate()
        self.write_config()
        self.start_nsd()
        self.start_relays()
        self.start_daemon()
        rss_base = proc_kib(self.pid(), "VmRSS")
        self.t0 = time.monotonic()
        log(f"dproxy {self.pid()} on 127.0.0.1:{self.port}, RSS at start {rss_base} KiB; "
            f"soak for {self.minutes} min")
        threads = [threading.Thread(target=self.probe_loop, daemon=True),
                   threading.Thread(target=self.dnsperf_loop, daemon=True),
                   threading.Thread(target=self.fault_loop, daemon=True)]
        threads += [threading.Thread(target=self.tcp_loop, args=(i,), daemon=True)
                    for i in range(self.tcp_clients)]
        for t in threads:
            t.start()
        records = []
        os.makedirs(self.out, exist_ok=True)
        jsonl = open(os.path.join(self.out, "soak.jsonl"), "w")
        try:
            for minute in range(1, self.minutes + 1):
                t_end = self.t0 + 60 * minute
                fd_samples = []
                while time.monotonic() < t_end:
                    time.sleep(min(1.0, max(0.0, t_end - time.monotonic())))
                    self.check_alive()
                    pid = self.pid()
                    n = fd_count(pid) if pid else None
                    if n is not None:
                        fd_samples.append((n, round(time.monotonic() - self.t0, 1)))
                # Results of the last PROBE_TIMEOUT s may still be in flight: count them next minute.
                rec = self.minute_record(minute, self.t0 + 60 * (minute - 1) - (PROBE_TIMEOUT + 1 if minute > 1 else 0),
                                         t_end - PROBE_TIMEOUT - 1 if minute < self.minutes else t_end + 60,
                                         rss_base)
                # Sockets come and go with the queries in flight: the floor of the
                # minute is what a leak would raise.
                rec["fd_floor"] = min(fd_samples)[0] if fd_samples else None
                rec["fd_peak"], rec["fd_peak_at_s"] = max(fd_samples) if fd_samples else (None, None)
                records.append(rec)
                jsonl.write(json.dumps(rec) + "\n")
                jsonl.flush()
                log("minute %d: RSS %s KiB, fds %s..%s, %s q/s, lost(up) %d, failed(up) %d, "
                    "SERVFAIL cached(down) %d/%d, crashes %d, persist ok/bad %d/%d" % (
                        minute, rec["rss_kib"], rec["fd_floor"], rec["fd_peak"], rec["qps"], rec["lost_up"], rec["failed_up"],
                        rec["servfail_cached_down"], rec["cached_down"], rec["crashes"],
                        rec["persist_ok"], rec["persist_bad"]))
        finally:
            self.stop.set()
            p = getattr(self, "perf_proc", None)
            if p is not None and p.poll() is None:
                p.terminate()
            for t in threads:
                t.join(timeout=15)
            jsonl.close()
            self.shutdown()
        return self.report(records, rss_base)

    def shutdown(self):
        with self.daemon_lock:
            p = self.daemon
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                rc = p.wait(10)
                if rc != 0:
                    self.crashes.append(("exit", rc))
            except subprocess.TimeoutExpired:
                p.kill()
                self.crashes.append(("exit", "no exit within 10 s of SIGTERM"))
        for q in self.relays + [self.nsd]:
            if q is not None and q.poll() is None:
                q.terminate()
                try:
                    q.wait(5)
                except subprocess.TimeoutExpired:
                    q.kill()
        with open(os.path.join(self.work, "dproxy.log"), errors="replace") as f:
            self.panics = [l for l in f if "panicked at" in l]
        shutil.copy(os.path.join(self.work, "dproxy.log"), os.path.join(self.out, "dproxy.log"))
        with open(os.path.join(self.out, "faults.log"), "w") as f:
            for t, text in self.faults:
                f.write("%7.1f s  %s\n" % (t, text))

    def report(self, records, rss_base):
        budget = MEMORY_KIB + rss_base
        rss = [r["rss_kib"] for r in records if r["rss_kib"]]
        fds = [r["fd_floor"] for r in records if r["fd_floor"]]
        half = rss[len(rss) // 2:]
        # Trend: least-squares slope over the second half (after warm-up), KiB per minute.
        slope = 0.0
        if len(half) >= 3:
            xs = list(range(len(half)))
            mx, my = sum(xs) / len(xs), sum(half) / len(half)
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, half)) / sum((x - mx) ** 2 for x in xs)
        checks = {
            "answers lost (link up, upstream alive)": sum(r["lost_up"] for r in records),
            "failed answers (link up, upstream alive)": sum(r["failed_up"] for r in records),
            "SERVFAIL for cached names (link down)": sum(r["servfail_cached_down"] for r in records),
            "crashes": len(self.crashes) + len(self.panics),
            "persist file not loaded after kill -9": sum(1 for g, _ in self.persist_checks if not g),
            "RSS over budget (minutes)": sum(1 for v in rss if v > budget),
            "RSS trend over 1 % of budget per minute": int(slope > budget / 100),
            "fd floor not flat (max - min over the minutes > 4)": int(bool(fds) and max(fds) - min(fds) > 4),
        }
        lines = ["| min | RSS KiB | fds (floor..peak) | q/s (dnsperf) | dnsperf lost | checked (up) | lost (up) | "
                 "failed (up) | cached asked (down) | SERVFAIL (down) | faults so far | restarts so far |",
                 "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in records:
            lines.append("| %d | %s | %s..%s | %s | %d | %d | %d | %d | %d | %d | %d | %d |" % (
                r["minute"], r["rss_kib"], r["fd_floor"], r["fd_peak"], r["qps"], r["dnsperf_lost"], r["checked_up"],
                r["lost_up"], r["failed_up"], r["cached_down"], r["servfail_cached_down"], r["faults"],
                r["restarts"]))
        kinds = {}
        for _, text in self.faults:
            k = text.split(" (")[0].split(" for ")[0].split(":")[0]
            kinds[k] = kinds.get(k, 0) + 1
        summary = [
            "", "Memory budget: memory_limit %d KiB + RSS at start %d KiB = %d KiB; RSS max %s KiB, "
            "trend over the second half %+.1f KiB/min; fd floor per minute %s..%s." % (
                MEMORY_KIB, rss_base, budget, max(rss) if rss else "?", slope,
                min(fds) if fds else "?", max(fds) if fds else "?"),
            "Persist checks after kill -9: %s." % (", ".join(w for _, w in self.persist_checks) or "none"),
            "RSS of each daemon just before its kill -9 (KiB): %s." % (
                ", ".join(str(v) for v in self.rss_before_kill) or "none"),
            "Faults (%d): %s." % (len(self.faults), ", ".join("%s %d" % kv for kv in sorted(kinds.items()))),
            "Crashes: %s." % (self.crashes + self.panics or "none"), ""]
        summary += ["| check | count |", "|---|---:|"] + ["| %s | %d |" % kv for kv in checks.items()]
        ok = all(v == 0 for v in checks.values())
        summary.append("")
        summary.append("Result: %s" % ("PASS" if ok else "FAIL"))
        text = "\n".join(lines + summary) + "\n"
        print(text)
        with open(os.path.join(self.out, "soak.md"), "w") as f:
            f.write(text)
        self.plot(records, budget)
        if ok:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            log(f"kept the work directory {self.work}")
        return 0 if ok else 1

    def plot(self, records, budget):
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            log("matplotlib not importable: no plot")
            return
        xs = [r["minute"] for r in records]
        fig, ax1 = plt.subplots(figsize=(8, 4))
        ax1.plot(xs, [r["rss_kib"] for r in records], "o-", color="tab:blue", label="RSS (KiB)")
        ax1.set_xlabel("minute")
        ax1.set_ylabel("RSS (KiB)", color="tab:blue")
        ax1.axhline(budget, color="tab:blue", linestyle="--", linewidth=0.8)
        ax1.text(xs[0], budget, " memory budget", va="bottom", fontsize=8, color="tab:blue")
        ax1.set_ylim(0, budget * 1.15)
        ax2 = ax1.twinx()
        qps = [r["qps"] or 0 for r in records]
        ax2.plot(xs, qps, "s-", color="tab:orange", label="queries/s")
        ax2.set_ylabel("queries per second (dnsperf)", color="tab:orange")
        ax2.set_ylim(0, max(qps + [1]) * 1.3)
        for t, _ in self.faults:
            ax1.axvline(t / 60.0, color="grey", alpha=0.15, linewidth=0.8)
        for t in self.kill_times:
            ax1.axvline(t / 60.0, color="tab:red", alpha=0.5, linewidth=0.8)
        ax1.set_title("dproxy soak: RSS and q/s (grey: faults, red: kill -9 and restart)", fontsize=10)
        fig.tight_layout()
        fig.savefig(os.path.join(self.out, "soak.png"), dpi=80)
        log("plot: %s" % os.path.join(self.out, "soak.png"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=int, default=int(os.environ.get("SOAK_MINUTES", "20")))
    ap.add_argument("--out", default=os.environ.get("SOAK_OUT", "/tmp/dproxy-soak"))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", "20261129")))
    ap.add_argument("--qps", type=int, default=int(os.environ.get("SOAK_QPS", "300")))
    ap.add_argument("--tcp", type=int, default=int(os.environ.get("SOAK_TCP", "4")))
    a = ap.parse_args()
    if a.minutes < 1 or a.minutes > 24 * 60:
        raise SystemExit("SOAK_MINUTES must be 1..1440")
    soak = Soak(a)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        sys.exit(soak.run())
    except KeyboardInterrupt:
        soak.stop.set()
        soak.shutdown()
        sys.exit(2)


if __name__ == "__main__":
    main()
