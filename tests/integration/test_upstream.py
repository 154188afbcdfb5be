"""Forwarding: IDs/ports, answer validation (anti-spoofing), merging,
truncation retry over TCP, retransmission and failover."""
import random
import select
import signal
import socket
import time

import dns.flags
import dns.name
import dns.rcode
import dns.rrset
import pytest

from harness.dnsutil import describe, make_query, parse, rrset_texts, tcp_frame, tcp_recv_msg
from harness.upstream import POISON_V4

RECORDS = ["www 300 IN A 192.0.2.1", "www 300 IN AAAA 2001:db8::1",
           "big 300 IN TXT " + " ".join(['"%s"' % (c * 200) for c in "pqrs"])]
RECORDS += ["r%d 300 IN A 192.0.2.%d" % (i, 100 + i) for i in range(6)]


@pytest.fixture
def up(upstream):
    return upstream(RECORDS)


@pytest.fixture
def px(dproxy, up):
    return dproxy(servers=[up])


def good(msg):
    """The genuine, complete answer for www.example.test A."""
    return (msg is not None and msg.rcode() == dns.rcode.NOERROR and not msg.flags & dns.flags.TC
            and rrset_texts(msg, rdtype="A") == ["192.0.2.1"])


def has_poison(msg):
    return msg is not None and any(POISON_V4 in rd.to_text() for rr in msg.answer for rd in rr)


def test_random_id_and_source_port_per_query(px, up):
    names = ["r%d.example.test" % i for i in range(6)]
    for n in names:
        r = px.query(n)
        assert rrset_texts(r, rdtype="A"), describe(r)
    recs = [up.queries(n)[0] for n in names]
    ports = {r.src[1] for r in recs}
    ids = {r.qid for r in recs}
    assert len(ports) >= 5, "each upstream query should use a random source port, saw %s" % recs
    assert len(ids) >= 5, "each upstream query should use a random ID, saw %s" % recs


def test_upstream_query_has_rd_and_one_question(px, up):
    px.query("www.example.test")
    q = up.queries("www.example.test")[0].msg
    assert q.flags & dns.flags.RD and len(q.question) == 1 and not q.flags & dns.flags.QR, q.to_text()


@pytest.mark.parametrize("mode", ["wrong_id", "wrong_port", "wrong_addr", "wrong_question", "wrong_qtype"])
def test_spoofed_answer_dropped_correct_one_accepted(px, up, mode):
    # The upstream first sends a poisoned answer that fails one check, then
    # 150 ms later the genuine one.  Only the genuine one may be used.
    up.mode = mode
    up.also_correct_after_ms = 150
    r = px.query("www.example.test", timeout=4)
    assert not has_poison(r), "spoofed answer (%s) reached the client:\n%s" % (mode, describe(r))
    assert r.rcode() == dns.rcode.NOERROR and rrset_texts(r, rdtype="A") == ["192.0.2.1"], \
        "expected the genuine answer after the spoofed one (%s):\n%s" % (mode, describe(r))
    asked = up.count("www.example.test")
    up.mode = "normal"
    r = px.query("www.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], "cache holds poisoned data:\n" + describe(r)
    assert up.count("www.example.test") == asked, "genuine answer should have been cached: " + up.summary()
    if mode == "wrong_question":
        # The spoof claimed evil.example.test = 6.6.6.6: that must not be cached.
        r = px.query("evil.example.test")
        assert not has_poison(r), "answer for the wrong question was cached:\n" + describe(r)
        assert up.count("evil.example.test") >= 1, "evil.example.test must be asked upstream: " + up.summary()


def test_only_spoofed_answers_then_recovery(px, up):
    # Every answer has a wrong ID: the client must never see the poison; once
    # the upstream behaves, the genuine answer is served and cached.
    up.mode = "wrong_id"
    r = px.query("www.example.test", timeout=3, expect_answer=False)
    assert not has_poison(r), "answer with a wrong ID was accepted:\n" + describe(r)
    assert r is None or r.rcode() == dns.rcode.SERVFAIL, \
        "expected no answer or SERVFAIL while only spoofed answers come back:\n" + describe(r)
    up.mode = "normal"
    # All upstream answers failed, so dproxy may have declared the link down
    # (link-loss handling); SIGUSR1 is the documented "link up".
    px.signal(signal.SIGUSR1)
    r = px.wait_answer("www.example.test", timeout=6, until=good)
    assert good(r), "expected the genuine answer within 6 s once the upstream behaves:\n" + describe(r)
    n = up.count("www.example.test")
    r = px.query("www.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"] and up.count("www.example.test") == n, \
        "genuine answer should be cached: " + up.summary()


def test_merge_identical_inflight_queries(px, up):
    up.delays = {"www.example.test.": 200}
    socks, want = [], {}
    ids = random.sample(range(1, 0xFFFF), 20)
    try:
        for qid in ids:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setblocking(False)
            socks.append(s)
            want[s.fileno()] = qid
        wires = [make_query("www.example.test", "A", qid=qid).to_wire() for qid in ids]
        for s, w in zip(socks, wires):
            s.sendto(w, px.addr())
        got = {}
        deadline = time.monotonic() + 4
        while len(got) < len(socks) and time.monotonic() < deadline:
            ready, _, _ = select.select([s for s in socks if s.fileno() not in got], [], [],
                                        max(0.0, deadline - time.monotonic()))
            for s in ready:
                got[s.fileno()] = parse(s.recv(65535))
    finally:
        for s in socks:
            s.close()
    assert len(got) == 20, "only %d of 20 concurrent clients got an answer" % len(got)
    for fd, msg in got.items():
        assert msg.id == want[fd], "client with ID %d got ID %d" % (want[fd], msg.id)
        assert rrset_texts(msg, rdtype="A") == ["192.0.2.1"], describe(msg)
    assert up.count("www.example.test", "A") == 1, \
        "20 identical in-flight questions must be merged into 1 upstream query: " + up.summary()


def test_upstream_truncation_retried_over_tcp(px, up):
    up.mode = "tc"
    r = px.query("www.example.test", edns=1232)
    assert r.rcode() == dns.rcode.NOERROR and not r.flags & dns.flags.TC, describe(r)
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)
    seq = [q.transport for q in up.queries("www.example.test")]
    assert seq and seq[0] == "udp" and "tcp" in seq, \
        "expected a UDP query, then a TCP retry to the same upstream, saw %s" % seq
    n = len(seq)
    r = px.query("www.example.test", edns=1232)
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"] and up.count("www.example.test") == n, \
        "the full (TCP) answer should be cached: " + up.summary()


