"""Surviving link loss: link state by signal, control socket and
automatic detection; offline answers (servfail / hold); serve-stale (RFC 8767)
offline and online; prefetch; refresh after link up; the persist file; and
`ctl stats` counters."""
import os
import signal
import struct
import threading
import time

import dns.flags
import dns.rcode
import pytest

from harness.dnsutil import describe, min_ttl, rrset_texts
from harness.tools import (PERSIST_MAGIC, ede_codes, persist_parse, persist_shift_time,
                           persist_with_crc, wait_until, write_file)

EDE_STALE = 3
EDE_BLOCKED = 15
EDE_NO_REACHABLE = 22
EDE_NETWORK = 23

RECORDS = ["www 300 IN A 192.0.2.1", "mail 300 IN A 192.0.2.2", "mail 300 IN AAAA 2001:db8::2"]
RECORDS += ["n%d 300 IN A 192.0.2.%d" % (i, 100 + i) for i in range(10)]


@pytest.fixture
def up(upstream):
    return upstream(RECORDS)


def link_state(px):
    return px.stats().get("link")


def go_down(px, how="signal"):
    if how == "signal":
        px.signal(signal.SIGUSR2)
    else:
        r = px.ctl("link", "down")
        assert r.returncode == 0 and "link down" in r.stdout, (r.returncode, r.stdout, r.stderr)
    assert wait_until(lambda: link_state(px) == "down", 2), "link did not go down: %s" % px.stats()


def go_up(px, how="signal"):
    if how == "signal":
        px.signal(signal.SIGUSR1)
    else:
        r = px.ctl("link", "up")
        assert r.returncode == 0 and "link up" in r.stdout, (r.returncode, r.stdout, r.stderr)
    assert wait_until(lambda: link_state(px) == "up", 2), "link did not come up: %s" % px.stats()


def timed_query(px, *a, **kw):
    t0 = time.monotonic()
    r = px.query(*a, **kw)
    return r, time.monotonic() - t0


def assert_offline_servfail(r, took, edns=True, what=""):
    assert r.rcode() == dns.rcode.SERVFAIL, "%s: expected SERVFAIL while down\n%s" % (what, describe(r))
    assert took < 0.050, "%s: SERVFAIL must come within 50 ms of the query, took %.1f ms" % (
        what, took * 1000)
    if edns:
        assert EDE_NETWORK in ede_codes(r), \
            "%s: expected EDE 23 (Network Error), got %s\n%s" % (what, ede_codes(r), describe(r))
    else:
        assert r.edns < 0, "%s: no OPT for a client without EDNS\n%s" % (what, describe(r))


def assert_stale(r, expected, edns=True, what=""):
    assert r.rcode() == dns.rcode.NOERROR and rrset_texts(r, rdtype="A") == expected, \
        "%s: expected the stale answer %s\n%s" % (what, expected, describe(r))
    ttls = {rr.ttl for rr in r.answer}
    assert ttls == {30}, "%s: stale answers carry TTL 30, got %s" % (what, ttls)
    if edns:
        assert EDE_STALE in ede_codes(r), "%s: expected EDE 3 (Stale Answer), got %s" % (
            what, ede_codes(r))


def _wire(name):
    return b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"


def _with_expiry(data, left):
    """The persist file `data` with the entries of the names in `left` (name: seconds)
    expiring that many seconds from now, their lifetime unchanged: entries aged without
    waiting for it (the CRC recomputed)."""
    _v, _w, entries = persist_parse(data)
    body = bytearray(data[:-4])
    now = int(time.time())
    found = set()
    for e in entries:
        for name, secs in left.items():
            if _wire(name) in e["key"]:
                body[e["offset"]:e["offset"] + 8] = struct.pack("!Q", now + secs)
                found.add(name)
    assert found == set(left), "entries not in the persist file: %s" % (set(left) - found)
    return persist_with_crc(bytes(body))


def aged_daemon(dproxy, up, shared_dir, left, options=None, lists=None):
    """A daemon whose cache holds the names in `left` (name: seconds), expiring that
    many seconds from now (negative: expired as long ago), loaded from a persist file
    that an earlier daemon wrote: entries aged without waiting for it."""
    path = os.path.join(shared_dir, "aged.cache")
    px = persist_daemon(dproxy, up, path)
    for name in left:
        assert rrset_texts(px.query(name), rdtype="A"), name
    px.stop_now()
    write_file(path, _with_expiry(open(path, "rb").read(), left))
    o = {"persist_file": path}
    o.update(options or {})
    return dproxy(servers=[up], options=o, lists=lists)


