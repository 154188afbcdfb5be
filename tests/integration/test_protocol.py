"""Protocol edges: garbage, FORMERR, NOTIMP, and EDNS handling."""
import socket
import struct

import dns.flags
import dns.opcode
import dns.rcode
import pytest

from harness.dnsutil import (build_header, build_question, describe, header, rcode_of,
                             rrset_texts)

RECORDS = ["www 300 IN A 192.0.2.1", "www 300 IN AAAA 2001:db8::1", "sec 300 IN A 192.0.2.9"]


@pytest.fixture
def up(upstream):
    return upstream(RECORDS)


@pytest.fixture
def px(dproxy, up):
    return dproxy(servers=[up])


def expect_rcode(px, wire, rcode, what, tcp=False):
    resp = px.query_raw(wire, tcp=tcp, timeout=2.0)
    assert resp is not None, "no answer to %s over %s; expected %s" % (
        what, "tcp" if tcp else "udp", dns.rcode.to_text(rcode))
    qid, flags, *_ = header(resp)
    assert qid == struct.unpack("!H", wire[:2])[0], "answer to %s must echo the ID" % what
    assert flags & dns.flags.QR, "answer to %s must have QR=1" % what
    assert rcode_of(resp) == rcode, "expected %s for %s, got %s" % (
        dns.rcode.to_text(rcode), what, dns.rcode.to_text(rcode_of(resp)))
    return resp


@pytest.mark.parametrize("garbage", [b"", b"\x12", b"\x12\x34\x01", b"\xff" * 11],
                         ids=["empty", "1-byte", "3-byte", "11-byte"])
def test_short_garbage_dropped(px, up, garbage):
    assert px.query_raw(garbage, timeout=0.5) is None, "a %d-byte datagram must get no answer" % len(garbage)
    assert px.alive(), "dproxy died on garbage:\n" + px.stderr_text()[-3000:]
    r = px.query("www.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)


def test_qdcount_zero_formerr(px, up):
    expect_rcode(px, build_header(0x1111, qd=0), dns.rcode.FORMERR, "QDCOUNT=0")
    assert up.count() == 0, "nothing must be forwarded: " + up.summary()


def test_qdcount_two_formerr(px, up):
    wire = build_header(0x2222, qd=2) + build_question("www.example.test") + build_question("www.example.test", "AAAA")
    expect_rcode(px, wire, dns.rcode.FORMERR, "QDCOUNT=2")
    assert up.count() == 0, "nothing must be forwarded: " + up.summary()


def test_qdcount_zero_formerr_tcp(px, up):
    expect_rcode(px, build_header(0x3333, qd=0), dns.rcode.FORMERR, "QDCOUNT=0", tcp=True)


@pytest.mark.parametrize("opcode", [dns.opcode.IQUERY, dns.opcode.STATUS, dns.opcode.NOTIFY, dns.opcode.UPDATE],
                         ids=["IQUERY", "STATUS", "NOTIFY", "UPDATE"])
def test_other_opcodes_notimp(px, up, opcode):
    wire = build_header(0x4444, flags=0, opcode=opcode) + build_question("example.test", "SOA")
    expect_rcode(px, wire, dns.rcode.NOTIMP, "opcode %s" % dns.opcode.to_text(opcode))
    assert up.count() == 0, "nothing must be forwarded: " + up.summary()


def test_compression_pointer_loop_formerr(px, up):
    # The question name is a pointer to itself (offset 12).
    wire = build_header(0x5555) + b"\xc0\x0c" + struct.pack("!HH", 1, 1)
    expect_rcode(px, wire, dns.rcode.FORMERR, "a question name with a pointer loop")
    assert px.alive()


def test_pointer_forward_out_of_message_formerr(px, up):
    wire = build_header(0x5656) + b"\x03www\xc0\xff" + struct.pack("!HH", 1, 1)
    expect_rcode(px, wire, dns.rcode.FORMERR, "a name pointer beyond the message")


def test_truncated_question_formerr(px, up):
    wire = build_header(0x6666) + b"\x03www\x07exam"
    expect_rcode(px, wire, dns.rcode.FORMERR, "a question cut off inside the name")
    assert up.count() == 0, up.summary()


def test_still_serving_after_malformed_input(px, up):
    for wire in (b"\x00", build_header(1, qd=0), build_header(2) + b"\xc0\x0c\x00\x01\x00\x01"):
        px.query_raw(wire, timeout=0.3)
    r = px.query("www.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)


# ------------------------------------------------------------------ EDNS
def test_edns_client_gets_opt_with_1232(px, up):
    for attempt in ("cache miss", "cache hit"):
        r = px.query("www.example.test", edns=4096)
        assert r.edns == 0, "client sent OPT, answer (%s) must have OPT:\n%s" % (attempt, describe(r))
        assert r.payload == 1232, "dproxy must advertise 1232, got %d (%s)" % (r.payload, attempt)


def test_no_edns_client_gets_no_opt(px, up):
    for attempt in ("cache miss", "cache hit"):
        r = px.query("www.example.test")
        assert r.edns < 0, "client sent no OPT, answer (%s) must have none:\n%s" % (attempt, describe(r))
    # The upstream answer had an OPT; it must not leak through.


def test_edns_hit_after_non_edns_miss(px, up):
    assert px.query("www.example.test").edns < 0
    r = px.query("www.example.test", edns=1232)
    assert r.edns == 0 and r.payload == 1232, "cache hit must add OPT for an EDNS client:\n" + describe(r)
    assert up.count("www.example.test") == 1, up.summary()


def test_upstream_query_advertises_1232(px, up):
    px.query("www.example.test", edns=4096)
    q = up.queries("www.example.test")[0].msg
    assert q.edns == 0 and q.payload == 1232, "upstream query must carry OPT with 1232:\n" + q.to_text()


def test_do_bit_forwarded_and_cached_separately(px, up):
    r = px.query("www.example.test", do=True)
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)
    qs = up.queries("www.example.test")
    assert len(qs) == 1 and qs[0].msg.ednsflags & dns.flags.DO, "DO must be forwarded: %s" % (
        qs[0].msg.to_text() if qs else "no query")
    r = px.query("www.example.test", edns=1232)
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)
    qs = up.queries("www.example.test")
    assert len(qs) == 2, "a non-DO query must not be answered from the DO cache entry: " + up.summary()
    assert not qs[1].msg.ednsflags & dns.flags.DO, "DO must not be set for a non-DO client:\n" + qs[1].msg.to_text()
    px.query("www.example.test", do=True)
    px.query("www.example.test")
    assert up.count("www.example.test") == 2, "both DO and non-DO answers should be cached: " + up.summary()


