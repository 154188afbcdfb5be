"""Hardening: who may ask (deny/allow lists, an off-link
client in a network namespace), rebinding protection, out-of-chain records,
0x20 and its fallback, a forged-answer flood, per-client rate limits, the
memory budget under a unique-name flood, privilege drop, TCP connection caps,
amplification, and malformed packets from the fuzz corpus."""
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from harness.dnsutil import (build_header, describe, make_query, rrset_texts,
                             tcp_frame, tcp_recv_msg)
from harness.dproxy import DproxyStartError
from harness.hostlock import host_lock
from harness.tools import FastUpstream, ede_codes, write_file
from harness.upstream import POISON_V4, FakeUpstream

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
FLOOD = os.path.join(HERE, "harness", "flood.py")
EDE_BLOCKED = 15

RECORDS = ["www 300 IN A 192.0.2.1", "www 300 IN AAAA 2001:db8::1", "mail 300 IN A 192.0.2.2",
           "big 300 IN TXT " + " ".join(['"%s"' % (c * 240) for c in "abcd"])]


@pytest.fixture
def up(upstream):
    return upstream(RECORDS)


def has_poison(msg):
    return msg is not None and any(POISON_V4 in rd.to_text() for sec in (msg.answer, msg.authority,
                                                                        msg.additional)
                                   for rr in sec for rd in rr)


# ---------------------------------------------------------------- who may ask

@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_denied_client_refused(dproxy, up, tcp):
    px = dproxy(servers=[up], options={"refuse_action": "refused"},
                lists={"deny": ["127.0.0.3/32"]})
    r = px.query_from("127.0.0.3", "www.example.test", tcp=tcp)
    assert r is not None and r.rcode() == dns.rcode.REFUSED, \
        "a client in `list deny` must get REFUSED\n" + describe(r)
    assert not r.answer, describe(r)
    ok = px.query_from("127.0.0.4", "www.example.test", tcp=tcp)
    assert ok is not None and rrset_texts(ok, rdtype="A") == ["192.0.2.1"], describe(ok)
    r = px.query_from("127.0.0.3", "www.example.test", tcp=tcp)
    assert r.rcode() == dns.rcode.REFUSED and not r.answer, "refused client served from cache\n" + describe(r)
    assert px.stats()["drop_refused"] == 2
    assert up.count() == 1, up.summary()


def test_refuse_action_drop_is_silent(dproxy, up):
    px = dproxy(servers=[up], options={"refuse_action": "drop"}, lists={"deny": ["127.0.0.3"]})
    assert px.query_from("127.0.0.3", "www.example.test", timeout=1.0) is None, \
        "refuse_action drop: a denied UDP client gets no answer"
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    s.bind(("127.0.0.3", 0))
    s.connect((px.host, px.port))
    try:
        s.sendall(tcp_frame(make_query("www.example.test").to_wire()))
        data = s.recv(100)
    except (ConnectionResetError, BrokenPipeError):
        data = b""
    except socket.timeout:
        data = None
    finally:
        s.close()
    assert data == b"", "refuse_action drop: a denied TCP client's connection must be closed " \
        "at accept, got %r" % (data,)
    assert px.stats()["drop_refused"] == 2
    assert up.count() == 0, up.summary()
    assert rrset_texts(px.query("www.example.test"), rdtype="A") == ["192.0.2.1"]


def test_deny_wins_over_allow_and_allow_list_closes_the_rest(dproxy, up):
    px = dproxy(servers=[up], options={"local_service": "0"},
                lists={"allow": ["127.0.0.0/29"], "deny": ["127.0.0.3"]})
    assert rrset_texts(px.query_from("127.0.0.2", "www.example.test"), rdtype="A") == ["192.0.2.1"]
    r = px.query_from("127.0.0.3", "www.example.test")
    assert r is not None and r.rcode() == dns.rcode.REFUSED, "deny must win over allow\n" + describe(r)
    r = px.query_from("127.0.0.9", "www.example.test")
    assert r is not None and r.rcode() == dns.rcode.REFUSED, \
        "with an allow list, other clients are refused\n" + describe(r)
    assert px.stats()["drop_refused"] == 2


def _run(*cmd, check=True):
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=10, check=check)


def _free_subnets():
    used = _run("ip", "-4", "route", "show", "table", "all").stdout + _run("ip", "-4", "addr").stdout
    for a in range(77, 97):
        link, extra = "10.231.%d" % a, "10.232.%d.8" % a
        if link + "." not in used and "10.232.%d." % a not in used:
            return link, extra
    return None, None


