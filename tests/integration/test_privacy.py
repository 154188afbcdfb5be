"""Privacy at rest: the cache is the LAN's browsing history.

The persist file is created 0600 whatever the umask and owned by the run-as
user; query names never reach the log at the default level (info), whatever
happens to the query; a client's EDNS Client Subnet and cookie never leave
for the upstream; the control socket is 0600 and `ctl dump` is only for root
and the user dproxy runs as (checked on the connection, SO_PEERCRED)."""
import os
import pwd
import signal
import socket
import stat
import subprocess
import time

import dns.edns
import dns.message
import dns.rcode
import dns.rrset
import pytest

from harness.dnsutil import describe, rrset_texts
from harness.tools import wait_until, write_file

RECORDS = ["www 300 IN A 192.0.2.1", "nas 300 IN A 192.168.7.7"]
# A uid that is neither root nor the daemon's user, with no name needed.
OTHER_UID = 54321


def needs_root():
    if os.geteuid() != 0:
        pytest.skip("needs root: the daemon drops to nobody and clients run as other uids")


def file_mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


class Umask:
    def __init__(self, mask):
        self.mask = mask

    def __enter__(self):
        self.old = os.umask(self.mask)

    def __exit__(self, *exc):
        os.umask(self.old)


# ---------------------------------------------------------------- persist file

def test_persist_file_created_0600_owned_by_run_as_user(dproxy, upstream, shared_dir):
    needs_root()
    up = upstream(RECORDS)
    path = os.path.join(shared_dir, "cache")
    seen_modes = []
    # With the usual umask 022 a plain create would give 0644.
    with Umask(0o022):
        px = dproxy(servers=[up], options={"persist_file": path, "persist_interval": "1"})
    assert px.query("www.example.test").rcode() == dns.rcode.NOERROR
    # Periodic writes (every second) while it runs.
    assert wait_until(lambda: os.path.exists(path), timeout=5), \
        "no persist file after 5 s with persist_interval 1\n" + px.stderr_text()[-2000:]
    for _ in range(20):
        for name in os.listdir(shared_dir):
            try:
                seen_modes.append((name, file_mode(os.path.join(shared_dir, name))))
            except FileNotFoundError:
                pass       # the temporary file, renamed away meanwhile
        time.sleep(0.1)
    px.stop_now()
    nobody = pwd.getpwnam("nobody").pw_uid
    st = os.lstat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600, \
        "persist file is mode %o, must be 600 (the LAN's history)" % stat.S_IMODE(st.st_mode)
    assert st.st_uid == nobody, "persist file owned by uid %d, not the run-as user" % st.st_uid
    bad = [(n, "%o" % m) for n, m in seen_modes if m != 0o600]
    assert not bad, "files in the persist directory readable by others while running: %r" % bad


