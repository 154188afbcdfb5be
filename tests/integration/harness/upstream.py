"""FakeUpstream: a scripted DNS server (UDP + TCP) on 127.0.0.x:port.

It answers from a small zone, records every query it receives (with the
transport and the sender's address) and can be switched between behaviours
at run time:

  mode = "normal"          answer from the zone
         "silent"          never answer
         "servfail"        SERVFAIL
         "refused"         REFUSED
         "tc"              UDP: empty answer with TC=1; TCP: the full answer
         "wrong_id"        answer with a different ID (poisoned data)
         "wrong_port"      answer from another source port (poisoned data)
         "wrong_addr"      answer from another source address (poisoned data)
         "wrong_question"  right ID/port, but a different question name
         "wrong_qtype"     right ID/port/name, but a different question type
  delay_ms                 delay every answer
  delays                   {name: ms} per-name delay (overrides delay_ms)
  also_correct_after_ms    with a wrong_* mode: send the correct answer too,
                           this many ms after the spoofed one
  ignore_first             drop this many queries before answering
  set_ad                   set AD=1 in answers
  handler                  callable(query_msg, transport) returning a Message,
                           bytes, None (stay silent) or FakeUpstream.DEFAULT
                           (fall through to mode handling)

Poisoned answers carry POISON_V4 (6.6.6.6) so tests can spot them.
"""
import socket
import struct
import threading
import time

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone

from .dnsutil import absname

POISON_V4 = "6.6.6.6"
SPOOF_HOST = "127.0.0.253"

_next_host = [2]
_host_lock = threading.Lock()


def next_host():
    """Distinct 127.0.0.x addresses (2..250) for upstreams in this process."""
    with _host_lock:
        h = _next_host[0]
        _next_host[0] = 2 if h >= 250 else h + 1
    return "127.0.0.%d" % h


class QueryRecord:
    __slots__ = ("transport", "msg", "src", "when", "wire")

    def __init__(self, transport, msg, src, when, wire):
        self.transport = transport
        self.msg = msg
        self.src = src
        self.when = when
        self.wire = wire

    @property
    def name(self):
        return absname(self.msg.question[0].name) if self.msg and self.msg.question else None

    @property
    def qtype(self):
        return dns.rdatatype.to_text(self.msg.question[0].rdtype) if self.msg and self.msg.question else None

    @property
    def qid(self):
        return struct.unpack("!H", self.wire[:2])[0]

    def __repr__(self):
        return "<%s %s %s from %s:%d id=%d>" % (self.transport, self.name, self.qtype,
                                               self.src[0], self.src[1], self.qid)


