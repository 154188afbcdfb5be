#!/usr/bin/env python3
"""TCP delay relay for the DoT scenario of `make bench` (where netem is unavailable).

Accepts connections on LISTEN (addr:port) and joins each to a new connection to
UPSTREAM (addr:port).  Both directions are delayed: every chunk read from one side
is written to the other DELAY_MS/2 later, so a request and its answer see DELAY_MS
of round trip, as through the UDP relay; the connection to the upstream is opened
DELAY_MS after the accept, so that the TCP handshake costs its round trip too
before any byte reaches the server.  The relay counts the connections it accepts
(each one carries one TLS handshake, full or resumed) and the most open at once,
and writes them as `accepted N open N peak N bytes_in N bytes_out N` to STATS_FILE
whenever a connection opens or closes and once a second.

Each connection's TLS handshake is classified as it passes (bench/tlshello.py): the
counts `full`, `resumed`, `failed` (closed before the ServerHello) and `unknown`, and
`offered` (connections whose client offered a session to resume) are in STATS_FILE
too, a connection counted once its kind shows (failed ones at their close).

With DROP_SECS (> 0), SIGUSR1 starts drops and SIGUSR2 stops them: every DROP_SECS
seconds from the SIGUSR1 the relay drops every open connection, as a DoT server that
closes its connections (idle or query limit, restart) or a lost WAN path would:

  fin  (DROP_MODE default) the connection to the server is closed at once; what the
       server had sent still reaches the client after the link delay, then a FIN (no
       TLS close_notify: the relay has no keys, as when a server process restarts);
       what the client sends after the drop is read and discarded.
  rst  both sockets are closed at once, the client's with a reset (SO_LINGER 0):
       what was on its way to the client is lost.

`drops` counts the drop instants and `dropped` the connections they closed.

    tcprelay.py LISTEN_ADDR LISTEN_PORT UPSTREAM_ADDR UPSTREAM_PORT DELAY_MS STATS_FILE [DROP_SECS [DROP_MODE]]
"""
import collections
import errno
import heapq
import os
import select
import signal
import socket
import struct
import sys
import time

from tlshello import Handshake


class Side:
    """One socket of a relayed pair and the chunks waiting to be written to it."""

    def __init__(self, sock, from_client):
        self.sock = sock
        self.from_client = from_client    # what is read here goes to the server
        self.out = collections.deque()    # (release time, bytes), FIFO: the delay is constant
        self.pending = b""                # part of a chunk the socket did not take yet
        self.peer = None
        self.connected = True
        self.eof_in = False               # the other side closed: close the pair once drained
        self.reading = True               # False after this side's EOF (DoT clients never half-close)
        self.closed = False
        self.tls = None                   # the pair's Handshake (on both sides of it)
        self.dropped = False              # the client side of a dropped pair: reads are discarded
        self.fin_sent = False             # ... and its FIN went out: closed at the client's EOF


