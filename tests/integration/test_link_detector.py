"""The automatic link detector in the real daemon: a silent upstream takes the link
down by itself, and the first answer after the outage ends offline mode.

The detector's decisions are tested on a virtual clock in src/core/tests.rs: the
thresholds (suspect 3 s after the last answer with every server failing, down 2 s
later without an answer to the probe), the timed probes every 5 s, one dropped name
on a quiet LAN keeping the link up (one_dropped_name_on_a_quiet_lan_keeps_the_link_up),
and offline misses answered at once without going upstream
(a_silent_server_takes_the_link_down_and_the_first_answer_brings_it_back). What only
the daemon shows stays here: real attempts and timers feed the detector, a probe
reaches the upstream, the state shows in `ctl stats`, a stale answer is served while
down by itself, a client's question probes at once, and each change is logged once.
The quiet spells are the upstream's silence; no test sleeps for them."""
import threading

import dns.rcode
import pytest

from harness.dnsutil import describe, rrset_texts
from harness.tools import ede_codes, wait_until

EDE_STALE = 3

RECORDS = ["www 300 IN A 192.0.2.1", "short 1 IN A 192.0.2.50"]


@pytest.fixture
def up(upstream):
    return upstream(RECORDS)


def link_state(px):
    return px.stats().get("link")


def test_silent_upstream_goes_offline_and_first_answer_ends_it(dproxy, up):
    px = dproxy(servers=[up])
    assert rrset_texts(px.query("short.example.test"), rdtype="A") == ["192.0.2.50"]
    up.mode = "silent"
    errors = []

    def ask(i):
        r = px.query("lost%d.example.test" % i, timeout=7, expect_answer=False)
        if r is None or r.rcode() != dns.rcode.SERVFAIL:
            errors.append((i, describe(r)))
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    state = wait_until(lambda: link_state(px) == "down-auto", 12, 0.1)
    for t in threads:
        t.join(timeout=8)
    assert state, "no automatic link-down with a silent upstream: %s" % px.stats()
    assert not errors, "queries during the outage must get SERVFAIL: %s" % errors
    assert px.stats()["upstream.0.state"] == "down"
    assert up.count(".", "NS") >= 1, "every server failing must lead to a probe: " + up.summary()
    # The upstream answers again; the link is still down until the daemon hears from
    # it, and the next timed probe is 5 s away. The client's question is answered from
    # the expired entry (the daemon replies before it probes), and probes at once.
    asked = len([q for q in up.queries() if q.name != "."])
    soa = up.count(".", "SOA")
    up.mode = "normal"
    r = px.query("short.example.test", edns=1232)
    assert EDE_STALE in ede_codes(r) and {rr.ttl for rr in r.answer} == {30}, describe(r)
    assert wait_until(lambda: link_state(px) == "up", 2, 0.02), \
        "the first answer must end offline mode: %s" % px.stats()
    assert up.count(".", "SOA") > soa, "recovery without an on-demand probe: " + up.summary()
    others = [q for q in up.queries() if q.name != "."][asked:]
    assert not others, "only probes may go upstream while down-auto: %s" % others
    r = px.query("short.example.test", edns=1232)
    assert r.rcode() == dns.rcode.NOERROR and rrset_texts(r, rdtype="A") == ["192.0.2.50"], \
        describe(r)
    assert EDE_STALE not in ede_codes(r) and {rr.ttl for rr in r.answer} != {30}, describe(r)
    assert px.stats()["upstream.0.state"] == "up", "upstream health must be reset on recovery"
    err = px.stderr_text()
    assert err.count("no upstream server answers") == 1, "log the down transition once:\n" + err[-3000:]
    assert err.count("link up (") == 1, "log the up transition once:\n" + err[-3000:]
