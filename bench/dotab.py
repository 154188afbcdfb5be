"""The side-by-side DoT comparison of `make bench` (phase `dot-ab`): dproxy-full and the build
BENCH_DOT_BEFORE names, at the same time, at the paced rate.

The DoT phase (bench/dot.py) runs its clients one after another, so the machine's drift between
two runs is part of every comparison: its rounds spread by 2-3 %, as much as a change of the miss
path is worth. Here the two builds run together, each with its own 20 ms relay (bench/tcprelay.py)
and its own dnsperf offering unseen names at PACED_QPS, against one unbound DoT server that
answers every name from a redirect zone (the miss path of both builds, without nsd). Whatever the
machine does during a round, it does to both. Per round: each build's CPU per answered query (its
schedstat run time over dnsperf's completed queries) and their ratio; the table gives the median
ratio over BENCH_DOT_AB_ROUNDS rounds (10) with its spread. Two runs of one binary (A/A) give the
harness's own spread: BENCH_DOT_BEFORE=<the same binary>.

Needs BENCH_DOT_BEFORE; not part of the default phases (BENCH_ONLY=dot-ab), about 10 s a round.
"""
import os
import statistics
import sys
import threading
import time

import dot

AB_ZONE = "ab.test"
AB_ROUNDS = 10


def rounds():
    return int(os.environ.get("BENCH_DOT_AB_ROUNDS", AB_ROUNDS))


def run_dot_ab(b):
    from bench import (DELAY_MS, cpu_seconds, dproxy_conf, free_port, log, run_dnsperf, unbound_conf,
                       wait_answer)
    before = os.environ.get("BENCH_DOT_BEFORE")
    if not before or not os.access(before, os.X_OK):
        raise RuntimeError("dot-ab compares dproxy-full with BENCH_DOT_BEFORE=<another dproxy-full>")
    if not os.access(dot.full_bin(b), os.X_OK):
        raise RuntimeError(f"{dot.full_bin(b)} not found")
    w = b.work
    dot.make_certs(w)
    tls_port = free_port()
    conf = f"{w}/dot-ab-server.conf"
    zone = f"{w}/dot-ab-zone.conf"
    with open(zone, "w") as f:
        f.write(f'server:\n    local-zone: "{AB_ZONE}." redirect\n'
                f'    local-data: "{AB_ZONE}. 3600 A 198.18.0.1"\n')
    with open(conf, "w") as f:
        f.write(unbound_conf(w, tls_port, tls_service=(f"{w}/dot-server.key", f"{w}/dot-server.pem"),
                             tuning={"num-queries-per-thread": 4096, "outgoing-range": 4096,
                                     "prefetch": None, "incoming-num-tcp": 1024},
                             access="0.0.0.0/0", includes=(zone,)))
    server = b.procs.start("dot-ab-server", ["unbound", "-d", "-p", "-c", conf])
    dot.wait_tls_port(tls_port, server, b.procs.tail("dot-ab-server"))
    open(f"{w}/empty-hosts", "a").close()
    builds = (("dproxy-full", dot.full_bin(b)), ("before", before))
    ports, procs = {}, {}
    for tag, path in builds:
        rp = free_port()
        b.procs.start(f"dot-ab-relay-{tag}", [
            sys.executable, os.path.join(dot.HERE, "tcprelay.py"), "127.0.0.1", str(rp),
            "127.0.0.1", str(tls_port), str(DELAY_MS), f"{w}/dot-ab-relay-{tag}.stats"])
        port = free_port()
        c = dproxy_conf(f"{w}/dproxy-ab-{tag}.conf", port, f"tls://127.0.0.1:{rp}#{dot.DOT_NAME}",
                        f"{w}/dproxy-ab-{tag}.sock", options={"ca_file": f"{w}/dot-ca.pem"},
                        lists={"hosts": [f"{w}/empty-hosts"]})
        procs[tag] = b.procs.start(f"dproxy-ab-{tag}", [path, "-c", c])
        ports[tag] = port
    for tag, _ in builds:
        if wait_answer(ports[tag], f"ready.{AB_ZONE}", 10, proc=procs[tag], interval=0.5) is None:
            raise RuntimeError(f"{tag} gave no answer over DoT: {b.procs.tail(f'dproxy-ab-{tag}')}")
    qps, secs = dot.paced_qps() or dot.PACED_QPS, dot.PACED_SECS
    res = {tag: [] for tag, _ in builds}
    for rnd in range(1, rounds() + 1):
        files = {}
        for tag, _ in builds:
            files[tag] = f"{w}/dot-ab-{tag}.txt"
            with open(files[tag], "w") as f:
                for k in range(qps * secs):
                    f.write(f"r{rnd}{tag[0]}{k}.{AB_ZONE} A\n")
        c0 = {tag: cpu_seconds(procs[tag].pid) for tag, _ in builds}
        out = {}

        def one(tag):
            out[tag] = run_dnsperf(w, f"ab-{tag}-{rnd}", ports[tag], files[tag], 1, secs, dot.inflight(b),
                                   extra=("-Q", str(qps)))

        threads = [threading.Thread(target=one, args=(tag,)) for tag, _ in builds]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for tag, _ in builds:
            if tag not in out:
                raise RuntimeError(f"dnsperf for {tag} failed in round {rnd}")
            if procs[tag].poll() is not None:
                raise RuntimeError(f"{tag} exited: {b.procs.tail(f'dproxy-ab-{tag}')}")
            r = out[tag]
            cpu = (cpu_seconds(procs[tag].pid) - c0[tag]) / max(r["completed"], 1) * 1e6
            res[tag].append((cpu, r["lost"]))
        log(f"  dot-ab r{rnd}: dproxy-full {res['dproxy-full'][-1][0]:6.2f} µs/q, before "
            f"{res['before'][-1][0]:6.2f} µs/q, ratio {res['dproxy-full'][-1][0] / res['before'][-1][0]:.3f}")
        time.sleep(1)
    b.dot_ab = res
    b.versions["dot-ab-before"] = os.path.basename(before)


def table(b):
    res = getattr(b, "dot_ab", None)
    if not res:
        return ""
    new, old = [c for c, _ in res["dproxy-full"]], [c for c, _ in res["before"]]
    ratios = [n / o for n, o in zip(new, old)]
    lost = sum(x for _, x in res["dproxy-full"]), sum(x for _, x in res["before"])

    def cell(v, digits=2):
        return f"{statistics.median(v):.{digits}f} ({min(v):.{digits}f}–{max(v):.{digits}f})"

    return "\n".join([
        "",
        f"DoT side by side (BENCH_ONLY=dot-ab): dproxy-full and BENCH_DOT_BEFORE "
        f"({b.versions.get('dot-ab-before', '')}) at the same time, each with its own 20 ms relay and "
        f"dnsperf at {dot.paced_qps() or dot.PACED_QPS:,} QPS over unseen names of a redirect zone, "
        f"one DoT server; {len(ratios)} rounds of {dot.PACED_SECS} s; median (min–max) of the rounds.",
        "",
        "| scenario | metric | dproxy-full | before | dproxy-full ÷ before |",
        "|---|---|---|---|---|",
        f"| DoT paced, side by side | cold-miss CPU µs/query | {cell(new)} | {cell(old)} | {cell(ratios, 3)} |",
        f"| DoT paced, side by side | queries lost | {lost[0]} | {lost[1]} | — |",
        "",
    ])