def main():
    laddr, lport, uaddr, uport, delay_ms, stats_file = sys.argv[1:7]
    one_way = float(delay_ms) / 2000.0
    rtt = float(delay_ms) / 1000.0
    drop_every = float(sys.argv[7]) if len(sys.argv) > 7 else 0.0
    drop_mode = sys.argv[8] if len(sys.argv) > 8 else "fin"
    if drop_mode not in ("fin", "rst"):
        raise SystemExit(f"tcprelay: DROP_MODE {drop_mode!r} is neither fin nor rst")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    drop = {"on": False, "next": 0.0}

    def drops_on(*_):
        if drop_every > 0:
            drop["on"], drop["next"] = True, time.monotonic() + drop_every

    def drops_off(*_):
        drop["on"] = False

    signal.signal(signal.SIGUSR1, drops_on)
    signal.signal(signal.SIGUSR2, drops_off)

    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((laddr, int(lport)))
    lsock.listen(1024)
    lsock.setblocking(False)
    ep = select.epoll()
    ep.register(lsock.fileno(), select.EPOLLIN)

    sides = {}                 # fd -> Side
    timers = []                # heap of (time, seq, kind, side)
    seq = 0
    stats = {"accepted": 0, "open": 0, "peak": 0, "bytes_in": 0, "bytes_out": 0,
             "full": 0, "resumed": 0, "failed": 0, "unknown": 0, "offered": 0, "drops": 0, "dropped": 0}
    # How long a dropped connection's socket waits for the client's own close after the FIN.
    linger = 2.0

    def write_stats():
        tmp = stats_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(" ".join(f"{k} {v}" for k, v in stats.items()) + "\n")
        os.replace(tmp, stats_file)

    def verdict(tls):
        """Counts the connection's handshake once, when its kind shows or at its close."""
        if tls.counted or tls.result is None:
            return
        tls.counted = True
        stats[tls.result] += 1
        stats["offered"] += tls.offered
        if tls.result == "unknown":
            print(f"tcprelay: handshake of unknown kind: {tls.reason}", file=sys.stderr, flush=True)

    def close_pair(side):
        if side.tls.pair_closed:
            return
        side.tls.pair_closed = True
        side.tls.finish()
        verdict(side.tls)
        for s in (side, side.peer):
            if s is not None and not s.closed:
                s.closed = True
                fd = s.sock.fileno()
                sides.pop(fd, None)
                try:
                    ep.unregister(fd)
                except (OSError, ValueError):
                    pass
                s.sock.close()
        stats["open"] -= 1
        write_stats()

    def flush(side, now):
        """Writes what is due to SIDE's socket; -> False when the pair was closed."""
        if side.closed or not side.connected or not side.reading:
            if side.eof_in and not side.closed:
                close_pair(side)
                return False
            return True
        while side.pending or (side.out and side.out[0][0] <= now):
            if not side.pending:
                side.pending = side.out.popleft()[1]
            try:
                n = side.sock.send(side.pending)
            except BlockingIOError:
                break
            except OSError:
                close_pair(side)
                return False
            side.pending = side.pending[n:]
        if side.pending:
            ep.modify(side.sock.fileno(), select.EPOLLIN | select.EPOLLOUT)
        else:
            ep.modify(side.sock.fileno(), select.EPOLLIN)
            if side.eof_in and not side.out:
                if side.dropped:
                    return send_fin(side, now)
                close_pair(side)
                return False
        return True

    def send_fin(side, now):
        """A dropped client's FIN, once what was on its way went out; its socket stays
        open (reads discarded) until the client closes, LINGER seconds at most."""
        if side.fin_sent:
            return True
        side.fin_sent = True
        try:
            side.sock.shutdown(socket.SHUT_WR)
        except OSError:
            close_pair(side)
            return False
        schedule(now + linger, "close", side)
        return True

    def drop_all(now):
        """Drops every open connection (see the module's text)."""
        victims = [s for s in sides.values() if s.from_client and not s.closed and not s.dropped]
        stats["drops"] += 1
        stats["dropped"] += len(victims)
        for c in victims:
            c.dropped = True
            u = c.peer
            if drop_mode == "rst":
                try:
                    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
                close_pair(c)
                continue
            if not u.closed:
                u.closed = True
                fd = u.sock.fileno()
                if sides.get(fd) is u:
                    del sides[fd]
                try:
                    ep.unregister(fd)
                except (OSError, ValueError):
                    pass
                u.sock.close()
            # the server's close reaches the client after what it had sent before it
            schedule(now + one_way, "eof", c)
        write_stats()

    def schedule(t, kind, side):
        nonlocal seq
        seq += 1
        heapq.heappush(timers, (t, seq, kind, side))

    write_stats()
    last_stats = time.monotonic()
    lfd = lsock.fileno()
    while True:
        now = time.monotonic()
        timeout = 1.0
        if timers:
            timeout = min(timeout, max(0.0, timers[0][0] - now))
        if drop["on"]:
            timeout = min(timeout, max(0.0, drop["next"] - now))
        events = ep.poll(timeout)
        now = time.monotonic()
        for fd, ev in events:
            if fd == lfd:
                while True:
                    try:
                        csock, _ = lsock.accept()
                    except BlockingIOError:
                        break
                    csock.setblocking(False)
                    csock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    usock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    usock.setblocking(False)
                    usock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    c, u = Side(csock, True), Side(usock, False)
                    c.peer, u.peer = u, c
                    c.tls = u.tls = Handshake()
                    c.tls.counted = c.tls.pair_closed = False
                    u.connected = False
                    sides[csock.fileno()] = c
                    ep.register(csock.fileno(), select.EPOLLIN)
                    stats["accepted"] += 1
                    stats["open"] += 1
                    stats["peak"] = max(stats["peak"], stats["open"])
                    write_stats()
                    schedule(now + rtt, "connect", u)
                continue
            side = sides.get(fd)
            if side is None:
                continue
            if ev & select.EPOLLOUT:
                if not side.connected:
                    err = side.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        close_pair(side)
                        continue
                    side.connected = True
                if not flush(side, now):
                    continue
            if ev & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                while True:
                    try:
                        data = side.sock.recv(65536)
                    except BlockingIOError:
                        break
                    except OSError:
                        data = b""
                    if side.dropped:
                        if not data:
                            close_pair(side)
                            break
                        continue          # after the drop: what the client sends goes nowhere
                    if not data:
                        # the peer learns of the close once what is queued for it went out
                        schedule(now + one_way, "eof", side.peer)
                        try:
                            ep.unregister(fd)
                        except (OSError, ValueError):
                            pass
                        side.reading = False
                        break
                    stats["bytes_in" if side.from_client else "bytes_out"] += len(data)
                    tls = side.tls
                    if tls.result is None:
                        if side.from_client:
                            tls.from_client(data)
                        else:
                            tls.from_server(data)
                        if tls.result is not None:
                            verdict(tls)
                            write_stats()
                    # ACK at once: the relay's own delayed ACK (up to 40 ms) would stall a
                    # sender's next small record behind Nagle, a delay the link it stands
                    # for does not add (there, the far end's ACK timing applies).
                    try:
                        side.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                    except OSError:
                        pass
                    side.peer.out.append((now + one_way, data))
                    schedule(now + one_way, "flush", side.peer)
        while timers and timers[0][0] <= now:
            _, _, kind, side = heapq.heappop(timers)
            if side.closed:
                continue
            if kind == "connect":
                try:
                    side.sock.connect((uaddr, int(uport)))
                    side.connected = True
                except BlockingIOError:
                    pass
                except OSError as e:
                    if e.errno != errno.EINPROGRESS:
                        close_pair(side)
                        continue
                sides[side.sock.fileno()] = side
                ep.register(side.sock.fileno(), select.EPOLLIN | select.EPOLLOUT)
                if side.connected:
                    flush(side, now)
            elif kind == "flush":
                flush(side, now)
            elif kind == "eof":
                side.eof_in = True
                flush(side, now)
            elif kind == "close":
                close_pair(side)
        if drop["on"] and now >= drop["next"]:
            drop_all(now)
            drop["next"] = max(drop["next"] + drop_every, now + drop_every / 2)
        if now - last_stats > 1.0:
            last_stats = now
            write_stats()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
