"""DNSSEC through dproxy, with real components: zones signed at test time (ldns-signzone),
served by nsd; a validating unbound asks dproxy (which forwards to nsd) and must find
every answer secure, on a miss and from dproxy's cache. The same questions sent by
unbound straight to nsd are the control. DNAME answers are compared with nsd's."""
import dns.flags
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from harness.dnssec import ZONE_TEMPLATE, Validator, sign_zone
from harness.dnsutil import describe, make_query, parse, udp_exchange
from harness.nsd import NsdServer

# One zone denies existence with NSEC, the other with NSEC3.
ZONES = {"sec.test": False, "sec3.test": True}

# (name relative to the zone, type, rcode, addresses in the answer)
CASES = [
    ("www", "A", dns.rcode.NOERROR, ["192.0.2.10"]),           # secure positive
    ("nope", "A", dns.rcode.NXDOMAIN, []),                     # NXDOMAIN
    ("txtonly", "A", dns.rcode.NOERROR, []),                   # NODATA
    ("host.wild", "A", dns.rcode.NOERROR, ["192.0.2.77"]),     # wildcard expansion
    ("host.wild", "AAAA", dns.rcode.NOERROR, []),              # NODATA at a wildcard
    ("c1", "A", dns.rcode.NOERROR, ["192.0.2.10"]),            # CNAME chain in the zone
    ("cnx", "A", dns.rcode.NXDOMAIN, []),                      # CNAME to a missing name
    ("h1.dn", "A", dns.rcode.NOERROR, ["192.0.2.88"]),         # DNAME
]


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """nsd serving the signed zones; yields (nsd, trust anchors)."""
    work = tmp_path_factory.mktemp("signed")
    zones, anchors = [], []
    for origin, nsec3 in ZONES.items():
        text, anchor = sign_zone(work, origin, ZONE_TEMPLATE.format(origin=origin), nsec3)
        zones.append((origin, text))
        anchors.append(anchor)
    server = NsdServer(work / "nsd", zones=zones)
    server.start()
    yield server, anchors
    server.stop()


@pytest.fixture
def validator(tmp_path, signed):
    """Factory: a fresh validating unbound (empty cache) forwarding the zones to `to`."""
    made = []

    def make(to):
        v = Validator(tmp_path / ("unbound%d" % len(made)), to, signed[1], list(ZONES)).start()
        made.append(v)
        return v

    yield make
    for v in made:
        v.stop()


def check_cases(v, zone, what):
    """Asks every case; returns a list of failures (empty when all validated)."""
    bad = []
    for rel, rdtype, rcode, addrs in CASES:
        name = "%s.%s" % (rel, zone)
        r = v.query(name, rdtype)
        got = sorted(rd.to_text() for rr in r.answer if rr.rdtype == dns.rdatatype.from_text(rdtype)
                     for rd in rr)
        problems = []
        if r.rcode() != rcode:
            problems.append("rcode %s, expected %s" % (dns.rcode.to_text(r.rcode()),
                                                       dns.rcode.to_text(rcode)))
        if not r.flags & dns.flags.AD:
            problems.append("AD not set (not validated as secure)")
        if got != addrs:
            problems.append("answer %s, expected %s" % (got, addrs))
        if problems:
            bad.append("%s %s %s: %s\n%s" % (what, name, rdtype, "; ".join(problems), describe(r)))
    if bad:
        bad.append("unbound log tail:\n" + v.log_text()[-4000:])
    return bad


@pytest.mark.parametrize("zone", list(ZONES), ids=["nsec", "nsec3"])
def test_control_unbound_straight_to_nsd(signed, validator, zone):
    v = validator(signed[0].addr)
    bad = check_cases(v, zone, "unbound -> nsd")
    assert not bad, "\n\n".join(bad)


@pytest.mark.parametrize("zone", list(ZONES), ids=["nsec", "nsec3"])
def test_validator_behind_dproxy(signed, validator, dproxy, zone):
    px = dproxy(servers=[signed[0]])
    v1 = validator("%s:%d" % px.addr())
    before = px.stats()
    bad = check_cases(v1, zone, "unbound -> dproxy (miss)")
    assert not bad, "\n\n".join(bad)
    mid = px.stats()
    assert mid["misses"] > before["misses"], "the first round must reach nsd: %r" % mid
    # A fresh unbound has nothing cached: every question reaches dproxy again, and
    # dproxy must answer all of them from its cache, proofs included.
    v2 = validator("%s:%d" % px.addr())
    bad = check_cases(v2, zone, "unbound -> dproxy (cache)")
    assert not bad, "\n\n".join(bad)
    after = px.stats()
    assert after["misses"] == mid["misses"], (
        "the second round must be served from dproxy's cache: misses %d -> %d"
        % (mid["misses"], after["misses"]))
    assert after["hits"] >= mid["hits"] + len(CASES), (
        "expected at least %d cache hits in the second round: %d -> %d"
        % (len(CASES), mid["hits"], after["hits"]))


def answer_set(r):
    """The answer section as a set of (owner, type, rdata), TTLs left out."""
    return {(rr.name.to_text().lower(), dns.rdatatype.to_text(rr.rdtype), rd.to_text().lower())
            for rr in r.answer for rd in rr}