@pytest.fixture
def netns():
    """A network namespace joined to the host by a veth pair:
    host side LINK.1/24, namespace side LINK.2/24 plus EXTRA/32 (on no host
    subnet; a host route sends replies back)."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("network namespaces need root and iproute2")
    tag = "%d" % (os.getpid() % 100000)
    ns, vh, vn = "dpx-it-%s" % tag, "dpxh%s" % tag, "dpxn%s" % tag
    # Picking a free subnet and adding its addresses is one step for every test
    # process on the host (parallel workers would otherwise pick the same one).
    with host_lock("dproxy-it-netns"):
        link, extra = _free_subnets()
        if link is None:
            pytest.skip("no free 10.231.x.0/24 test subnet on this host")
        cleanup = []
        try:
            _run("ip", "netns", "add", ns)
            cleanup.append(["ip", "netns", "del", ns])
            _run("ip", "link", "add", vh, "type", "veth", "peer", "name", vn)
            cleanup.append(["ip", "link", "del", vh])
            _run("ip", "link", "set", vn, "netns", ns)
            _run("ip", "addr", "add", link + ".1/24", "dev", vh)
            _run("ip", "link", "set", vh, "up")
            nsx = ["ip", "netns", "exec", ns]
            _run(*nsx, "ip", "link", "set", "lo", "up")
            _run(*nsx, "ip", "addr", "add", link + ".2/24", "dev", vn)
            _run(*nsx, "ip", "addr", "add", extra + "/32", "dev", vn)
            _run(*nsx, "ip", "link", "set", vn, "up")
            _run("ip", "route", "add", extra + "/32", "dev", vh)
        except (subprocess.CalledProcessError, OSError) as e:
            for c in reversed(cleanup):
                subprocess.run(c, capture_output=True, timeout=10)
            pytest.skip("cannot create a network namespace here: %s" % (getattr(e, "stderr", "") or e))
    info = {"ns": ns, "host": link + ".1", "onlink": link + ".2", "offlink": extra}
    yield info
    subprocess.run(["ip", "route", "del", extra + "/32", "dev", vh], capture_output=True, timeout=10)
    for c in reversed(cleanup):
        subprocess.run(c, capture_output=True, timeout=10)


NS_CLIENT = r"""
import socket, sys
src, dst, port, hexq, tcp = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5] == "1"
q = bytes.fromhex(hexq)
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
s.settimeout(1.5)
s.bind((src, 0))
try:
    if tcp:
        s.connect((dst, port)); s.sendall(len(q).to_bytes(2, "big") + q)
        n = int.from_bytes(s.recv(2), "big"); d = b""
        while len(d) < n:
            c = s.recv(n - len(d))
            if not c: break
            d += c
    else:
        s.sendto(q, (dst, port)); d = s.recv(65535)
    print(d.hex())
except Exception as e:
    print("none", type(e).__name__)
