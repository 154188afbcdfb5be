"""The DNSSEC scenario of `make bench`: validated misses and hits, KeyTrap (phases `dnssec`, `dnssec-cg`).

A private signed hierarchy is made at bench time with ldns-keygen/ldns-signzone (Debian
ldnsutils): the root `.`, the TLD `sec.` and the leaf `signed.sec.` with 50,000 A names
(10,000 in the quick profile), all algorithm 13
(ECDSAP256SHA256) with NSEC (ldns-signzone's default), plus the KeyTrap leaf
`keytrap.sec.` (below). A second nsd serves the four zones; a non-validating unbound
(`module-config: "iterator"`, the zones as stub zones, so the private root is its only
root) answers for them; the validators reach that iterator through the bench's 20 ms
link (netem: it lives in nsd's namespace behind the netem'd veth; otherwise the UDP
relay bench/relay.py plus the TCP relay bench/tcprelay.py on the same port, for the
answers that need TCP). So every validator asks the same upstream the same way.

Validators, each with the private root's DS as its only trust anchor: dproxy-full
(`option dnssec 1`, `option trust_anchor_file`), unbound (`module-config: "validator
iterator"`, `forward-zone: "."` to the iterator) and dnsmasq (`--dnssec --trust-anchor`).
Per round and validator, against a freshly started iterator (same cold upstream cache):
- cold: 20,000 of the leaf names (5,000 quick) once, DO=1, 100 in flight (dnsperf -D): CPU per validated miss,
  p50/p99, lost;
- AD check: every one of those names again (now cached), DO=1, from this script: the
  answers with AD=1 must be all of them; a validator that does not validate shows as
  FAIL there and its CPU figures are not counted as a peer's best;
- hits: the first 1,000 names, DO=1, many passes: CPU per validated hit, p50/p99; then the
  same without DO (as most LAN clients ask);
- KeyTrap: names in `keytrap.sec.` whose DNSKEY RRset holds many keys sharing one key
  tag (valid P-256 points found by adding the ZSK's point to itself) and whose A RRsets
  carry RRSIGs with that tag and random signatures: `kt*` names one RRSIG each, `ms*`
  names many. Each query is bogus: CPU per KeyTrap query (alone), then the same attack
  beside a rate-limited stream of cache hits (no DO) from another client: that stream's p99
  (the KeyTrap client asks like a stub: UDP, then TCP where the answer is truncated).

dnssec-cg: callgrind instructions per validated hit (dnssec 1, DO=1, AD in the answer)
against per plain hit (dnssec 0, same names, same upstream), both of the full build.
"""
import base64
import os
import random
import re
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TLD = "sec"
LEAF = f"signed.{TLD}"
KT = f"keytrap.{TLD}"
CLIENTS = ("dproxy-full", "unbound", "dnsmasq")
SECTION = "DNSSEC"
HIT_NAMES = 1000
# KeyTrap zone shape: RRSIGs per `ms*` RRset; names of each kind; the hit stream beside it.
KT_SIGS = 16
KT_POINTS = 1 << 17
COUNTS = {
    "full": dict(zone_names=50000, cold_names=20000, cold_secs=60, kt_names=200, kt_secs=10, kt_inflight=10,
                 hit_rate=2000, hit_secs=5),
    "quick": dict(zone_names=10000, cold_names=5000, cold_secs=30, kt_names=50, kt_secs=10, kt_inflight=10,
                  hit_rate=2000, hit_secs=3),
}
# A phase of its own budget (seconds) on top of the bench's, so that the other phases keep theirs.
BUDGET_S = {"full": 900, "quick": 300}


def full_bin(b):
    from dot import full_bin as fb
    return fb(b)


def counts(b):
    return COUNTS["quick" if b.a.quick else "full"]


# ---------------------------------------------------------------- the signed hierarchy

def _run(cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()[-300:]}")
    return r.stdout


def keytag(rdata):
    """RFC 4034 appendix B."""
    ac = 0
    for i, x in enumerate(rdata):
        ac += x if i & 1 else x << 8
    ac += (ac >> 16) & 0xFFFF
    return ac & 0xFFFF


class Key:
    """A key made by ldns-keygen: base name, DNSKEY text line, public key bytes."""

    def __init__(self, work, zone, ksk):
        out = _run(["ldns-keygen", "-a", "ECDSAP256SHA256"] + (["-k"] if ksk else []) + [zone + "."], work)
        self.base = out.strip().splitlines()[-1]
        with open(f"{work}/{self.base}.key") as f:
            line = f.read().split(";")[0].split()
        self.flags = int(line[3])
        self.pub = base64.b64decode("".join(line[6:]))
        self.ds = _run(["ldns-key2ds", "-n", "-2", f"{self.base}.key"], work).split(";")[0].strip()