@pytest.mark.parametrize("do", [False, True], ids=["plain", "do"])
@pytest.mark.parametrize("zone", list(ZONES), ids=["nsec", "nsec3"])
def test_dname_kept_as_nsd_sends_it(signed, dproxy, zone, do):
    nsd = signed[0]
    px = dproxy(servers=[nsd])
    name = "h1.dn.%s" % zone
    direct = parse(udp_exchange(nsd.host, nsd.port, make_query(name, "A", do=do).to_wire(), 3.0))
    want = answer_set(direct)
    assert ("dn.%s." % zone, "DNAME", "target.%s." % zone) in want, describe(direct)
    assert any(t == "RRSIG" for _, t, _ in want) == do, describe(direct)
    for round_ in ("miss", "cache"):
        r = px.query(name, "A", do=do)
        assert r.rcode() == dns.rcode.NOERROR, describe(r)
        assert answer_set(r) == want, "%s: dproxy's answer differs from nsd's:\nnsd:\n%s\ndproxy:\n%s" % (
            round_, describe(direct), describe(r))


SIG = "{covered} 13 3 300 20370101000000 20260101000000 4242 example.test. c2lnbmF0dXJl"
NSEC_NEXT = "zz.example.test. A RRSIG NSEC"


def test_proofs_only_for_clients_that_set_do(dproxy, upstream):
    """An upstream that sends RRSIG and NSEC records whatever the query's DO bit (the
    scripted one here; a real one behaves so when the question asks for them): a client
    without DO gets none of them (RFC 4035 3.2.1), a client with DO gets all of them."""
    up = upstream(["www 300 IN A 192.0.2.1"])

    def signed(query, transport):
        resp = up.answer(query)
        name = query.question[0].name
        if resp.answer:
            resp.answer.append(dns.rrset.from_text(name, 300, "IN", "RRSIG",
                                                   SIG.format(covered="A")))
        # The wildcard or denial proof, and its signature.
        resp.authority.append(dns.rrset.from_text("a.example.test.", 60, "IN", "NSEC", NSEC_NEXT))
        resp.authority.append(dns.rrset.from_text("a.example.test.", 60, "IN", "RRSIG",
                                                  SIG.format(covered="NSEC")))
        return resp

    up.handler = signed
    px = dproxy(servers=[up])
    proof = {dns.rdatatype.RRSIG, dns.rdatatype.NSEC}
    for name, rcode in (("www.example.test", dns.rcode.NOERROR),
                        ("nope.example.test", dns.rcode.NXDOMAIN)):
        for round_ in ("miss", "cache"):
            r = px.query(name, "A", edns=1232)
            assert r.rcode() == rcode, describe(r)
            got = [rr for rr in r.answer + r.authority if rr.rdtype in proof]
            assert not got, "%s without DO (%s): no RRSIG or NSEC expected:\n%s" % (
                name, round_, describe(r))
            r = px.query(name, "A", do=True)
            assert r.rcode() == rcode, describe(r)
            types = sorted((dns.rdatatype.to_text(rr.rdtype),
                            dns.rdatatype.to_text(rr.covers)) for rr in r.authority
                           if rr.rdtype in proof)
            assert types == [("NSEC", "TYPE0"), ("RRSIG", "NSEC")], "%s with DO (%s):\n%s" % (
                name, round_, describe(r))
            sigs = [rr for rr in r.answer if rr.rdtype == dns.rdatatype.RRSIG]
            assert bool(sigs) == (rcode == dns.rcode.NOERROR), describe(r)


def section_set(rrsets):
    return {(rr.name.to_text().lower(), dns.rdatatype.to_text(rr.rdtype),
             dns.rdatatype.to_text(rr.covers), rd.to_text().lower())
            for rr in rrsets for rd in rr}


@pytest.mark.parametrize("child", ["signed", "unsigned"])
@pytest.mark.parametrize("zone", list(ZONES), ids=["nsec", "nsec3"])
def test_referral_keeps_ds_or_its_denial(signed, dproxy, zone, child):
    """nsd answers a name below a delegation with a referral: with DO, the DS and its
    RRSIG (signed child) or the NSEC/NSEC3 proof that there is none (unsigned child)
    must reach the client as nsd sent them."""
    nsd = signed[0]
    px = dproxy(servers=[nsd])
    name = "www.%s.%s" % (child, zone)
    direct = parse(udp_exchange(nsd.host, nsd.port, make_query(name, "A", do=True).to_wire(), 3.0))
    proof = {dns.rdatatype.DS, dns.rdatatype.RRSIG, dns.rdatatype.NSEC, dns.rdatatype.NSEC3,
             dns.rdatatype.NS}
    want = section_set(rr for rr in direct.authority if rr.rdtype in proof)
    kinds = {t for _, t, _, _ in want}
    assert "NS" in kinds and ("DS" in kinds) == (child == "signed"), describe(direct)
    assert "RRSIG" in kinds, describe(direct)
    r = px.query(name, "A", do=True)
    assert r.rcode() == direct.rcode(), describe(r)
    got = section_set(rr for rr in r.authority if rr.rdtype in proof)
    assert got == want, "dproxy's referral differs from nsd's:\nnsd:\n%s\ndproxy:\n%s" % (
        describe(direct), describe(r))
