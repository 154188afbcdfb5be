"""The DoT scenario of `make bench` and the full build's hit path (phases `dot`, `dot-cg`).

dot: one DoT upstream, unbound serving DNS over TLS with a certificate from a test CA
made by openssl at bench time, forwarding to the bench's nsd without delay. It sits
behind the bench's 20 ms link: a TCP delay relay (bench/tcprelay.py) in front of it
holds each direction 10 ms and the TCP handshake 20 ms; where the bench has netem, the
DoT server lives in nsd's namespace behind the netem'd veth and the relay there only
counts (no delay of its own). The relay counts the connections it accepts: each one is
a TLS handshake at the DoT server, which the relay reads as full or resumed from the
ServerHello (bench/tlshello.py). The DoT server issues session tickets (checked once
per run with openssl s_client -sess_out/-sess_in through the relay, a note in the table).

Three clients use it one after another, each against a freshly started DoT server (so
each starts with the same cold upstream cache and fresh counters): dproxy-full
(`list server 'tls://ADDR:PORT#NAME'`), unbound as a forwarder with
`forward-tls-upstream: yes`, and stubby. Per client: the cold names once (100 in
flight): CPU per answered query, p50/p99, lost; handshakes per 10,000 misses (the
relay's accepts from the client's start to the end of the run, over answered
queries); private memory per open connection (RssAnon after the first forwarded
answer minus RssAnon before the first query, over the connections then open: the heap
and stacks the connection took. VmRSS would also count the pages of code and libraries
the first TLS handshake reads in, which are the binary's file pages, shared and not
per connection: 256 and 448 KiB of the 320 and 512 KiB VmRSS steps of two dproxy-full
builds of one source, with and without debug information).

Then, on the same client and DoT server, a paced run: other names of the zone (the
mixed set's, unseen by both), offered at a fixed rate (dnsperf -Q, PACED_QPS or
BENCH_DOT_QPS, same bound on queries in flight) for PACED_SECS: QPS, lost, p50/p99 and
CPU per answered query, connections and full/resumed handshakes during the run. The
closed loop measures capacity and CPU under load; its
100-query waves, which LAN traffic does not have, set its latency. The paced run
measures the latency a LAN client sees at a load every client sustains.

Then the drop run (DROP_SECS, DROP_RUN_SECS): the paced rate again, over the next
unseen names, while the relay closes every open client connection every second, as
servers, NAT tables and WAN reconnects do on a router: connections and full, resumed
and session-offering handshakes per 10,000 answers, queries lost, SERVFAIL answers,
p50/p99. "Fewer TLS handshakes than either peer" is judged on its full handshakes.

BENCH_DOT_BEFORE=<path of another dproxy-full binary> adds it as a fourth client,
"dproxy-full-before", interleaved with the others in every round and shown in a column
of its own (not a peer): a before/after comparison in one run.

BENCH_DOT_FLOOR=1 adds the floor (bench/floor.c, compiled with cc at bench time) as a
client in a column of its own (not a peer): a forwarder that makes the system calls
dproxy-full makes per query (recvmmsg, one write per loop turn to one pipelined TCP
connection, reads, the ACK as dproxy-full sends it, sendmmsg) and nothing else: no
TLS, cache or parsing, over the DoT server's plain TCP port through the same relay.
Its CPU per query is what the kernel charges any such client at that load; what a
client spends above it is its own work. It takes part in the closed loop and the
paced run, not in the drop run (it does not reconnect).

BENCH_DOT_DIRECT=1 leaves the relay out: the clients connect straight to the DoT server,
without link delay and without connection counts. The relay acknowledges the server's
answers itself, at once, whatever the client's TCP stack would do; without it, how each
client acknowledges shows (unbound's DoT service has Nagle on: a client whose ACKs are
delayed gets the answers of a burst after the first 40 ms late).

dot-cg: callgrind instructions per cached answer of the full build against the plain
build, both against the plain UDP upstream of the other scenarios, in the same run.
"""
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DOT_NAME = "dns.bench.test"
DOT_CLIENTS = ("dproxy-full", "unbound", "stubby")
BEFORE = "dproxy-full-before"
FLOOR = "floor"
SECTION = "DoT"
# The paced run's offered load: well under the closed-loop QPS of the slowest client
# (unbound 3,000–3,500, stubby and dproxy 3,700–4,400 on this bench, 100 in flight),
# so that no client queues and the latency is the link's and the client's own; about
# 60 queries in flight at 20 ms, under the bound of 100. BENCH_DOT_QPS=<n> for sweeps
# (0 leaves the paced run out).
PACED_QPS = 3000
# Seconds per paced run: 3 clients x 3 rounds x 6 s keep the phase's growth under a
# minute; 18,000 answers per run are plenty for a p99.
PACED_SECS = 6
# The paced run's names: the zone's mixed set (m0, m1, ...), which the DoT phase never
# asks otherwise.
PACED_PREFIX = "m"
# The drop run: after the paced run, on the same client and server, the same rate for
# DROP_RUN_SECS over the next unseen names of the mixed set, while the relay closes
# every open client connection every DROP_SECS (BENCH_DOT_DROP_SECS; 0 leaves the run
# out) with a FIN (BENCH_DOT_DROP_MODE=fin) or a reset (rst). On a router, connections
# end: servers close idle or long-lived ones, NAT tables and WAN reconnects cut them;
# what differs between clients is what a reconnect costs (a full TLS handshake or a
# resumed one) and whether the queries in flight on the closed connection are lost.
# One drop a second gives 6 reconnects per client and run (18 over 3 rounds) in 6 s,
# each with about 60 queries in flight (3,000 QPS x 20 ms), and leaves each connection
# time to finish its handshake, take its ticket and carry traffic before it is cut.
DROP_SECS = 1.0
DROP_RUN_SECS = 6


