"""Blocklists (`list blocklist`, `list block_allow`, `option block_answer`): every
line format, subdomains, exceptions, the three answers with Extended DNS Error 15,
local names winning, the cache never serving a blocked name, reloads of files and
directories, `ctl blocked NAME`, and a 1,000,000-line list within twice the memory
and load-time targets.  Every test counts what reached the upstream."""
import os
import time

import dns.flags
import dns.rcode
import pytest

from harness.dnsutil import describe, rrset_texts
from harness.tools import ede_codes, replace_file, wait_until, write_file

EDE_BLOCKED = 15

RECORDS = ["www 300 IN A 192.0.2.1", "cached 300 IN A 192.0.2.2",
           "ok.tracker 300 IN A 192.0.2.3", "nas 300 IN A 192.0.2.4"]

# One line of every format, plus boilerplate and one bad line (line 12).
LIST_LINES = [
    "# a comment",
    "! an Adblock Plus comment",
    "",
    "plain.example.test",
    "0.0.0.0 hosts4.example.test",
    ":: hosts6.example.test",
    "127.0.0.1 localhost",
    "local=/local.example.test/",
    "address=/address.example.test/",
    "address=/null.example.test/#",
    "server=/server.example.test/",
    "this line is bad",
    "||abp.example.test^",
    "tracker.example.test",
    "Mixed.Case.Example.Test.  # trailing comment\r",
]
BAD_LINE = 12
LISTED = ["plain", "hosts4", "hosts6", "local", "address", "null", "server", "abp",
          "tracker", "mixed.case"]


@pytest.fixture
def up(upstream):
    return upstream(RECORDS)


@pytest.fixture
def listfile(shared_dir):
    path = os.path.join(shared_dir, "block.list")
    write_file(path, "\n".join(LIST_LINES) + "\n")
    return path


def blocking(dproxy, up, lists, options=None):
    px = dproxy(servers=[up], options=options or {}, lists=dict(lists))
    # The harness waits for the DNS sockets; the control socket is bound just after them.
    assert wait_until(lambda: px.ctl("stats").returncode == 0), "control socket never answered"
    return px


def assert_blocked(r, rcode=dns.rcode.NXDOMAIN, what=""):
    assert r is not None and r.rcode() == rcode, "%s: expected %s\n%s" % (
        what, dns.rcode.to_text(rcode), describe(r))
    assert EDE_BLOCKED in ede_codes(r), "%s: EDE 15 (Blocked) missing\n%s" % (what, describe(r))


def test_every_format_blocks_name_and_subdomains(dproxy, up, listfile):
    px = blocking(dproxy, up, {"blocklist": [listfile]})
    for n in LISTED:
        for name in ("%s.example.test" % n, "a.b.%s.example.test" % n):
            r = px.query(name, edns=0)
            assert_blocked(r, what=name)
            assert r.authority and r.authority[0].rdtype == 6, "NXDOMAIN needs a SOA\n" + describe(r)
    assert up.count() == 0, "blocked names must never be forwarded: " + up.summary()
    # Parents, look-alikes and the boilerplate are not blocked.
    for name in ("example.test", "www.example.test", "xplain.example.test", "localhost"):
        r = px.query(name)
        assert EDE_BLOCKED not in ede_codes(r), describe(r)
    assert up.count("www.example.test") == 1, up.summary()
    s = px.stats()
    assert s["blocked"] == 2 * len(LISTED), s
    assert s["blocklist_domains"] == len(LISTED), s


def test_bad_lines_counted_and_logged_once_per_file(dproxy, up, listfile):
    px = blocking(dproxy, up, {"blocklist": [listfile]})
    time.sleep(2.5)       # a few periodic checks of the unchanged file
    lines = [l for l in px.stderr_text().splitlines() if listfile in l and "not understood" in l]
    assert len(lines) == 1, "expected one warning for the file, got:\n" + "\n".join(lines)
    assert "1 lines" in lines[0] and "line %d" % BAD_LINE in lines[0], lines[0]
    assert_blocked(px.query("plain.example.test", edns=0))


def test_block_allow_exceptions_win(dproxy, up, listfile):
    px = blocking(dproxy, up, {"blocklist": [listfile], "block_allow": ["ok.tracker.example.test"]})
    assert_blocked(px.query("tracker.example.test", edns=0))
    assert_blocked(px.query("x.tracker.example.test", edns=0))
    r = px.query("ok.tracker.example.test")
    assert r.rcode() == dns.rcode.NOERROR and rrset_texts(r, rdtype="A") == ["192.0.2.3"], describe(r)
    assert up.count("ok.tracker.example.test") == 1, up.summary()
    assert up.count("tracker.example.test") == 0, up.summary()


