"""How many TLS connections dproxy opens to one DoT upstream: one for 100 queries in
flight at once (the bench's load); a second only when more are in flight than one
connection takes (its in-flight limit, 128), and no third one for the next burst while
the first two are still open.

The server is our own (Python ssl, in the style of test_dot's FaultServer) because
the test needs every query of a burst in flight at once: it holds all answers until
the burst's last query has arrived, on whatever connection, which unbound cannot be
told to do. Needs the full build (DPROXY_FULL=1, like test_dot)."""

import os
import select
import socket
import ssl
import time

import dns.message
import dns.rrset
import pytest

from test_dot import NAME, LoopbackTlsServer, _start, certs  # noqa: F401 (certs: a fixture)

BURST = 200          # more than one connection's in-flight limit, less than two


@pytest.fixture(autouse=True)
def _needs_full(dproxy_bin):
    if os.environ.get("DPROXY_FULL") != "1":
        pytest.skip("needs the full build: DPROXY_FULL=1 DPROXY_BIN=<dproxy built with --features full>")


class HoldServer(LoopbackTlsServer):
    """DoT server that answers nothing until `release_at` queries in all have arrived
    (over all its connections), then answers every query held; counts connections, and
    apart the connections that carried a question's first attempt: on a loaded machine
    the burst can take longer to arrive than an attempt's timer (1-2 s), and a resend
    rightly goes on a connection of its own (never on the one carrying the question),
    which says nothing about how first attempts share connections."""

    def __init__(self, certs_dir):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(os.path.join(certs_dir, "good.pem"),
                                 os.path.join(certs_dir, "good.key"))
        self.seen = set()            # names asked so far
        self.first_conns = set()     # numbers of the connections that carried a first attempt
        self.received = 0
        self.release_at = BURST
        super().__init__()

    @staticmethod
    def _read_exact(s, n):
        out = b""
        while len(out) < n:
            b = s.recv(n - len(out))
            if not b:
                return None
            out += b
        return out

    @staticmethod
    def _answer(wire):
        q = dns.message.from_wire(wire)
        r = dns.message.make_response(q)
        r.answer.append(dns.rrset.from_text(q.question[0].name, 300, "IN", "A", "192.0.2.7"))
        out = r.to_wire()
        return len(out).to_bytes(2, "big") + out

    @property
    def first_attempt_connections(self):
        with self.lock:
            return len(self.first_conns)

    def _serve(self, c, n):
        # One thread per connection reads and writes its own socket (an SSL object
        # must not be used from two threads); it answers what it holds once the
        # whole burst has arrived. The base class closes it.
        held = []
        s = self.ctx.wrap_socket(c, server_side=True)
        while self.running:
            with self.lock:
                due = self.received >= self.release_at
            if due and held:
                s.sendall(b"".join(self._answer(q) for q in held))
                held = []
            if not s.pending() and not select.select([s], [], [], 0.01)[0]:
                continue
            hdr = self._read_exact(s, 2)
            if hdr is None:
                return
            q = self._read_exact(s, int.from_bytes(hdr, "big"))
            if q is None:
                return
            held.append(q)
            name = dns.message.from_wire(q).question[0].name
            with self.lock:
                self.received += 1
                if name not in self.seen:
                    self.seen.add(name)
                    self.first_conns.add(n)


def _burst(px, prefix, n=BURST):
    """n different names asked at once from one socket; -> answers that came."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.settimeout(0.5)
    want = {}
    for i in range(n):
        q = dns.message.make_query(f"{prefix}{i}.example.test", "A")
        q.id = i
        want[i] = q
        s.sendto(q.to_wire(), (px.host, px.port))
    got = set()
    deadline = time.monotonic() + 15
    while len(got) < n and time.monotonic() < deadline:
        try:
            r = dns.message.from_wire(s.recv(4096))
        except socket.timeout:
            continue
        if r.id in want and "192.0.2.7" in r.to_text():
            got.add(r.id)
    s.close()
    return len(got)


def test_a_hundred_queries_in_flight_share_one_connection(dproxy, certs):  # noqa: F811
    hs = HoldServer(certs)
    hs.release_at = 100
    try:
        px = _start(dproxy, certs, hs.port)
        # All 100 are in flight at once (the server answers none before the last has
        # arrived): one connection carries them, one handshake.
        assert _burst(px, "h", 100) == 100
        assert hs.first_attempt_connections == 1, (hs.first_attempt_connections, hs.connections)
        assert px.alive()
    finally:
        hs.stop()


def test_a_second_burst_reuses_the_open_connections(dproxy, certs):  # noqa: F811
    hs = HoldServer(certs)
    try:
        px = _start(dproxy, certs, hs.port)
        # First burst: 128 queries fill the first connection, the rest open a second.
        assert _burst(px, "a") == BURST
        assert hs.first_attempt_connections == 2, (hs.first_attempt_connections, hs.connections)
        # Second burst, the connections still open and idle: the current one takes
        # 128, the first one takes the rest. A third connection would be a handshake
        # (and on a loaded link a round trip) spent for nothing, and the first one
        # would never be used again.
        # (On a loaded machine resends of the first burst may have opened a third one,
        # which the second burst may then use too; it must open none for itself.)
        hs.release_at = 2 * BURST
        open_before = hs.connections
        assert _burst(px, "b") == BURST
        with hs.lock:
            opened_for_b = sorted(n for n in hs.first_conns if n > open_before)
        assert not opened_for_b, ("a burst opened a new connection while the open ones had room",
                                  open_before, opened_for_b)
        assert px.alive()
    finally:
        hs.stop()
