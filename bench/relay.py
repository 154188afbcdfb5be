#!/usr/bin/env python3
"""UDP delay relay for `make bench`: the fallback when netem is unavailable.

Listens on LISTEN (addr:port), holds every query for DELAY_MS, then forwards it
to UPSTREAM (addr:port) with a relay-chosen ID; the answer goes straight back
to the original sender, from the listening socket, with the sender's ID
restored.  One thread, one epoll loop; the delay is constant, so a FIFO is
enough to release queries in order.  Queries whose answer never comes are
forgotten after 5 s.  UDP only (the bench zone's answers are small).

    relay.py LISTEN_ADDR LISTEN_PORT UPSTREAM_ADDR UPSTREAM_PORT DELAY_MS
"""
import collections
import os
import select
import signal
import socket
import sys
import time

EXPIRE_S = 5.0


def main():
    laddr, lport, uaddr, uport, delay_ms = sys.argv[1:6]
    delay = float(delay_ms) / 1000.0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    lsock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    usock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in (lsock, usock):
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                s.setsockopt(socket.SOL_SOCKET, opt, 8 << 20)
            except OSError:
                pass
        s.setblocking(False)
    lsock.bind((laddr, int(lport)))
    usock.connect((uaddr, int(uport)))

    ep = select.epoll()
    ep.register(lsock.fileno(), select.EPOLLIN)
    ep.register(usock.fileno(), select.EPOLLIN)

    queue = collections.deque()       # (release_time, packet), FIFO
    pending = {}                      # relay id -> (client addr, client id bytes, sent at)
    next_id = 0
    stats = {"in": 0, "out": 0, "answers": 0, "dropped": 0, "expired": 0}
    last_sweep = time.monotonic()
    lfd = lsock.fileno()
    mono = time.monotonic

    while True:
        now = mono()
        timeout = -1
        if queue:
            timeout = max(0.0, queue[0][0] - now)
        events = ep.poll(timeout if timeout >= 0 else 1.0)
        now = mono()
        for fd, _ in events:
            if fd == lfd:
                while True:
                    try:
                        data, addr = lsock.recvfrom(4096)
                    except BlockingIOError:
                        break
                    if len(data) < 12:
                        continue
                    stats["in"] += 1
                    # find a free 16-bit id (the table never holds 65536 entries
                    # at bench rates: 20 ms x a few 10k qps)
                    for _ in range(65536):
                        next_id = (next_id + 1) & 0xFFFF
                        if next_id not in pending:
                            break
                    else:
                        stats["dropped"] += 1
                        continue
                    rid = next_id
                    pending[rid] = (addr, data[:2], now)
                    queue.append((now + delay, rid.to_bytes(2, "big") + data[2:]))
            else:
                while True:
                    try:
                        data = usock.recv(65535)
                    except BlockingIOError:
                        break
                    except ConnectionRefusedError:
                        continue
                    if len(data) < 12:
                        continue
                    ent = pending.pop(int.from_bytes(data[:2], "big"), None)
                    if ent is None:
                        continue
                    stats["answers"] += 1
                    try:
                        lsock.sendto(ent[1] + data[2:], ent[0])
                    except OSError:
                        stats["dropped"] += 1
        while queue and queue[0][0] <= now:
            _, pkt = queue.popleft()
            try:
                usock.send(pkt)
                stats["out"] += 1
            except (BlockingIOError, ConnectionRefusedError):
                stats["dropped"] += 1
        if now - last_sweep > 1.0:
            last_sweep = now
            old = [k for k, v in pending.items() if now - v[2] > EXPIRE_S]
            for k in old:
                del pending[k]
            stats["expired"] += len(old)
            if os.environ.get("RELAY_STATS"):
                print("relay", stats, file=sys.stderr, flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
