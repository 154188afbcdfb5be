"""Record types end to end: client -> dproxy -> nsd (a real authoritative server)."""
import re
import time

import dns.flags
import dns.rcode
import dns.rdatatype
import pytest

from harness.cli import dig, kdig
from harness.dnsutil import describe, rrset_texts
from harness.nsd import BIG_TXT, HUGE_TXT


@pytest.fixture
def px(dproxy, nsd):
    return dproxy(servers=[nsd])


def answer_of(px, name, rdtype, **kw):
    r = px.query(name, rdtype, **kw)
    assert r.rcode() == dns.rcode.NOERROR, "expected NOERROR for %s %s, got:\n%s" % (
        name, rdtype, describe(r))
    return r


def test_a(px):
    r = answer_of(px, "www.example.test", "A")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.10"], describe(r)
    assert r.flags & dns.flags.QR and r.flags & dns.flags.RA, "expected QR and RA set:\n" + describe(r)


def test_a_multiple_records(px):
    r = answer_of(px, "multi.example.test", "A")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.21", "192.0.2.22", "192.0.2.23"], describe(r)


def test_aaaa(px):
    r = answer_of(px, "www.example.test", "AAAA")
    assert rrset_texts(r, rdtype="AAAA") == ["2001:db8::10"], describe(r)


def test_cname_chain_of_three(px):
    r = answer_of(px, "c1.example.test", "A")
    got = {(rr.name.to_text().lower(), dns.rdatatype.to_text(rr.rdtype), rd.to_text().lower())
           for rr in r.answer for rd in rr}
    want = {("c1.example.test.", "CNAME", "c2.example.test."),
            ("c2.example.test.", "CNAME", "c3.example.test."),
            ("c3.example.test.", "CNAME", "www.example.test."),
            ("www.example.test.", "A", "192.0.2.10")}
    assert got == want, "expected the whole CNAME chain c1->c2->c3->www plus the A record:\n" + describe(r)


def test_mx(px):
    r = answer_of(px, "example.test", "MX")
    assert rrset_texts(r, rdtype="MX") == ["10 mail.example.test.", "20 mail2.example.test."], describe(r)


def test_txt_small(px):
    r = answer_of(px, "txt.example.test", "TXT")
    assert rrset_texts(r, rdtype="TXT") == ['"hello world"'], describe(r)


def test_srv(px):
    r = answer_of(px, "_sip._tcp.example.test", "SRV")
    assert rrset_texts(r, rdtype="SRV") == ["10 60 5060 sip.example.test."], describe(r)


def test_ptr(px):
    r = answer_of(px, "10.2.0.192.in-addr.arpa", "PTR")
    assert rrset_texts(r, rdtype="PTR") == ["www.example.test."], describe(r)


def test_nxdomain(px):
    r = px.query("nope.example.test", "A")
    assert r.rcode() == dns.rcode.NXDOMAIN, "expected NXDOMAIN:\n" + describe(r)
    soa = [rr for rr in r.authority if rr.rdtype == dns.rdatatype.SOA]
    assert soa, "expected the zone's SOA in the authority section:\n" + describe(r)
    assert soa[0].ttl <= 60, "negative TTL must be min(SOA TTL 300, MINIMUM 60):\n" + describe(r)


def test_nodata(px):
    r = px.query("www.example.test", "TXT")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer, "expected NODATA:\n" + describe(r)
    assert any(rr.rdtype == dns.rdatatype.SOA for rr in r.authority), \
        "expected SOA in authority of a NODATA answer:\n" + describe(r)


def test_big_txt_udp_without_edns_truncated_then_tcp_full(px):
    r = px.query("bigtxt.example.test", "TXT")          # UDP, no EDNS
    assert r.flags & dns.flags.TC, "an ~800-byte answer to a UDP client without EDNS must have TC=1:\n" + describe(r)
    assert len(r.wire) <= 512, "UDP answer without EDNS is %d bytes, limit 512" % len(r.wire)
    assert r.edns < 0, "client sent no OPT, answer must have none:\n" + describe(r)
    r = px.query("bigtxt.example.test", "TXT", tcp=True)
    assert not r.flags & dns.flags.TC, describe(r)
    assert rrset_texts(r, rdtype="TXT") == sorted(BIG_TXT), "TCP must give the whole TXT RRset:\n" + describe(r)


def test_big_txt_udp_with_edns_fits(px):
    r = answer_of(px, "bigtxt.example.test", "TXT", edns=1232)
    assert not r.flags & dns.flags.TC, "an ~800-byte answer fits in 1232:\n" + describe(r)
    assert rrset_texts(r, rdtype="TXT") == sorted(BIG_TXT), describe(r)