def test_block_answer_null(dproxy, up, listfile):
    px = blocking(dproxy, up, {"blocklist": [listfile]}, {"block_answer": "null"})
    r = px.query("plain.example.test", "A", edns=0)
    assert_blocked(r, dns.rcode.NOERROR, "A")
    assert rrset_texts(r, rdtype="A") == ["0.0.0.0"], describe(r)
    r = px.query("sub.plain.example.test", "AAAA", edns=0)
    assert_blocked(r, dns.rcode.NOERROR, "AAAA")
    assert rrset_texts(r, rdtype="AAAA") == ["::"], describe(r)
    r = px.query("plain.example.test", "MX", edns=0)
    assert_blocked(r, dns.rcode.NOERROR, "MX")
    assert not r.answer and r.authority, "other types: NODATA with a SOA\n" + describe(r)
    # Without EDNS there is no OPT record to carry the EDE; the answer is the same.
    r = px.query("plain.example.test", "A")
    assert rrset_texts(r, rdtype="A") == ["0.0.0.0"] and r.edns < 0, describe(r)
    assert up.count() == 0, up.summary()


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_block_answer_refused(dproxy, up, listfile, tcp):
    px = blocking(dproxy, up, {"blocklist": [listfile]}, {"block_answer": "refused"})
    r = px.query("abp.example.test", "A", edns=0, tcp=tcp)
    assert_blocked(r, dns.rcode.REFUSED)
    assert not r.answer, describe(r)
    assert up.count() == 0, up.summary()


def test_local_names_win_over_blocklists(dproxy, up, shared_dir):
    hosts = os.path.join(shared_dir, "hosts")
    write_file(hosts, "192.168.1.10 nas.example.test\n")
    bl = os.path.join(shared_dir, "bl")
    write_file(bl, "example.test\n")
    px = blocking(dproxy, up, {"blocklist": [bl], "hosts": [hosts]})
    r = px.query("nas.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.168.1.10"] and EDE_BLOCKED not in ede_codes(r), \
        describe(r)
    assert_blocked(px.query("www.example.test", edns=0))
    assert up.count() == 0, up.summary()


def test_cached_answer_not_served_once_blocked_and_list_reloads(dproxy, up, shared_dir):
    bl = os.path.join(shared_dir, "bl")
    write_file(bl, "other.example.test\n")
    px = blocking(dproxy, up, {"blocklist": [bl]})
    r = px.query("cached.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.2"], describe(r)
    assert up.count("cached.example.test") == 1
    # The list is replaced (rename into place, as list updaters do): picked up within
    # a couple of periodic checks, and the cached answer is not served any more.
    replace_file(bl, "0.0.0.0 cached.example.test\n")
    r = wait_until(lambda: EDE_BLOCKED in ede_codes(px.query("cached.example.test", edns=0)),
                   timeout=5)
    assert r, "the changed list was not picked up:\n" + px.stderr_text()[-2000:]
    assert_blocked(px.query("cached.example.test", edns=0))
    assert up.count("cached.example.test") == 1, up.summary()
    r = px.query("other.example.test")
    assert r.rcode() == dns.rcode.NXDOMAIN and EDE_BLOCKED not in ede_codes(r), describe(r)
    # The cached answer was dropped when the list blocked it (blocked names are looked
    # up only on a cache miss): once the file is removed, the name is asked again.
    os.unlink(bl)
    assert wait_until(lambda: px.stats()["blocklist_domains"] == 0, timeout=5)
    r = px.query("cached.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.2"], describe(r)
    assert up.count("cached.example.test") == 2, up.summary()


def test_saved_cache_never_serves_a_name_listed_since(dproxy, up, shared_dir):
    cache = os.path.join(shared_dir, "dproxy.cache")
    px = dproxy(servers=[up], options={"persist_file": cache})
    for n in ("www", "cached"):
        assert rrset_texts(px.query(n + ".example.test"), rdtype="A"), n
    px.stop_now()
    assert os.path.getsize(cache) > 0
    bl = os.path.join(shared_dir, "bl")
    write_file(bl, "cached.example.test\n")
    px2 = blocking(dproxy, up, {"blocklist": [bl]}, {"persist_file": cache})
    assert_blocked(px2.query("cached.example.test", edns=0))
    # The rest of the saved cache is served as before.
    assert rrset_texts(px2.query("www.example.test"), rdtype="A") == ["192.0.2.1"]
    assert up.count("cached.example.test") == 1 and up.count("www.example.test") == 1, \
        up.summary()
    assert px2.stats()["hits"] == 1


def test_directory_of_lists_and_sighup(dproxy, up, shared_dir):
    d = os.path.join(shared_dir, "lists")
    os.mkdir(d)
    os.chmod(d, 0o755)
    write_file(os.path.join(d, "a.list"), "a.example.test\n")
    write_file(os.path.join(d, "b.hosts"), "0.0.0.0 b.example.test\n")
    px = blocking(dproxy, up, {"blocklist": [d]})
    assert_blocked(px.query("a.example.test", edns=0))
    assert_blocked(px.query("b.example.test", edns=0))
    write_file(os.path.join(d, "c.dnsmasq"), "address=/c.example.test/\n")
    assert wait_until(lambda: px.stats()["blocklist_domains"] == 3, timeout=5)
    assert_blocked(px.query("c.example.test", edns=0))
    # SIGHUP with an edited config: block_allow and block_answer apply at once.
    px.lists["block_allow"] = ["a.example.test"]
    px.options["block_answer"] = "refused"
    px.write_config()
    px.signal(__import__("signal").SIGHUP)
    assert wait_until(lambda: px.query("a.example.test").rcode() == dns.rcode.NXDOMAIN
                      and up.count("a.example.test") == 1, timeout=5), up.summary()
    assert_blocked(px.query("b.example.test", edns=0), dns.rcode.REFUSED)
    assert up.count("b.example.test") == 0, up.summary()


