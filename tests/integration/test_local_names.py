"""Local names: hosts files and DHCP lease files in every supported
format, the local domain, domain_needed, bogus_priv, PTR, and reloads that
keep the cache.  Every test counts what reached the upstream."""
import os
import signal
import subprocess
import time

import dns.flags
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

from harness.dnsutil import describe, rrset_texts
from harness.tools import replace_file, wait_until, write_file

LOCAL_TTL = 42


@pytest.fixture
def up(upstream):
    return upstream(["www 300 IN A 192.0.2.1", "cached 300 IN A 192.0.2.2"])


def local(dproxy, up, shared_dir, hosts=None, leases=(), options=None):
    """A daemon with `hosts` (text or list of paths) and lease files, domain lan."""
    opts = {"domain": "lan", "local_ttl": LOCAL_TTL}
    opts.update(options or {})
    lists = {}
    if hosts is not None:
        lists["hosts"] = hosts if isinstance(hosts, list) else [hosts]
    if leases:
        lists["leasefile"] = list(leases)
    return dproxy(servers=[up], options=opts, lists=lists)


def assert_local_answer(r, rdtype, expected, what=""):
    assert r.rcode() == dns.rcode.NOERROR, "%s: expected NOERROR\n%s" % (what, describe(r))
    assert rrset_texts(r, rdtype=rdtype) == sorted(expected), \
        "%s: expected %s %s\n%s" % (what, rdtype, sorted(expected), describe(r))
    assert r.flags & dns.flags.AA, "%s: local answers must have AA=1\n%s" % (what, describe(r))
    ttls = {rr.ttl for rr in r.answer}
    assert ttls == {LOCAL_TTL}, "%s: TTL must be local_ttl %d, got %s" % (what, LOCAL_TTL, ttls)


def assert_nxdomain(r, what=""):
    assert r is not None and r.rcode() == dns.rcode.NXDOMAIN, \
        "%s: expected NXDOMAIN\n%s" % (what, describe(r))


# Hosts file with CRLF line endings, tabs, comments, IPv4+IPv6, a blank line,
# duplicate names, a malformed line, a name with a trailing dot, leading
# blanks and no newline at the end of the last line.
HOSTS_LINES = [
    "# local machines",
    "192.168.1.10\tnas  nas-alias\t# the NAS",
    "",
    "fd00::10 nas",
    "192.168.1.11 printer.lan.",
    "192.168.1.12 dup",
    "192.168.1.13\tdup",
    "not-an-address broken",
    "10.9.9.9 www.example.test",
    "   192.168.1.14 \t spaced\t\tname2",
]
MALFORMED_LINE = 8


@pytest.fixture
def hosts_file(shared_dir):
    path = os.path.join(shared_dir, "hosts.crlf")
    write_file(path, "\r\n".join(HOSTS_LINES))      # no final newline
    return path


def test_hosts_file_crlf_tabs_comments_duplicates(dproxy, up, shared_dir, hosts_file):
    px = local(dproxy, up, shared_dir, hosts=hosts_file)
    assert_local_answer(px.query("nas"), "A", ["192.168.1.10"], "nas A")
    assert_local_answer(px.query("nas.lan"), "A", ["192.168.1.10"], "nas.lan A (domain)")
    assert_local_answer(px.query("NAS.Lan", "AAAA"), "AAAA", ["fd00::10"], "nas AAAA (case)")
    assert_local_answer(px.query("nas-alias"), "A", ["192.168.1.10"], "second name on a line")
    assert_local_answer(px.query("printer.lan"), "A", ["192.168.1.11"], "name with trailing dot")
    assert_local_answer(px.query("dup"), "A", ["192.168.1.12", "192.168.1.13"],
                        "duplicate name on two lines: both addresses")
    assert_local_answer(px.query("spaced"), "A", ["192.168.1.14"], "last line, no newline")
    assert_local_answer(px.query("name2.lan"), "A", ["192.168.1.14"], "tab-separated alias")
    assert_local_answer(px.query("nas", tcp=True), "A", ["192.168.1.10"], "nas over TCP")
    r = px.query("broken.lan")
    assert_nxdomain(r, "name on the malformed line must not exist")
    assert up.count() == 0, "local names must never be forwarded: " + up.summary()
    assert px.stats()["local"] >= 10
    err = px.stderr_text()
    assert "%s:%d" % (hosts_file, MALFORMED_LINE) in err, \
        "the malformed line must be reported as file:line (%s:%d); stderr:\n%s" % (
            hosts_file, MALFORMED_LINE, err[-3000:])