def test_existing_readable_persist_file_made_private_at_start(dproxy, upstream, shared_dir):
    """A file left 0644 by an older version is made 0600 when loaded, not at the next write."""
    needs_root()
    up = upstream(RECORDS)
    path = os.path.join(shared_dir, "cache")
    px = dproxy(servers=[up], options={"persist_file": path})
    px.query("www.example.test")
    px.stop_now()
    os.chmod(path, 0o644)
    px2 = dproxy(servers=[up], options={"persist_file": path})
    assert file_mode(path) == 0o600, "a 0644 persist file stays readable by others while running"
    r = px2.query("www.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)
    assert up.count("www.example.test") == 1, "the cache must still load from it\n" + up.summary()


# ---------------------------------------------------------------- names in logs

SECRET = "zq7secret"


def names_in_log_scenario(dproxy, upstream, shared_dir, log_level):
    """Everything that can happen to a query, each with a name containing SECRET;
    returns the daemon's log."""
    def handler(q, transport):
        name = q.question[0].name.to_text().lower()
        if name.startswith("fail-"):
            r = dns.message.make_response(q)
            r.set_rcode(dns.rcode.SERVFAIL)
            return r
        if name.startswith("mute-"):
            return None
        if name.startswith("priv-"):
            r = dns.message.make_response(q)
            r.answer.append(dns.rrset.from_text(q.question[0].name, 300, "IN", "A", "192.168.7.7"))
            return r
        return up.DEFAULT

    up = upstream(RECORDS + ["%s-hit 300 IN A 192.0.2.9" % SECRET,
                             "%s-tcp 300 IN A 192.0.2.10" % SECRET,
                             "%s-miss 300 IN A 192.0.2.11" % SECRET])
    up.handler = handler
    hosts = os.path.join(shared_dir, "hosts-%s" % log_level)
    write_file(hosts, "192.168.1.5 %s-local %s-local.lan\n" % (SECRET, SECRET))
    opts = {"rate_limit": "20", "rate_burst": "20", "rebind_protection": "1",
            "domain": "lan", "refuse_action": "refused", "log_level": log_level}
    px = dproxy(servers=[up], options=opts,
                lists={"deny": ["127.0.0.3/32"], "hosts": [hosts]})
    z = "example.test"
    # hit (asked twice), miss, TCP, NXDOMAIN, NODATA, local name, PTR
    for _ in range(2):
        assert px.query("%s-hit.%s" % (SECRET, z)).rcode() == dns.rcode.NOERROR
    px.query("%s-tcp.%s" % (SECRET, z), tcp=True)
    assert px.query("%s-nx.%s" % (SECRET, z)).rcode() == dns.rcode.NXDOMAIN
    px.query("%s-hit.%s" % (SECRET, z), "AAAA")
    r = px.query("%s-local.lan" % SECRET)
    assert rrset_texts(r, rdtype="A") == ["192.168.1.5"], describe(r)
    px.query("%s-local" % SECRET, "AAAA")
    px.query("5.1.168.192.in-addr.arpa", "PTR")
    # refused client
    r = px.query_from("127.0.0.3", "%s-refused.%s" % (SECRET, z))
    assert r is not None and r.rcode() == dns.rcode.REFUSED, describe(r)
    # rate-limited client: 60 at once, burst 20
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.6", 0))
        for i in range(60):
            q = dns.message.make_query("%s-flood%d.%s" % (SECRET, i, z), "A")
            s.sendto(q.to_wire(), (px.host, px.port))
    assert wait_until(lambda: px.stats()["drop_ratelimit"] > 0, timeout=3)
    # upstream failures: SERVFAIL, silence, a rebinding answer
    assert px.query("fail-%s.%s" % (SECRET, z)).rcode() == dns.rcode.SERVFAIL
    r = px.query("priv-%s.%s" % (SECRET, z))
    assert r.rcode() == dns.rcode.NXDOMAIN, "rebinding must be refused\n" + describe(r)
    px.query("mute-%s.%s" % (SECRET, z), timeout=8, expect_answer=False)
    # link down: a cached name (served), a miss (SERVFAIL), link up again
    assert px.ctl("link", "down").returncode == 0
    px.query("%s-hit.%s" % (SECRET, z))
    assert px.query("%s-down.%s" % (SECRET, z)).rcode() == dns.rcode.SERVFAIL
    assert px.ctl("link", "up").returncode == 0
    px.query("%s-miss.%s" % (SECRET, z))
    # a reload and a flush
    px.signal(signal.SIGHUP)
    assert wait_until(lambda: "reload" in px.stderr_text(), timeout=3)
    assert px.ctl("flush").returncode == 0
    st = px.stats()
    assert st["drop_refused"] >= 1 and st["drop_ratelimit"] >= 1 and st["drop_rebind"] >= 1, st
    px.stop_now()
    return px.stderr_text()


def test_query_names_never_logged_at_default_level(dproxy, upstream, shared_dir):
    log = names_in_log_scenario(dproxy, upstream, shared_dir, None)   # option unset: info
    leaked = [l for l in log.splitlines() if SECRET in l.lower()]
    assert not leaked, "query names in the log at the default level:\n" + "\n".join(leaked)
    assert "link down" in log and "rebinding protection" in log, \
        "the events themselves are still logged (without names):\n" + log[-3000:]


def test_query_names_logged_at_debug(dproxy, upstream, shared_dir):
    """The other side of the test above: at debug the same run does name them, so
    the grep there looks at a log that would show a leak."""
    log = names_in_log_scenario(dproxy, upstream, shared_dir, "debug")
    assert SECRET in log.lower(), "log_level debug should name queries:\n" + log[-3000:]


# ---------------------------------------------------------------- ECS and cookies

ECS_CODE = 8
COOKIE_CODE = 10


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_client_subnet_and_cookie_not_forwarded(dproxy, upstream, tcp):
    up = upstream(RECORDS)
    px = dproxy(servers=[up])
    q = dns.message.make_query("www.example.test", "A", use_edns=0, payload=1232, options=[
        dns.edns.ECSOption("198.51.100.77", 24),
        dns.edns.GenericOption(COOKIE_CODE, bytes.fromhex("0123456789abcdef")),
    ])
    wire = px.query_raw(q.to_wire(), tcp=tcp)
    assert wire is not None, "no answer to a query with ECS and a cookie"
    r = dns.message.from_wire(wire)
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)
    sent = up.queries("www.example.test")
    assert len(sent) == 1, up.summary()
    fwd = sent[0].msg
    codes = [o.otype for o in fwd.options] if fwd.edns >= 0 else []
    assert ECS_CODE not in codes, "the client's subnet went upstream: %r" % fwd.options
    assert COOKIE_CODE not in codes, "the client's cookie went upstream: %r" % fwd.options
    assert b"\xc6\x33\x64" not in sent[0].wire, "the client's address bytes are in the upstream query"
    assert bytes.fromhex("0123456789abcdef") not in sent[0].wire