# ---------------------------------------------------------------- link down

def test_upstream_killed_then_sigusr2_cached_answered_misses_servfail_fast(dproxy, up):
    px = dproxy(servers=[up])
    for n in ("www", "mail", "n1"):
        assert rrset_texts(px.query(n + ".example.test"), rdtype="A"), n
    assert up.count() == 3
    up.stop()                       # the upstream process is gone
    go_down(px)
    hits0 = px.stats()["hits"]
    for n, ip in (("www", "192.0.2.1"), ("mail", "192.0.2.2"), ("n1", "192.0.2.101")):
        r = px.query(n + ".example.test", edns=1232)
        assert rrset_texts(r, rdtype="A") == [ip] and r.rcode() == dns.rcode.NOERROR, describe(r)
        assert not ede_codes(r), "a fresh cached answer is not stale: %s" % describe(r)
    assert px.stats()["hits"] == hits0 + 3
    for i, name in enumerate(["new%d.example.test" % i for i in range(5)]):
        r, took = timed_query(px, name, edns=1232)
        assert_offline_servfail(r, took, what="miss %s (EDNS)" % name)
    r, took = timed_query(px, "plain.example.test")
    assert_offline_servfail(r, took, edns=False, what="miss without EDNS")
    r, took = timed_query(px, "tcp.example.test", tcp=True, edns=1232)
    assert_offline_servfail(r, took, what="miss over TCP")
    r, took = timed_query(px, "mail.example.test", "TXT", edns=1232)
    assert_offline_servfail(r, took, what="cached name, uncached type")


@pytest.mark.parametrize("how", ["signal", "ctl"])
def test_no_upstream_traffic_while_down(dproxy, up, shared_dir, how):
    up.set_records(RECORDS + ["short 300 IN A 192.0.2.50"])
    px = aged_daemon(dproxy, up, shared_dir, {"short.example.test": -5})
    go_down(px, how)
    before = up.count()
    for i in range(8):
        r, took = timed_query(px, "down%d.example.test" % i, edns=1232, tcp=bool(i % 2))
        assert_offline_servfail(r, took, what="miss %d" % i)
    px.query("short.example.test")  # expired, stale_max default: served stale, no refresh
    time.sleep(1.2)                 # housekeeping (refresh, probes) gets its chance
    assert up.count() == before, "upstream traffic while the link is down: " + up.summary()
    st = px.stats()
    # This daemon started with the cache loaded and went down before asking anything.
    assert st["link"] == "down" and st["upstream_queries"] == 0, st
    go_up(px, how)
    r = px.query("down0.example.test")
    assert r.rcode() == dns.rcode.NXDOMAIN, "after link up the miss goes upstream\n" + describe(r)
    assert up.count("down0.example.test") == 1, up.summary()


def test_hold_answered_after_sigusr1(dproxy, up):
    px = dproxy(servers=[up], options={"offline_policy": "hold", "hold_timeout": 2})
    px.query("www.example.test")
    go_down(px)
    r, took = timed_query(px, "www.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"] and took < 0.05, "cached name while holding"
    res = {}

    def ask():
        t = time.monotonic()
        res["r"] = px.query("n5.example.test", timeout=4, expect_answer=False)
        res["t"] = time.monotonic()
    th = threading.Thread(target=ask)
    th.start()
    time.sleep(0.6)
    assert "r" not in res, "a held query was answered while the link is down: %s" % describe(res["r"])
    assert up.count("n5.example.test") == 0, "held query went upstream: " + up.summary()
    t_up = time.monotonic()
    px.signal(signal.SIGUSR1)
    th.join(timeout=5)
    r = res.get("r")
    assert r is not None and rrset_texts(r, rdtype="A") == ["192.0.2.105"], \
        "held query must be answered after SIGUSR1\n" + describe(r)
    assert res["t"] - t_up < 0.5, "held query answered %.2fs after SIGUSR1" % (res["t"] - t_up)
    assert up.count("n5.example.test") == 1, up.summary()