def test_malformed_line_warned_once(dproxy, up, shared_dir, hosts_file):
    # The file does not change while the daemon runs: its malformed line is
    # reported once, not on every periodic check.
    px = local(dproxy, up, shared_dir, hosts=hosts_file)
    time.sleep(3.5)
    tag = "%s:%d" % (hosts_file, MALFORMED_LINE)
    n = px.stderr_text().count(tag)
    assert n == 1, "expected exactly one warning naming %s for an unchanged file, got %d:\n%s" % (
        tag, n, "\n".join(l for l in px.stderr_text().splitlines() if tag in l))


def test_local_name_missing_type_is_nodata_with_soa(dproxy, up, shared_dir, hosts_file):
    px = local(dproxy, up, shared_dir, hosts=hosts_file)
    for name, t in (("printer.lan", "AAAA"), ("nas", "MX"), ("nas.lan", "TXT"), ("dup", "AAAA")):
        r = px.query(name, t)
        assert r.rcode() == dns.rcode.NOERROR and not r.answer, \
            "%s %s: expected NODATA\n%s" % (name, t, describe(r))
        soa = [rr for rr in r.authority if rr.rdtype == dns.rdatatype.SOA]
        assert soa, "%s %s: NODATA must carry a synthesized SOA\n%s" % (name, t, describe(r))
        assert r.flags & dns.flags.AA, describe(r)
    assert up.count() == 0, up.summary()


