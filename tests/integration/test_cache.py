"""Caching behaviour, observed through a FakeUpstream's query counters."""
import math
import signal
import time

import dns.rcode
import dns.rdatatype
import pytest

from harness.dnsutil import describe, rrset_texts

RECORDS = [
    "www 300 IN A 192.0.2.1",
    "www 300 IN AAAA 2001:db8::1",
    "alias 300 IN CNAME www",
    "short 10 IN A 192.0.2.2",
    "long 3600 IN A 192.0.2.3",
    "mid 300 IN A 192.0.2.4",
]


@pytest.fixture
def up(upstream):
    return upstream(RECORDS)


@pytest.fixture
def px(dproxy, up):
    return dproxy(servers=[up])


def ok(r, want, rdtype="A"):
    assert r.rcode() == dns.rcode.NOERROR and rrset_texts(r, rdtype=rdtype) == want, \
        "expected %s %s, got:\n%s" % (rdtype, want, describe(r))


def test_positive_answer_cached(px, up):
    ok(px.query("www.example.test"), ["192.0.2.1"])
    assert up.count("www.example.test", "A") == 1, up.summary()
    ok(px.query("www.example.test"), ["192.0.2.1"])
    assert up.count("www.example.test", "A") == 1, \
        "second query must be a cache hit (no new upstream query): " + up.summary()


def test_types_cached_separately(px, up):
    ok(px.query("www.example.test", "A"), ["192.0.2.1"])
    ok(px.query("www.example.test", "AAAA"), ["2001:db8::1"], "AAAA")
    assert up.count("www.example.test", "AAAA") == 1, "AAAA must not be served from the A entry: " + up.summary()


def test_cname_answer_cached(px, up):
    r = px.query("alias.example.test")
    ok(r, ["192.0.2.1"])
    assert rrset_texts(r, rdtype="CNAME") == ["www.example.test."], describe(r)
    r = px.query("alias.example.test")
    ok(r, ["192.0.2.1"])
    assert rrset_texts(r, rdtype="CNAME") == ["www.example.test."], "cache hit lost the CNAME:\n" + describe(r)
    assert up.count("alias.example.test") == 1, up.summary()


def test_nxdomain_cached(px, up):
    r = px.query("nope.example.test")
    assert r.rcode() == dns.rcode.NXDOMAIN, describe(r)
    r = px.query("nope.example.test")
    assert r.rcode() == dns.rcode.NXDOMAIN, describe(r)
    assert any(rr.rdtype == dns.rdatatype.SOA for rr in r.authority), \
        "cached NXDOMAIN must carry the SOA:\n" + describe(r)
    assert up.count("nope.example.test") == 1, "NXDOMAIN must be cached: " + up.summary()


def test_nodata_cached(px, up):
    r = px.query("www.example.test", "MX")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer, describe(r)
    r = px.query("www.example.test", "MX")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer, describe(r)
    assert any(rr.rdtype == dns.rdatatype.SOA for rr in r.authority), \
        "cached NODATA must carry the SOA:\n" + describe(r)
    assert up.count("www.example.test", "MX") == 1, "NODATA must be cached: " + up.summary()


def test_cache_hit_restores_client_case_and_id(px, up):
    ok(px.query("www.example.test", qid=1111), ["192.0.2.1"])
    r = px.query("WwW.ExAmPlE.TeSt", qid=0xBEEF)
    assert r.id == 0xBEEF, "cache hit must carry the client's ID 0xBEEF, got %#x" % r.id
    assert r.question[0].name.to_text() == "WwW.ExAmPlE.TeSt.", \
        "cache hit must echo the client's spelling of the qname:\n" + describe(r)
    ok(r, ["192.0.2.1"])
    assert up.count("www.example.test") == 1, "name match in the cache is case-insensitive: " + up.summary()
    r = px.query("WWW.EXAMPLE.TEST", qid=7)
    assert r.id == 7 and r.question[0].name.to_text() == "WWW.EXAMPLE.TEST.", describe(r)


def test_cache_miss_answer_has_client_case_and_id(px, up):
    # The upstream sees dproxy's own ID (and maybe 0x20 case); the client
    # must still get its own ID and spelling back.
    r = px.query("MiD.Example.Test", qid=0x4242)
    assert r.id == 0x4242, "answer must carry the client's ID, got %#x" % r.id
    assert r.question[0].name.to_text() == "MiD.Example.Test.", describe(r)
    ok(r, ["192.0.2.4"])


def test_ttl_counts_down(px, up):
    # The cache counts whole seconds: over 1 s later the TTL is lower by at least 1 and
    # by at most the seconds (rounded up) that passed from the first ask to the answer.
    t0 = time.monotonic()
    t1 = px.query("mid.example.test").answer[0].ttl
    time.sleep(1.1)
    r = px.query("mid.example.test")
    took = math.ceil(time.monotonic() - t0)
    t2 = r.answer[0].ttl
    assert 1 <= t1 - t2 <= took, "after ~1 s the TTL should be 1 to %d lower: %d then %d" % (
        took, t1, t2)
    assert up.count("mid.example.test") == 1, up.summary()


def test_min_ttl_clamp(dproxy, up):
    px = dproxy(servers=[up], options={"min_ttl": "100"})
    px.query("short.example.test")
    r = px.query("short.example.test")
    ok(r, ["192.0.2.2"])
    assert 95 <= r.answer[0].ttl <= 100, "upstream TTL 10 with min_ttl 100 must be raised to ~100:\n" + describe(r)
    assert up.count("short.example.test") == 1, up.summary()