def test_upstream_truncation_big_answer_to_udp_client(px, up):
    up.mode = "tc"
    r = px.query("big.example.test", "TXT")          # UDP, no EDNS: limit 512
    assert r.flags & dns.flags.TC, "~800-byte answer must reach a non-EDNS UDP client with TC=1:\n" + describe(r)
    assert len(r.wire) <= 512, "answer is %d bytes, limit 512" % len(r.wire)
    assert [q.transport for q in up.queries("big.example.test")][:2] == ["udp", "tcp"], up.summary()
    r = px.query("big.example.test", "TXT", tcp=True)
    assert not r.flags & dns.flags.TC and len(rrset_texts(r, rdtype="TXT")) == 1, describe(r)
    assert len(r.answer[0][0].strings) == 4, describe(r)


def test_truncated_answer_never_cached(px, up):
    # UDP answers are truncated and TCP is silent: dproxy cannot get the full
    # answer.  Whatever it tells the client, it must not cache the TC answer.
    def handler(query, transport):
        if transport == "tcp":
            return None
        resp = up.answer(query)
        resp.answer = []
        resp.flags |= dns.flags.TC
        return resp
    up.handler = handler
    px.query("www.example.test", edns=1232, timeout=3, expect_answer=False)
    up.handler = None
    px.signal(signal.SIGUSR1)        # in case dproxy declared the link down meanwhile
    r = px.wait_answer("www.example.test", timeout=6, edns=1232, until=good)
    assert good(r), "a truncated upstream answer must not be cached; after 6 s still:\n" + describe(r)


def test_retransmit_when_first_packet_lost(px, up):
    up.ignore_first = 1
    r = px.query("www.example.test", timeout=5)
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)
    assert up.count("www.example.test") >= 2, "expected a retransmission: " + up.summary()


def test_failover_to_second_upstream(dproxy, upstream):
    first = upstream(RECORDS)
    second = upstream(RECORDS)
    first.mode = "silent"
    px = dproxy(servers=[first, second])
    t0 = time.monotonic()
    r = px.query("www.example.test", timeout=8)
    took = time.monotonic() - t0
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)
    assert second.count("www.example.test") >= 1, "second upstream never asked: " + second.summary()
    assert first.count("www.example.test") >= 1, \
        "expected the first listed upstream to be tried first: " + first.summary()
    print("failover answer after %.2fs" % took)