"""


def ns_query(netns, src, px, name, tcp=False):
    q = make_query(name)
    r = subprocess.run(["ip", "netns", "exec", netns["ns"], sys.executable, "-c", NS_CLIENT, src,
                        netns["host"], str(px.port), q.to_wire().hex(), "1" if tcp else "0"],
                       capture_output=True, text=True, timeout=10)
    out = r.stdout.strip()
    if not out or out.startswith("none"):
        return None
    return dns.message.from_wire(bytes.fromhex(out))


@pytest.mark.parametrize("action", ["refused", "drop"])
def test_off_link_client_refused_on_link_client_answered(dproxy, up, netns, action):
    # local_service (default 1): loopback and clients on our interfaces'
    # subnets are answered; a client from another subnet is not.
    px = dproxy(servers=[up], options={"refuse_action": action},     # local_service: default
                listen_extra=[netns["host"]])
    r = ns_query(netns, netns["onlink"], px, "www.example.test")
    assert r is not None and rrset_texts(r, rdtype="A") == ["192.0.2.1"], \
        "an on-link client (%s) must be answered\n%s" % (netns["onlink"], describe(r))
    for tcp in (False, True):
        r = ns_query(netns, netns["offlink"], px, "www.example.test", tcp=tcp)
        if action == "refused":
            assert r is not None and r.rcode() == dns.rcode.REFUSED and not r.answer, \
                "an off-link client (%s, %s) must get REFUSED\n%s" % (
                    netns["offlink"], "tcp" if tcp else "udp", describe(r))
        else:
            assert r is None, "refuse_action drop: off-link client must get nothing\n" + describe(r)
    assert px.stats()["drop_refused"] == 2
    assert up.count() == 1, up.summary()


# ---------------------------------------------------------------- rebinding

REBIND_RECORDS = RECORDS + [
    "priv 300 IN A 192.168.1.10", "ten 300 IN A 10.1.2.3", "s172 300 IN A 172.20.0.1",
    "lo 300 IN A 127.0.0.1", "lo2 300 IN A 127.0.0.2", "cgnat 300 IN A 100.64.0.1",
    "ll 300 IN A 169.254.0.1", "zero 300 IN A 0.0.0.0", "ula 300 IN AAAA fd00::1",
    "ll6 300 IN AAAA fe80::1", "v6lo 300 IN AAAA ::1", "mapped 300 IN AAAA ::ffff:192.168.1.1",
    "alias 300 IN CNAME priv", "mixed 300 IN A 192.0.2.5", "mixed 300 IN A 10.0.0.5",
    "pub 300 IN A 192.0.2.77", "corp 300 IN A 10.0.0.6", "host.corp 300 IN A 10.0.0.7",
]
BLOCKED = [("priv", "A"), ("ten", "A"), ("s172", "A"), ("lo", "A"), ("lo2", "A"), ("cgnat", "A"),
           ("ll", "A"), ("zero", "A"), ("ula", "AAAA"), ("ll6", "AAAA"), ("v6lo", "AAAA"),
           ("mapped", "AAAA"), ("alias", "A"), ("mixed", "A")]


def assert_rebind_blocked(px, name, t):
    r = px.query(name, t, edns=1232)
    assert r.rcode() == dns.rcode.NXDOMAIN and not r.answer, \
        "rebinding answer for %s %s must be NXDOMAIN\n%s" % (name, t, describe(r))
    assert EDE_BLOCKED in ede_codes(r), "expected EDE 15 (Blocked) for %s, got %s" % (name, ede_codes(r))


def test_rebinding_answers_dropped_exempt_domains_allowed(dproxy, upstream):
    up = upstream(REBIND_RECORDS)
    px = dproxy(servers=[up], options={"rebind_protection": "1"},
                lists={"rebind_domain": ["corp.example.test"]})
    for n, t in BLOCKED:
        assert_rebind_blocked(px, n + ".example.test", t)
    # Nothing was cached: asking again goes upstream again, and is blocked again.
    for n, t in BLOCKED:
        assert_rebind_blocked(px, n + ".example.test", t)
        assert up.count(n + ".example.test", t) == 2, "blocked answer was cached: " + up.summary()
    r = px.query("priv.example.test", "A")               # without EDNS: plain NXDOMAIN
    assert r.rcode() == dns.rcode.NXDOMAIN and r.edns < 0, describe(r)
    st = px.stats()
    assert st["drop_rebind"] == 2 * len(BLOCKED) + 1, st
    r = px.query("pub.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.77"], describe(r)
    for n, ip in (("corp", "10.0.0.6"), ("host.corp", "10.0.0.7")):
        r = px.query(n + ".example.test")
        assert rrset_texts(r, rdtype="A") == [ip], "rebind_domain exempts %s\n%s" % (n, describe(r))
    # Once per name, and the name only at debug (the harness runs at debug).
    logged = [l for l in px.stderr_text().splitlines() if "rebind" in l and "priv.example.test" in l
              and "debug" in l.lower()]
    assert len(logged) == 1, "rebinding must be logged once per name, got %d:\n%s" % (
        len(logged), "\n".join(logged))


def test_rebind_localhost_allows_127_only(dproxy, upstream):
    up = upstream(REBIND_RECORDS)
    px = dproxy(servers=[up], options={"rebind_protection": "1", "rebind_localhost": "1"})
    for n, ip in (("lo", "127.0.0.1"), ("lo2", "127.0.0.2")):
        r = px.query(n + ".example.test")
        assert rrset_texts(r, rdtype="A") == [ip], "rebind_localhost 1 allows 127/8\n" + describe(r)
    for n, t in (("priv", "A"), ("ten", "A"), ("ula", "AAAA"), ("cgnat", "A")):
        assert_rebind_blocked(px, n + ".example.test", t)


def test_rebind_protection_off_passes_private(dproxy, upstream):
    up = upstream(REBIND_RECORDS)
    px = dproxy(servers=[up], options={"rebind_protection": "0"})
    r = px.query("priv.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.168.1.10"], "control\n" + describe(r)


# ---------------------------------------------------------------- poisoning

def test_out_of_chain_records_never_served(dproxy, up):
    up.set_records(RECORDS + ["c1 300 IN CNAME c2", "c2 300 IN A 192.0.2.3",
                              "victim 300 IN A 192.0.2.66"])

    def inject(query, transport):
        resp = up.answer(query)
        q = query.question[0]
        if q.name.to_text().lower() not in ("www.example.test.", "c1.example.test."):
            return FakeUpstream.DEFAULT
        resp.answer.append(dns.rrset.from_text("victim.example.test.", 3600, "IN", "A", POISON_V4))
        resp.answer.append(dns.rrset.from_text("other.test.", 3600, "IN", "A", POISON_V4))
        resp.authority.append(dns.rrset.from_text("example.test.", 3600, "IN", "NS",
                                                  "victim.example.test."))
        resp.additional.append(dns.rrset.from_text("victim.example.test.", 3600, "IN", "A",
                                                   POISON_V4))
        resp.additional.append(dns.rrset.from_text("ns1.example.test.", 3600, "IN", "A", POISON_V4))
        return resp
    up.handler = inject
    px = dproxy(servers=[up])
    r = px.query("www.example.test", edns=1232)
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)
    assert not has_poison(r), "out-of-chain records passed to the client\n" + describe(r)
    assert {rr.name.to_text().lower() for rr in r.answer} == {"www.example.test."}, describe(r)
    assert not [rr for rr in r.additional], "additional section must be dropped\n" + describe(r)
    r = px.query("c1.example.test", edns=1232)
    assert rrset_texts(r, rdtype="A") == ["192.0.2.3"] and len(r.answer) == 2 and not has_poison(r), \
        "the CNAME chain is kept, the rest dropped\n" + describe(r)
    for name, ip in (("victim.example.test", "192.0.2.66"), ("ns1.example.test", "192.0.2.53")):
        r = px.query(name)
        assert rrset_texts(r, rdtype="A") == [ip] and not has_poison(r), \
            "injected record served for another question\n" + describe(r)
        assert up.count(name) == 1, "%s must have been asked upstream: %s" % (name, up.summary())
    r = px.query("other.test")
    assert not has_poison(r), describe(r)


LONG = "abcdefghijklmnopqrst"


def test_0x20_random_case_sent_and_client_case_kept(dproxy, up):
    up.set_records(RECORDS + ["%s%d 300 IN A 192.0.2.%d" % (LONG, i, 10 + i) for i in range(6)])
    px = dproxy(servers=[up])
    for i in range(6):
        name = "%s%d.example.test" % (LONG, i)
        r = px.query(name)
        assert rrset_texts(r, rdtype="A") == ["192.0.2.%d" % (10 + i)], describe(r)
        assert r.answer[0].name.to_text() == name + ".", "client's spelling must come back\n" + describe(r)
    sent = [str(q.msg.question[0].name) for q in up.queries()]
    assert all(s.lower().startswith(LONG) for s in sent), sent
    mixed = [s for s in sent if s != s.lower() and s != s.upper()]
    assert len(mixed) == len(sent), "0x20: every upstream question should have random case: %s" % sent
    assert len({s[:len(LONG)] for s in sent}) == len(sent), "case patterns repeat: %s" % sent
    assert px.stats()["drop_case"] == 0


def lowercasing_handler(up, only=None, times=None):
    """Answers with the question (and records) in lowercase, as an upstream
    that does not echo case.  only/times: for those names, only the first
    `times` queries are answered so."""
    seen = {}

    def h(query, transport):
        name = query.question[0].name.to_text().lower()
        if only is not None:
            if name not in only or seen.get(name, 0) >= times:
                return FakeUpstream.DEFAULT
            seen[name] = seen.get(name, 0) + 1
        lower = dns.message.make_query(name, query.question[0].rdtype, use_edns=0)
        lower.id = query.id
        resp = up.answer(lower)
        resp.id = query.id
        return resp
    return h


def test_0x20_non_echoing_upstream_detected_and_exempted(dproxy, up):
    up.set_records(RECORDS + ["%s%d 300 IN A 192.0.2.%d" % (LONG, i, 10 + i) for i in range(4)])
    up.handler = lowercasing_handler(up)
    px = dproxy(servers=[up])
    for i in (0, 1, 2):
        r = px.query("%s%d.example.test" % (LONG, i), timeout=4)
        assert rrset_texts(r, rdtype="A") == ["192.0.2.%d" % (10 + i)], describe(r)
    sent = [str(q.msg.question[0].name) for q in up.queries()]
    # Each question: a randomized attempt whose answer is dropped, then the same question
    # without 0x20 (per-question fallback); after 3 such answers the server is exempted.
    assert len(sent) == 6, "expected randomized, then lowercase, per question: %s" % sent
    assert all(sent[k] != sent[k].lower() for k in (0, 2, 4)), sent
    assert all(sent[k] == sent[k].lower() for k in (1, 3, 5)), sent
    assert px.stats()["drop_case"] == 3
    r = px.query("%s3.example.test" % LONG)
    assert rrset_texts(r, rdtype="A") == ["192.0.2.13"], describe(r)
    sent = [str(q.msg.question[0].name) for q in up.queries()]
    assert len(sent) == 7 and sent[6] == sent[6].lower(), \
        "after the fallback the server is asked in lowercase, once per question: %s" % sent
    assert px.stats()["drop_case"] == 3
    logged = [l for l in px.stderr_text().splitlines() if "does not echo" in l]
    assert len(logged) == 1, "the fallback is logged once: %s" % logged


def test_0x20_not_given_up_for_a_server_that_echoes(dproxy, up):
    # An upstream that has echoed the case correctly is not exempted from
    # 0x20 by a few case-changed answers (those are forgeries, or flukes).
    names = ["%s%d.example.test." % (LONG, i) for i in range(10)]
    up.set_records(RECORDS + ["%s%d 300 IN A 192.0.2.%d" % (LONG, i, 10 + i) for i in range(10)])
    px = dproxy(servers=[up])
    for n in names[:4]:                               # correct echoes
        assert rrset_texts(px.query(n), rdtype="A"), n
    up.handler = lowercasing_handler(up, only=set(names[4:7]), times=1)
    for n in names[4:7]:                              # one case-changed answer each, then correct
        assert rrset_texts(px.query(n, timeout=4), rdtype="A"), n
    assert px.stats()["drop_case"] == 3
    for n in names[7:]:
        assert rrset_texts(px.query(n), rdtype="A"), n
    later = [str(q.msg.question[0].name) for q in up.queries() if q.name in names[7:]]
    assert later and all(s != s.lower() for s in later), \
        "0x20 was turned off for an upstream that echoes case (after 3 case-changed answers " \
        "although it had echoed correctly before): later questions %s" % later
    assert "does not echo" not in px.stderr_text()


def test_0x20_off_sends_lowercase(dproxy, up):
    px = dproxy(servers=[up], options={"case_randomization": "0"})
    r = px.query("WwW.ExAmPlE.TeSt")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)
    assert str(up.queries()[0].msg.question[0].name) == "www.example.test.", up.summary()


def test_forged_answer_flood_leaves_cache_clean(dproxy, up):
    forged_sent = {"n": 0}
    count_lock = threading.Lock()
    floods = []

    def sent(k):
        with count_lock:
            forged_sent["n"] += k

    def flood(query, transport):
        if transport != "udp" or query.question[0].name.to_text().lower() != "www.example.test.":
            return FakeUpstream.DEFAULT
        src = up.queries()[-1].src

        def run():
            # Counted before each send, across floods: on a loaded machine a retransmit
            # starts a second flood, still running when the counters are compared.
            for i in range(400):
                bad = up.poison(query)
                bad.id = (query.id + 1 + i) & 0xFFFF
                sent(1)
                up.udp.sendto(bad.to_wire(), src)              # right address+port, wrong ID
                if i % 4 == 0:
                    wq = up.poison(query, qname="evil.example.test.")
                    sent(2)
                    up.udp.sendto(wq.to_wire(), src)           # right ID, wrong question
                    up.alt_udp.sendto(up.poison(query).to_wire(), src)   # wrong port
                if i % 50 == 49:
                    time.sleep(0.005)
            time.sleep(0.05)
            up.udp.sendto(up.answer(query).to_wire(), src)     # the genuine answer, last
        t = threading.Thread(target=run, daemon=True)
        floods.append(t)
        t.start()
        return None
    up.handler = flood
    px = dproxy(servers=[up])
    r = px.query("www.example.test", timeout=4)
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"] and not has_poison(r), \
        "the genuine answer must be accepted after the flood\n" + describe(r)
    time.sleep(0.2)
    asked = up.count("www.example.test")
    r = px.query("www.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"] and not has_poison(r), describe(r)
    assert up.count("www.example.test") == asked, "genuine answer not cached: " + up.summary()
    up.handler = None
    r = px.query("evil.example.test")
    assert not has_poison(r) and r.rcode() == dns.rcode.NXDOMAIN, \
        "forged record for another name was cached\n" + describe(r)
    # Every flood ends before the test does: one left running would send into the next
    # test's sockets once this upstream is closed.
    for t in list(floods):
        t.join(timeout=30)
    assert not any(t.is_alive() for t in floods), "a forged-answer flood did not end"
    st = px.stats()
    assert st["drop_mismatch"] >= 200, "forged answers must be counted (drop_mismatch): %s" % st
    assert st["drop_mismatch"] <= forged_sent["n"], st


# ---------------------------------------------------------------- load limits

def run_flood(px, src, rate, seconds, name, unique=False):
    args = [sys.executable, FLOOD, px.host, str(px.port), src, str(rate), str(seconds), name]
    if unique:
        args.append("unique")
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def udp_socket_drops(port, host="127.0.0.1"):
    """Datagrams the kernel dropped at the UDP socket bound to host:port because its
    receive queue was full (the last column of /proc/net/udp): lost before the daemon
    could read them, whatever the daemon decides."""
    a, b, c, d = (int(x) for x in host.split("."))
    local = "%02X%02X%02X%02X:%04X" % (d, c, b, a, port)
    # The kernel writes the table a page at a time: a socket opened or closed elsewhere
    # between two reads (other tests run beside this one) can shift the rest of the table
    # and hide a line for one reading of it, so a missing line is looked for again.
    for _ in range(20):
        with open("/proc/net/udp") as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[1] == local:
                    return int(cols[-1])
    raise AssertionError("no UDP socket bound to %s:%d in /proc/net/udp" % (host, port))


def test_rate_limited_flooder_other_client_still_answered(dproxy, up):
    rate, burst, secs = 100, 50, 4.0
    px = dproxy(servers=[up], options={"rate_limit": rate, "rate_burst": burst})
    px.query("www.example.test")
    drops0, queries0 = udp_socket_drops(px.port), px.stats()["queries"]
    # 20,000 queries/s, 200 times the limit: a faster flood fills the daemon's socket
    # queue sooner whenever the daemon is descheduled, and shows nothing more.
    p = run_flood(px, "127.0.0.5", 20000, secs, "www.example.test")
    # The flood has begun once the daemon limits it (the flooder's own start-up takes
    # longer on a busy machine); the flooder ends by itself within 5 s.
    while p.poll() is None and px.stats()["drop_ratelimit"] == 0:
        time.sleep(0.02)
    flood_seen = time.monotonic()
    # The second client asks while the flood is sent. When the daemon is descheduled on a
    # busy machine, the flood fills its socket's receive queue within milliseconds and
    # the kernel drops whatever arrives, the second client's query too: that loss is
    # the machine's, not the rate limiter's. So a question without an answer counts
    # against the daemon only if the socket dropped nothing while it was out.
    answered, lost_in_kernel, unanswered = 0, 0, []
    t_end = flood_seen + secs - 0.2
    while time.monotonic() < t_end and p.poll() is None:
        d0 = udp_socket_drops(px.port)
        t0 = time.monotonic()
        r = px.query_from("127.0.0.6", "www.example.test", timeout=1.0)
        d1 = udp_socket_drops(px.port)
        if r is not None and rrset_texts(r, rdtype="A") == ["192.0.2.1"]:
            answered += 1
        elif d1 > d0:
            lost_in_kernel += 1
        else:
            unanswered.append("%.2f s into the flood: %s" % (
                t0 - flood_seen, describe(r) if r is not None else "no answer in 1 s"))
        time.sleep(0.05)
    out, err = p.communicate(timeout=10)
    res = json.loads(out)
    st = px.stats()
    kernel_drops = udp_socket_drops(px.port) - drops0
    print("second client: %d answered, %d lost in the kernel; flood %s; kernel drops %d; "
          "drop_ratelimit %d" % (answered, lost_in_kernel, res, kernel_drops, st["drop_ratelimit"]))
    assert not unanswered, "the second client must still be answered during the flood " \
        "(%d answered; not answered with no datagram dropped by the kernel meanwhile: %s)" % (
            answered, unanswered)
    assert answered >= 3, "the second client got too few answers during the flood to show " \
        "anything: %d answered, %d lost in the kernel's full socket queue" % (
            answered, lost_in_kernel)
    # On a busy 2-core machine the flooder may manage far less than 20,000/s; 5,000 in
    # 4 s is still 12 times the rate the limit allows.
    assert res["sent"] >= 5000, "the flood was too weak to show anything: %s" % res
    limit = burst + rate * res["seconds"] * 1.2 + 20
    assert res["received"] <= limit, "flooder got %d answers, limit ~%d (rate %d/s, burst %d)" % (
        res["received"], limit, rate, burst)
    assert res["received"] >= rate * 0.5, "flooder should still get its rate: %s" % res
    # What the daemon read of the flood: what the flooder sent, less what the kernel
    # dropped (at most all of the drops; the second client's lost queries are among
    # them). Of that, all but what was answered must be counted as rate-limited, and
    # the flood must have reached the daemon well past what the limit lets through.
    read_of_flood = res["sent"] - kernel_drops
    assert read_of_flood >= 5 * (burst + rate * res["seconds"]), \
        "too little of the flood reached the daemon to show anything (sent %d, dropped by " \
        "the kernel %d): %s" % (res["sent"], kernel_drops, res)
    assert st["drop_ratelimit"] >= read_of_flood - res["received"] - 20, \
        "rate-limited queries must be counted (sent %d, dropped by the kernel %d, " \
        "answered %d): drop_ratelimit %d" % (res["sent"], kernel_drops, res["received"],
                                             st["drop_ratelimit"])
    # Every datagram the daemon read was counted as a query: the accounting above adds up.
    assert st["queries"] - queries0 >= read_of_flood + answered, (st["queries"], queries0)
    assert up.count() == 1, up.summary()


def rss_kib(px, key="VmRSS"):
    return int(px.proc_status()[key].split()[0])


@pytest.fixture
def fast_upstream():
    f = FastUpstream().start()
    yield f
    f.stop()


def test_unique_name_flood_keeps_memory_within_budget(dproxy, fast_upstream):
    limit_kib = 2048
    px = dproxy(servers=[fast_upstream.addr],
                options={"cache_size": 65536, "memory_limit": limit_kib})
    for i in range(20):
        px.query("warm%d.flood.test" % i, "TXT")
    base = rss_kib(px)
    p = run_flood(px, "127.0.0.7", 20000, 3.0, "flood.test", unique=True)
    peak_during = base
    while p.poll() is None:
        peak_during = max(peak_during, rss_kib(px))
        time.sleep(0.05)
    res = json.loads(p.communicate(timeout=10)[0])
    st = px.stats()
    hwm = rss_kib(px, "VmHWM")
    assert px.alive()
    assert res["sent"] >= 20000 and fast_upstream.count >= 10000, \
        "flood too small to load the cache: %s, upstream saw %d" % (res, fast_upstream.count)
    assert st["cache_budget"] <= limit_kib * 1024 and st["cache_bytes"] <= st["cache_budget"], st
    # Peak RSS above the idle daemon must stay within memory_limit, with 25 %
    # for allocator slack (cache_size is 64 MiB: only memory_limit bounds it).
    growth = hwm - base
    assert growth <= limit_kib * 5 // 4, \
        "RSS grew by %d KiB under a unique-name flood (peak VmHWM %d KiB, idle %d KiB); " \
        "memory_limit is %d KiB (+25 %% slack = %d KiB). ctl stats: cache_bytes=%d " \
        "cache_budget=%d cache_entries=%d drop_overload=%d" % (
            growth, hwm, base, limit_kib, limit_kib * 5 // 4, st["cache_bytes"],
            st["cache_budget"], st["cache_entries"], st["drop_overload"])
    r = px.query("after.flood.test", "TXT")
    assert r.rcode() == dns.rcode.NOERROR and r.answer, describe(r)


def test_tcp_connections_capped_per_client(dproxy, up):
    px = dproxy(servers=[up])
    px.query("www.example.test")
    conns, served = [], 0
    try:
        for _ in range(20):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(1.0)
            s.bind(("127.0.0.8", 0))
            s.connect((px.host, px.port))
            conns.append(s)
        for s in conns:
            try:
                s.sendall(tcp_frame(make_query("www.example.test").to_wire()))
                if tcp_recv_msg(s, time.monotonic() + 1.0):
                    served += 1
            except (OSError, ConnectionError):
                pass
        assert served == 16, "one client may hold 16 TCP connections at once; %d of 20 served" % served
        r = px.query_from("127.0.0.9", "www.example.test", tcp=True)
        assert r is not None and rrset_texts(r, rdtype="A") == ["192.0.2.1"], \
            "another client must still get TCP service\n" + describe(r)
        assert px.stats()["drop_overload"] >= 4
    finally:
        for s in conns:
            s.close()


@pytest.mark.parametrize("payload", [None, 700])
def test_udp_answer_never_exceeds_client_size(dproxy, up, payload):
    px = dproxy(servers=[up])
    for _ in range(2):                                # miss, then hit
        r = px.query("big.example.test", "TXT", edns=payload)
        limit = payload or 512
        assert len(r.wire) <= limit and r.flags & dns.flags.TC, \
            "UDP answer of %d bytes to a client that accepts %d\n%s" % (len(r.wire), limit, describe(r))


# ---------------------------------------------------------------- privileges

def ids(px):
    # Answered only once the event loop runs, i.e. after the privilege drop
    # (the sockets are bound, and the harness sees them, just before it).
    px.query("www.example.test")
    st = px.proc_status()
    return [int(x) for x in st["Uid"].split()], [int(x) for x in st["Gid"].split()], st["Groups"].split()


@pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop needs the suite to run as root")
def test_privilege_drop_default_nobody(dproxy, up):
    px = dproxy(servers=[up], options={"user": None})
    uid, gid, groups = ids(px)
    assert uid == [65534] * 4, "started as root without `option user`: expected nobody, Uid: %s" % uid
    assert gid == [65534] * 4, "Gid: %s" % gid
    assert groups in ([], ["65534"]), "supplementary groups must be dropped: %s" % groups
    assert rrset_texts(px.query("www.example.test"), rdtype="A") == ["192.0.2.1"]


@pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop needs the suite to run as root")
def test_privilege_drop_to_named_user(dproxy, up):
    px = dproxy(servers=[up], options={"user": "daemon"})
    uid, gid, groups = ids(px)
    assert uid == [1] * 4 and gid == [1] * 4, "user daemon (1:1): Uid %s Gid %s" % (uid, gid)
    assert groups in ([], ["1"]), groups


@pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop needs the suite to run as root")
def test_user_root_keeps_root(dproxy, up):
    px = dproxy(servers=[up], options={"user": "root"})
    uid, _gid, _ = ids(px)
    assert uid == [0] * 4, uid


@pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop needs the suite to run as root")
def test_unknown_user_exits_1(dproxy, up):
    with pytest.raises(DproxyStartError) as e:
        dproxy(servers=[up], options={"user": "no-such-user-dpx"})
    msg = str(e.value)
    assert "status 1 " in msg and "no-such-user-dpx" in msg, msg[:3000]


# ---------------------------------------------------------------- malformed input

def corpus_files(*subdirs):
    out = []
    for base in ("fuzz/corpus", "fuzz/artifacts", "fuzz/regressions"):
        for sub in subdirs:
            d = os.path.join(REPO, base, sub)
            if os.path.isdir(d):
                out += sorted(os.path.join(d, f) for f in os.listdir(d)
                              if os.path.isfile(os.path.join(d, f)))
    return out


def generated_packets(n=400, seed=7):
    """Deterministic malformed queries: mutations of real ones plus noise."""
    rng = random.Random(seed)
    seeds = [make_query(nm, t, edns=e).to_wire() for nm, t, e in
             (("www.example.test", "A", None), ("a.b.c.example.test", "AAAA", 1232),
              ("example.test", "TXT", 4096), ("x" * 63 + ".example.test", "MX", None))]
    out = []
    for i in range(n):
        base = bytearray(rng.choice(seeds))
        kind = i % 8
        if kind == 0:                      # truncation
            base = base[:rng.randrange(len(base))]
        elif kind == 1:                    # bit flips
            for _ in range(rng.randint(1, 6)):
                p = rng.randrange(len(base))
                base[p] ^= 1 << rng.randrange(8)
        elif kind == 2:                    # absurd section counts
            base[4:12] = struct.pack("!HHHH", *(rng.choice([0, 1, 2, 255, 65535]) for _ in range(4)))
        elif kind == 3:                    # compression pointer somewhere in the name
            p = rng.randrange(12, max(13, len(base) - 4))
            base[p:p + 2] = bytes([0xC0 | rng.randrange(64), rng.randrange(256)])
        elif kind == 4:                    # label length past the end / reserved bits
            base[12] = rng.choice([0x40, 0x80, 63, 64, 255])
        elif kind == 5:                    # random garbage with a query header
            base = bytearray(build_header(rng.randrange(65536), qd=1)
                             + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300))))
        elif kind == 6:                    # trailing junk / oversized
            base += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 1500)))
        else:                              # broken OPT: bad rdlen / several OPTs
            base = bytearray(make_query("opt.example.test", edns=1232).to_wire())
            base[-2:] = struct.pack("!H", rng.choice([1, 255, 65535]))
            if rng.random() < 0.5:
                base[10:12] = b"\x00\x02"
                base += base[-11:]
        out.append(bytes(base))
    return out


def _send_tcp_stream(px, data, timeout=0.5):
    try:
        with socket.create_connection((px.host, px.port), timeout=timeout) as s:
            s.sendall(data)
            s.settimeout(timeout)
            try:
                while s.recv(65535):
                    pass
            except (socket.timeout, OSError):
                pass
    except OSError:
        pass


def test_malformed_packets_from_fuzz_corpus_and_generated(dproxy, up):
    px = dproxy(servers=[up])
    packets = [open(f, "rb").read() for f in corpus_files("wire_query", "wire_answer")]
    corpus_n = len(packets)
    packets += generated_packets()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        for i, p in enumerate(packets):
            s.sendto(p, (px.host, px.port))
            try:
                while True:
                    s.settimeout(0.002 if i >= corpus_n else 0.05)
                    s.recv(65535)
            except (socket.timeout, OSError):
                pass
            if i % 50 == 0:
                assert px.alive(), "dproxy died on UDP packet %d: %r\n%s" % (
                    i, p[:64], px.stderr_text()[-3000:])
    # TCP: the corpus and a sample of the generated ones, one frame per
    # connection, then the TCP framer corpus as raw byte streams.
    for i, p in enumerate(packets[:corpus_n] + packets[corpus_n::8]):
        _send_tcp_stream(px, tcp_frame(p[:65535]), timeout=0.05)
        assert px.alive(), "dproxy died on TCP packet %d: %r" % (i, p[:64])
    for f in corpus_files("tcp_frame"):
        _send_tcp_stream(px, open(f, "rb").read(), timeout=0.1)
        assert px.alive(), "dproxy died on TCP stream %s" % f
    r = px.query("www.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], "dproxy must still answer\n" + describe(r)
    r = px.query("mail.example.test", tcp=True)
    assert rrset_texts(r, rdtype="A") == ["192.0.2.2"], describe(r)
    st = px.stats()
    assert st["drop_malformed"] >= 100, st
    assert corpus_n > 0 or not os.path.isdir(os.path.join(REPO, "fuzz", "corpus")), corpus_n


def _splice_question(bad, query_wire):
    """A corpus answer made to look like the answer to our query: its ID, and
    its question replaced by ours (later offsets then point anywhere)."""
    if len(bad) < 12:
        return query_wire[:2] + bad[2:]
    p = 12
    while p < len(bad) and bad[p] != 0 and bad[p] & 0xC0 == 0:
        p += 1 + bad[p]
    p += 5
    qend = 12
    while query_wire[qend] != 0:
        qend += 1 + query_wire[qend]
    qend += 5
    out = bytearray(query_wire[:2] + bad[2:12] + query_wire[12:qend] + bad[p:])
    out[2] |= 0x80
    out[4:6] = b"\x00\x01"
    return bytes(out)


def test_malformed_upstream_answers_do_not_crash(dproxy, up):
    answers = [open(f, "rb").read() for f in corpus_files("wire_answer")]
    rng = random.Random(11)
    good = [make_query("www.example.test").to_wire()]
    for _ in range(60):
        w = bytearray(rng.choice(answers) if answers else good[0])
        for _ in range(rng.randint(1, 8)):
            if w:
                w[rng.randrange(len(w))] = rng.randrange(256)
        answers.append(bytes(w))
    queue = list(answers)
    lock = threading.Lock()

    def bad_first(query, transport):
        with lock:
            if not queue or transport != "udp":
                return FakeUpstream.DEFAULT
            bad = queue.pop(0)
        return _splice_question(bad, query.to_wire())
    up.set_records(RECORDS + ["m%d 300 IN A 192.0.2.%d" % (i, i % 250) for i in range(len(answers))])
    up.handler = bad_first
    px = dproxy(servers=[up])
    results = []

    def ask(i):
        r = px.query("m%d.example.test" % i, timeout=6, expect_answer=False)
        results.append(r)
    ts = []
    for i in range(len(answers)):
        t = threading.Thread(target=ask, args=(i,))
        t.start()
        ts.append(t)
        if len(ts) % 16 == 0:
            for t in ts[-16:]:
                t.join(timeout=8)
    for t in ts:
        t.join(timeout=8)
    assert px.alive(), "dproxy died on malformed upstream answers\n" + px.stderr_text()[-3000:]
    missing = [r for r in results if r is None]
    assert not missing, "%d of %d queries got no answer at all" % (len(missing), len(results))
    assert all(r.rcode() in (dns.rcode.NOERROR, dns.rcode.SERVFAIL, dns.rcode.NXDOMAIN)
               for r in results)
    up.handler = None
    r = px.query("www.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)


def test_persist_file_corpus_never_crashes(dproxy, up, shared_dir):
    files = corpus_files("persist_decode")
    if not files:
        pytest.skip("no fuzz/corpus/persist_decode")
    for i, f in enumerate(files):
        path = os.path.join(shared_dir, "p%d.cache" % i)
        write_file(path, open(f, "rb").read())
        px = dproxy(servers=[up], options={"persist_file": path})
        r = px.query("www.example.test")
        assert r.rcode() == dns.rcode.NOERROR and r.answer, "%s\n%s" % (f, describe(r))
        px.stop_now()