def test_hold_times_out_with_servfail(dproxy, up):
    # The hold deadline itself, and a released question's fresh deadline, are checked on
    # the virtual clock: core::tests::held_question_waits_hold_timeout_then_fails.
    px = dproxy(servers=[up], options={"offline_policy": "hold", "hold_timeout": 1})
    go_down(px)
    r, took = timed_query(px, "n6.example.test", edns=1232, timeout=4)
    assert r.rcode() == dns.rcode.SERVFAIL, describe(r)
    assert 0.8 <= took <= 2.0, "hold_timeout 1: SERVFAIL expected after ~1 s, came after %.2fs" % took
    assert EDE_NETWORK in ede_codes(r), ede_codes(r)
    assert up.count() == 0, up.summary()


# ---------------------------------------------------------------- serve-stale

STALE_RECORDS = RECORDS + ["short 1 IN A 192.0.2.11", "ddns 1 IN A 192.0.2.12",
                           "host.ddns 1 IN A 192.0.2.13"]


def test_stale_ttl30_ede3_until_stale_max_never_excluded(dproxy, up, shared_dir):
    up.set_records(STALE_RECORDS)
    # Expired a second ago, within stale_max 3.
    px = aged_daemon(dproxy, up, shared_dir,
                     {n + ".example.test": -1 for n in ("short", "ddns", "host.ddns")},
                     options={"stale_max": 3}, lists={"stale_exclude": ["ddns.example.test"]})
    go_down(px)
    before = up.count()
    stale0 = px.stats()["stale"]
    assert_stale(px.query("short.example.test", edns=1232), ["192.0.2.11"], what="EDNS client")
    r = px.query("short.example.test")
    assert_stale(r, ["192.0.2.11"], edns=False, what="client without EDNS")
    assert r.edns < 0, describe(r)
    assert_stale(px.query("short.example.test", tcp=True, edns=1232), ["192.0.2.11"], what="TCP")
    for n in ("ddns", "host.ddns"):
        r, took = timed_query(px, n + ".example.test", edns=1232)
        assert_offline_servfail(r, took, what="stale_exclude name %s" % n)
    assert px.stats()["stale"] == stale0 + 3
    assert up.count() == before, up.summary()
    # The end of stale_max, and stale_max 0, are checked on the virtual clock:
    # core::tests::stale_answers_for_stale_max_seconds_after_expiry.


def test_failures_learned_while_down_not_kept_after_link_up(dproxy, up):
    px = dproxy(servers=[up])
    go_down(px)
    r = px.query("nothere.example.test", edns=1232)
    assert r.rcode() == dns.rcode.SERVFAIL
    go_up(px)
    r = px.query("nothere.example.test", edns=1232)
    assert r.rcode() == dns.rcode.NXDOMAIN, "SERVFAIL from the outage kept past link up\n" + describe(r)
    assert up.count("nothere.example.test") == 1
    # A question in flight when the link goes down is failed at once, and
    # nothing of it stays after link up.
    up.delays["www.example.test."] = 800
    res = {}
    th = threading.Thread(target=lambda: res.update(r=px.query("www.example.test", edns=1232,
                                                                 timeout=3)))
    t0 = time.monotonic()
    th.start()
    time.sleep(0.2)
    px.signal(signal.SIGUSR2)
    th.join(timeout=4)
    took = time.monotonic() - t0
    assert res["r"].rcode() == dns.rcode.SERVFAIL and EDE_NETWORK in ede_codes(res["r"]), \
        describe(res["r"])
    assert took < 0.6, "in-flight query should fail at link down, took %.2fs" % took
    time.sleep(0.8)
    go_up(px)
    up.delays.clear()
    r = px.query("www.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)


def test_link_up_rereads_empty_resolvfile(dproxy, upstream):
    try:
        up53 = upstream(RECORDS, host="127.0.0.252", port=53)
    except OSError as e:
        pytest.skip("cannot bind 127.0.0.252:53 for a resolv.conf upstream: %s" % e)
    px = dproxy()                                  # no `list server`: resolvfile (empty)
    r = px.query("www.example.test", edns=1232)
    assert r.rcode() == dns.rcode.SERVFAIL, "no servers yet\n" + describe(r)
    assert EDE_NO_REACHABLE in ede_codes(r), ede_codes(r)
    write_file(px.options["resolvfile"], "# written by netifd\nnameserver 127.0.0.252\n")
    px.signal(signal.SIGUSR1)
    r = px.wait_answer("www.example.test", timeout=3,
                       until=lambda m: m.rcode() == dns.rcode.NOERROR)
    assert r is not None and rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)
    assert up53.count("www.example.test") == 1
    assert px.stats()["upstream.0.addr"] == "127.0.0.252:53"


