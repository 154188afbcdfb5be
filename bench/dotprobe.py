#!/usr/bin/env python3
"""When does a DoT server answer a burst? A diagnostic for the bench's DoT server.

Opens one TLS connection to ADDR:PORT (certificate checked against CA for NAME), sends
one query to warm the connection, then COUNT queries for fresh names under ZONE in one
write (one TLS record, or one record each with --records, or one write each SPACING ms
apart with --spacing), sends nothing more, and prints when each answer arrived
(milliseconds after the burst) and the gaps over 5 ms. A server that answers a burst
in one go shows no gap; the bench's unbound with `do-udp: no` alone (which also makes it
ask nsd over TCP) showed two answers at once and the rest 40-48 ms later, every time.

    dotprobe.py ADDR PORT CA NAME ZONE [--count N] [--records] [--spacing MS] [--rounds N] [--quickack]
"""
import argparse
import random
import socket
import ssl
import struct
import time


def query(qid, name):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", 1, 1)
    return struct.pack(">H", len(q)) + q


def frames(buf):
    """-> (number of whole frames at the start of BUF, the rest)"""
    n = 0
    while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
        buf = buf[2 + struct.unpack(">H", buf[:2])[0]:]
        n += 1
    return n, buf


def one_round(a):
    ctx = ssl.create_default_context(cafile=a.ca)
    raw = socket.create_connection((a.addr, a.port), timeout=5)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s = ctx.wrap_socket(raw, server_hostname=a.name)
    tag = "%08x" % random.getrandbits(32)
    s.sendall(query(65000, f"warm-{tag}.{a.zone}"))
    buf = b""
    while frames(buf)[0] < 1:
        buf += s.recv(65536)
    buf = b""
    qs = [query(i, f"probe{i}-{tag}.{a.zone}") for i in range(a.count)]
    if a.spacing is not None:
        for q in qs:
            s.sendall(q)
            time.sleep(a.spacing / 1000)
    elif a.records:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        for q in qs:
            s.sendall(q)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
    else:
        s.sendall(b"".join(qs))
    t0 = time.monotonic()
    times = []
    s.settimeout(0.05)
    while len(times) < a.count and time.monotonic() - t0 < 2.0:
        try:
            d = s.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            continue
        if not d:
            break
        if a.quickack:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        n, buf = frames(buf + d)
        times += [round((time.monotonic() - t0) * 1000, 1)] * n
    s.close()
    gaps = [(i, round(times[i] - times[i - 1], 1)) for i in range(1, len(times)) if times[i] - times[i - 1] > 5]
    print(f"{len(times)}/{a.count} answers; first {times[0] if times else '-'} ms, "
          f"last {times[-1] if times else '-'} ms; gaps over 5 ms (after answer, ms): {gaps}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("addr")
    ap.add_argument("port", type=int)
    ap.add_argument("ca")
    ap.add_argument("name")
    ap.add_argument("zone")
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--records", action="store_true", help="one TLS record per query, one write")
    ap.add_argument("--spacing", type=float, help="one write per query, this many ms apart")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quickack", action="store_true", help="TCP_QUICKACK after every read")
    a = ap.parse_args()
    for _ in range(a.rounds):
        one_round(a)


if __name__ == "__main__":
    main()