def test_ctl_blocked_name(dproxy, up, listfile):
    px = blocking(dproxy, up, {"blocklist": [listfile], "block_allow": ["ok.tracker.example.test"]})
    r = px.ctl("blocked", "Deep.Plain.Example.Test.")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "blocked: deep.plain.example.test (listed: plain.example.test, file: %s)\n" \
        % listfile, r.stdout
    r = px.ctl("blocked", "ok.tracker.example.test")
    assert r.stdout.startswith("not blocked: ok.tracker.example.test (listed: tracker."), r.stdout
    assert "block_allow ok.tracker.example.test" in r.stdout, r.stdout
    r = px.ctl("blocked", "www.example.test")
    assert r.stdout == "not blocked: www.example.test\n", r.stdout
    r = px.ctl("blocked")
    assert r.returncode == 2 and "blocked NAME" in r.stderr, r
    assert up.count() == 0, up.summary()


def test_bad_block_answer_is_a_config_error(dproxy_bin, tmp_path):
    conf = tmp_path / "c"
    conf.write_text("config dproxy 'main'\n\toption block_answer 'sinkhole'\n")
    import subprocess
    r = subprocess.run([dproxy_bin, "-c", str(conf), "--check-config"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 1 and "block_answer" in r.stderr and "sinkhole" in r.stderr, r


# ------------------------------------------------------------------ a million domains

TARGET_BYTES_PER_DOMAIN = 12
TARGET_LINES_PER_SECOND = 1_000_000
N_BIG = 1_000_000


TLDS = ["com", "net", "org", "io", "de", "co.uk", "info", "xyz"]
WORDS = ["ads", "track", "metrics", "pixel", "cdn", "stat", "beacon", "click", "tag", "log"]


def big_name(i):
    """Domain i of the generated list: 3 or 4 labels, 10 to 40 bytes."""
    return "%s%d.%s%s.%s" % (WORDS[i % 10], i, WORDS[(i // 10) % 10], "x" * (i % 13),
                             TLDS[(i // 100) % 8])


def write_big_list(path, n):
    """n distinct domains in hosts format (the most common format of published lists);
    a couple of seconds."""
    with open(path, "w") as f:
        f.write("# generated\n")
        f.writelines("0.0.0.0 %s\n" % big_name(i) for i in range(n))
    os.chmod(path, 0o644)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(px, key="VmRSS"):
    return int(px.proc_status()[key].split()[0])


def test_million_domain_list_memory_and_load_time(dproxy, up, shared_dir):
    big = os.path.join(shared_dir, "big.list")
    write_big_list(big, N_BIG)
    empty = os.path.join(shared_dir, "empty.list")
    write_file(empty, "# nothing\n")
    base = blocking(dproxy, up, {"blocklist": [empty]})      # the baseline RSS
    px = blocking(dproxy, up, {"blocklist": [big]})
    for i in (0, 4711, N_BIG - 1):
        assert_blocked(px.query(big_name(i), edns=0), what=big_name(i))
        assert_blocked(px.query("www." + big_name(i), edns=0), what=big_name(i))
    assert px.stats()["blocklist_domains"] == N_BIG
    # CPU time, not wall time: the load is single-threaded, and this stays true on a
    # busy machine.
    load = cpu_seconds(px.proc.pid)
    assert load <= 2 * N_BIG / TARGET_LINES_PER_SECOND, "load took %.2f s of CPU" % load
    grown = (rss_kib(px) - rss_kib(base)) * 1024 / N_BIG
    assert grown <= 2 * TARGET_BYTES_PER_DOMAIN, "%.1f bytes of RSS per domain" % grown
    # A reload of the changed list peaks at the old set plus one new set.
    steady = rss_kib(px)
    with open(big, "a") as f:
        f.write("one-more.example\n")
    assert wait_until(lambda: px.stats()["blocklist_domains"] == N_BIG + 1, timeout=10)
    peak = rss_kib(px, "VmHWM")
    set_kib = (steady - rss_kib(base))
    assert peak <= steady + 2 * set_kib, "reload peak %d KiB, steady %d KiB, set %d KiB" % (
        peak, steady, set_kib)
    r = px.query("www.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)
    print("big list: %.2f s CPU to load, %.1f bytes/domain, peak %d KiB, steady %d KiB"
          % (load, grown, peak, steady))