def test_local_data_wins_over_cache_and_upstream(dproxy, up, shared_dir):
    hosts = os.path.join(shared_dir, "hosts")
    write_file(hosts, "192.168.1.10 nas\n")
    px = local(dproxy, up, shared_dir, hosts=hosts)
    r = px.query("www.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)
    assert up.count("www.example.test") == 1
    # Now the hosts file claims the name: it wins over the cached upstream answer.
    replace_file(hosts, "192.168.1.10 nas\n10.9.9.9 www.example.test\n")
    r = px.wait_answer("www.example.test", timeout=4,
                       until=lambda m: rrset_texts(m, rdtype="A") == ["10.9.9.9"])
    assert_local_answer(r, "A", ["10.9.9.9"], "hosts entry over cache")
    assert up.count("www.example.test") == 1, up.summary()


def test_hosts_directory(dproxy, up, shared_dir):
    d = os.path.join(shared_dir, "hosts.d")
    os.mkdir(d)
    os.chmod(d, 0o755)
    write_file(os.path.join(d, "a"), "192.168.2.1 alpha\n")
    write_file(os.path.join(d, "b"), "192.168.2.2 beta\n192.168.2.3 alpha\n")
    write_file(os.path.join(d, ".hidden"), "192.168.2.9 hidden\n")
    px = local(dproxy, up, shared_dir, hosts=[d])
    assert_local_answer(px.query("alpha"), "A", ["192.168.2.1", "192.168.2.3"], "alpha from 2 files")
    assert_local_answer(px.query("beta.lan"), "A", ["192.168.2.2"], "beta")
    assert_nxdomain(px.query("hidden.lan"), "dotfiles in a hosts dir are skipped")
    # A file dropped into the directory later (odhcpd, /tmp/hosts) is picked up.
    replace_file(os.path.join(d, "c"), "192.168.2.4 gamma\n")
    r = px.wait_answer("gamma.lan", timeout=4, until=lambda m: m.rcode() == dns.rcode.NOERROR)
    assert_local_answer(r, "A", ["192.168.2.4"], "file added to the directory")
    assert up.count() == 0, up.summary()


def dnsmasq_leases(now):
    return "".join([
        "%d 00:11:22:33:44:50 192.168.1.50 laptop 01:00:11:22:33:44:50\n" % (now + 3600),
        "0 00:11:22:33:44:51 192.168.1.51 forever *\n",
        "0 00:11:22:33:44:52 192.168.1.52 * 01:00:11:22:33:44:52\n",
        "%d 00:11:22:33:44:53 192.168.1.53 expired 01:00:11:22:33:44:53\n" % (now - 100),
        "%d 00:11:22:33:44:54 192.168.1.54 shortlived *\n" % (now + 3),
        "%d 00:11:22:33:44:55 192.168.1.55 nas *\n" % (now + 3600),
        "duid 00:01:00:01:2c:aa:bb:cc:00:11:22:33:44:00\n",
        "%d 287454020 fd00::50 laptop6 00:01:00:01:2c:aa:bb:cc:00:11:22:33:44:50\n" % (now + 3600),
    ])


def test_dnsmasq_leases_and_lease_expiring_during_test(dproxy, up, shared_dir):
    now = int(time.time())
    leases = os.path.join(shared_dir, "dhcp.leases")
    write_file(leases, dnsmasq_leases(now))
    hosts = os.path.join(shared_dir, "hosts")
    write_file(hosts, "192.168.1.10 nas\n")
    px = local(dproxy, up, shared_dir, hosts=hosts, leases=[leases])
    assert_local_answer(px.query("laptop"), "A", ["192.168.1.50"], "dnsmasq lease")
    assert_local_answer(px.query("laptop.lan"), "A", ["192.168.1.50"], "dnsmasq lease + domain")
    assert_local_answer(px.query("forever.lan"), "A", ["192.168.1.51"], "expiry 0 = infinite")
    assert_local_answer(px.query("laptop6.lan", "AAAA"), "AAAA", ["fd00::50"], "IPv6 lease after duid")
    assert_local_answer(px.query("nas.lan"), "A", ["192.168.1.10"],
                        "hosts file wins over a lease for the same name")
    assert_nxdomain(px.query("expired.lan"), "lease whose expiry has passed")
    assert_local_answer(px.query("shortlived.lan"), "A", ["192.168.1.54"], "lease before expiry")
    # The lease runs out while the daemon runs (no file change, no signal).
    time.sleep(max(0.0, now + 3 + 1.2 - time.time()))
    assert_nxdomain(px.query("shortlived.lan"), "lease expired during the test")
    assert_nxdomain(px.query("shortlived.lan", "AAAA"), "lease expired during the test (AAAA)")
    local_names = [q for q in up.queries() if q.name and q.name.endswith(".lan.")]
    assert not local_names, "names under the local domain were forwarded: %s" % local_names


def test_dnsmasq_leases_windows_line_endings(dproxy, up, shared_dir):
    now = int(time.time())
    leases = os.path.join(shared_dir, "dhcp.leases")
    write_file(leases, dnsmasq_leases(now).replace("\n", "\r\n").rstrip("\r\n"))
    px = local(dproxy, up, shared_dir, leases=[leases])
    assert_local_answer(px.query("laptop.lan"), "A", ["192.168.1.50"], "CRLF lease file")
    assert_local_answer(px.query("laptop6.lan", "AAAA"), "AAAA", ["fd00::50"], "CRLF, last line")
    assert_local_answer(px.query("forever"), "A", ["192.168.1.51"], "CRLF, '*' client id")
    assert up.count() == 0, up.summary()


def test_odhcpd_hosts_and_state_files(dproxy, up, shared_dir):
    now = int(time.time())
    hostsfile = os.path.join(shared_dir, "odhcpd.hosts")
    write_file(hostsfile, "192.168.1.60\tv4host.lan v4host\nfd00::60\tv6host.lan v6host\n")
    state = os.path.join(shared_dir, "odhcpd.state")
    write_file(state, "".join([
        "# br-lan 00010001aabbccdd001122334461 1a2b3c4d statehost %d 61 128 fd00::61/128\n" % (now + 3600),
        "fd00::61\tstatehost.lan statehost\n",
        "# br-lan 01001122334462 ipv4 v4state %d 62 32 192.168.1.62/32\n" % (now + 3600),
        "192.168.1.62\tv4state.lan v4state\n",
        "# br-lan 00010001aabbccdd001122334463 5e6f statedead 0 63 128 fd00::63/128\n",
        "fd00::63\tstatedead.lan statedead\n",
    ]))
    px = local(dproxy, up, shared_dir, leases=[hostsfile, state])
    assert_local_answer(px.query("v4host"), "A", ["192.168.1.60"], "odhcpd hostsfile v4")
    assert_local_answer(px.query("v6host.lan", "AAAA"), "AAAA", ["fd00::60"], "odhcpd hostsfile v6")
    assert_local_answer(px.query("statehost.lan", "AAAA"), "AAAA", ["fd00::61"], "odhcpd state v6")
    assert_local_answer(px.query("v4state"), "A", ["192.168.1.62"], "odhcpd state v4")
    assert_nxdomain(px.query("statedead.lan", "AAAA"), "odhcpd state line with valid 0 = expired")
    assert up.count() == 0, up.summary()


def isc_leases(now):
    return """# The format of this file is documented in the dhcpd.leases(5) manual page.
# This lease file was written by isc-dhcp-4.4.3
authoring-byte-order little-endian;
server-duid "\\000\\001\\000\\001";

lease 192.168.1.70 {
  starts 4 2026/11/26 05:00:00;
  ends epoch %d; # some day
  cltt 4 2026/11/26 05:00:00;
  binding state active;
  next binding state free;
  rewind binding state free;
  hardware ethernet 00:11:22:33:44:70;
  uid "\\001\\000\\021\\"3Dp";
  client-hostname "iscbox";
}
lease 192.168.1.71 {
  starts 4 2026/11/26 05:00:00;
  ends 5 2099/01/01 00:00:00;
  binding state active;
  hardware ethernet 00:11:22:33:44:71;
  client-hostname "iscdate";
}
lease 192.168.1.72 {
  starts 4 2026/11/26 05:00:00;
  ends never;
  binding state free;
  client-hostname "iscfree";
}
lease 192.168.1.73 {
  ends epoch %d;
  binding state active;
  client-hostname "iscold";
}
lease 192.168.1.74 {
  ends 3 2020/01/01 00:00:00;
  binding state active;
  client-hostname "iscexpired";
}
host fixed { hardware ethernet 00:11:22:33:44:99; fixed-address 192.168.1.99; }
lease 192.168.1.73 {
  ends never;
  binding state active;
  hostname "iscnew";
}""" % (now + 3600, now + 3600)


def test_isc_dhcpd_leases(dproxy, up, shared_dir):
    now = int(time.time())
    path = os.path.join(shared_dir, "dhcpd.leases")
    write_file(path, isc_leases(now).replace("\n", "\r\n").replace("  ", "\t"))
    px = local(dproxy, up, shared_dir, leases=[path])
    assert_local_answer(px.query("iscbox.lan"), "A", ["192.168.1.70"], "ISC lease, ends epoch")
    assert_local_answer(px.query("iscdate"), "A", ["192.168.1.71"], "ISC lease, ends date")
    assert_local_answer(px.query("iscnew.lan"), "A", ["192.168.1.73"],
                        "the later block for an address wins (hostname)")
    assert_nxdomain(px.query("iscold.lan"), "an earlier block for the same address is replaced")
    assert_nxdomain(px.query("iscfree.lan"), "binding state free")
    assert_nxdomain(px.query("iscexpired.lan"), "ends in the past")
    assert up.count() == 0, up.summary()


def test_ptr_ipv4_and_ipv6(dproxy, up, shared_dir, hosts_file):
    now = int(time.time())
    leases = os.path.join(shared_dir, "dhcp.leases")
    write_file(leases, dnsmasq_leases(now))
    px = local(dproxy, up, shared_dir, hosts=hosts_file, leases=[leases])
    cases = [("192.168.1.10", "nas.lan."), ("fd00::10", "nas.lan."),
             ("192.168.1.11", "printer.lan."), ("192.168.1.50", "laptop.lan."),
             ("fd00::50", "laptop6.lan.")]
    for ip, target in cases:
        rname = dns.reversename.from_address(ip).to_text()
        r = px.query(rname, "PTR")
        assert_local_answer(r, "PTR", [target], "PTR %s" % ip)
    for ip, target in cases[:2]:
        r = px.query(dns.reversename.from_address(ip).to_text(), "PTR", tcp=True)
        assert_local_answer(r, "PTR", [target], "PTR %s over TCP" % ip)
    assert up.count() == 0, up.summary()


def test_lease_file_rewritten_picked_up_and_cache_kept(dproxy, up, shared_dir):
    now = int(time.time())
    leases = os.path.join(shared_dir, "dhcp.leases")
    write_file(leases, "%d 00:11:22:33:44:01 192.168.1.101 alpha *\n" % (now + 3600))
    px = local(dproxy, up, shared_dir, leases=[leases])
    assert_local_answer(px.query("alpha.lan"), "A", ["192.168.1.101"], "first lease file")
    for name in ("www.example.test", "cached.example.test"):
        assert rrset_texts(px.query(name), rdtype="A"), name
    before = up.count()
    assert before == 2, up.summary()
    # dnsmasq-style rename into place: a new inode.
    replace_file(leases, "%d 00:11:22:33:44:02 192.168.1.102 beta *\n" % (now + 3600))
    r = px.wait_answer("beta.lan", timeout=4, until=lambda m: m.rcode() == dns.rcode.NOERROR)
    assert_local_answer(r, "A", ["192.168.1.102"], "lease file renamed into place, no restart")
    assert_nxdomain(px.query("alpha.lan"), "old lease gone after the rewrite")
    # In-place rewrite of the same file.
    write_file(leases, "%d 00:11:22:33:44:03 192.168.1.103 gamma *\n" % (now + 3600)
               + "%d 00:11:22:33:44:02 192.168.1.102 beta *\n" % (now + 3600))
    r = px.wait_answer("gamma.lan", timeout=4, until=lambda m: m.rcode() == dns.rcode.NOERROR)
    assert_local_answer(r, "A", ["192.168.1.103"], "lease file rewritten in place")
    # The cached upstream answers survived both reloads.
    for name in ("www.example.test", "cached.example.test"):
        assert rrset_texts(px.query(name), rdtype="A"), name
    assert up.count() == before, "reload lost cached upstream answers: " + up.summary()
    assert px.alive()


def test_missing_lease_file_appears_later(dproxy, up, shared_dir):
    leases = os.path.join(shared_dir, "later.leases")
    px = local(dproxy, up, shared_dir, leases=[leases])
    assert_nxdomain(px.query("late.lan"), "no lease file yet")
    replace_file(leases, "0 00:11:22:33:44:07 192.168.1.107 late *\n")
    r = px.wait_answer("late.lan", timeout=4, until=lambda m: m.rcode() == dns.rcode.NOERROR)
    assert_local_answer(r, "A", ["192.168.1.107"], "lease file created after start")
    os.unlink(leases)
    r = px.wait_answer("late.lan", timeout=4, until=lambda m: m.rcode() == dns.rcode.NXDOMAIN)
    assert_nxdomain(r, "lease file removed: its names go")
    assert up.count() == 0, up.summary()


def test_sighup_rereads_local_files_and_keeps_cache(dproxy, up, shared_dir):
    hosts = os.path.join(shared_dir, "hosts")
    write_file(hosts, "192.168.3.1 one\n")
    px = local(dproxy, up, shared_dir, hosts=hosts)
    assert rrset_texts(px.query("www.example.test"), rdtype="A") == ["192.0.2.1"]
    write_file(hosts, "192.168.3.2 two\n")
    px.signal(signal.SIGHUP)
    r = px.wait_answer("two.lan", timeout=3, until=lambda m: m.rcode() == dns.rcode.NOERROR)
    assert_local_answer(r, "A", ["192.168.3.2"], "after SIGHUP")
    assert rrset_texts(px.query("www.example.test"), rdtype="A") == ["192.0.2.1"]
    assert up.count("www.example.test") == 1, "SIGHUP emptied the cache: " + up.summary()


def test_domain_needed_and_local_zones_never_forwarded(dproxy, up, shared_dir):
    hosts = os.path.join(shared_dir, "hosts")
    write_file(hosts, "192.168.1.10 nas\n")
    px = local(dproxy, up, shared_dir, hosts=hosts, options={"domain_needed": "1"})
    assert_local_answer(px.query("nas"), "A", ["192.168.1.10"], "local dotless name")
    names = ["printer", "wpad", "localhost-ish", "ghost.lan", "deep.ghost.lan",
             "router.home.arpa", "home.arpa"]
    for n in names:
        for t in ("A", "AAAA"):
            assert_nxdomain(px.query(n, t), "%s %s must not be forwarded" % (n, t))
    assert_nxdomain(px.query("printer", tcp=True), "dotless over TCP")
    assert up.count() == 0, "domain_needed / local zones leaked upstream: " + up.summary()
    # Normal names still go upstream.
    assert rrset_texts(px.query("www.example.test"), rdtype="A") == ["192.0.2.1"]
    assert up.count() == 1, up.summary()


def test_without_domain_needed_dotless_names_are_forwarded(dproxy, up, shared_dir):
    px = local(dproxy, up, shared_dir, options={"domain_needed": "0", "domain": None})
    px.query("printer")
    assert up.count("printer.") == 1, "control: dotless name should be forwarded: " + up.summary()


PRIVATE_PTR = ["192.168.5.5", "10.1.2.3", "172.16.0.1", "172.31.255.254", "169.254.1.1",
               "fd12:3456::1", "fe80::1"]


def test_bogus_priv_private_reverse_never_forwarded(dproxy, up, shared_dir):
    hosts = os.path.join(shared_dir, "hosts")
    write_file(hosts, "192.168.1.10 nas\n")
    px = local(dproxy, up, shared_dir, hosts=hosts, options={"bogus_priv": "1"})
    for ip in PRIVATE_PTR:
        r = px.query(dns.reversename.from_address(ip).to_text(), "PTR")
        assert_nxdomain(r, "bogus_priv: PTR for %s" % ip)
    # Known private addresses still answer from the local table.
    r = px.query(dns.reversename.from_address("192.168.1.10").to_text(), "PTR")
    assert_local_answer(r, "PTR", ["nas.lan."], "local PTR under bogus_priv")
    assert up.count() == 0, "bogus_priv leaked private reverse lookups: " + up.summary()
    # A public reverse name is forwarded.
    px.query(dns.reversename.from_address("8.8.4.4").to_text(), "PTR")
    assert up.count("4.4.8.8.in-addr.arpa.") == 1, up.summary()


def test_without_bogus_priv_private_reverse_is_forwarded(dproxy, up, shared_dir):
    px = local(dproxy, up, shared_dir, options={"bogus_priv": "0"})
    px.query(dns.reversename.from_address("192.168.5.5").to_text(), "PTR")
    assert up.count("5.5.168.192.in-addr.arpa.") == 1, "control: " + up.summary()


# ---------------------------------------------------------------- after the privilege drop

def root_only_dir(shared_dir, name):
    """A directory only root may enter (0700), inside the world-readable shared_dir."""
    d = os.path.join(shared_dir, name)
    os.mkdir(d)
    os.chmod(d, 0o700)
    return d


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: dproxy switches to user nobody")
@pytest.mark.parametrize("layout", ["file_in_0700_dir", "dir_in_0700_dir", "file_0600"])
def test_unreadable_after_the_drop_keeps_names_and_warns_once(dproxy, up, shared_dir, layout):
    # Started as root with the default `user nobody`; the hosts path is in a 0700
    # directory (so it cannot even be stat'ed), or is itself 0600 root: it is read at
    # start as root and then no more.
    secret = root_only_dir(shared_dir, "secret")
    as_dir = layout == "dir_in_0700_dir"
    hosts = os.path.join(secret, "hosts")
    if as_dir:
        os.mkdir(hosts)
        os.chmod(hosts, 0o755)
        write_file(os.path.join(hosts, "lan"), "192.0.2.88 vault\n")
    elif layout == "file_0600":
        os.chmod(secret, 0o755)
        write_file(hosts, "192.0.2.88 vault\n", mode=0o600)
    else:
        write_file(hosts, "192.0.2.88 vault\n")
    px = local(dproxy, up, shared_dir, hosts=hosts)
    err = px.stderr_text()
    assert "running as user nobody" in err, err[-2000:]
    start = [l for l in err.splitlines() if "cannot read it" in l]
    assert len(start) == 1 and hosts in start[0] and "nobody" in start[0], \
        "one start-up warning naming the path and user:\n" + err[-2000:]
    assert_local_answer(px.query("vault.lan"), "A", ["192.0.2.88"], "at start")
    # The change poll runs once a second; after its first run as nobody:
    assert wait_until(lambda: "permission denied" in px.stderr_text()
                      or "gone; its names are dropped" in px.stderr_text(), 4)
    time.sleep(2.2)                 # two more polls as nobody
    err = px.stderr_text()
    assert "gone; its names are dropped" not in err, "EACCES is not deletion:\n" + err[-2000:]
    assert_local_answer(px.query("vault.lan"), "A", ["192.0.2.88"], "after the drop")
    denied = [l for l in err.splitlines() if "permission denied" in l]
    assert len(denied) == 1, "one warning, not one per poll:\n" + "\n".join(denied)
    assert hosts in denied[0] and "nobody" in denied[0] and "readable by nobody" in denied[0], \
        denied[0]
    assert up.count("vault.lan") == 0, up.summary()
    # Readable again: picked up as usual.
    os.chmod(secret, 0o755)
    os.chmod(hosts, 0o755 if as_dir else 0o644)
    target = os.path.join(hosts, "lan") if as_dir else hosts
    write_file(target, "192.0.2.89 vault\n")
    r = px.wait_answer("vault.lan", timeout=5,
                       until=lambda m: rrset_texts(m, rdtype="A") == ["192.0.2.89"])
    assert_local_answer(r, "A", ["192.0.2.89"], "readable again")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: dproxy switches to user nobody")
def test_check_config_and_persist_file_report_what_nobody_cannot_access(
        dproxy, dproxy_bin, up, shared_dir):
    secret = root_only_dir(shared_dir, "secret")
    hosts = os.path.join(secret, "hosts")
    write_file(hosts, "192.0.2.88 vault\n")
    leases = os.path.join(shared_dir, "leases")
    write_file(leases, "", mode=0o600)
    persist = os.path.join(secret, "cache.bin")
    px = dproxy(servers=[up], options={"persist_file": persist},
                lists={"hosts": [hosts], "leasefile": [leases]})
    err = px.stderr_text()
    for path, what in ((hosts, "cannot read it"), (leases, "cannot read it"),
                       (persist, "cannot write in")):
        lines = [l for l in err.splitlines() if path in l and what in l]
        assert len(lines) == 1 and "nobody" in lines[0], \
            "expected one start-up warning for %s:\n%s" % (path, err[-3000:])
    res = subprocess.run([dproxy_bin, "-c", px.conf, "--check-config"], capture_output=True,
                         text=True, timeout=10)
    out = res.stdout + res.stderr
    assert res.returncode == 0 and "configuration ok" in out, out
    for path in (hosts, leases, persist):
        assert sum(path in l and "nobody" in l for l in out.splitlines()) == 1, out
    px.query("www.example.test")
    px.stop_now()
    err = px.stderr_text()
    saves = [l for l in err.splitlines() if "cannot save the cache" in l]
    assert len(saves) == 1 and saves[0].startswith("dproxy: error:") and persist in saves[0] \
        and "nobody" in saves[0], "a failed save at exit is an error:\n" + err[-2000:]