def test_huge_txt_udp_capped_at_1232_then_tcp_full(px):
    # ~2100 bytes: nsd truncates to dproxy, dproxy must fetch it over TCP,
    # then truncate for a UDP client advertising 4096 (cap min(4096, 1232)).
    r = px.query("hugetxt.example.test", "TXT", edns=4096)
    assert r.flags & dns.flags.TC, "a ~2100-byte answer over UDP must be truncated:\n" + describe(r)
    assert len(r.wire) <= 1232, "UDP answer is %d bytes, limit min(4096, 1232)" % len(r.wire)
    r = px.query("hugetxt.example.test", "TXT", tcp=True, edns=4096)
    assert not r.flags & dns.flags.TC, describe(r)
    assert rrset_texts(r, rdtype="TXT") == sorted(HUGE_TXT), describe(r)


def test_ttl_counts_down(px):
    r1 = answer_of(px, "mail.example.test", "A")
    t1 = r1.answer[0].ttl
    assert 290 <= t1 <= 300, "expected TTL close to 300:\n" + describe(r1)
    time.sleep(2.1)
    r2 = answer_of(px, "mail.example.test", "A")
    t2 = r2.answer[0].ttl
    assert 1 <= t1 - t2 <= 3, "after ~2 s the cached TTL should be ~2 lower: %d then %d" % (t1, t2)


def test_no_case_randomization_leaks_to_client(px):
    # dproxy randomizes the qname's case towards upstreams (0x20) and nsd
    # echoes it, also in compressed owner and rdata names.  The client must
    # see its own spelling in the question and no random case anywhere.
    for name, rdtype in (("example.test", "MX"), ("c1.example.test", "A"), ("bigtxt.example.test", "TXT"),
                         ("nope.example.test", "A")):
        r = px.query(name, rdtype, edns=1232)
        mixed = ["%s %s" % (rr.name, rd) for sec in (r.answer, r.authority, r.additional)
                 for rr in sec for rd in rr
                 if rr.name.to_text() != rr.name.to_text().lower() or rd.to_text() != rd.to_text().lower()]
        assert not mixed, "answer to %s %s shows upstream-side random case:\n%s" % (name, rdtype, "\n".join(mixed))
        assert r.question[0].name.to_text() == name + ".", describe(r)


def test_ipv6_listener(dproxy, nsd):
    px = dproxy(servers=[nsd], listen6=True)
    r = px.query("www.example.test", "AAAA", v6=True)
    assert rrset_texts(r, rdtype="AAAA") == ["2001:db8::10"], describe(r)
    r = px.query("www.example.test", "A", v6=True, tcp=True)
    assert rrset_texts(r, rdtype="A") == ["192.0.2.10"], describe(r)


# ------------------------------------------------------------------ real clients
def _dig(px, *args):
    res = dig("@127.0.0.1", "-p", str(px.port), "+tries=1", "+time=3", *args)
    return res.stdout + res.stderr


def test_dig_short_a(px):
    out = _dig(px, "+short", "www.example.test", "A")
    assert out.split() == ["192.0.2.10"], "dig +short output:\n" + out


def test_dig_falls_back_to_tcp_for_big_txt(px):
    # dig without EDNS gets TC=1 over UDP and retries over TCP by itself.
    out = _dig(px, "+noedns", "bigtxt.example.test", "TXT")
    assert "status: NOERROR" in out, out
    assert "Truncated, retrying in TCP mode" in out, "expected dig to see TC=1 over UDP:\n" + out
    assert len(re.findall(r"^bigtxt\.example\.test\.\s+\d+\s+IN\s+TXT", out, re.M | re.I)) == len(BIG_TXT), out


def test_dig_tcp_cname_chain(px):
    out = _dig(px, "+tcp", "+noall", "+answer", "c1.example.test", "A")
    assert re.search(r"^www\.example\.test\.\s+\d+\s+IN\s+A\s+192\.0\.2\.10$", out, re.M | re.I), out
    assert len(re.findall(r"\sCNAME\s", out)) == 3, "expected 3 CNAMEs:\n" + out


def test_kdig_nxdomain_and_mx(px):
    res = kdig("@127.0.0.1", "-p", str(px.port), "+retry=0", "+time=3", "nope.example.test", "A")
    assert "status: NXDOMAIN" in res.stdout, res.stdout + res.stderr
    res = kdig("@127.0.0.1", "-p", str(px.port), "+retry=0", "+time=3", "+short", "example.test", "MX")
    assert sorted(res.stdout.lower().split("\n")) == sorted(["10 mail.example.test.", "20 mail2.example.test.", ""]), \
        res.stdout + res.stderr