# ---------------------------------------------------------------- control socket

def ctl_as(px, uid, *words):
    return subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups",
                           px.binary, "ctl", "--socket", px.options["control_socket"]] + list(words),
                          capture_output=True, text=True, timeout=10)


def test_control_socket_0600_and_dump_only_for_root_and_run_as_user(dproxy, upstream):
    needs_root()
    up = upstream(RECORDS)
    px = dproxy(servers=[up])
    px.query("www.example.test")
    sock = px.options["control_socket"]
    assert file_mode(sock) == 0o600, "control socket is mode %o" % file_mode(sock)
    nobody = pwd.getpwnam("nobody").pw_uid
    assert px.proc_status()["Uid"].split()[0] == str(nobody), "the daemon should run as nobody"
    r = ctl_as(px, OTHER_UID, "stats")
    assert r.returncode != 0 and "denied" in r.stderr.lower(), \
        "another user must not reach a 0600 socket: %r %r" % (r.stdout, r.stderr)
    # Loosened by hand (or a looser directory layout): the connection check still holds.
    os.chmod(sock, 0o666)
    r = ctl_as(px, OTHER_UID, "dump")
    assert r.returncode == 1 and "www.example.test" not in r.stdout, \
        "ctl dump answered uid %d: %r" % (OTHER_UID, r.stdout)
    assert r.stdout.startswith("error:"), r.stdout
    r = ctl_as(px, OTHER_UID, "stats")
    assert r.returncode == 0 and "queries=" in r.stdout, "stats is not limited: %r" % (r.stdout,)
    for who in (nobody, 0):
        r = ctl_as(px, who, "dump")
        assert r.returncode == 0 and "www.example.test" in r.stdout, \
            "ctl dump as uid %d: %r %r" % (who, r.stdout, r.stderr)


# ---------------------------------------------------------------- found by the soak

def test_periodic_persist_write_not_postponed_by_sighup(dproxy, upstream, shared_dir):
    """SIGHUPs more often than persist_interval (hotplug, lease changes, LuCI) must
    not push the periodic write back each time."""
    up = upstream(RECORDS)
    path = os.path.join(shared_dir, "cache")
    px = dproxy(servers=[up], options={"persist_file": path, "persist_interval": "2"})
    px.query("www.example.test")
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and not os.path.exists(path):
        px.signal(signal.SIGHUP)
        time.sleep(0.5)
    assert os.path.exists(path), \
        "no periodic write within 6 s (persist_interval 2) under a SIGHUP every 0.5 s"
