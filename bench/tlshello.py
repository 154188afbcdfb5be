"""Full or resumed: what a relay sees of a TLS handshake in clear (bench/tcprelay.py).

A `Handshake` is fed the bytes of one connection as they pass, client to server and
server to client, in pieces of any size. It reads the TLS records up to the point
where the handshake shows its kind, and then stops looking:

  resumed   TLS 1.3: the ServerHello carries the pre_shared_key extension (41): the
            server accepted a ticket (RFC 8446 4.2.11).
            TLS 1.2 and older: an abbreviated handshake: the server echoes the non-empty
            session id the client offered (session cache, or a ticket with the RFC 5077
            session id), or its next message after the ServerHello is a NewSessionTicket
            or a ChangeCipherSpec instead of its certificate.
  full      any other ServerHello (after a HelloRetryRequest: the ServerHello that follows).
  failed    the connection closed before a ServerHello (an alert, a close, a reset).
  unknown   bytes that are not TLS as expected, or more than BOUND bytes without a verdict.

`offered` says whether the client's hello offered a session (a pre_shared_key, a
non-empty session ticket, or for a client without TLS 1.3 a session id): a client
that offers and is refused differs from one that never tries.
"""

# The random of a HelloRetryRequest (RFC 8446 4.1.3): a ServerHello with it is not the
# server's answer yet.
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
# Bytes kept per direction until a verdict: a ServerHello record and the start of the
# next one (a TLS 1.2 certificate record is at most 2^14 + 2048 bytes of ciphertext
# bound, far less in practice); the same bound refuses anything that is not TLS early.
BOUND = 1 << 16
MAX_RECORD = (1 << 14) + 2048
HANDSHAKE, CCS, ALERT = 22, 20, 21
CLIENT_HELLO, SERVER_HELLO, NEW_SESSION_TICKET = 1, 2, 4
EXT_SESSION_TICKET, EXT_PSK, EXT_SUPPORTED_VERSIONS = 35, 41, 43


class Bad(Exception):
    """The bytes are not a TLS handshake this parser understands."""


class Reader:
    """Bounds-checked reads from one handshake message."""

    def __init__(self, data):
        self.d = data
        self.i = 0

    def take(self, n):
        if n < 0 or self.i + n > len(self.d):
            raise Bad("short message")
        v = self.d[self.i:self.i + n]
        self.i += n
        return v

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return int.from_bytes(self.take(2), "big")

    def vec(self, width):
        return self.take(int.from_bytes(self.take(width), "big"))

    def left(self):
        return len(self.d) - self.i


def extensions(r):
    """{type: data} of a hello's extension block (absent in very old hellos)."""
    exts = {}
    if r.left() == 0:
        return exts
    block = Reader(r.vec(2))
    while block.left():
        t = block.u16()
        exts[t] = block.vec(2)
    return exts


def parse_client_hello(body):
    """-> (session id, extensions) of a ClientHello body."""
    r = Reader(body)
    r.take(2 + 32)                      # legacy_version, random
    sid = r.vec(1)
    r.vec(2)                            # cipher suites
    r.vec(1)                            # compression methods
    return sid, extensions(r)


def parse_server_hello(body):
    """-> (random, session id, extensions) of a ServerHello body."""
    r = Reader(body)
    r.take(2)
    random = r.take(32)
    sid = r.vec(1)
    r.take(2 + 1)                       # cipher suite, compression method
    return random, sid, extensions(r)


class Stream:
    """One direction: TLS records in, handshake messages (type, body) and record types out."""

    def __init__(self):
        self.buf = bytearray()
        self.hs = bytearray()           # handshake bytes of the records so far
        self.seen = 0                   # bytes taken in: the caller's bound

    def feed(self, data):
        """-> the events of DATA in order: ("hs", type, body) per complete handshake
        message, ("hs-start", type) when only a message's first byte is in, and
        ("record", content type) per record that is not a handshake record."""
        self.seen += len(data)
        self.buf += data
        events = []
        while len(self.buf) >= 5:
            ctype = self.buf[0]
            if self.buf[1] != 3 or ctype not in (20, 21, 22, 23):
                raise Bad(f"not a TLS record (type {ctype}, version {self.buf[1]}.{self.buf[2]})")
            n = int.from_bytes(self.buf[3:5], "big")
            if n > MAX_RECORD:
                raise Bad(f"record of {n} bytes")
            if len(self.buf) < 5 + n:
                break
            frag = bytes(self.buf[5:5 + n])
            del self.buf[:5 + n]
            if ctype != HANDSHAKE:
                events.append(("record", ctype))
                continue
            self.hs += frag
            while len(self.hs) >= 4:
                mlen = int.from_bytes(self.hs[1:4], "big")
                if len(self.hs) < 4 + mlen:
                    break
                events.append(("hs", self.hs[0], bytes(self.hs[4:4 + mlen])))
                del self.hs[:4 + mlen]
        if self.hs:
            events.append(("hs-start", self.hs[0]))
        return events