class FakeUpstream:
    DEFAULT = object()

    def __init__(self, host=None, records=(), origin="example.test.",
                 soa="@ 300 IN SOA ns1 hostmaster 1 3600 900 604800 300", port=0):
        self.host = host or next_host()
        self.want_port = port
        self.origin = dns.name.from_text(origin)
        self.mode = "normal"
        self.delay_ms = 0
        self.delays = {}
        self.also_correct_after_ms = None
        self.ignore_first = 0
        self.set_ad = False
        self.handler = None
        self.wrong_qname = "evil." + origin
        self.received = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._timers = []
        self._threads = []
        self._conns = []
        self.set_records(records, soa)
        self._bind()

    # ---------------------------------------------------------------- zone
    def set_records(self, records, soa="@ 300 IN SOA ns1 hostmaster 1 3600 900 604800 300"):
        """records: zone-file lines relative to the origin, e.g.
        'www 300 IN A 192.0.2.1'.  An SOA (soa=...) and NS are added."""
        text = "$ORIGIN %s\n$TTL 300\n%s\n@ 300 IN NS ns1\nns1 300 IN A 192.0.2.53\n" % (
            self.origin.to_text(), soa)
        text += "\n".join(records) + "\n"
        zone = dns.zone.from_text(text, origin=self.origin, relativize=False)
        with self._lock:
            self.zone = zone

    # ---------------------------------------------------------------- sockets
    def _bind(self):
        last = None
        for _ in range(50):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((self.host, self.want_port))
            port = udp.getsockname()[1]
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((self.host, port))
            except OSError as e:
                last = e
                udp.close()
                tcp.close()
                if self.want_port:
                    break
                continue
            tcp.listen(64)
            self.port = port
            self.udp = udp
            self.tcp = tcp
            break
        else:
            raise RuntimeError("FakeUpstream: no UDP+TCP port pair free on %s: %s" % (self.host, last))
        self.udp.settimeout(0.1)
        self.tcp.settimeout(0.1)
        self.alt_udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.alt_udp.bind((self.host, 0))
        self.spoof_udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.spoof_udp.bind((SPOOF_HOST, 0))

    @property
    def addr(self):
        """'127.0.0.x:port' as written in `list server`."""
        return "%s:%d" % (self.host, self.port)

    def start(self):
        for target in (self._udp_loop, self._tcp_accept_loop):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        with self._lock:
            timers = list(self._timers)
            conns = list(self._conns)
        for t in timers:
            t.cancel()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=1.0)
        for s in (self.udp, self.tcp, self.alt_udp, self.spoof_udp):
            s.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _udp_loop(self):
        while not self._stop.is_set():
            try:
                wire, src = self.udp.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return

            def reply(data, sock=None, src=src):
                try:
                    (sock or self.udp).sendto(data, src)
                except OSError:
                    pass
            self._dispatch(wire, "udp", src, reply)

    def _tcp_accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, src = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            t = threading.Thread(target=self._tcp_conn, args=(conn, src), daemon=True)
            t.start()
            self._threads.append(t)

    def _tcp_conn(self, conn, src):
        wlock = threading.Lock()
        conn.settimeout(0.2)

        def reply(data, sock=None):
            with wlock:
                try:
                    conn.sendall(struct.pack("!H", len(data)) + data)
                except OSError:
                    pass

        buf = b""
        try:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65535)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while len(buf) >= 2:
                    ln = struct.unpack("!H", buf[:2])[0]
                    if len(buf) < 2 + ln:
                        break
                    wire, buf = buf[2:2 + ln], buf[2 + ln:]
                    self._dispatch(wire, "tcp", src, reply)
        finally:
            # Leave the socket to stop() if answers are still scheduled; a
            # closed peer just makes the later sendall fail quietly.
            pass

    # ---------------------------------------------------------------- records
    def queries(self, name=None, rdtype=None, transport=None):
        with self._lock:
            recs = list(self.received)
        if name is not None:
            recs = [r for r in recs if r.name == absname(name)]
        if rdtype is not None:
            recs = [r for r in recs if r.qtype == rdtype.upper()]
        if transport is not None:
            recs = [r for r in recs if r.transport == transport]
        return recs

    def count(self, name=None, rdtype=None, transport=None):
        return len(self.queries(name, rdtype, transport))

    def wait_count(self, n, name=None, rdtype=None, transport=None, timeout=3.0):
        """Poll until at least n matching queries arrived; return the count."""
        deadline = time.monotonic() + timeout
        while True:
            c = self.count(name, rdtype, transport)
            if c >= n or time.monotonic() >= deadline:
                return c
            time.sleep(0.02)

    def clear(self):
        with self._lock:
            self.received.clear()

    def summary(self):
        return "%s received %d queries: %r" % (self.addr, len(self.received), self.queries())

    # ---------------------------------------------------------------- answers
    def answer(self, query):
        """The correct answer for a query, from the zone."""
        resp = dns.message.make_response(query, recursion_available=True, our_payload=1232)
        if self.set_ad:
            resp.flags |= dns.flags.AD
        if query.ednsflags & dns.flags.DO and resp.edns >= 0:
            resp.ednsflags |= dns.flags.DO
        q = query.question[0]
        qname, qtype = q.name, q.rdtype
        if q.rdclass != dns.rdataclass.IN or not qname.is_subdomain(self.origin):
            resp.set_rcode(dns.rcode.REFUSED)
            return resp
        with self._lock:
            zone = self.zone
        soa = zone.get_rdataset(self.origin, dns.rdatatype.SOA)
        name = qname
        for _ in range(10):
            node = zone.get_node(name)
            if node is None:
                resp.set_rcode(dns.rcode.NXDOMAIN)
                resp.authority.append(dns.rrset.from_rdata_list(self.origin, soa.ttl, list(soa)))
                break
            if qtype == dns.rdatatype.ANY:
                for rds in node.rdatasets:
                    resp.answer.append(dns.rrset.from_rdata_list(name, rds.ttl, list(rds)))
                break
            rds = node.get_rdataset(dns.rdataclass.IN, qtype)
            if rds is not None:
                resp.answer.append(dns.rrset.from_rdata_list(name, rds.ttl, list(rds)))
                break
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            if cname is not None:
                resp.answer.append(dns.rrset.from_rdata_list(name, cname.ttl, list(cname)))
                name = cname[0].target
                if not name.is_subdomain(self.origin):
                    break
                continue
            resp.authority.append(dns.rrset.from_rdata_list(self.origin, soa.ttl, list(soa)))
            break
        return resp

    def poison(self, query, qname=None, qtype=None):
        """A spoofed answer: POISON_V4 for the asked name (and the wrong name)."""
        resp = dns.message.make_response(query, recursion_available=True, our_payload=1232)
        q = query.question[0]
        if qname is not None or qtype is not None:
            resp.question = [dns.rrset.RRset(dns.name.from_text(qname) if qname else q.name,
                                             q.rdclass, qtype if qtype is not None else q.rdtype)]
        resp.answer.append(dns.rrset.from_text_list(q.name, 3600, "IN", "A", [POISON_V4]))
        if qname is not None:
            resp.answer.append(dns.rrset.from_text_list(qname, 3600, "IN", "A", [POISON_V4]))
        return resp

    @staticmethod
    def udp_wire(resp, query):
        """Serialise for UDP, honouring the querier's size (TC=1 if too big)."""
        limit = query.payload if query.edns >= 0 else 512
        try:
            return resp.to_wire(max_size=max(limit, 512))
        except dns.exception.TooBig:
            t = dns.message.make_response(query, recursion_available=True, our_payload=1232)
            t.flags = resp.flags | dns.flags.TC
            t.set_rcode(resp.rcode())
            return t.to_wire()

    def _later(self, ms, fn):
        if ms <= 0:
            fn()
            return
        t = threading.Timer(ms / 1000.0, fn)
        t.daemon = True
        with self._lock:
            self._timers.append(t)
        t.start()

    def _dispatch(self, wire, transport, src, reply):
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # noqa: BLE001 - record and ignore unparsable input
            query = None
        with self._lock:
            self.received.append(QueryRecord(transport, query, src, time.monotonic(), wire))
            nth = len(self.received)
        if query is None or len(query.question) != 1:
            return
        if nth <= self.ignore_first:
            return
        name = absname(query.question[0].name)
        delay = self.delays.get(name, self.delay_ms)

        def ser(resp):
            if isinstance(resp, bytes):
                return resp
            if transport == "udp":
                return self.udp_wire(resp, query)
            return resp.to_wire()

        if self.handler is not None:
            r = self.handler(query, transport)
            if r is not FakeUpstream.DEFAULT:
                if r is not None:
                    data = ser(r)
                    self._later(delay, lambda: reply(data))
                return

        mode = self.mode
        if mode == "silent":
            return
        if mode in ("servfail", "refused"):
            resp = dns.message.make_response(query, recursion_available=True, our_payload=1232)
            resp.set_rcode(dns.rcode.SERVFAIL if mode == "servfail" else dns.rcode.REFUSED)
            data = ser(resp)
            self._later(delay, lambda: reply(data))
            return
        if mode == "tc" and transport == "udp":
            resp = dns.message.make_response(query, recursion_available=True, our_payload=1232)
            resp.flags |= dns.flags.TC
            data = resp.to_wire()
            self._later(delay, lambda: reply(data))
            return

        good = ser(self.answer(query))
        spoof = None
        if mode == "wrong_id":
            bad = self.poison(query)
            bad.id = (query.id + 0x1234) & 0xFFFF
            spoof = (ser(bad), None)
        elif mode == "wrong_port" and transport == "udp":
            spoof = (ser(self.poison(query)), self.alt_udp)
        elif mode == "wrong_addr" and transport == "udp":
            spoof = (ser(self.poison(query)), self.spoof_udp)
        elif mode == "wrong_question":
            spoof = (ser(self.poison(query, qname=self.wrong_qname)), None)
        elif mode == "wrong_qtype":
            other = dns.rdatatype.AAAA if query.question[0].rdtype != dns.rdatatype.AAAA else dns.rdatatype.A
            spoof = (ser(self.poison(query, qtype=other)), None)

        if spoof is None:
            self._later(delay, lambda: reply(good))
            return
        data, sock = spoof
        self._later(delay, lambda: reply(data, sock))
        if self.also_correct_after_ms is not None:
            self._later(delay + self.also_correct_after_ms, lambda: reply(good))
