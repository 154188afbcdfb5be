"""Upstreams that misbehave for some questions only: EDNS rejected with FORMERR
(RFC 6891 7), a 0x20-capable server that folds the case of one name, and the
server list rebuilt (resolv file rewritten) while answers are in flight."""
import struct
import threading
import time

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rrset
import pytest

from harness.dnsutil import describe, encode_name, rrset_texts
from harness.tools import wait_until, write_file

LONG = "abcdefghijklmnopqrstuvwxyz.example.test"
RECORDS = ["www 300 IN A 192.0.2.1", "mail 300 IN A 192.0.2.2", "slow 300 IN A 192.0.2.3",
           "bad 300 IN A 192.0.2.4", "folded 300 IN A 192.0.2.5",
           "abcdefghijklmnopqrstuvwxyz 300 IN A 192.0.2.26"]


@pytest.fixture
def up(upstream):
    return upstream(RECORDS)


def qname_text(rec):
    return rec.msg.question[0].name.to_text()


def upstream_row(px, addr):
    """ctl stats rows of the upstream at `addr`, as a dict (None if not listed)."""
    st = px.stats()
    for k, v in st.items():
        if k.startswith("upstream.") and k.endswith(".addr") and v == addr:
            prefix = k[: -len("addr")]
            return {kk[len(prefix):]: vv for kk, vv in st.items() if kk.startswith(prefix)}
    return None


# ---------------------------------------------------------------- EDNS fallback

def no_edns_server(up):
    """A server from before EDNS: FORMERR (without OPT) to any query with an OPT record."""
    def handler(query, transport):
        if query.edns >= 0:
            resp = dns.message.make_response(query, recursion_available=True)
            resp.use_edns(False)
            resp.set_rcode(dns.rcode.FORMERR)
            return resp
        return up.DEFAULT
    up.handler = handler


@pytest.mark.parametrize("client_edns", [None, 1232])
def test_formerr_to_edns_retried_without_edns_and_remembered(dproxy, up, client_edns):
    no_edns_server(up)
    px = dproxy(servers=[up])
    r = px.query("www.example.test", edns=client_edns)
    assert r.rcode() == dns.rcode.NOERROR and rrset_texts(r, rdtype="A") == ["192.0.2.1"], \
        "FORMERR to EDNS must be retried without EDNS (RFC 6891 7)\n" + describe(r)
    if client_edns is not None:
        assert r.edns == 0, "the client still gets EDNS from dproxy (hop by hop)\n" + describe(r)
    sent = [q.msg.edns for q in up.queries("www.example.test")]
    assert sent == [0, -1], "expected one query with EDNS, then one without: %s" % sent
    # Remembered for the server: the next question goes without EDNS at once.
    r = px.query("mail.example.test", edns=client_edns)
    assert rrset_texts(r, rdtype="A") == ["192.0.2.2"], describe(r)
    sent = [q.msg.edns for q in up.queries("mail.example.test")]
    assert sent == [-1], "the server's lack of EDNS is remembered: %s" % sent
    assert px.stderr_text().count("rejects EDNS") == 1, px.stderr_text()[-2000:]


def test_formerr_without_edns_is_still_a_failure(dproxy, up):
    """A server that answers FORMERR to everything gets one retry, not a loop."""
    def handler(query, transport):
        resp = dns.message.make_response(query, recursion_available=True)
        resp.use_edns(False)
        resp.set_rcode(dns.rcode.FORMERR)
        return resp
    up.handler = handler
    px = dproxy(servers=[up])
    r = px.query("www.example.test", timeout=5)
    assert r.rcode() in (dns.rcode.FORMERR, dns.rcode.SERVFAIL), describe(r)
    assert up.count("www.example.test") == 2, up.summary()


# ---------------------------------------------------------------- 0x20 fallback

def test_case_folded_for_one_name_retried_without_0x20(dproxy, up):
    # The server echoes the case of every question but one name (as some do for names
    # they synthesize or forward elsewhere): that question is asked again in lowercase.
    def handler(query, transport):
        name = query.question[0].name
        if name.to_text().lower() == "folded.example.test.":
            resp = up.answer(query)
            q = resp.question[0]
            resp.question = [dns.rrset.RRset(dns.name.from_text(name.to_text().lower()),
                                             q.rdclass, q.rdtype)]
            return resp
        return up.DEFAULT
    up.handler = handler
    px = dproxy(servers=[up])
    r = px.query(LONG)
    assert rrset_texts(r, rdtype="A") == ["192.0.2.26"], describe(r)
    assert qname_text(up.queries(LONG)[0]) != LONG + ".", "0x20 is on for this server"
    r = px.query("folded.example.test", timeout=5)
    assert r.rcode() == dns.rcode.NOERROR and rrset_texts(r, rdtype="A") == ["192.0.2.5"], \
        "a case-folded answer must lead to a retry without 0x20, not SERVFAIL\n" + describe(r)
    sent = [qname_text(q) for q in up.queries("folded.example.test")]
    assert 2 <= len(sent) <= 3 and sent[-1] == "folded.example.test.", \
        "expected the question again in lowercase after the folded answer: %s" % sent
    assert px.stats()["drop_case"] >= 1
    # Per-server detection is kept: other names still go with random case.
    px.query("mail.example.test")
    up.clear()
    r = px.query("x" + LONG[1:], expect_answer=True)
    assert r.rcode() == dns.rcode.NXDOMAIN, describe(r)
    assert qname_text(up.queries("x" + LONG[1:])[0]) != "x" + LONG[1:] + ".", \
        "0x20 must stay on for the server: %s" % up.summary()
    assert "0x20 is off" not in px.stderr_text()


