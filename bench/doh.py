"""The DoH scenario of `make bench` (phase `doh`): DNS over HTTPS against DoT in one run.

One DoH upstream: dnsdist (Debian's, `addDOHLocal`, which serves HTTP/1.1 and HTTP/2 on
one port and picks by ALPN; dproxy offers h2 and http/1.1, so it speaks HTTP/2) with the DoT scenario's test
certificate, forwarding over UDP to the bench's nsd. It sits behind the same 20 ms link
as the DoT server: the counting (and, without netem, delaying) TCP relay of bench/dot.py
in front of it, whose accepts are the TLS handshakes.

Per round, against freshly started upstreams: dproxy-full over DoH
(`list server 'https://NAME:PORT/dns-query#ADDR'`), then dproxy-full over DoT to the
DoT scenario's unbound, measured the same way in the same run: the cold names once,
100 in flight; CPU per answered miss, p50/p99, lost, handshakes (connections opened)
per 10,000 misses, most connections open at once.

The measuring is bench/dot.py's `dot_client`, given this module's server and client
command in place of the DoT ones (nothing of it is copied here).
"""
import os
import re
import sys
import time

import dot
from dot import DOT_NAME, _fmt, full_bin, inflight, make_certs, relay_stats

COLUMNS = ("dproxy-full DoH", "dproxy-full DoT")


class DohServer:
    """dnsdist serving DoH in front of nsd, and the DoT scenario's relay before it."""

    def __init__(self, b, tag):
        from bench import DELAY_MS, ZONE, free_port
        w = b.work
        self.b = b
        netem = b.net["mode"] in ("netem", "veth")
        wrap = ["ip", "netns", "exec", b.net["auth_ns"]] if netem else []
        nsd = b.net["auth_direct"]
        tport = free_port()
        conf = f"{w}/doh-server-{tag}.conf"
        with open(conf, "w") as f:
            f.write(f"""setSecurityPollSuffix("")
setLocal("127.0.0.1:{free_port()}")
newServer({{address="{nsd[0]}:{nsd[1]}", checkName="{ZONE}."}})
addDOHLocal("127.0.0.1:{tport}", "{w}/dot-server.pem", "{w}/dot-server.key", "/dns-query")
""")
        self.name = f"doh-server-{tag}"
        self.server = b.procs.start(self.name, wrap + ["dnsdist", "--supervised", "--disable-syslog",
                                                       "-C", conf])
        self.stats_file = f"{w}/doh-relay-{tag}.stats"
        if netem:
            laddr, lport, delay = b.net["upstream"][0], 443, 0
        else:
            laddr, lport, delay = "127.0.0.1", free_port(), DELAY_MS
        self.relay = b.procs.start(f"doh-relay-{tag}", wrap + [
            sys.executable, os.path.join(dot.HERE, "tcprelay.py"), laddr, str(lport), "127.0.0.1",
            str(tport), str(delay), self.stats_file])
        self.addr = (laddr, lport)
        deadline = time.monotonic() + 10
        # dnsdist answers once its health check has marked nsd up.
        while time.monotonic() < deadline and not (relay_stats(self.stats_file)
                                                   and "as 'up'" in b.procs.tail(self.name, 50)):
            if self.server.poll() is not None:
                break
            time.sleep(0.02)
        if not relay_stats(self.stats_file) or "as 'up'" not in b.procs.tail(self.name, 50):
            raise RuntimeError(f"DoH server or relay did not start: {b.procs.tail(self.name)}")

    def stats(self):
        return relay_stats(self.stats_file)

    def stop(self):
        self.b.procs.stop(self.relay)
        self.b.procs.stop(self.server)


def client_cmd(b, client, port, tag, up):
    """dproxy-full with the DoH server as its only upstream."""
    from bench import dproxy_conf
    w = b.work
    ua, upp = up
    conf = dproxy_conf(f"{w}/dproxy-doh-{tag}.conf", port, f"https://{DOT_NAME}:{upp}/dns-query#{ua}",
                       f"{w}/dproxy-doh-{tag}.sock", options={"ca_file": f"{w}/dot-ca.pem"},
                       lists={"hosts": [f"{w}/empty-hosts"]})
    return [full_bin(b), "-c", conf]


def run_doh(b):
    """ROUNDS rounds of DoH then DoT, dproxy-full each time; medians and spread per metric."""
    from bench import log
    if not os.access(full_bin(b), os.X_OK):
        raise RuntimeError(f"{full_bin(b)} not found (make bench builds it: cargo build --release "
                           "--features full --target-dir target/bench-full)")
    make_certs(b.work)
    b.versions.update(dot.versions(b))
    runs = {c: [] for c in COLUMNS}
    for rnd in range(1, b.p["rounds"] + 1):
        for col in COLUMNS:
            before = len(b.notes)
            try:
                if col.endswith("DoH"):
                    m = dot.dot_client(b, "dproxy-full", rnd, server=DohServer, command=client_cmd)
                else:
                    m = dot.dot_client(b, "dproxy-full", rnd)
            except RuntimeError as e:
                log(f"{col} round {rnd}: {e}")
                b.notes.append(f"{col} round {rnd}: n/a: {e}")
                continue
            # dot_client's notes say "DoT dproxy-full": name the transport measured, and
            # count the SERVFAIL answers they report (a fast SERVFAIL is no answer).
            m["answers lost to SERVFAIL"] = 0
            for i in range(before, len(b.notes)):
                b.notes[i] = b.notes[i].replace("DoT dproxy-full", col, 1)
                found = re.search(r"'SERVFAIL': (\d+)", b.notes[i])
                if found:
                    m["answers lost to SERVFAIL"] = int(found.group(1))
            runs[col].append(m)
    b.doh_runs = runs


def table(b):
    """The DoH rows next to DoT: median over the rounds (lost: the sum), min–max spread."""
    from bench import round_cell
    runs = getattr(b, "doh_runs", None)
    if not runs or not any(runs.values()):
        return ""
    rounds = max(len(r) for r in runs.values())
    v = b.versions.get("dproxy-full", "")
    out = [f"DoH upstream (dnsdist, the protocol it picks by ALPN) and DoT upstream (unbound), "
           f"each behind the 20 ms link; dproxy-full {v} as the client of both; cold names once, "
           f"{inflight(b)} in flight; median of {rounds} interleaved rounds (spread: min–max).",
           "",
           f"| scenario | metric | {' | '.join(COLUMNS)} | DoH ÷ DoT |",
           "|---|---|---|---|---|"]
    first = next(c for c in COLUMNS if runs[c])
    for metric in runs[first][0]:
        row, med = [], {}
        for c in COLUMNS:
            vals = [r[metric] for r in runs[c]]
            if not vals:
                row.append("n/a")
                continue
            summed = metric in ("queries lost", "answers lost to SERVFAIL")
            med[c], cell = round_cell(vals, metric, _fmt, summed=summed)
            row.append(cell)
        a, d = med.get(COLUMNS[0]), med.get(COLUMNS[1])
        ratio = f"{a / d:.2f}" if a is not None and d and metric not in ("queries lost", "answers lost to SERVFAIL") else "—"
        out.append(f"| DoH vs DoT | {metric} | {' | '.join(row)} | {ratio} |")
    return "\n".join(out) + "\n"