def test_cd_bit_forwarded(px, up):
    px.query("sec.example.test", cd=True, edns=1232)
    q = up.queries("sec.example.test")[0].msg
    assert q.flags & dns.flags.CD, "CD must be forwarded upstream:\n" + q.to_text()


def test_ad_cleared_by_default(px, up):
    up.set_ad = True
    r = px.query("www.example.test", ad=True, edns=1232)
    assert not r.flags & dns.flags.AD, "AD must be cleared unless trust_ad is set:\n" + describe(r)
    r = px.query("www.example.test", ad=True, edns=1232)
    assert not r.flags & dns.flags.AD, "AD must be cleared on a cache hit too:\n" + describe(r)


def test_ad_kept_with_trust_ad(dproxy, up):
    up.set_ad = True
    px = dproxy(servers=[up], options={"trust_ad": "1"})
    r = px.query("www.example.test", ad=True, edns=1232)
    assert r.flags & dns.flags.AD, "with trust_ad 1 the upstream's AD must be passed:\n" + describe(r)


def test_tcp_garbage_does_not_kill_daemon(px, up):
    with px.tcp_connect() as s:
        s.sendall(b"\x00\x05\x01\x02\x03\x04\x05")     # a 5-byte "message"
        s.settimeout(1.0)
        try:
            data = s.recv(100)
        except (socket.timeout, ConnectionError):
            data = b""
        assert data == b"", "a 5-byte TCP message must get no answer, got %r" % data
    assert px.alive(), "dproxy died on TCP garbage:\n" + px.stderr_text()[-3000:]
    r = px.query("www.example.test", tcp=True)
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)