def test_link_up_refreshes_stale_entries_unasked(dproxy, up, shared_dir):
    # Order (most used first), the bound (64) and the pace (8 a second) are checked on
    # the virtual clock: core::tests::link_up_refresh_is_most_used_first_bounded_and_paced.
    names = ["e%02d" % i for i in range(6)]
    up.set_records(RECORDS + ["%s 300 IN A 198.51.100.%d" % (n, i) for i, n in enumerate(names)])
    px = aged_daemon(dproxy, up, shared_dir, {n + ".example.test": -5 for n in names})
    go_down(px)
    assert all(up.count(n + ".example.test") == 1 for n in names), up.summary()
    go_up(px)

    def refreshed():
        return [n for n in names if up.count(n + ".example.test") >= 2]
    assert wait_until(lambda: len(refreshed()) == len(names), 5, 0.1), \
        "stale entries not refreshed after link up: %s" % up.summary()


def test_stale_timer_online_answers_stale_and_keeps_resolving(dproxy, up, shared_dir):
    # An entry expired 5 s ago, loaded from the persist file (no wait for an expiry).
    up.set_records(RECORDS + ["short 300 IN A 192.0.2.11"])
    px = aged_daemon(dproxy, up, shared_dir, {"short.example.test": -5},
                     options={"stale_timeout": 300})
    up.set_records(RECORDS + ["short 300 IN A 192.0.2.99"])
    up.delays["short.example.test."] = 1500
    r, took = timed_query(px, "short.example.test", edns=1232)
    assert_stale(r, ["192.0.2.11"], what="stale after stale_timeout")
    assert 0.25 <= took < 1.0, "stale answer expected after stale_timeout 300 ms, came after %.2fs" % took
    assert up.wait_count(2, "short.example.test") >= 2, up.summary()
    # The upstream answers 1.5 s after it was asked: the resolution goes on meanwhile
    # and refreshes the cache.
    r = px.wait_answer("short.example.test", timeout=3, edns=1232,
                       until=lambda m: not ede_codes(m))
    assert r is not None and rrset_texts(r, rdtype="A") == ["192.0.2.99"] and min_ttl(r) > 290, \
        "the resolution must have continued and refreshed the cache\n" + describe(r)
    asked = up.count("short.example.test")
    r = px.query("short.example.test", edns=1232)
    assert rrset_texts(r, rdtype="A") == ["192.0.2.99"] and not ede_codes(r), describe(r)
    assert up.count("short.example.test") == asked, "a refreshed entry is a hit: " + up.summary()
    # Control: a miss without a stale entry waits for the upstream.
    up.delays["www.example.test."] = 900
    r, took = timed_query(px, "www.example.test")
    assert took >= 0.85 and rrset_texts(r, rdtype="A") == ["192.0.2.1"], (took, describe(r))


def test_prefetch_refreshes_hot_name_before_expiry(dproxy, up, shared_dir):
    # The rule (a hit with under 10 % of the lifetime left, asked before) is checked on
    # the virtual clock: core::tests::prefetch_in_the_last_tenth_of_the_lifetime_after_a_second_ask.
    # Here the daemon does it: entries of lifetime 300 s, loaded from the persist file
    # with 20 s (hot) and 100 s (warm) left, so nothing waits for an expiry.
    up.set_records(RECORDS + ["hot 300 IN A 192.0.2.40", "warm 300 IN A 192.0.2.41"])
    px = aged_daemon(dproxy, up, shared_dir, {"hot.example.test": 20, "warm.example.test": 100},
                     options={"prefetch": 1})
    r = px.query("hot.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.40"] and min_ttl(r) <= 20, \
        "the aged entry answers\n" + describe(r)
    assert up.wait_count(2, "hot.example.test") == 2, \
        "a hit with 20 s of 300 left must be prefetched: " + up.summary()
    r = px.wait_answer("hot.example.test", timeout=3, until=lambda m: min_ttl(m) > 290)
    assert r is not None and rrset_texts(r, rdtype="A") == ["192.0.2.40"] and min_ttl(r) > 290, \
        "the prefetched answer replaces the entry\n" + describe(r)
    for _ in range(3):
        r = px.query("warm.example.test")
        assert rrset_texts(r, rdtype="A") == ["192.0.2.41"] and 90 <= min_ttl(r) <= 100, describe(r)
    assert up.count("hot.example.test") == 2, "expected exactly one prefetch: " + up.summary()
    assert up.count("warm.example.test") == 1, "prefetched with a third of its lifetime left: " \
        + up.summary()
    assert px.stats()["prefetch"] == 1


