"""TCP clients: several queries per connection, pipelining, partial writes."""
import time

import dns.rcode
import pytest

from harness.dnsutil import describe, make_query, parse, rrset_texts, tcp_frame, tcp_recv_msg

RECORDS = ["p%d 300 IN A 192.0.2.%d" % (i, 10 + i) for i in range(10)]


@pytest.fixture
def up(upstream):
    return upstream(RECORDS)


@pytest.fixture
def px(dproxy, up):
    return dproxy(servers=[up])


def test_pipelined_queries_answered_in_completion_order(px, up):
    slow = {"p%d.example.test" % i for i in range(5)}
    up.delays = {n + ".": 300 for n in slow}
    queries = {}
    blob = b""
    for i in range(10):
        q = make_query("p%d.example.test" % i, "A", qid=1000 + i)
        queries[q.id] = ("p%d.example.test" % i, "192.0.2.%d" % (10 + i))
        blob += tcp_frame(q.to_wire())
    order = []
    with px.tcp_connect() as s:
        s.sendall(blob)                                # all 10 at once
        deadline = time.monotonic() + 5
        for _ in range(10):
            try:
                msg = parse(tcp_recv_msg(s, deadline))
            except Exception as e:  # noqa: BLE001
                pytest.fail("got %d of 10 pipelined answers, then %r; received: %s" % (len(order), e, order))
            assert msg.id in queries, "answer with unknown ID %d:\n%s" % (msg.id, describe(msg))
            name, addr = queries[msg.id]
            assert msg.question[0].name.to_text().lower() == name + ".", \
                "ID %d belongs to %s but the answer is for:\n%s" % (msg.id, name, describe(msg))
            assert rrset_texts(msg, rdtype="A") == [addr], describe(msg)
            order.append(name)
    assert len(set(order)) == 10, "duplicate answers: %s" % order
    fast = {"p%d.example.test" % i for i in range(5, 10)}
    assert set(order[:5]) == fast, \
        "answers must come in completion order (the 5 undelayed ones first), got %s" % order


def test_several_sequential_queries_on_one_connection(px, up):
    with px.tcp_connect() as s:
        for i in (1, 2, 3, 1):
            q = make_query("p%d.example.test" % i, "A")
            s.sendall(tcp_frame(q.to_wire()))
            msg = parse(tcp_recv_msg(s, time.monotonic() + 3))
            assert msg.id == q.id and rrset_texts(msg, rdtype="A") == ["192.0.2.%d" % (10 + i)], describe(msg)


def test_query_split_across_writes(px, up):
    q = make_query("p7.example.test", "A")
    framed = tcp_frame(q.to_wire())
    with px.tcp_connect() as s:
        s.sendall(framed[:1])
        time.sleep(0.05)
        s.sendall(framed[1:9])
        time.sleep(0.05)
        s.sendall(framed[9:])
        msg = parse(tcp_recv_msg(s, time.monotonic() + 3))
    assert msg.id == q.id and rrset_texts(msg, rdtype="A") == ["192.0.2.17"], describe(msg)


def test_udp_and_tcp_share_the_cache(px, up):
    r = px.query("p4.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.14"], describe(r)
    r = px.query("p4.example.test", tcp=True)
    assert r.rcode() == dns.rcode.NOERROR and rrset_texts(r, rdtype="A") == ["192.0.2.14"], describe(r)
    assert up.count("p4.example.test") == 1, "TCP query should hit the cache: " + up.summary()