# ---------------------------------------------------------------- stable identities
# The resolv file names addresses only (port 53): these upstreams listen on port 53
# of addresses no other test here uses.

def on_port_53(upstream, host):
    try:
        return upstream(RECORDS, host=host, port=53)
    except OSError as e:
        pytest.skip("cannot bind %s:53 for a resolv.conf upstream: %s" % (host, e))


def test_answer_after_resolvfile_rewrite_charged_to_its_server(dproxy, upstream):
    b = on_port_53(upstream, "127.0.0.241")
    c = on_port_53(upstream, "127.0.0.242")
    c.mode = "silent"
    b.delays = {"slow.example.test.": 1500}
    px = dproxy(args=["-v"])
    resolv = px.options["resolvfile"]
    write_file(resolv, "nameserver %s\n" % b.host)
    assert wait_until(lambda: upstream_row(px, b.addr) is not None, 3), px.stats()
    assert rrset_texts(px.query("www.example.test"), rdtype="A") == ["192.0.2.1"]
    # A slow question to b; while it is in flight, the list is rebuilt with c first.
    t0 = time.monotonic()
    got = {}
    th = threading.Thread(target=lambda: got.update(r=px.query("slow.example.test", timeout=5)))
    th.start()
    assert b.wait_count(1, "slow.example.test", timeout=2) >= 1
    write_file(resolv, "nameserver %s\nnameserver %s\n" % (c.host, b.host))
    assert wait_until(lambda: upstream_row(px, c.addr) is not None, 1.4), px.stats()
    assert time.monotonic() - t0 < 1.5, "the rewrite must be seen before b answers"
    th.join(timeout=6)
    r = got.get("r")
    assert r is not None and rrset_texts(r, rdtype="A") == ["192.0.2.3"], describe(r)
    rb, rc = upstream_row(px, b.addr), upstream_row(px, c.addr)
    assert rc["answers"] == 0, "c never answers, yet was charged with an answer: %s" % rc
    assert rb["answers"] == 2, "b's answers must be charged to b: %s" % rb
    assert px.alive()


def malformed_cname_answer(query):
    """An answer whose CNAME RDATA is longer than the name in it: it parses, but cannot
    be rebuilt, so dproxy calls it unusable (and logs that at debug level)."""
    target = encode_name("www.example.test") + b"\x00"
    head = struct.pack("!HHHHHH", query.id, 0x8180, 1, 1, 0, 0)
    q = query.question[0]
    question = q.name.to_wire() + struct.pack("!HH", q.rdtype, q.rdclass)
    rr = b"\xc0\x0c" + struct.pack("!HHIH", 5, 1, 300, len(target)) + target
    return head + question + rr


def test_unusable_answer_from_a_removed_server_with_debug_logging(dproxy, upstream):
    """The answer comes from a server that left the list (and had the last position):
    with -v the daemon used to index past the end of the list and abort."""
    a = on_port_53(upstream, "127.0.0.243")
    b = on_port_53(upstream, "127.0.0.244")

    def a_drops_bad(query, transport):
        return None if query.question[0].name.to_text().lower() == "bad.example.test." \
            else a.DEFAULT
    a.handler = a_drops_bad
    b.handler = lambda query, transport: malformed_cname_answer(query)
    b.delay_ms = 1200
    px = dproxy(args=["-v"])
    resolv = px.options["resolvfile"]
    write_file(resolv, "nameserver %s\nnameserver %s\n" % (a.host, b.host))
    assert wait_until(lambda: upstream_row(px, b.addr) is not None, 3), px.stats()
    got = {}
    th = threading.Thread(target=lambda: got.update(r=px.query("bad.example.test", timeout=6,
                                                               expect_answer=False)))
    th.start()
    # a is asked first (configuration order), times out, then b gets the question.
    assert b.wait_count(1, "bad.example.test", timeout=3) >= 1, a.summary() + b.summary()
    write_file(resolv, "nameserver %s\n" % a.host)
    assert wait_until(lambda: upstream_row(px, b.addr) is None, 1.1), px.stats()
    th.join(timeout=7)
    assert px.alive(), "dproxy died:\n" + px.stderr_text()[-3000:]
    assert "unusable answer from upstream %s" % b.addr in px.stderr_text(), \
        px.stderr_text()[-3000:]
    r = got.get("r")
    assert r is not None and r.rcode() == dns.rcode.SERVFAIL, describe(r)
    assert rrset_texts(px.query("www.example.test"), rdtype="A") == ["192.0.2.1"]