def test_max_ttl_clamp(dproxy, up):
    px = dproxy(servers=[up], options={"max_ttl": "50"})
    r1 = px.query("long.example.test")
    ok(r1, ["192.0.2.3"])
    assert r1.answer[0].ttl <= 50, "upstream TTL 3600 with max_ttl 50 must be capped:\n" + describe(r1)
    r2 = px.query("long.example.test")
    assert 45 <= r2.answer[0].ttl <= 50, "cached TTL must be capped at 50:\n" + describe(r2)
    assert up.count("long.example.test") == 1, up.summary()


def _poll_until_upstream_asked(px, up, name, rdtype, before, limit):
    """Query every 0.2 s until the upstream sees a new query; seconds or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        px.query(name, rdtype, expect_answer=False, timeout=1.0)
        if up.count(name, rdtype) > before:
            return time.monotonic() - t0
        time.sleep(0.2)
    return None


def _negative_cached_for(px, up, name, expect_ttl):
    r = px.query(name)
    assert r.rcode() == dns.rcode.NXDOMAIN, describe(r)
    t_first = time.monotonic()
    soa = [rr for rr in r.authority if rr.rdtype == dns.rdatatype.SOA]
    assert soa and soa[0].ttl <= expect_ttl, \
        "negative answer's SOA TTL must be <= %d:\n%s" % (expect_ttl, describe(r))
    r = px.query(name)
    assert r.rcode() == dns.rcode.NXDOMAIN and up.count(name) == 1, \
        "NXDOMAIN must be cached right after the first answer: " + up.summary()
    took = _poll_until_upstream_asked(px, up, name, "A", 1, expect_ttl + 3)
    assert took is not None, "negative entry should expire after %ds, upstream not asked again within %ds: %s" % (
        expect_ttl, expect_ttl + 3, up.summary())
    age = time.monotonic() - t_first
    assert age >= expect_ttl - 1.0, "negative entry expired too early (%.1fs, TTL %d)" % (age, expect_ttl)


def test_neg_ttl_cap(dproxy, up):
    # SOA TTL 300 and MINIMUM 300 would give 300 s; neg_ttl 2 caps it.
    up.set_records(RECORDS, soa="@ 300 IN SOA ns1 hostmaster 1 3600 900 604800 300")
    px = dproxy(servers=[up], options={"neg_ttl": "2"})
    _negative_cached_for(px, up, "gone.example.test", 2)


@pytest.mark.parametrize("soa", [
    "@ 300 IN SOA ns1 hostmaster 1 3600 900 604800 2",   # MINIMUM smaller
    "@ 2 IN SOA ns1 hostmaster 1 3600 900 604800 300",   # SOA TTL smaller
], ids=["soa-minimum", "soa-ttl"])
def test_negative_ttl_is_min_of_soa_ttl_and_minimum(dproxy, up, soa):
    up.set_records(RECORDS, soa=soa)
    px = dproxy(servers=[up])
    _negative_cached_for(px, up, "gone.example.test", 2)


def test_servfail_not_cached_long(px, up):
    up.mode = "servfail"
    r = px.query("www.example.test")
    assert r.rcode() == dns.rcode.SERVFAIL, describe(r)
    asked = up.count("www.example.test")
    assert asked >= 1
    up.mode = "normal"
    deadline = time.monotonic() + 8
    r = None
    while time.monotonic() < deadline:
        r = px.query("www.example.test", expect_answer=False, timeout=1.0)
        if r is not None and r.rcode() == dns.rcode.NOERROR:
            break
        time.sleep(0.25)
    assert r is not None and r.rcode() == dns.rcode.NOERROR and rrset_texts(r, rdtype="A") == ["192.0.2.1"], \
        "SERVFAIL must not be cached for more than a few seconds; still failing after 8s:\n" + describe(r)
    assert up.count("www.example.test") > asked, up.summary()


def test_sighup_keeps_cache(px, up):
    ok(px.query("www.example.test"), ["192.0.2.1"])
    ok(px.query("www.example.test", "AAAA"), ["2001:db8::1"], "AAAA")
    before = up.count()
    px.signal(signal.SIGHUP)
    time.sleep(0.3)
    assert px.alive(), "dproxy died on SIGHUP:\n" + px.stderr_text()[-3000:]
    ok(px.query("www.example.test"), ["192.0.2.1"])
    ok(px.query("www.example.test", "AAAA"), ["2001:db8::1"], "AAAA")
    assert up.count() == before, "cache must survive SIGHUP (0 new upstream queries): " + up.summary()


def test_any_over_udp_is_minimal_and_over_tcp_forwarded(px, up):
    # RFC 8482: over UDP an ANY question gets one synthesized HINFO and never
    # reaches the upstream (no amplification); over TCP it is forwarded and cached.
    r = px.query("www.example.test", "ANY")
    assert r.rcode() == dns.rcode.NOERROR, describe(r)
    assert rrset_texts(r, rdtype="HINFO") == ['"rfc8482" ""'], describe(r)
    assert up.count("www.example.test", "ANY") == 0, "ANY over UDP must not go upstream: " + up.summary()
    r = px.query("www.example.test", "ANY", tcp=True)
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"] and rrset_texts(r, rdtype="AAAA") == ["2001:db8::1"], \
        "ANY over TCP must be forwarded as-is and return what the upstream gave:\n" + describe(r)
    assert up.count("www.example.test", "ANY") == 1, "upstream must see qtype ANY: " + up.summary()
    r = px.query("www.example.test", "ANY", tcp=True)
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)
    assert up.count("www.example.test", "ANY") == 1, "ANY answer must be cached: " + up.summary()
