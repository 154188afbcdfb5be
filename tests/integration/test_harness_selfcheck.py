"""Self-checks of the test harness itself (no dproxy involved): the fake
upstream and nsd answer as the other tests assume, and the host-wide lock locks.  If these fail, fix the
harness before trusting any other failure."""
import os
import socket
import subprocess
import sys
import tempfile

import dns.flags
import dns.rcode

from harness.cli import dig
from harness.dnsutil import make_query, parse, rrset_texts, tcp_exchange, udp_exchange
from harness.hostlock import host_lock
from harness.upstream import POISON_V4


def test_nsd_answers_directly(nsd):
    out = dig("@127.0.0.1", "-p", str(nsd.port), "+short", "+tries=1", "+time=2", "c1.example.test", "A").stdout
    assert out.split()[-1] == "192.0.2.10", out
    r = parse(udp_exchange(nsd.host, nsd.port, make_query("bigtxt.example.test", "TXT").to_wire()))
    assert r.flags & dns.flags.TC, "nsd must truncate ~800 bytes for a non-EDNS UDP query"


def test_fake_upstream_modes(upstream):
    up = upstream(["www 300 IN A 192.0.2.1"])
    q = make_query("WwW.example.test", "A", edns=1232)

    r = parse(udp_exchange(up.host, up.port, q.to_wire()))
    assert r.id == q.id and rrset_texts(r, rdtype="A") == ["192.0.2.1"]
    assert r.question[0].name.to_text() == "WwW.example.test.", "must echo the asked case"

    up.mode = "tc"
    r = parse(udp_exchange(up.host, up.port, q.to_wire()))
    assert r.flags & dns.flags.TC and not r.answer
    r = parse(tcp_exchange(up.host, up.port, q.to_wire()))
    assert not r.flags & dns.flags.TC and rrset_texts(r, rdtype="A") == ["192.0.2.1"]

    up.mode = "servfail"
    assert parse(udp_exchange(up.host, up.port, q.to_wire())).rcode() == dns.rcode.SERVFAIL

    up.mode = "silent"
    assert udp_exchange(up.host, up.port, q.to_wire(), timeout=0.3) is None

    up.mode = "wrong_port"
    up.also_correct_after_ms = 50
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1)
        s.sendto(q.to_wire(), (up.host, up.port))
        first, src1 = s.recvfrom(4096)
        second, src2 = s.recvfrom(4096)
    assert src1[1] != up.port and POISON_V4 in parse(first).to_text()
    assert src2 == (up.host, up.port) and rrset_texts(parse(second), rdtype="A") == ["192.0.2.1"]

    assert [x.transport for x in up.queries("www.example.test")] == ["udp", "udp", "tcp", "udp", "udp", "udp"]


PROBE_LOCK = r"""
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o666)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("free")
except BlockingIOError:
    print("busy")
"""


def test_host_lock_excludes_other_processes():
    # What keeps parallel workers from claiming the same namespace subnet: while one
    # process holds the lock, another one cannot take it; afterwards it can.
    name = "dproxy-it-selfcheck-%d" % os.getpid()
    path = os.path.join(tempfile.gettempdir(), name + ".lock")

    def probe():
        return subprocess.run([sys.executable, "-c", PROBE_LOCK, path], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()

    try:
        with host_lock(name):
            assert probe() == "busy"
        assert probe() == "free"
    finally:
        os.unlink(path)


def test_holds_port_tells_whose_socket_it_is(nsd):
    """A server another worker started answers on its port like ours would: holds_port tells
    the process that holds the socket from one that does not."""
    from harness.ports import holds_port, started_on
    assert holds_port(nsd.proc.pid, nsd.port) is True
    assert started_on(nsd.proc, nsd.port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mine:
        mine.bind(("127.0.0.1", 0))
        port = mine.getsockname()[1]
        assert holds_port(os.getpid(), port) is True
        assert holds_port(nsd.proc.pid, port) is False
        assert not started_on(nsd.proc, port)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        assert holds_port(os.getpid(), port) is False, "a TCP socket that does not listen"
        listener.listen(1)
        assert holds_port(os.getpid(), port) is True