def _p256_colliding(pub, flags, count):
    """Valid P-256 points (x || y) whose DNSKEY key tags collide: multiples of the point PUB
    (from 2·PUB on, so that the zone's own key is not among them) and their negations, grouped
    by tag; the largest group (at most COUNT)."""
    p = 2 ** 256 - 2 ** 224 + 2 ** 192 + 2 ** 96 - 1
    x0, y0 = int.from_bytes(pub[:32], "big"), int.from_bytes(pub[32:], "big")
    head = struct.pack(">HBB", flags, 3, 13)
    groups = {}
    x, y = x0, y0
    for k in range(KT_POINTS):
        for yy in (y, p - y) if k else ():
            kb = x.to_bytes(32, "big") + yy.to_bytes(32, "big")
            groups.setdefault(keytag(head + kb), []).append(kb)
        # next multiple: Q + P (a doubling while Q is P itself; Q is never -P this early)
        if x == x0:
            lam = (3 * x * x - 3) * pow(2 * y, -1, p) % p
        else:
            lam = (y - y0) * pow(x - x0, -1, p) % p
        x3 = (lam * lam - x - x0) % p
        x, y = x3, (lam * (x - x3) - y) % p
    tag, keys = max(groups.items(), key=lambda kv: len(kv[1]))
    return tag, keys[:count]


def _zone(work, name, body):
    path = f"{work}/dz-{name or 'root'}.zone"
    origin = f"{name}." if name else "."
    with open(path, "w") as f:
        f.write(f"$ORIGIN {origin}\n$TTL 86400\n@ IN SOA ns.{TLD}. admin.{TLD}. 1 3600 600 86400 3600\n"
                f"@ IN NS ns.{TLD}.\n")
        f.write(body)
    return path


def _sign(work, path, origin, keys, inception, expiration):
    out = path + ".signed"
    _run(["ldns-signzone", "-i", inception, "-e", expiration, "-o", origin.rstrip(".") + ".", "-f", out, path]
         + [k.base for k in keys], work)
    return out


def _b64(data):
    return base64.b64encode(data).decode()


def make_hierarchy(work, n_names, kt_names):
    """Keys, zones and signatures; -> (root DS line, {zone: signed file}, KeyTrap facts)."""
    now = int(time.time())
    inception = time.strftime("%Y%m%d%H%M%S", time.gmtime(now - 86400))
    expiration = time.strftime("%Y%m%d%H%M%S", time.gmtime(now + 30 * 86400))
    keys = {z: (Key(work, z, True), Key(work, z, False)) for z in ("", TLD, LEAF, KT)}
    for z, (k1, k2) in keys.items():
        if keytag(struct.pack(">HBB", k1.flags, 3, 13) + k1.pub) == keytag(struct.pack(">HBB", k2.flags, 3, 13) + k2.pub):
            raise RuntimeError(f"ldns-keygen made two keys with the same tag for {z or '.'}; run again")
    signed = {}
    glue = f"ns.{TLD}. IN A 127.0.0.1\n"
    # the leaf with the bench names
    body = [f"n{k} IN A 198.18.{(k >> 8) & 255}.{k & 255}\n" for k in range(n_names)]
    body += [f"ready{k} IN A 198.19.255.{k}\n" for k in range(64)]
    signed[LEAF] = _sign(work, _zone(work, LEAF, "".join(body)), LEAF, keys[LEAF], inception, expiration)
    # the KeyTrap leaf: colliding DNSKEYs (signed by the KSK, so the key set is valid), A RRsets
    # whose signatures all carry the colliding tag and are random bytes
    zsk = keys[KT][1]
    tag, fakes = _p256_colliding(zsk.pub, zsk.flags, 64)
    body = [f"@ IN DNSKEY 256 3 13 {_b64(kb)}\n" for kb in fakes]
    body += [f"kt{k} IN A 198.18.{k >> 8}.{k & 255}\nms{k} IN A 198.18.{k >> 8}.{k & 255}\n"
             for k in range(kt_names)]
    body.append("ready IN A 198.19.254.1\n")
    kt_signed = _sign(work, _zone(work, KT, "".join(body)), KT, keys[KT], inception, expiration)
    rng = random.Random(17)
    lines = []
    with open(kt_signed) as f:
        for line in f:
            fl = line.split()
            if len(fl) > 12 and fl[3] == "RRSIG" and fl[4] == "A" and re.match(r"(kt|ms)\d+\.", fl[0]):
                copies = KT_SIGS if fl[0].startswith("ms") else 1
                for _ in range(copies):
                    rd = fl[4:10] + [str(tag), fl[11], _b64(rng.randbytes(64))]
                    lines.append("\t".join(fl[:4] + rd) + "\n")
                continue
            lines.append(line)
    with open(kt_signed, "w") as f:
        f.writelines(lines)
    signed[KT] = kt_signed
    # the TLD: delegations with DS
    body = "".join(f"{z}. IN NS ns.{TLD}.\n{keys[z][0].ds}\n" for z in (LEAF, KT))
    signed[TLD] = _sign(work, _zone(work, TLD, f"ns IN A 127.0.0.1\n{body}"), TLD, keys[TLD],
                        inception, expiration)
    # the root
    body = f"{TLD}. IN NS ns.{TLD}.\n{glue}{keys[TLD][0].ds}\n"
    signed[""] = _sign(work, _zone(work, "", body), ".", keys[""], inception, expiration)
    return keys[""][0].ds, signed, {"tag": tag, "keys": len(fakes)}