def test_servfail_passed_to_client(px, up):
    up.mode = "servfail"
    r = px.query("www.example.test")
    assert r.rcode() == dns.rcode.SERVFAIL, describe(r)


def test_merged_clients_each_get_their_own_spelling(px, up):
    up.delays = {"www.example.test.": 200}
    spellings = ["www.example.test", "WWW.EXAMPLE.TEST", "Www.Example.Test", "wWw.eXample.tEst"]
    socks = []
    try:
        for i, name in enumerate(spellings):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(3)
            s.sendto(make_query(name, "A", qid=500 + i).to_wire(), px.addr())
            socks.append(s)
        for i, (s, name) in enumerate(zip(socks, spellings)):
            msg = parse(s.recv(65535))
            assert msg.id == 500 + i and msg.question[0].name.to_text() == name + ".", \
                "client asking %r (id %d) got:\n%s" % (name, 500 + i, describe(msg))
            assert rrset_texts(msg, rdtype="A") == ["192.0.2.1"], describe(msg)
    finally:
        for s in socks:
            s.close()
    assert up.count("www.example.test") == 1, "questions differing only in case must be merged: " + up.summary()


def test_each_answer_goes_only_to_the_clients_that_asked(px, up):
    """Questions one after another, each from its own socket: every client gets exactly
    one reply, its own. (A finished question's list of waiting clients is reused for the
    next: one left behind would get the next question's answer as well.)"""
    socks = []
    try:
        for i in range(6):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(3)
            socks.append(s)
            s.sendto(make_query("r%d.example.test" % i, "A", qid=700 + i).to_wire(), px.addr())
            msg = parse(s.recv(65535))
            assert msg.id == 700 + i and rrset_texts(msg, rdtype="A") == ["192.0.2.%d" % (100 + i)], \
                describe(msg)
        # dproxy sends every reply of a question in the same loop turn, so a reply to an
        # earlier client would be in its socket by the time the last client got its own.
        for i, s in enumerate(socks):
            s.setblocking(False)
            with pytest.raises(BlockingIOError):
                extra = parse(s.recv(65535))
                pytest.fail("client %d got a second reply:\n%s" % (i, describe(extra)))
    finally:
        for s in socks:
            s.close()


def test_merge_across_udp_and_tcp_clients(px, up):
    up.delays = {"www.example.test.": 200}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, px.tcp_connect() as t:
        u.settimeout(3)
        u.sendto(make_query("www.example.test", "A", qid=11).to_wire(), px.addr())
        t.sendall(tcp_frame(make_query("www.example.test", "A", qid=22).to_wire()))
        ru = parse(u.recv(65535))
        rt = parse(tcp_recv_msg(t, time.monotonic() + 3))
    assert ru.id == 11 and rt.id == 22, (ru.id, rt.id)
    assert good(ru) and good(rt), describe(ru) + "\n" + describe(rt)
    assert up.count("www.example.test") == 1, "UDP and TCP clients asking the same must share 1 upstream query: " \
        + up.summary()


def test_cache_hit_truncated_for_small_udp_client(px, up):
    r = px.query("big.example.test", "TXT", tcp=True)
    assert len(rrset_texts(r, rdtype="TXT")) == 1 and not r.flags & dns.flags.TC, describe(r)
    r = px.query("big.example.test", "TXT")           # UDP, no EDNS
    assert r.flags & dns.flags.TC and len(r.wire) <= 512, \
        "cache hit of ~800 bytes to a non-EDNS UDP client must be truncated to <= 512 with TC=1:\n" + describe(r)
    r = px.query("big.example.test", "TXT", edns=1232)
    assert not r.flags & dns.flags.TC and len(rrset_texts(r, rdtype="TXT")) == 1, describe(r)
    assert up.count("big.example.test") == 1, up.summary()


def test_answer_question_case_insensitive_match(dproxy, up):
    # With 0x20 off, an upstream that upper-cases the question must still be
    # accepted: the question name is compared case-insensitively.
    px = dproxy(servers=[up], options={"case_randomization": "0"})

    def handler(query, transport):
        resp = up.answer(query)
        q = resp.question[0]
        resp.question = [dns.rrset.RRset(dns.name.from_text(q.name.to_text().upper()), q.rdclass, q.rdtype)]
        return resp
    up.handler = handler
    r = px.query("www.example.test", timeout=4)
    assert good(r), "an answer whose question differs only in case must be accepted:\n" + describe(r)
    assert r.question[0].name.to_text() == "www.example.test.", "client's spelling must be kept:\n" + describe(r)
