"""Small DNS client helpers shared by the fixtures and the tests.

Everything here talks to loopback only and every network wait has a timeout.
"""
import random
import socket
import struct
import time

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rdataclass
import dns.rdatatype


class NoAnswer(AssertionError):
    """Raised when a server did not answer within the timeout."""


def absname(name):
    """'www.example.test' -> 'www.example.test.' (lowercased, absolute)."""
    text = str(name)
    if not text.endswith("."):
        text += "."
    return text.lower()


def make_query(name, rdtype="A", *, edns=None, do=False, cd=False, ad=False,
               rd=True, qid=None, rdclass="IN"):
    """Build a query.  edns=None sends no OPT record (unless do=True, which
    implies EDNS with payload 1232); edns=N sends OPT with payload N."""
    use_edns = edns is not None or do
    payload = edns if edns is not None else 1232
    flags = dns.flags.RD if rd else 0
    if cd:
        flags |= dns.flags.CD
    if ad:
        flags |= dns.flags.AD
    q = dns.message.make_query(
        name, rdtype, rdclass,
        use_edns=0 if use_edns else False,
        want_dnssec=do,
        payload=payload,
        id=qid if qid is not None else random.randint(0, 0xFFFF),
        flags=flags,
    )
    return q


def parse(wire):
    """Parse a response.  A truncated (TC=1) message that cannot be parsed
    completely is parsed question-only so the header can still be checked."""
    try:
        return dns.message.from_wire(wire)
    except dns.exception.FormError:
        if len(wire) >= 4 and (struct.unpack("!H", wire[2:4])[0] & dns.flags.TC):
            return dns.message.from_wire(wire, question_only=True)
        raise


def header(wire):
    """(id, flags, qdcount, ancount, nscount, arcount) of a raw message."""
    return struct.unpack("!HHHHHH", wire[:12])


def rcode_of(wire):
    return header(wire)[1] & 0xF


def opcode_of(wire):
    return (header(wire)[1] >> 11) & 0xF


def build_header(qid, flags=0x0100, qd=1, an=0, ns=0, ar=0, opcode=0):
    flags = (flags & ~0x7800) | ((opcode & 0xF) << 11)
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


def encode_name(name):
    out = b""
    for label in absname(name).rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def build_question(name, rdtype="A", rdclass="IN"):
    t = dns.rdatatype.from_text(rdtype) if isinstance(rdtype, str) else rdtype
    c = dns.rdataclass.from_text(rdclass) if isinstance(rdclass, str) else rdclass
    return encode_name(name) + struct.pack("!HH", t, c)


def udp_exchange(host, port, wire, timeout=2.0, family=None):
    """Send one datagram from a fresh socket; return the first reply or None."""
    family = family or (socket.AF_INET6 if ":" in host else socket.AF_INET)
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(wire, (host, port))
        try:
            data, _ = s.recvfrom(65535)
            return data
        except socket.timeout:
            return None


def recv_exact(sock, n, deadline):
    buf = b""
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out after %d of %d bytes" % (len(buf), n))
        sock.settimeout(left)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def tcp_recv_msg(sock, deadline):
    ln = struct.unpack("!H", recv_exact(sock, 2, deadline))[0]
    return recv_exact(sock, ln, deadline)


def tcp_frame(wire):
    return struct.pack("!H", len(wire)) + wire


def tcp_exchange(host, port, wire, timeout=3.0):
    """One length-prefixed exchange on a fresh connection; None on timeout/close."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + timeout
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        s.sendall(tcp_frame(wire))
        try:
            return tcp_recv_msg(s, deadline)
        except (socket.timeout, ConnectionError):
            return None


def rrset_texts(msg, section="answer", rdtype=None):
    """Sorted, lowercased rdata texts in a section, optionally for one type.
    (Lowercased so that a case leak from 0x20 randomization fails only the
    test dedicated to it.)"""
    out = []
    for rrset in getattr(msg, section):
        if rdtype is None or rrset.rdtype == dns.rdatatype.from_text(rdtype):
            out.extend(r.to_text().lower() for r in rrset)
    return sorted(out)


def min_ttl(msg, section="answer"):
    ttls = [rrset.ttl for rrset in getattr(msg, section)]
    return min(ttls) if ttls else None


def describe(msg, limit=1500):
    """Message text for assertion messages (long rdata cut, total capped)."""
    if msg is None:
        return "<no answer>"
    lines = []
    for line in msg.to_text().splitlines():
        lines.append(line if len(line) <= 120 else line[:100] + "...(%d chars)" % len(line))
    text = "\n".join(lines)
    wire = getattr(msg, "wire", None)
    if wire is not None:
        text = "(%d bytes on the wire)\n" % len(wire) + text
    return text if len(text) <= limit else text[:limit] + "\n...(cut)"