# ---------------------------------------------------------------- persist file

def persist_daemon(dproxy, up, path, **opts):
    o = {"persist_file": path}
    o.update(opts)
    return dproxy(servers=[up], options=o)


def fill_and_stop(dproxy, up, path):
    px = persist_daemon(dproxy, up, path)
    for n in ("www", "mail", "n2"):
        assert rrset_texts(px.query(n + ".example.test"), rdtype="A"), n
    assert rrset_texts(px.query("mail.example.test", "AAAA"), rdtype="AAAA")
    px.stop_now()
    return px


def test_restart_with_persist_file_keeps_answers(dproxy, up, shared_dir):
    path = os.path.join(shared_dir, "dproxy.cache")
    t_write = time.time()
    fill_and_stop(dproxy, up, path)
    data = open(path, "rb").read()
    assert data.startswith(PERSIST_MAGIC), data[:16]
    version, written_at, entries = persist_parse(data)
    assert version == 2 and abs(written_at - t_write) < 5, (version, written_at, t_write)
    assert len(entries) == 4, "expected 4 cached entries in the persist file, got %d" % len(entries)
    assert [f for f in os.listdir(shared_dir) if f != "dproxy.cache"] == [], \
        "temporary files left next to the persist file: %s" % os.listdir(shared_dir)
    asked = up.count()
    time.sleep(1.1)
    px2 = persist_daemon(dproxy, up, path)
    for n, ip in (("www", "192.0.2.1"), ("mail", "192.0.2.2"), ("n2", "192.0.2.102")):
        r = px2.query(n + ".example.test")
        assert rrset_texts(r, rdtype="A") == [ip], describe(r)
        assert 290 <= min_ttl(r) < 300, "TTL must be aged by the time elapsed\n" + describe(r)
    assert rrset_texts(px2.query("mail.example.test", "AAAA"), rdtype="AAAA") == ["2001:db8::2"]
    assert up.count() == asked, "names cached before the restart went upstream: " + up.summary()
    assert px2.stats()["hits"] == 4


def test_persist_interval_writes_periodically(dproxy, up, shared_dir):
    path = os.path.join(shared_dir, "periodic.cache")
    px = persist_daemon(dproxy, up, path, persist_interval=1)
    px.query("www.example.test")
    assert wait_until(lambda: os.path.exists(path) and len(persist_parse(open(path, "rb").read())[2]), 3.5), \
        "persist_interval 1: no file with entries after 3.5 s"
    assert px.alive()