def full_bin(b):
    return os.environ.get("DPROXY_FULL_BIN", os.path.join(os.path.dirname(HERE),
                                                           "target/bench-full/release/dproxy"))


def _openssl(work, *args):
    subprocess.run(["openssl", *args], cwd=work, check=True, capture_output=True)


def make_certs(work):
    """A test CA and a server certificate for DOT_NAME signed by it (P-256)."""
    _openssl(work, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", "dot-ca.key", "-out", "dot-ca.pem", "-days", "2",
             "-subj", "/CN=dproxy bench CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    _openssl(work, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", "dot-server.key", "-out", "dot-server.csr", "-subj", f"/CN={DOT_NAME}")
    with open(f"{work}/dot-server.ext", "w") as f:
        f.write(f"subjectAltName=DNS:{DOT_NAME}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    _openssl(work, "x509", "-req", "-in", "dot-server.csr", "-CA", "dot-ca.pem", "-CAkey", "dot-ca.key",
             "-CAcreateserial", "-days", "2", "-out", "dot-server.pem", "-extfile", "dot-server.ext")


def udp_bound(port):
    """True once something listens on 127.0.0.1:PORT/udp (this namespace's /proc/net/udp)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as f:
        return any(line.split()[1] == want for line in list(f)[1:])


def relay_stats(path):
    try:
        with open(path) as f:
            v = f.read().split()
        return {v[i]: int(v[i + 1]) for i in range(0, len(v) - 1, 2)}
    except (OSError, ValueError, IndexError):
        return {}


class DotServer:
    """unbound serving DoT, and the counting (and, without netem, delaying) relay before it."""

    def __init__(self, b, tag, plain=False):
        """PLAIN: the relay (or a direct client) reaches the server's plain DNS-over-TCP
        port instead of its TLS port (the floor's upstream)."""
        from bench import DELAY_MS, free_port, unbound_conf
        w = b.work
        self.b = b
        self.tag = tag
        netem = b.net["mode"] in ("netem", "veth")
        wrap = ["ip", "netns", "exec", b.net["auth_ns"]] if netem else []
        nsd = b.net["auth_direct"]
        tls_port = free_port()       # in the auth namespace in netem mode: free there too
        tport = free_port() if plain else tls_port      # the port the relay or clients reach
        includes = ()
        if plain:
            includes = (f"{w}/dot-server-{tag}-plain.conf",)
            with open(includes[0], "w") as f:
                f.write(f"server:\n    interface: 127.0.0.1@{tport}\n")
        conf = f"{w}/dot-server-{tag}.conf"
        with open(conf, "w") as f:
            f.write(unbound_conf(w, tls_port,
                                 tls_service=(f"{w}/dot-server.key", f"{w}/dot-server.pem"),
                                 tuning={"num-queries-per-thread": 4096, "outgoing-range": 4096,
                                         "prefetch": None, "incoming-num-tcp": 1024},
                                 access="0.0.0.0/0", forward=nsd, control=f"{w}/dot-server-{tag}.ctl",
                                 includes=includes))
        self.conf = conf
        self.server = b.procs.start(f"dot-server-{tag}", wrap + ["unbound", "-d", "-p", "-c", conf])
        self.stats_file = f"{w}/dot-relay-{tag}.stats"
        self.relay = None
        if direct():
            # No relay: the clients' own TCP stacks face the server (its Nagle, their
            # ACKs), which the relay hides by acknowledging for them; no link delay and
            # no connection counts either.
            if netem:
                raise RuntimeError("BENCH_DOT_DIRECT=1 needs the relay mode (BENCH_NET=relay)")
            self.addr = ("127.0.0.1", tport)
            wait_tls_port(tport, self.server, b.procs.tail(f"dot-server-{tag}"))
            return
        if netem:
            laddr, lport, delay = b.net["upstream"][0], 853, 0
        else:
            if plain:
                # The floor connects once, at its start, and does not retry.
                wait_tls_port(tport, self.server, b.procs.tail(f"dot-server-{tag}"))
            laddr, lport, delay = "127.0.0.1", free_port(), DELAY_MS
        self.relay = b.procs.start(f"dot-relay-{tag}", wrap + [
            sys.executable, os.path.join(HERE, "tcprelay.py"), laddr, str(lport), "127.0.0.1", str(tport),
            str(delay), self.stats_file, str(drop_secs()), drop_mode()])
        self.addr = (laddr, lport)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not relay_stats(self.stats_file):
            time.sleep(0.02)
        if not relay_stats(self.stats_file):
            raise RuntimeError(f"DoT relay did not start: {b.procs.tail(f'dot-relay-{tag}')}")

    def stats(self):
        return relay_stats(self.stats_file) if self.relay else {}

    def drops(self, on):
        """Starts (ON) or stops the relay's drops of every open connection."""
        if self.relay and self.relay.poll() is None:
            self.relay.send_signal(signal.SIGUSR1 if on else signal.SIGUSR2)

    def queries(self):
        """Queries the DoT server received so far (its own count, over its control socket),
        or None."""
        try:
            out = subprocess.run(["unbound-control", "-c", self.conf, "stats_noreset"],
                                 capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return None
        for line in out.splitlines():
            if line.startswith("total.num.queries="):
                return int(line.split("=", 1)[1])
        return None

    def stop(self):
        if self.relay:
            self.b.procs.stop(self.relay)
        self.b.procs.stop(self.server)


def direct():
    """BENCH_DOT_DIRECT=1: the clients talk to the DoT server without the relay."""
    return os.environ.get("BENCH_DOT_DIRECT") == "1"


def wait_tls_port(port, proc, tail):
    """Until something accepts TCP connections on 127.0.0.1:PORT (10 s at most)."""
    import socket
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"DoT server did not listen: {tail}")


def client_cmd(b, client, port, tag, up):
    from bench import dproxy_conf, unbound_conf
    w = b.work
    ua, upp = up
    if client in ("dproxy-full", BEFORE):
        conf = dproxy_conf(f"{w}/dproxy-dot-{tag}.conf", port, f"tls://{ua}:{upp}#{DOT_NAME}",
                           f"{w}/dproxy-dot-{tag}.sock", options={"ca_file": f"{w}/dot-ca.pem"},
                           lists={"hosts": [f"{w}/empty-hosts"]})
        return [full_bin(b) if client == "dproxy-full" else os.environ["BENCH_DOT_BEFORE"], "-c", conf]
    if client == "unbound":
        conf = f"{w}/unbound-dot-{tag}.conf"
        with open(conf, "w") as f:
            f.write(unbound_conf(w, port, tls_cert_bundle=f"{w}/dot-ca.pem", forward=up,
                                 forward_tls_name=DOT_NAME))
        return ["unbound", "-d", "-p", "-c", conf]
    if client == "stubby":
        conf = f"{w}/stubby-dot-{tag}.yml"
        with open(conf, "w") as f:
            # stubby's own sample configuration, pointed at the bench's DoT server
            f.write(f"""resolution_type: GETDNS_RESOLUTION_STUB
dns_transport_list:
  - GETDNS_TRANSPORT_TLS
tls_authentication: GETDNS_AUTHENTICATION_REQUIRED
tls_query_padding_blocksize: 128
edns_client_subnet_private: 1
round_robin_upstreams: 1
idle_timeout: 10000
tls_ca_file: "{w}/dot-ca.pem"
listen_addresses:
  - 127.0.0.1@{port}
upstream_recursive_servers:
  - address_data: {ua}
    tls_port: {upp}
    tls_auth_name: "{DOT_NAME}"
""")
        return ["stubby", "-C", conf]
    if client == FLOOR:
        return [f"{w}/floor", str(port), ua, str(upp)]
    raise ValueError(client)


def drop_secs():
    """The drop run's interval (BENCH_DOT_DROP_SECS overrides DROP_SECS; 0: no drop run)."""
    return float(os.environ.get("BENCH_DOT_DROP_SECS", DROP_SECS))


def drop_mode():
    mode = os.environ.get("BENCH_DOT_DROP_MODE", "fin")
    if mode not in ("fin", "rst"):
        raise RuntimeError(f"BENCH_DOT_DROP_MODE={mode} is neither fin nor rst")
    return mode


def paced_qps():
    """The paced run's rate (BENCH_DOT_QPS overrides PACED_QPS; 0: no paced run)."""
    return int(os.environ.get("BENCH_DOT_QPS", PACED_QPS))


def paced_file(b):
    """The paced run's query file: as many unseen names as the run can ask (bounded by the
    zone's mixed set)."""
    from bench import PROFILES, ZONE
    n = min(paced_qps() * PACED_SECS, PROFILES["full"]["mixed_names"])
    path = f"{b.work}/dot-paced.txt"
    with open(path, "w") as f:
        for k in range(n):
            f.write(f"{PACED_PREFIX}{k}.{ZONE} A\n")
    return path


def drop_file(b):
    """The drop run's query file: the mixed set's names after the paced run's."""
    from bench import PROFILES, ZONE
    total = PROFILES["full"]["mixed_names"]
    start = min(paced_qps() * PACED_SECS, total)
    n = min(paced_qps() * DROP_RUN_SECS, total - start)
    if n <= 0:
        raise RuntimeError("no names of the mixed set left for the drop run")
    path = f"{b.work}/dot-drop.txt"
    with open(path, "w") as f:
        for k in range(start, start + n):
            f.write(f"{PACED_PREFIX}{k}.{ZONE} A\n")
    return path


def inflight(b):
    """Queries in flight in the cold run: the bench's, or BENCH_DOT_INFLIGHT (for a look at the
    latency without queueing)."""
    return int(os.environ.get("BENCH_DOT_INFLIGHT", b.p["outstanding"]))


def versions(b):
    v = {}
    try:
        out = subprocess.run(["stubby", "-V"], capture_output=True, text=True, timeout=5)
        v["stubby"] = (out.stdout + out.stderr).split()[-1] if (out.stdout + out.stderr).split() else "?"
    except (OSError, subprocess.TimeoutExpired):
        v["stubby"] = "?"
    try:
        v["dproxy-full"] = subprocess.run([full_bin(b), "--version"], capture_output=True, text=True,
                                          timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        v["dproxy-full"] = ""
    return v


def run_metrics(b, r, cpu, label):
    """The metrics every DoT run gives, from dnsperf's result R and the client's CPU
    seconds over it; answers other than NOERROR go into the notes under LABEL."""
    bad = {k: v for k, v in r["rcodes"].items() if k != "NOERROR"}
    if bad:
        b.notes.append(f"{label}: non-NOERROR answers {bad}")
    return {
        "QPS": r["qps"],
        "queries lost": r["lost"],
        "p50 latency (ms)": r.get("p50", 0) * 1000,
        "p99 latency (ms)": r.get("p99", 0) * 1000,
        "cold-miss CPU µs/query": cpu / max(r["completed"], 1) * 1e6,
    }


HANDSHAKES = "TLS handshakes (connections) per 10,000 misses"
FULL = "full TLS handshakes per 10,000 misses"
RESUMED = "resumed TLS handshakes per 10,000 misses"
OFFERED = "handshakes offering a session per 10,000 misses"
FAILED = "connections without ServerHello"
SERVFAIL = "SERVFAIL answers"
# Counts summed over the rounds (a single loss matters), not medians.
SUMMED = ("queries lost", SERVFAIL, FAILED)


def tls_metrics(st0, st1, completed):
    """The relay's connection counts between its stats ST0 and ST1 (relay_stats), per
    10,000 answered queries; empty without the relay."""
    if "accepted" not in st1:
        return {}
    per = 10000 / max(completed, 1)
    m = {HANDSHAKES: (st1["accepted"] - st0.get("accepted", 0)) * per}
    if "full" in st1:            # a relay that classifies handshakes
        m[FULL] = (st1["full"] - st0.get("full", 0)) * per
        m[RESUMED] = (st1["resumed"] - st0.get("resumed", 0)) * per
    return m


def tls_log(st0, st1):
    """The relay's handshake counts between ST0 and ST1, for the log."""
    return " ".join(f"{k} {st1.get(k, 0) - st0.get(k, 0)}"
                    for k in ("accepted", "full", "resumed", "offered", "failed", "unknown", "drops", "dropped"))


def dot_client(b, client, rnd, server=DotServer, command=client_cmd, count_resends=False, paced=None,
               drop=None):
    """One client against a fresh DoT server: start, memory per connection, the cold run;
    with COUNT_RESENDS also the queries the server got beyond one per answered miss;
    with PACED (a query file) then the paced run, its metrics under m["paced"]; with DROP
    (a query file) then the drop run, under m["drop"].
    server, command: the upstream's class and the client's command line (bench/doh.py
    measures DoH with its own)."""
    from bench import ZONE, cpu_seconds, free_port, run_dnsperf, vm_kib, wait_answer
    tag = f"{client}-r{rnd}"
    srv = server(b, tag)
    try:
        port = free_port()
        proc = b.procs.start(f"{client}-dot-{tag}", command(b, client, port, tag, srv.addr))
        try:
            deadline = time.monotonic() + 10
            while not udp_bound(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{client} did not listen within 10 s: "
                                       f"{b.procs.tail(f'{client}-dot-{tag}')}")
                time.sleep(0.005)
            time.sleep(0.2)                    # let it finish its start-up allocations
            rss0 = vm_kib(proc.pid, "RssAnon")
            file0 = vm_kib(proc.pid, "RssFile")
            t = wait_answer(port, f"ready{rnd % 64}.{ZONE}", 10, proc=proc, interval=0.5)
            if t is None:
                raise RuntimeError(f"{client} gave no answer over DoT within 10 s: "
                                   f"{b.procs.tail(f'{client}-dot-{tag}')}")
            time.sleep(0.3)
            rss1 = vm_kib(proc.pid, "RssAnon")
            file1 = vm_kib(proc.pid, "RssFile")
            open1 = srv.stats().get("open", 0)
            c0 = cpu_seconds(proc.pid)
            relay_pid = srv.relay.pid if srv.relay else None
            s0 = cpu_seconds(srv.server.pid), cpu_seconds(relay_pid) if relay_pid else 0
            r = run_dnsperf(b.work, f"{client}-dot{rnd}", port, f"{b.work}/cold.txt", 1, b.p["cold_secs"],
                            inflight(b))
            c1 = cpu_seconds(proc.pid)
            s1 = cpu_seconds(srv.server.pid), cpu_seconds(relay_pid) if relay_pid else 0
            if proc.poll() is not None:
                raise RuntimeError(f"{client} exited during the DoT run: {b.procs.tail(f'{client}-dot-{tag}')}")
            st = srv.stats()
            served = srv.queries() if count_resends else None
            hwm = vm_kib(proc.pid, "VmHWM")
            pm = paced_run(b, client, rnd, port, proc, paced, srv) if paced else None
            dm = (drop_run(b, client, rnd, port, proc, drop, srv)
                  if drop and srv.relay and client != FLOOR else None)
        finally:
            b.procs.stop(proc)
    finally:
        srv.stop()
    m = run_metrics(b, r, c1 - c0, f"DoT {client} round {rnd}")
    m.update({
        **tls_metrics({}, st, r["completed"]),
        "most connections open at once": st.get("peak"),
        "private memory per open connection (KiB)": (rss1 - rss0) / max(open1, 1),
        "peak RSS (MiB)": hwm / 1024,
    })
    if count_resends:
        # Queries the DoT server got beyond one per answered miss: resends (duplicates on
        # a connection, or again after a close), and the few of the start-up check.
        m["queries resent per 10,000 misses"] = (
            None if served is None else max(served - r["completed"], 0) / max(r["completed"], 1) * 10000)
    if pm is not None:
        m["paced"] = pm
    if dm is not None:
        m["drop"] = dm
    if r["sent"] < b.p["cold_names"]:
        b.notes.append(f"DoT {client} round {rnd}: stopped by the {b.p['cold_secs']} s time bound "
                       f"after {r['sent']:,} queries")
    from bench import log
    log(f"  {client:11} dot r{rnd} qps {r['qps']:7.0f} lost {r['lost']:4d} p50 {m['p50 latency (ms)']:6.2f} ms "
        f"p99 {m['p99 latency (ms)']:6.2f} ms cpu {m['cold-miss CPU µs/query']:6.2f} µs/q "
        f"handshakes {st.get('accepted', 0)} ({tls_log({}, st)}) server queries {served} (peak open {st.get('peak', 0)}, {open1} after the first answer, "
        f"RssAnon +{rss1 - rss0} KiB, RssFile +{file1 - file0} KiB); CPU load: DoT server {(s1[0] - s0[0]) / r['runtime'] * 100:.0f} %, "
        f"relay {(s1[1] - s0[1]) / r['runtime'] * 100:.0f} %, client {(c1 - c0) / r['runtime'] * 100:.0f} %")
    return m


def strace_start(b, client, rnd, pid):
    """BENCH_DOT_STRACE=1: `strace -c` on a dproxy client during its paced run (its CPU
    figures then include strace's cost), for the system calls per query."""
    if os.environ.get("BENCH_DOT_STRACE") != "1" or not client.startswith("dproxy"):
        return None
    out = f"{b.work}/strace-{client}-r{rnd}.txt"
    p = subprocess.Popen(["strace", "-c", "-q", "-p", str(pid), "-o", out], stderr=subprocess.DEVNULL)
    time.sleep(0.5)                        # attached before the first query
    return p, out


def strace_stop(st, completed):
    """Stops strace and logs its counts per answered query."""
    from bench import log
    p, out = st
    p.send_signal(2)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    try:
        with open(out) as f:
            lines = f.read().splitlines()
    except OSError:
        return
    per = []
    for line in lines:
        v = line.split()
        # "% time seconds usecs/call calls [errors] syscall"
        if len(v) >= 5 and v[3].isdigit():
            errs = int(v[4]) if len(v) == 6 else 0
            per.append(f"{v[-1]} {int(v[3]) / max(completed, 1):.2f}" + (f" ({errs / max(completed, 1):.2f} failed)"
                                                                       if errs else ""))
    log(f"    strace -c, per answered query ({completed:,}): " + ", ".join(per))


def paced_run(b, client, rnd, port, proc, qfile, srv):
    """The paced run on a client that has done its cold run (its connections open): the
    names of QFILE at paced_qps(), at most PACED_SECS seconds."""
    from bench import cpu_seconds, log, run_dnsperf
    st = strace_start(b, client, rnd, proc.pid)
    rs0 = srv.stats()
    c0 = cpu_seconds(proc.pid)
    r = run_dnsperf(b.work, f"{client}-dotpaced{rnd}", port, qfile, 1, PACED_SECS, inflight(b),
                    extra=("-Q", str(paced_qps())))
    c1 = cpu_seconds(proc.pid)
    if st:
        strace_stop(st, r["completed"])
    if proc.poll() is not None:
        raise RuntimeError(f"{client} exited during the paced DoT run")
    rs1 = srv.stats()
    m = run_metrics(b, r, c1 - c0, f"DoT paced {client} round {rnd}")
    m.update(tls_metrics(rs0, rs1, r["completed"]))
    log(f"  {client:11} dot r{rnd} paced {paced_qps()} qps: qps {r['qps']:7.0f} lost {r['lost']:4d} "
        f"p50 {m['p50 latency (ms)']:6.2f} ms p99 {m['p99 latency (ms)']:6.2f} ms "
        f"cpu {m['cold-miss CPU µs/query']:6.2f} µs/q; relay: {tls_log(rs0, rs1)}")
    return m


def log_size(b, name):
    try:
        return os.path.getsize(f"{b.work}/{name}.log")
    except OSError:
        return 0


def log_since(b, name, offset, lines=6):
    """The distinct lines the process NAME logged after OFFSET (the first LINES of them)."""
    try:
        with open(f"{b.work}/{name}.log", errors="replace") as f:
            f.seek(offset)
            seen = []
            for line in f:
                line = line.strip()
                if line and line not in seen:
                    seen.append(line)
                if len(seen) >= lines:
                    break
            return seen
    except OSError:
        return []


def drop_run(b, client, rnd, port, proc, qfile, srv):
    """The drop run on a client after its paced run: the names of QFILE at paced_qps()
    for DROP_RUN_SECS while the relay drops every open connection every drop_secs()."""
    from bench import cpu_seconds, log, run_dnsperf
    name = f"{client}-dot-{client}-r{rnd}"
    off = log_size(b, name)
    rs0 = srv.stats()
    c0 = cpu_seconds(proc.pid)
    srv.drops(True)
    try:
        r = run_dnsperf(b.work, f"{client}-dotdrop{rnd}", port, qfile, 1, DROP_RUN_SECS, inflight(b),
                        extra=("-Q", str(paced_qps())))
    finally:
        srv.drops(False)
    c1 = cpu_seconds(proc.pid)
    if proc.poll() is not None:
        raise RuntimeError(f"{client} exited during the DoT drop run")
    rs1 = srv.stats()
    m = run_metrics(b, r, c1 - c0, f"DoT drops {client} round {rnd}")
    m.update(tls_metrics(rs0, rs1, r["completed"]))
    if "offered" in rs1:
        # a client that offers and is refused differs from one that never tries
        m[OFFERED] = (rs1["offered"] - rs0.get("offered", 0)) * 10000 / max(r["completed"], 1)
    m[FAILED] = rs1.get("failed", 0) - rs0.get("failed", 0)
    m[SERVFAIL] = r["rcodes"].get("SERVFAIL", 0)
    log(f"  {client:11} dot r{rnd} drops every {drop_secs():g} s ({drop_mode()}) at {paced_qps()} qps: "
        f"qps {r['qps']:7.0f} lost {r['lost']:4d} servfail {m[SERVFAIL]} "
        f"p50 {m['p50 latency (ms)']:6.2f} ms p99 {m['p99 latency (ms)']:6.2f} ms; relay: {tls_log(rs0, rs1)}")
    if r["lost"] or m[SERVFAIL] or (rs1.get("full", 0) - rs0.get("full", 0)) > 0:
        lines = log_since(b, name, off)
        if lines:
            b.notes.append(f"DoT drops {client} round {rnd}: its log during the drop run: " + " | ".join(lines))
    return m


def s_client(b, addr, *extra):
    """One openssl s_client handshake with the bench's DoT server at ADDR, as a client
    checking its name against the bench CA: -> "New", "Reused" or what went wrong. Its
    input stays open until its -sess_out file is written: a TLS 1.3 ticket comes after
    the handshake, and s_client leaves at the end of its input."""
    import threading
    p = subprocess.Popen(["openssl", "s_client", "-connect", f"{addr[0]}:{addr[1]}", "-servername", DOT_NAME,
                          "-verify_hostname", DOT_NAME, "-verify_return_error", "-CAfile",
                          f"{b.work}/dot-ca.pem", *extra], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    watchdog = threading.Timer(15, p.kill)
    watchdog.start()
    seen = "no session line"
    try:
        for raw in p.stdout:
            line = raw.decode(errors="replace")
            if line.startswith(("Reused,", "New,")):
                seen = line.split(",")[0]
                break
        if "-sess_out" in extra:
            path = extra[list(extra).index("-sess_out") + 1]
            deadline = time.monotonic() + 5
            while not os.path.exists(path) and time.monotonic() < deadline:
                time.sleep(0.01)
            if not os.path.exists(path):
                seen += " (no session saved)"
        p.stdin.close()
        p.stdout.read()
        p.wait()
    finally:
        watchdog.cancel()
    return seen


def check_resumption(b):
    """That the bench's DoT server lets a client resume (openssl s_client -sess_out, then
    -sess_in), for TLS 1.3 and 1.2, through the relay, and that the relay reads the
    handshakes the way openssl does: a note in the table either way."""
    from bench import log
    srv = DotServer(b, "resume-check")
    seen = []
    try:
        for v in ("-tls1_3", "-tls1_2"):
            sess = f"{b.work}/dot-resume-check{v}.pem"
            if os.path.exists(sess):
                os.unlink(sess)
            st = [srv.stats()]
            got = []
            for opt in ("-sess_out", "-sess_in"):
                got.append(s_client(b, srv.addr, v, opt, sess))
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and srv.stats().get("open", 0):
                    time.sleep(0.02)
                st.append(srv.stats())
            relay = (st[2].get("full", 0) - st[0].get("full", 0), st[2].get("resumed", 0) - st[0].get("resumed", 0))
            # the server's bytes of each connection: its handshake, its tickets, its close
            sent = [st[i + 1].get("bytes_out", 0) - st[i].get("bytes_out", 0) for i in (0, 1)]
            seen.append(f"TLS {v[4:].replace('_', '.')}: openssl {got[0]} then {got[1]}, "
                        f"the relay {relay[0]} full {relay[1]} resumed, the server sent {sent[0]:,} then "
                        f"{sent[1]:,} bytes")
    finally:
        srv.stop()
    line = ("DoT server (unbound, no tls-session-ticket-keys: OpenSSL's own ticket keys for the life "
            "of the process) checked with openssl s_client -sess_out, then -sess_in, through the relay: "
            + "; ".join(seen))
    log("  " + line)
    b.notes.append(line)


def run_dot(b):
    """ROUNDS rounds, the clients interleaved within each; medians and spread per metric."""
    from bench import log
    if not os.access(full_bin(b), os.X_OK):
        raise RuntimeError(f"{full_bin(b)} not found (make bench builds it: cargo build --release "
                           "--features full --target-dir target/bench-full)")
    make_certs(b.work)
    b.versions.update(versions(b))
    clients = [c for c in os.environ.get("BENCH_DOT_CLIENTS", ",".join(DOT_CLIENTS)).split(",") if c]
    runs = {c: [] for c in DOT_CLIENTS + (BEFORE, FLOOR)}
    before = os.environ.get("BENCH_DOT_BEFORE")
    if before:
        if not os.access(before, os.X_OK):
            raise RuntimeError(f"BENCH_DOT_BEFORE={before} is not an executable")
        b.versions[BEFORE] = f"(BENCH_DOT_BEFORE, {os.path.basename(before)})"
        if BEFORE not in clients:
            clients.insert(clients.index("dproxy-full") + 1 if "dproxy-full" in clients else 0, BEFORE)
    if os.environ.get("BENCH_DOT_FLOOR") == "1":
        subprocess.run(["cc", "-O2", "-o", f"{b.work}/floor", os.path.join(HERE, "floor.c")], check=True)
        b.versions[FLOOR] = "(bench/floor.c)"
        if FLOOR not in clients:
            clients.insert(clients.index("dproxy-full") + 1 if "dproxy-full" in clients else 0, FLOOR)
    paced = paced_file(b) if paced_qps() > 0 else None
    drop = drop_file(b) if paced_qps() > 0 and drop_secs() > 0 and not direct() else None
    if drop:
        check_resumption(b)
    for rnd in range(1, b.p["rounds"] + 1):
        for c in clients:
            try:
                server = (lambda b, tag: DotServer(b, tag, plain=True)) if c == FLOOR else DotServer
                runs[c].append(dot_client(b, c, rnd, server=server, count_resends=True, paced=paced, drop=drop))
            except RuntimeError as e:
                log(f"DoT {c} round {rnd}: {e}")
                b.notes.append(f"DoT {c} round {rnd}: n/a: {e}")
    b.dot_runs = runs


def run_dot_cg(b):
    """Instructions per cached answer, plain build then full build, same upstream and load."""
    from bench import log
    if not os.access(full_bin(b), os.X_OK):
        raise RuntimeError(f"{full_bin(b)} not found")
    res = {}
    plain = b.bin
    try:
        for label, path in (("plain", plain), ("full", full_bin(b))):
            b.bin = path
            base, _ = b.cg_run("dproxy", f"{label}-base", 0)
            total, answers = b.cg_run("dproxy", f"{label}-hits", b.p["cg_queries"])
            if not answers:
                raise RuntimeError("no answers under valgrind")
            res[label] = (total - base) / answers
            log(f"  dproxy {label} build callgrind: ({total:,} − {base:,}) / {answers:,} = {res[label]:,.0f}")
    finally:
        b.bin = plain
    b.dot_cg = res


def _fmt(x, metric):
    if x is None:
        return "n/a"
    if "lost" in metric or "most connections" in metric or metric in SUMMED:
        return f"{x:,.0f}"
    if "instructions" in metric or "KiB" in metric or "handshakes" in metric or "resent" in metric \
            or metric == "QPS":
        return f"{x:,.0f}" if x >= 100 or metric == "QPS" else f"{x:.1f}"
    if "latency" in metric:
        return f"{x:.1f}" if x >= 10 else f"{x:.3f}"
    return f"{x:.2f}"


# metric -> (target text, how to judge the ratio or value)
TARGETS = {
    "cold-miss CPU µs/query": "≤ 0.5×",
    "p50 latency (ms)": "on the paced row",
    "queries lost": "0",
    HANDSHAKES: "raw count; judged on the drop run's full handshakes",
}
# The paced rows: the latency a LAN client sees is judged here.
PACED_TARGETS = {
    "p50 latency (ms)": "≤ 1×",
    "queries lost": "0",
}
# The drop rows: connections end every drop_secs(), so each client shows what a
# reconnect costs; "fewer TLS handshakes per 10,000 misses than either peer" is judged
# on the full handshakes here (a resumed one costs the server no certificate signature
# and the client no chain check).
DROP_TARGETS = {
    FULL: "< 1× (fewer than either peer): the handshake target",
    "queries lost": "0",
}


def _rows(out, scenario, runs, shown, metrics, targets):
    """Appends the table rows of METRICS for the clients SHOWN; RUNS maps a client to its
    rounds' metric dicts."""
    from bench import round_cell
    for metric in metrics:
        row, med = [], {}
        for c in shown:
            vals = [r[metric] for r in runs[c] if r.get(metric) is not None]
            if not vals:
                row.append("n/a")
                continue
            med[c], cell = round_cell(vals, metric, _fmt, summed=metric in SUMMED)
            row.append(cell)
        peers = [med[c] for c in DOT_CLIENTS[1:] if c in med]
        a = med.get("dproxy-full")
        if metric in SUMMED or metric == "most connections open at once" or a is None or not peers:
            ratio = "—"
        else:
            best = max(peers) if metric == "QPS" else min(peers)
            ratio = f"{a / best:.2f}" if best else "—"
        row.append(ratio)
        row.append(targets.get(metric, ""))
        out.append(f"| {scenario} | {metric} | {' | '.join(row)} |")


def table(b):
    """The DoT rows, closed loop then paced: median over the rounds (lost: the sum), spread
    as min–max of the rounds."""
    runs = getattr(b, "dot_runs", None)
    cg = getattr(b, "dot_cg", None)
    if not runs and not cg:
        return ""
    v = b.versions
    out = []
    if runs and any(runs.values()):
        rounds = max(len(r) for r in runs.values())
        shown = list(DOT_CLIENTS)
        cols = [f"dproxy-full {v.get('dproxy-full', '')}".strip(),
                f"unbound {v.get('unbound', '')} forward-tls-upstream (1 thread)", f"stubby {v.get('stubby', '')}",
                "dproxy ÷ best peer", "target"]
        if runs.get(BEFORE):
            shown.insert(1, BEFORE)
            cols.insert(1, f"dproxy-full before {v.get(BEFORE, '')}")
        if runs.get(FLOOR):
            shown.insert(1, FLOOR)
            cols.insert(1, "floor: system calls only (bench/floor.c, no TLS)")
        where = ("DoT upstream reached directly (BENCH_DOT_DIRECT=1: no relay, so no link delay and no "
                 "connection counts; the clients' own ACKs face the server's Nagle)" if direct()
                 else "DoT upstream behind the 20 ms link")
        pace = (f"; paced: {paced_qps():,} queries per second offered (dnsperf -Q, at most {inflight(b)} "
                f"in flight), {PACED_SECS} s of unseen names on the same client and server after "
                "its closed loop" if paced_qps() > 0 else "")
        if any("drop" in r for rr in runs.values() for r in rr):
            pace += (f"; drops: then {DROP_RUN_SECS} s more at the paced rate while the relay closes every open "
                     f"connection every {drop_secs():g} s ("
                     + ("FIN after what the server had sent, no close_notify" if drop_mode() == "fin"
                        else "reset") + "); full/resumed: the relay's reading of each ServerHello")
        out.append(f"{where}; closed loop: cold names once, {inflight(b)} in flight{pace}; "
                   f"median of {rounds} interleaved rounds (spread: min–max of the rounds), each client "
                   "against a freshly started DoT server.")
        out.append("")
        out.append(f"| scenario | metric | {' | '.join(cols)} |")
        out.append("|" + "---|" * (2 + len(cols)))
        first = runs[next(c for c in DOT_CLIENTS + (BEFORE, FLOOR) if runs.get(c))][0]
        _rows(out, "DoT", runs, shown, [k for k in first if k not in ("paced", "drop")], TARGETS)
        paced = {c: [r["paced"] for r in runs.get(c, []) if "paced" in r] for c in shown}
        paced_first = next((p[0] for p in paced.values() if p), None)
        if paced_first:
            _rows(out, f"DoT paced {paced_qps():,} QPS", paced, shown, list(paced_first), PACED_TARGETS)
        drops = {c: [r["drop"] for r in runs.get(c, []) if "drop" in r] for c in shown}
        drop_first = next((p[0] for p in drops.values() if p), None)
        if drop_first:
            _rows(out, f"DoT paced {paced_qps():,} QPS, drops every {drop_secs():g} s ({drop_mode().upper()})",
                  drops, shown, list(drop_first), DROP_TARGETS)
    if cg:
        out.append("")
        out.append("| scenario | metric | dproxy plain | dproxy-full | full ÷ plain | target |")
        out.append("|---|---|---|---|---|---|")
        p, f = cg.get("plain"), cg.get("full")
        out.append(f"| callgrind (full build) | instructions per cached answer | {_fmt(p, 'instructions')} | "
                   f"{_fmt(f, 'instructions')} | {f / p:.3f} | ≤ 1.05 |" if p and f else
                   "| callgrind (full build) | instructions per cached answer | n/a | n/a | — | ≤ 1.05 |")
    return "\n".join(out) + "\n"
