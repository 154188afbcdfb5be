"""The automatic link detector: one name an upstream drops is no outage, and the
first upstream answer after an outage ends offline mode.

The detector's decisions are unit-tested on a virtual clock in src/core/tests.rs; these
tests run the real daemon against a scripted upstream; the quiet spells are the
upstream's silence, no test sleeps for them."""
import threading
import time

import dns.rcode
import pytest

from harness.dnsutil import describe, rrset_texts
from harness.tools import ede_codes, wait_until

EDE_STALE = 3
EDE_NETWORK = 23

RECORDS = ["www 300 IN A 192.0.2.1", "short 1 IN A 192.0.2.50"]
RECORDS += ["n%d 300 IN A 192.0.2.%d" % (i, 100 + i) for i in range(10)]


@pytest.fixture
def up(upstream):
    return upstream(RECORDS)


def link_state(px):
    return px.stats().get("link")


def test_one_dropped_name_on_a_quiet_lan_keeps_the_link_up(dproxy, up):
    # The upstream never answers one name (a broken authority behind it), and answers
    # everything else, the probe included.
    up.handler = lambda q, t: None if q.question[0].name.to_text().lower() == \
        "dropped.example.test." else up.DEFAULT
    px = dproxy(servers=[up])
    # A quiet LAN: only the dropped name is asked. It is retried until its deadline
    # (4 s), longer than the detector's quiet spell (3 s), and its attempts time out
    # until the server counts as down: every server fails, so a probe goes out.
    got = {}
    th = threading.Thread(target=lambda: got.update(
        r=px.query("dropped.example.test", timeout=7, expect_answer=False)))
    th.start()
    th.join(timeout=8)
    r = got.get("r")
    assert r is not None and r.rcode() == dns.rcode.SERVFAIL, describe(r)
    assert link_state(px) == "up", "one silent name took the link down: %s\n%s" % (
        px.stats(), px.stderr_text()[-2000:])
    for i in range(5):
        r = px.query("n%d.example.test" % i, edns=1232)
        assert r.rcode() == dns.rcode.NOERROR and rrset_texts(r, rdtype="A"), \
            "other names must be answered, not SERVFAIL 'link down'\n" + describe(r)
        assert EDE_NETWORK not in ede_codes(r), describe(r)
    assert "no upstream server answers" not in px.stderr_text()
    assert up.wait_count(1, ".", "NS") >= 1, "every server failing must lead to a probe: " \
        + up.summary()


def test_silent_upstream_goes_offline_and_first_answer_ends_it(dproxy, up):
    # The thresholds (3 s of quiet with every server failing, then 2 s for the probe)
    # and the timed probes every 5 s while down are checked on the virtual clock:
    # core::tests::a_dead_link_goes_down_when_the_probe_is_silent_too and
    # core::tests::probes_every_five_seconds_while_down_by_itself. Here the daemon does
    # it, once: down by itself, offline answers, and back at the first answer.
    px = dproxy(servers=[up])
    assert rrset_texts(px.query("short.example.test"), rdtype="A") == ["192.0.2.50"]
    up.mode = "silent"
    t0 = time.monotonic()
    errors = []

    def ask(i):
        r = px.query("lost%d.example.test" % i, timeout=7, expect_answer=False)
        if r is None or r.rcode() != dns.rcode.SERVFAIL:
            errors.append((i, describe(r)))
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    state = wait_until(lambda: link_state(px) == "down-auto", 12, 0.1)
    took = time.monotonic() - t0
    for t in threads:
        t.join(timeout=8)
    assert state, "no automatic link-down after %.1fs of a silent upstream: %s" % (took, px.stats())
    assert took >= 2.9, "went offline after only %.1fs (expected >= 3 s without answers)" % took
    assert not errors, "queries during the outage must get SERVFAIL: %s" % errors
    assert px.stats()["upstream.0.state"] == "down"
    assert up.count(".", "NS") >= 1, "every server failing must lead to a probe: " + up.summary()
    # Offline: a miss is answered at once and not sent upstream (only probes go out);
    # the expired entry is served stale.
    n_before = len([q for q in up.queries() if q.name != "."])
    t = time.monotonic()
    r = px.query("fresh.example.test", edns=1232)
    assert r.rcode() == dns.rcode.SERVFAIL and EDE_NETWORK in ede_codes(r), describe(r)
    assert time.monotonic() - t < 0.05, "an offline miss must be answered at once"
    r = px.query("short.example.test", edns=1232)
    assert EDE_STALE in ede_codes(r) and {rr.ttl for rr in r.answer} == {30}, describe(r)
    others = [q for q in up.queries() if q.name != "."][n_before:]
    assert not others, "only probes may go upstream while down-auto: %s" % others
    # The probes those questions sent went unanswered; once they are over, the
    # upstream comes back, and the next timed probe is seconds away (5 s after the
    # link went down): a client's question must bring the link back at once.
    assert wait_until(lambda: px.stats()["pending"] == 0, 3, 0.05), px.stats()
    soa = up.count(".", "SOA")
    up.mode = "normal"
    back = time.monotonic()
    stale_after_back = 0
    while True:
        r = px.query("short.example.test", edns=1232)
        if EDE_STALE not in ede_codes(r):
            break
        stale_after_back += 1
        assert time.monotonic() - back < 6, "still stale 6 s after the upstream came back"
        time.sleep(0.1)
    took = time.monotonic() - back
    assert r.rcode() == dns.rcode.NOERROR and rrset_texts(r, rdtype="A") == ["192.0.2.50"], \
        describe(r)
    assert {rr.ttl for rr in r.answer} != {30}, describe(r)
    assert took < 1.0 and stale_after_back <= 1, \
        "stale answers for %.1f s (%d of them) after the upstream came back" % (
            took, stale_after_back)
    assert up.count(".", "SOA") > soa, "recovery without an on-demand probe: " + up.summary()
    assert link_state(px) == "up"
    assert px.stats()["upstream.0.state"] == "up", "upstream health must be reset on recovery"
    err = px.stderr_text()
    assert err.count("no upstream server answers") == 1, "log the down transition once:\n" + err[-3000:]
    assert err.count("link up (") == 1, "log the up transition once:\n" + err[-3000:]
