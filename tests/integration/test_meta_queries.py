"""Queries dproxy answers itself and never forwards: the CHAOS class (REFUSED), meta and
obsolete query types (TSIG, TKEY, MAILA, MAILB: NOTIMP), and opcodes other than QUERY
(NOTIMP without RA or CD)."""
import dns.flags
import dns.opcode
import dns.rcode
import dns.rdataclass
import pytest

from harness.dnsutil import (build_header, build_question, describe, header, make_query, parse,
                             rcode_of, rrset_texts)

RECORDS = ["www 300 IN A 192.0.2.1"]


@pytest.fixture
def up(upstream):
    return upstream(RECORDS)


@pytest.fixture
def px(dproxy, up):
    return dproxy(servers=[up])


def still_forwards(px, up):
    """The upstream works and would have seen a forwarded query."""
    r = px.query("www.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)
    # Only the control query (perhaps retransmitted) may have reached the upstream.
    seen = {(q.name, q.qtype, q.msg.question[0].rdclass) for q in up.queries()}
    assert seen == {("www.example.test.", "A", dns.rdataclass.IN)}, (
        "only the control query must reach the upstream: " + up.summary())


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize("name,rdtype", [("version.bind", "TXT"), ("hostname.bind", "TXT"),
                                         ("id.server", "TXT"), ("www.example.test", "A")])
def test_chaos_class_refused_locally(px, up, name, rdtype, tcp):
    q = make_query(name, rdtype, rdclass="CH")
    wire = px.query_raw(q.to_wire(), tcp=tcp, timeout=2.0)
    assert wire is not None, "no answer to CH %s %s" % (name, rdtype)
    r = parse(wire)
    assert r.id == q.id and r.flags & dns.flags.QR, describe(r)
    assert r.rcode() == dns.rcode.REFUSED, "CHAOS must be refused locally:\n" + describe(r)
    assert not r.answer, describe(r)
    assert up.count() == 0, "a CHAOS query must never be forwarded: " + up.summary()
    still_forwards(px, up)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize("rdtype", ["TSIG", "TKEY", "MAILA", "MAILB"])
def test_meta_types_notimp_locally(px, up, rdtype, tcp):
    for do in (False, True):
        r = px.query("www.example.test", rdtype, tcp=tcp, do=do)
        assert r.rcode() == dns.rcode.NOTIMP, "%s (DO=%s) must get NOTIMP:\n%s" % (
            rdtype, do, describe(r))
        assert not r.answer, describe(r)
    assert up.count() == 0, "a %s query must never be forwarded: %s" % (rdtype, up.summary())
    still_forwards(px, up)


@pytest.mark.parametrize("opcode", [dns.opcode.IQUERY, dns.opcode.STATUS, dns.opcode.NOTIFY,
                                    dns.opcode.UPDATE, 3, 15],
                         ids=["IQUERY", "STATUS", "NOTIFY", "UPDATE", "op3", "op15"])
def test_unknown_opcode_notimp_without_ra_or_cd(px, up, opcode):
    # RD and CD set by the client; the answer keeps the ID, opcode and RD, claims no RA
    # (recursion is not on offer for this opcode) and carries no CD.
    wire = build_header(0x5151, flags=dns.flags.RD | dns.flags.CD, opcode=opcode) \
        + build_question("example.test", "SOA")
    resp = px.query_raw(wire, timeout=2.0)
    assert resp is not None, "no answer to opcode %d" % opcode
    qid, flags, *_ = header(resp)
    assert qid == 0x5151 and flags & dns.flags.QR
    assert rcode_of(resp) == dns.rcode.NOTIMP, "opcode %d: rcode %d" % (opcode, rcode_of(resp))
    assert (flags >> 11) & 0xF == opcode, "the opcode must be echoed"
    assert not flags & dns.flags.RA, "RA must be clear in the NOTIMP answer (flags %#06x)" % flags
    assert not flags & dns.flags.CD, "CD must be clear in the NOTIMP answer (flags %#06x)" % flags
    assert up.count() == 0, "nothing must be forwarded: " + up.summary()