class Handshake:
    """The verdict on one connection's handshake: `result` is None until known, then
    "full", "resumed" or "unknown"; `finish()` at close gives "failed" when there was no
    ServerHello. `version` is "1.3" or "1.2" (and older) once the ServerHello is read."""

    def __init__(self):
        self.client = Stream()
        self.server = Stream()
        self.result = None
        self.reason = ""
        self.offered = False
        self.version = None
        self.client_sid = None
        self.after_hello = False        # TLS 1.2: the ServerHello is in, its next message decides

    def _decide(self, result, reason=""):
        self.result = result
        self.reason = reason

    def from_client(self, data):
        if self.result is not None or self.client_sid is not None:
            return                      # the ClientHello is all this side gives
        try:
            for ev in self.client.feed(data):
                if ev[0] == "hs-start":
                    continue
                if ev[0] != "hs" or ev[1] != CLIENT_HELLO:
                    raise Bad(f"client sent {ev} before its hello")
                sid, exts = parse_client_hello(ev[2])
                self.client_sid = sid
                tls13 = EXT_SUPPORTED_VERSIONS in exts
                self.offered = (EXT_PSK in exts or bool(exts.get(EXT_SESSION_TICKET))
                                or (not tls13 and bool(sid)))
                break
            else:
                if self.client.seen > BOUND:
                    raise Bad(f"no hello in {BOUND} bytes")
        except Bad as e:
            self._decide("unknown", f"client: {e}")

    def from_server(self, data):
        if self.result is not None:
            return
        try:
            for ev in self.server.feed(data):
                if self._server_event(ev):
                    return
            if self.server.seen > BOUND:
                raise Bad(f"no verdict in {BOUND} bytes")
        except Bad as e:
            self._decide("unknown", f"server: {e}")

    def _server_event(self, ev):
        """-> True once the verdict is in."""
        if self.after_hello:
            if ev[0] == "record" and ev[1] == CCS:
                self._decide("resumed", "ChangeCipherSpec after the ServerHello")
            elif ev[0] == "record":
                raise Bad(f"record type {ev[1]} after a TLS 1.2 ServerHello")
            elif ev[1] == NEW_SESSION_TICKET:
                self._decide("resumed", "NewSessionTicket after the ServerHello")
            else:
                self._decide("full", f"handshake message {ev[1]} after the ServerHello")
            return True
        if ev[0] == "record":
            if ev[1] == CCS:
                return False            # TLS 1.3 middlebox compatibility, after a HelloRetryRequest
            if ev[1] == ALERT:
                self._decide("failed", "alert before the ServerHello")
                return True
            raise Bad(f"record type {ev[1]} before the ServerHello")
        if ev[0] == "hs-start":
            return False
        if ev[1] != SERVER_HELLO:
            raise Bad(f"handshake message {ev[1]} before the ServerHello")
        random, sid, exts = parse_server_hello(ev[2])
        if random == HRR_RANDOM:
            return False                # the real ServerHello follows the client's second hello
        sv = exts.get(EXT_SUPPORTED_VERSIONS)
        if sv == b"\x03\x04":
            self.version = "1.3"
            if EXT_PSK in exts:
                self._decide("resumed", "pre_shared_key in the ServerHello")
            else:
                self._decide("full", "TLS 1.3 ServerHello without pre_shared_key")
            return True
        if sv is not None:
            raise Bad(f"supported_versions {sv.hex()} in the ServerHello")
        self.version = "1.2"
        if sid and sid == self.client_sid:
            self._decide("resumed", "the server echoed the client's session id")
            return True
        self.after_hello = True
        return False

    def finish(self):
        """The verdict at close: a connection without ServerHello failed; one whose TLS 1.2
        ServerHello came without what follows is unknown."""
        if self.result is None:
            if self.after_hello:
                self._decide("unknown", "closed after a TLS 1.2 ServerHello")
            else:
                self._decide("failed", "closed before the ServerHello")
        return self.result