def _truncated(d):
    return d[:len(d) // 2]


def _flipped(d):
    b = bytearray(d)
    b[len(b) // 2] ^= 0x40
    return bytes(b)


def _future(d):
    body = bytearray(d[:-4])
    body[8:10] = struct.pack("!H", 99)
    return persist_with_crc(bytes(body))


def _bad_entries(d):
    body = bytearray(d[:24])
    body[20:24] = struct.pack("!I", 3)
    return persist_with_crc(bytes(body) + b"\xff" * 40)


BAD_FILES = {
    "truncated": _truncated,
    "header-only": lambda d: d[:10],
    "corrupt": _flipped,
    "foreign": lambda d: b"#!/bin/sh\necho this is not a cache\n",
    "future-version": _future,
    "bad-entries-good-crc": _bad_entries,
    "empty": lambda d: b"",
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_persist_file_one_warning_empty_cache_not_deleted(dproxy, up, shared_dir, kind):
    path = os.path.join(shared_dir, "dproxy.cache")
    fill_and_stop(dproxy, up, path)
    bad = BAD_FILES[kind](open(path, "rb").read())
    write_file(path, bad)
    asked = up.count("www.example.test")
    px = persist_daemon(dproxy, up, path)
    r = px.query("www.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)
    assert up.count("www.example.test") == asked + 1, "a %s persist file must give an empty cache" % kind
    assert px.stats()["cache_entries"] == 1
    warnings = [l for l in px.stderr_text().splitlines() if path in l and "warn" in l.lower()]
    assert len(warnings) == 1, "expected one warning for a %s persist file, got:\n%s" % (
        kind, "\n".join(warnings) or px.stderr_text()[-2000:])
    assert os.path.exists(path) and open(path, "rb").read() == bad, \
        "the bad persist file must not be deleted or changed while the daemon runs"


def test_clock_earlier_than_write_time_loads_stale(dproxy, up, shared_dir):
    path = os.path.join(shared_dir, "dproxy.cache")
    fill_and_stop(dproxy, up, path)
    # As if written 1000 s in the future (a router without RTC booting in the past).
    write_file(path, persist_with_crc(persist_shift_time(open(path, "rb").read(), 1000)[:-4]))
    asked = up.count()
    px = dproxy(servers=[up], options={"persist_file": path, "stale_timeout": 300})
    assert "earlier" in px.stderr_text(), "expected a warning about the clock\n" + px.stderr_text()[-2000:]
    go_down(px)
    # Offline: loaded entries are stale, not fresh.
    assert_stale(px.query("www.example.test", edns=1232), ["192.0.2.1"], what="loaded as stale")
    assert_stale(px.query("n2.example.test", edns=1232), ["192.0.2.102"], what="loaded as stale")
    assert up.count() == asked
    go_up(px)
    # Online: a stale entry is not a hit; the name is resolved again.
    r = px.query("mail.example.test", edns=1232)
    assert rrset_texts(r, rdtype="A") == ["192.0.2.2"] and min_ttl(r) > 290 and not ede_codes(r), \
        describe(r)
    assert up.count("mail.example.test", "A") == 2, "a stale loaded entry must be refreshed: " + up.summary()


# ---------------------------------------------------------------- ctl

def test_ctl_stats_counters_match_traffic(dproxy, up, shared_dir):
    hosts = os.path.join(shared_dir, "hosts")
    write_file(hosts, "192.168.1.10 nas\n")
    px = dproxy(servers=[up], lists={"hosts": [hosts]})
    names = ["n%d.example.test" % i for i in range(5)]
    for n in names:                                  # 5 misses
        px.query(n)
    for n in names:                                  # 10 hits, one over TCP
        px.query(n)
        px.query(n, tcp=(n == names[0]))
    px.query("nxname.example.test")                  # miss (NXDOMAIN)
    px.query("nxname.example.test")                  # negative hit
    px.query("nas")                                  # 2 local
    px.query("nas", "AAAA")
    px.query_raw(b"\x12\x34\x01")                     # 2 malformed
    px.query_raw(b"\x12\x34\x01\x00" + b"\x00" * 8, timeout=0.5)
    go_down(px)
    for i in range(3):                               # 3 offline misses = SERVFAIL
        px.query("off%d.example.test" % i)
    st = px.stats()
    expect = {"queries": 5 + 10 + 2 + 2 + 2 + 3, "hits": 11, "misses": 5 + 1 + 3, "local": 2,
              "servfail": 3, "stale": 0, "drop_malformed": 2,
              "upstream_queries": up.count(), "upstream.0.queries": up.count(),
              "upstream.0.answers": up.count(), "cache_entries": 6}
    got = {k: st.get(k) for k in expect}
    assert got == expect, "ctl stats does not match the traffic sent:\n got %s\nwant %s" % (got, expect)
    assert up.count() == 6, up.summary()
    assert st["link"] == "down" and st["replies"] == st["queries"] - 1, st
    # dump and flush
    go_up(px)
    dump = px.ctl("dump")
    assert dump.returncode == 0 and "n3.example.test" in dump.stdout and "192.0.2.103" in dump.stdout, \
        dump.stdout[:2000]
    fl = px.ctl("flush")
    assert fl.returncode == 0 and fl.stdout.strip() == "flushed 6", fl.stdout
    assert px.stats()["cache_entries"] == 0
    px.query(names[0])
    assert up.count(names[0]) == 2, "flush must empty the cache: " + up.summary()
    bad = px.ctl("frobnicate")
    assert bad.returncode != 0
    mode = os.stat(px.options["control_socket"]).st_mode & 0o777
    assert mode == 0o600, "control socket mode must be 0600, is %o" % mode