# ---------------------------------------------------------------- DNS bits (DO queries)

def do_query(name, qid, qtype=1):
    from bench import dns_query
    q = dns_query(name, qid, qtype)
    # ARCOUNT 1: OPT, payload 1232, DO
    return q[:10] + b"\x00\x01" + q[12:] + b"\x00" + struct.pack(">HHIH", 41, 1232, 0x8000, 0)


def ad_check(port, names, secs, window=50, timeout=2.0, host="127.0.0.1"):
    """Asks every name (DO=1) with WINDOW in flight, bounded by SECS; -> counts of answers,
    answers with AD=1, NOERROR answers with AD=1, rcodes."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    s.connect((host, port))
    pending = {}
    res = {"asked": 0, "answered": 0, "ad": 0, "rcodes": {}}
    nxt = 0
    deadline = time.monotonic() + secs
    import select
    try:
        while (nxt < len(names) or pending) and time.monotonic() < deadline:
            while nxt < len(names) and len(pending) < window:
                qid = nxt & 0xFFFF
                try:
                    s.send(do_query(names[nxt], qid))
                except BlockingIOError:
                    break
                pending[qid] = time.monotonic()
                nxt += 1
                res["asked"] += 1
            r, _, _ = select.select([s], [], [], 0.2)
            if r:
                while True:
                    try:
                        data = s.recv(4096)
                    except (BlockingIOError, ConnectionRefusedError):
                        break
                    if len(data) < 12:
                        continue
                    qid, flags = struct.unpack(">HH", data[:4])
                    if pending.pop(qid, None) is None:
                        continue
                    res["answered"] += 1
                    rc = flags & 0xF
                    res["rcodes"][rc] = res["rcodes"].get(rc, 0) + 1
                    if rc == 0 and flags & 0x0020:
                        res["ad"] += 1
            now = time.monotonic()
            for qid in [q for q, t in pending.items() if now - t > timeout]:
                del pending[qid]
    finally:
        s.close()
    return res


# ---------------------------------------------------------------- servers

class Upstream:
    """nsd with the signed zones (started once) and, per run, a fresh iterating unbound behind the link."""

    def __init__(self, b, signed):
        from bench import free_port, nsd_conf
        self.b = b
        w = b.work
        self.netem = b.net["mode"] in ("netem", "veth")
        self.wrap = ["ip", "netns", "exec", b.net["auth_ns"]] if self.netem else []
        self.nsd_port = free_port()
        zones = {z or ".": os.path.basename(f) for z, f in signed.items()}
        with open(f"{w}/dnssec-nsd.conf", "w") as f:
            f.write(nsd_conf(w, "127.0.0.1", self.nsd_port, zones, name="dnssec-nsd", extra=["reuseport: no"]))
        self.zones = list(signed)
        self.nsd = b.procs.start("dnssec-nsd", self.wrap + ["nsd", "-d", "-c", f"{w}/dnssec-nsd.conf"])
        self.iter = None
        self.relays = []

    def start_iterator(self, tag):
        from bench import DELAY_MS, free_port, wait_answer, AUTH_NS_ADDR, unbound_conf
        b = self.b
        w = b.work
        port = free_port()
        listen = AUTH_NS_ADDR if self.netem else "127.0.0.1"
        conf = f"{w}/dnssec-iter-{tag}.conf"
        with open(conf, "w") as f:
            f.write(unbound_conf(w, port, interface=listen, access="0.0.0.0/0",
                                 tuning={"qname-minimisation": "no", "target-fetch-policy": '"0 0 0 0 0"',
                                         "num-queries-per-thread": 4096, "outgoing-range": 8192,
                                         "incoming-num-tcp": 1024},
                                 stub_zones=[z or "." for z in self.zones], stub_addr=("127.0.0.1", self.nsd_port)))
        self.iter = b.procs.start(f"dnssec-iter-{tag}", self.wrap + ["unbound", "-d", "-p", "-c", conf])
        if self.netem:
            self.addr = (listen, port)
        else:
            rport = free_port()
            self.relays = [
                b.procs.start(f"dnssec-relay-{tag}", [sys.executable, os.path.join(HERE, "relay.py"),
                                                      "127.0.0.1", str(rport), "127.0.0.1", str(port),
                                                      str(DELAY_MS)]),
                b.procs.start(f"dnssec-tcprelay-{tag}", [sys.executable, os.path.join(HERE, "tcprelay.py"),
                                                         "127.0.0.1", str(rport), "127.0.0.1", str(port),
                                                         str(DELAY_MS), f"{w}/dnssec-tcprelay-{tag}.stats"]),
            ]
            self.addr = ("127.0.0.1", rport)
        if wait_answer(self.addr[1], f"ready63.{LEAF}", 20, proc=self.iter, host=self.addr[0],
                       interval=0.5) is None:
            raise RuntimeError(f"the iterator does not answer for {LEAF}: {b.procs.tail(f'dnssec-iter-{tag}')} "
                               f"nsd: {b.procs.tail('dnssec-nsd')}")
        return self.addr

    def stop_iterator(self):
        for p in self.relays + ([self.iter] if self.iter else []):
            self.b.procs.stop(p)
        self.relays, self.iter = [], None


def anchor_fields(ds):
    """'. 3600 IN DS 123 13 2 HEX' -> (tag, alg, digest type, hex)."""
    f = ds.split()
    i = f.index("DS")
    return f[i + 1], f[i + 2], f[i + 3], "".join(f[i + 4:])


def client_cmd(b, client, port, tag, up, dnssec=True):
    from bench import dproxy_conf, unbound_conf
    w = b.work
    ua, upp = up
    ds = b.dnssec_anchor
    if client == "dproxy-full":
        options = {"dnssec": 1, "trust_anchor_file": f"{w}/dnssec-anchor.ds"} if dnssec else {}
        conf = dproxy_conf(f"{w}/dproxy-dnssec-{tag}.conf", port, f"{ua}:{upp}", f"{w}/dproxy-dnssec-{tag}.sock",
                           options=options, lists={"hosts": [f"{w}/empty-hosts"]})
        return [full_bin(b), "-c", conf]
    if client == "unbound":
        conf = f"{w}/unbound-dnssec-{tag}.conf"
        with open(conf, "w") as f:
            f.write(unbound_conf(w, port, modules="validator iterator", trust_anchor=ds,
                                 tuning={"key-cache-size": "16m"}, forward=up))
        return ["unbound", "-d", "-p", "-c", conf]
    if client == "dnsmasq":
        tag_, alg, dt, hx = anchor_fields(ds)
        return ["dnsmasq", "-k", "-C", "/dev/null", "--no-resolv", "--no-hosts",
                f"--server={ua}#{upp}", f"--port={port}", "--listen-address=127.0.0.1",
                "--bind-interfaces", "--cache-size=150000", "--user=root", "--log-facility=-",
                f"--pid-file={w}/dnsmasq-dnssec-{tag}.pid",
                "--dnssec", f"--trust-anchor=.,{tag_},{alg},{dt},{hx}"]
    raise ValueError(client)


def start_client(b, client, tag, up, wrap=None, timeout=20, dnssec=True):
    from bench import free_port, wait_answer
    port = free_port()
    proc = b.procs.start(f"{client}-dnssec-{tag}", (wrap or []) + client_cmd(b, client, port, tag, up, dnssec))
    t = wait_answer(port, f"ready{b.seq % 63}.{LEAF}", timeout, proc=proc, interval=0.25)
    b.seq += 1
    if t is None:
        rc = b.procs.stop(proc)
        try:
            with open(f"{b.work}/{client}-dnssec-{tag}.log", errors="replace") as f:
                own = [x.strip() for x in f if x.strip() and not x.startswith("==")]   # not valgrind's
        except OSError:
            own = []
        raise RuntimeError(f"{client} gave no answer within {timeout} s (exit status {rc}; log: "
                           f"{' | '.join(own[-3:])})")
    proc.port = port
    return proc


# ---------------------------------------------------------------- one round of one validator

def _dnsperf(b, tag, port, qfile, passes, secs, inflight, extra=()):
    """bench.run_dnsperf with DO=1 (and any EXTRA dnsperf options)."""
    from bench import run_dnsperf
    return run_dnsperf(b.work, tag, port, qfile, passes, secs, inflight, extra=["-D", *extra])


def run_client(b, up, client, rnd):
    from bench import cpu_seconds, log, run_dnsperf
    c = counts(b)
    tag = f"{client}-r{rnd}"
    addr = up.start_iterator(tag)
    try:
        proc = start_client(b, client, tag, addr)
        try:
            m = {}
            c0 = cpu_seconds(proc.pid)
            r = _dnsperf(b, f"{tag}-cold", proc.port, f"{b.work}/dnssec-cold.txt", 1, c["cold_secs"],
                         b.p["outstanding"])
            if r["sent"] < c["cold_names"]:
                b.notes.append(f"DNSSEC {client} round {rnd}: cold run stopped by its {c['cold_secs']} s bound "
                               f"after {r['sent']:,} queries")
            c1 = cpu_seconds(proc.pid)
            m["validated miss: CPU µs/query"] = (c1 - c0) / max(r["completed"], 1) * 1e6
            m["validated miss: p50 latency (ms)"] = r.get("p50", 0) * 1000
            m["validated miss: p99 latency (ms)"] = r.get("p99", 0) * 1000
            m["validated miss: queries lost"] = r["lost"]
            m["validated miss: QPS"] = r["qps"]
            bad = {k: v for k, v in r["rcodes"].items() if k != "NOERROR"}
            if bad:
                b.notes.append(f"DNSSEC {client} round {rnd}: cold answers not NOERROR: {bad}")
            names = b.dnssec_names[:r["sent"]]
            chk = ad_check(proc.port, names, 120)
            m["AD check"] = (chk["ad"], len(names))
            if chk["ad"] < len(names):
                b.notes.append(f"DNSSEC {client} round {rnd}: {len(names) - chk['ad']:,} of {len(names):,} "
                               f"cached answers without AD=1 (answered {chk['answered']:,}, rcodes "
                               f"{chk['rcodes']}): NOT VALIDATING")
            c0 = cpu_seconds(proc.pid)
            r = _dnsperf(b, f"{tag}-hits", proc.port, f"{b.work}/dnssec-hits.txt", 1000000, c["hit_secs"], 100)
            c1 = cpu_seconds(proc.pid)
            m["validated hit: CPU µs/query"] = (c1 - c0) / max(r["completed"], 1) * 1e6
            m["validated hit: p50 latency (ms)"] = r.get("p50", 0) * 1000
            m["validated hit: p99 latency (ms)"] = r.get("p99", 0) * 1000
            # the same names asked as most LAN clients ask (no DO): dnsmasq answers these from its
            # cache, while it forwards every DO query (its cache keeps no RRSIGs)
            c0 = cpu_seconds(proc.pid)
            r = run_dnsperf(b.work, f"{tag}-hits-nodo", proc.port, f"{b.work}/dnssec-hits.txt", 1000000,
                            c["hit_secs"], 100)
            c1 = cpu_seconds(proc.pid)
            m["hit without DO: CPU µs/query"] = (c1 - c0) / max(r["completed"], 1) * 1e6
            m["hit without DO: p99 latency (ms)"] = r.get("p99", 0) * 1000
            m.update(keytrap(b, proc, tag, client, rnd))
            if proc.poll() is not None:
                raise RuntimeError(f"{client} exited: {b.procs.tail(f'{client}-dnssec-{tag}')}")
        finally:
            b.procs.stop(proc)
        icpu = cpu_seconds(up.iter.pid) if up.iter and up.iter.poll() is None else 0
    finally:
        up.stop_iterator()
    log(f"  {client:11} dnssec r{rnd} miss cpu {m['validated miss: CPU µs/query']:7.1f} µs/q "
        f"p50 {m['validated miss: p50 latency (ms)']:6.2f} ms p99 {m['validated miss: p99 latency (ms)']:7.2f} ms "
        f"lost {m['validated miss: queries lost']} AD {m['AD check'][0]}/{m['AD check'][1]} | hit cpu "
        f"{m['validated hit: CPU µs/query']:5.2f} µs/q p99 {m['validated hit: p99 latency (ms)']:.3f} ms | "
        f"keytrap cpu {m['KeyTrap: CPU ms/query']:.2f} ms/q servfail {m['KeyTrap: SERVFAIL answers (%)']:.0f} % "
        f"hit p99 beside it {m['KeyTrap: p99 of a concurrent hit stream (ms)']:.2f} ms "
        f"(iterator CPU {icpu:.1f} s)")
    return m


def cpu_with_children(pid):
    """utime+stime of PID and of its children it has waited for (dnsmasq answers a query that
    needs TCP in a child process of its own), in seconds; clock-tick resolution."""
    from bench import CLK_TCK
    with open(f"/proc/{pid}/stat") as f:
        fl = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fl[11:15]) / CLK_TCK


def ask_like_a_stub(port, name, qid, timeout):
    """One DO query over UDP, again over TCP when the answer is truncated (as a stub does,
    and unlike dnsperf); -> (rcode or None, seconds)."""
    t0 = time.monotonic()
    q = do_query(name, qid)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(q, ("127.0.0.1", port))
            while True:
                data = s.recv(65535)
                if len(data) >= 12 and data[:2] == q[:2]:
                    break
        if data[2] & 0x02:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout) as t:
                t.sendall(struct.pack(">H", len(q)) + q)
                buf = b""
                while len(buf) < 2 or len(buf) < 2 + struct.unpack(">H", buf[:2])[0]:
                    chunk = t.recv(65535)
                    if not chunk:
                        return None, time.monotonic() - t0
                    buf += chunk
                data = buf[2:]
        return data[3] & 0xF, time.monotonic() - t0
    except OSError:
        return None, time.monotonic() - t0


def kt_load(port, names, inflight, secs):
    """NAMES through INFLIGHT stub-like clients at once, bounded by SECS; -> rcode counts
    (None: no answer within 5 s)."""
    import threading
    deadline = time.monotonic() + secs
    lock = threading.Lock()
    todo = list(enumerate(names))
    out = {}

    def worker():
        while time.monotonic() < deadline:
            with lock:
                if not todo:
                    return
                i, n = todo.pop()
            rc, _ = ask_like_a_stub(port, n, i & 0xFFFF, 5.0)
            with lock:
                out[rc] = out.get(rc, 0) + 1

    ts = [threading.Thread(target=worker) for _ in range(inflight)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(secs + 10)
    return out


def keytrap(b, proc, tag, client, rnd):
    """The KeyTrap queries alone (CPU per query), then beside a rate-limited hit stream (its p99)."""
    c = counts(b)
    w = b.work
    m = {}
    c0 = cpu_with_children(proc.pid)
    rc = kt_load(proc.port, b.dnssec_kt_names[0], c["kt_inflight"], c["kt_secs"])
    c1 = cpu_with_children(proc.pid)
    done = sum(v for k, v in rc.items() if k is not None)
    m["KeyTrap: CPU ms/query"] = (c1 - c0) / max(done, 1) * 1e3
    m["KeyTrap: SERVFAIL answers (%)"] = rc.get(2, 0) / max(done, 1) * 100
    m["KeyTrap: queries lost"] = rc.get(None, 0)
    if done and rc.get(2, 0) < done:
        b.notes.append(f"DNSSEC {client} round {rnd}: KeyTrap answers by rcode {rc} (bogus must be SERVFAIL)")
    # the same attack on the other half of the names, beside a stream of HIT_RATE/s cache hits from
    # dnsperf (without DO, so that every validator answers them from its cache)
    import threading
    from bench import run_dnsperf
    res = {}
    th = threading.Thread(target=lambda: res.update(
        kt_load(proc.port, b.dnssec_kt_names[1], c["kt_inflight"], c["kt_secs"])))
    th.start()
    try:
        r = run_dnsperf(w, f"{tag}-kt-hits", proc.port, f"{w}/dnssec-hits.txt", 1000000, c["kt_secs"], 20,
                        extra=["-Q", str(c["hit_rate"])])
    finally:
        th.join(c["kt_secs"] + 30)
    m["KeyTrap: p99 of a concurrent hit stream (ms)"] = r.get("p99", float("nan")) * 1000
    m["KeyTrap: concurrent hits lost"] = r["lost"]
    if not sum(v for k, v in res.items() if k is not None):
        b.notes.append(f"DNSSEC {client} round {rnd}: no KeyTrap answer beside the hit stream")
    return m


def write_inputs(b):
    w = b.work
    c = counts(b)
    rng = random.Random(20260502)
    b.dnssec_names = [f"n{k}.{LEAF}" for k in rng.sample(range(c["zone_names"]), c["cold_names"])]
    with open(f"{w}/dnssec-cold.txt", "w") as f:
        f.writelines(f"{x} A\n" for x in b.dnssec_names)
    with open(f"{w}/dnssec-hits.txt", "w") as f:
        f.writelines(f"{x} A\n" for x in b.dnssec_names[:HIT_NAMES])
    k = counts(b)["kt_names"]
    # the two shapes alternate; the second half of the names for the run beside the hit stream
    kt = [f"{'kt' if i % 2 else 'ms'}{i}.{KT}" for i in range(k)]
    b.dnssec_kt_names = (kt[:k // 2], kt[k // 2:])
    with open(f"{w}/dnssec-anchor.ds", "w") as f:
        f.write(b.dnssec_anchor + "\n")


def prepare(b):
    """Signs the hierarchy once per bench run and starts its nsd."""
    from bench import log
    if getattr(b, "dnssec_up", None):
        return b.dnssec_up
    t0 = time.monotonic()
    k = counts(b)["kt_names"]
    anchor, signed, kt = make_hierarchy(b.work, counts(b)["zone_names"], k)
    b.dnssec_anchor = anchor
    b.dnssec_kt = kt
    from dot import versions
    b.versions.update(versions(b))
    write_inputs(b)
    log(f"  signed hierarchy: {counts(b)['zone_names']:,} names in {LEAF}, {kt['keys']} DNSKEYs with tag "
        f"{kt['tag']} in {KT}; {time.monotonic() - t0:.1f} s")
    b.dnssec_up = Upstream(b, signed)
    b.notes.append(f"DNSSEC: private root, {TLD}., {LEAF}. ({counts(b)['zone_names']:,} A names) and {KT}. "
                   f"({kt['keys']} P-256 DNSKEYs sharing key tag {kt['tag']}; {k} names: kt* with 1 bad RRSIG, "
                   f"ms* with {KT_SIGS} bad RRSIGs per A RRset); algorithm 13, NSEC, "
                   f"signed by ldns-signzone in {time.monotonic() - t0:.0f} s")
    return b.dnssec_up


def run_dnssec(b):
    from bench import log
    up = prepare(b)
    clients = [x for x in os.environ.get("BENCH_DNSSEC_CLIENTS", ",".join(CLIENTS)).split(",") if x]
    runs = {x: [] for x in CLIENTS}
    # the check can fail: the non-validating iterator itself must give no AD=1
    addr = up.start_iterator("adcheck")
    try:
        chk = ad_check(addr[1], b.dnssec_names[:200], 30, host=addr[0])
    finally:
        up.stop_iterator()
    b.notes.append(f"DNSSEC AD check asked of the non-validating iterator itself: {chk['ad']} of "
                   f"{chk['answered']} answers with AD=1 (must be 0)")
    if chk["ad"] or not chk["answered"]:
        raise RuntimeError(f"the AD check does not tell validated from unvalidated answers: {chk}")
    try:
        for rnd in range(1, b.p["rounds"] + 1):
            for cl in clients:
                try:
                    runs[cl].append(run_client(b, up, cl, rnd))
                except RuntimeError as e:
                    log(f"DNSSEC {cl} round {rnd}: {e}")
                    b.notes.append(f"DNSSEC {cl} round {rnd}: n/a: {e}")
    finally:
        b.dnssec_runs = runs


def _cg(b, up_addr, tag, dnssec, hits):
    """dproxy-full under callgrind from exec to exit: start, two passes over the hit names
    (DO=1), then HITS more answers; -> (instructions, answers counted)."""
    from bench import callgrind_total
    w = b.work
    out = f"{w}/callgrind-dnssec-{tag}.out"
    wrap = ["valgrind", "--tool=callgrind", "--vgdb=no", f"--callgrind-out-file={out}",
            "--dump-line=no", "--compress-strings=no"]
    proc = start_client(b, "dproxy-full", f"cg{tag}", up_addr, wrap=wrap, timeout=60, dnssec=dnssec)
    r = None
    try:
        warm = _dnsperf(b, f"cg{tag}-warm", proc.port, f"{w}/dnssec-hits.txt", 2, 60, 20)
        if warm["completed"] < warm["sent"]:
            raise RuntimeError(f"{warm['lost']} warm-up queries lost under valgrind")
        if hits:
            r = _dnsperf(b, f"cg{tag}", proc.port, f"{w}/dnssec-hits.txt", max(1, hits // HIT_NAMES), 60, 10)
            chk = ad_check(proc.port, b.dnssec_names[:100], 30)
            if dnssec and chk["ad"] < 100:
                raise RuntimeError(f"hits without AD=1 under valgrind: {chk}")
    finally:
        b.procs.stop(proc, grace=30)
    total = callgrind_total(out)
    if not total:
        raise RuntimeError(f"callgrind wrote no totals ({b.procs.tail(f'dproxy-full-dnssec-cg{tag}')})")
    return total, (r["completed"] if r else 0)


def run_dnssec_cg(b):
    """Instructions per validated hit (dnssec 1) against per plain hit (dnssec 0), full build."""
    from bench import log
    if not os.access(full_bin(b), os.X_OK):
        raise RuntimeError(f"{full_bin(b)} not found")
    up = prepare(b)
    res = b.dnssec_cg = {}
    for label, on in (("plain", False), ("validated", True)):
        addr = up.start_iterator(f"cg-{label}")
        try:
            base, _ = _cg(b, addr, f"{label}-base", on, 0)
            total, answers = _cg(b, addr, f"{label}-hits", on, b.p["cg_queries"])
        finally:
            up.stop_iterator()
        if not answers:
            raise RuntimeError("no answers under valgrind")
        res[label] = (total - base) / answers
        log(f"  dproxy-full {label} hit callgrind: ({total:,} − {base:,}) / {answers:,} = {res[label]:,.0f}")


# ---------------------------------------------------------------- output

TARGETS = {
    "validated miss: CPU µs/query": "≤ 1× best peer",
    "validated miss: p50 latency (ms)": "≤ 1×",
    "validated miss: queries lost": "0",
    "AD check": "all",
}


def _fmt(x, metric):
    if x is None:
        return "n/a"
    if "lost" in metric:
        return f"{x:,.0f}"
    if "QPS" in metric:
        return f"{x:,.0f}"
    if "%" in metric:
        return f"{x:.0f}"
    if "latency" in metric or "ms" in metric:
        return f"{x:.1f}" if x >= 10 else f"{x:.3f}"
    return f"{x:.2f}" if x < 100 else f"{x:,.0f}"


def table(b):
    from bench import round_cell
    runs = getattr(b, "dnssec_runs", None)
    cg = getattr(b, "dnssec_cg", None)
    if not runs and not cg:
        return ""
    out = []
    v = b.versions
    if runs and any(runs.values()):
        rounds = max(len(r) for r in runs.values())
        valid = {c: bool(runs[c]) and all(r["AD check"][0] == r["AD check"][1] for r in runs[c]) for c in CLIENTS}
        cols = [f"dproxy-full {v.get('dproxy-full', '')}".strip(), f"unbound {v.get('unbound', '')} (1 thread)",
                f"dnsmasq {v.get('dnsmasq', '')}", "dproxy ÷ best peer", "target"]
        out.append(f"DNSSEC validation behind the 20 ms link (a non-validating unbound iterator over the private "
                   f"signed hierarchy, freshly started for each validator); cold: {counts(b)['cold_names']:,} names once, "
                   f"{b.p['outstanding']} in flight, DO=1; median of {rounds} interleaved rounds (spread: min–max).")
        out.append("")
        out.append(f"| scenario | metric | {' | '.join(cols)} |")
        out.append("|" + "---|" * (2 + len(cols)))
        first = next(c for c in CLIENTS if runs[c])
        for metric in runs[first][0]:
            row, med = [], {}
            for c in CLIENTS:
                vals = [r[metric] for r in runs[c]]
                if not vals:
                    row.append("n/a (not run)" if c == "dproxy-full" else "n/a")
                    continue
                if metric == "AD check":
                    ad, n = min(x[0] for x in vals), vals[0][1]
                    row.append(f"{ad:,}/{n:,}" + ("" if ad == n else " **FAIL: not validating**"))
                    continue
                med[c], cell = round_cell(vals, metric, _fmt, summed="lost" in metric)
                row.append(cell + ("" if "lost" in metric or valid[c] else " (not validating)"))
            peers = [med[c] for c in CLIENTS[1:] if c in med and valid[c]]
            a = med.get("dproxy-full")
            if "lost" in metric or "%" in metric or a is None or not peers or not valid["dproxy-full"]:
                ratio = "—"
            else:
                best = max(peers) if "QPS" in metric else min(peers)
                ratio = f"{a / best:.2f}" if best else "—"
            row.append(ratio)
            row.append(TARGETS.get(metric, ""))
            scen, _, mname = metric.partition(": ") if ": " in metric else ("", "", metric)
            out.append(f"| {scen or 'validated miss'} | {mname} | {' | '.join(row)} |")
    if cg:
        out.append("")
        out.append("| scenario | metric | plain hit (dnssec 0) | validated hit (dnssec 1, AD) | validated ÷ plain | target |")
        out.append("|---|---|---|---|---|---|")
        p, f = cg.get("plain"), cg.get("validated")
        out.append(f"| callgrind (dproxy-full) | instructions per hit, DO=1 | {_fmt(p, 'i')} | {_fmt(f, 'i')} | "
                   f"{f / p:.3f} | ≤ 1.05 |" if p and f else
                   f"| callgrind (dproxy-full) | instructions per hit, DO=1 | {_fmt(p, 'i')} | {_fmt(f, 'i')} | — | ≤ 1.05 |")
    return "\n".join(out) + "\n"
