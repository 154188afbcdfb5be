"""DNS over HTTPS upstreams, end to end with the full build (`DPROXY_BIN` built with
--features full): dproxy -> real dnsdist serving DoH over HTTP/1.1 (addDOHLocal) ->
real unbound on a plain loopback port; plain bootstrap servers of our own that resolve
the DoH server's name; and fault servers of our own (Python ssl speaking HTTP/1.1 by
hand) for what dnsdist will not do: error statuses, wrong content type, oversize or
garbage bodies, closing mid-request, a non-zero DNS ID.

A UDP listener sits on each DoH server's address and port: a packet there is a query
that left in the clear. Certificates (a test CA and a server certificate for doh.test)
are made at test time with openssl."""

import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time

import dns.edns
import dns.message
import dns.rcode
import dns.rrset
import pytest

from harness.tools import ede_codes, wait_until
from test_dot import (LoopbackTlsServer, PlainWatch, _ca, _dated, _free_port, _leaf,
                      _openssl_date, _wait_listening)

NAME = "doh.test"
EDE_NO_REACHABLE = 22
EDE_NETWORK = 23


@pytest.fixture(autouse=True)
def _needs_full(dproxy_bin):
    if os.environ.get("DPROXY_FULL") != "1":
        pytest.skip("needs the full build: DPROXY_FULL=1 DPROXY_BIN=<dproxy built with --features full>")


@pytest.fixture(scope="module")
def certs():
    d = tempfile.mkdtemp(prefix="dproxy-doh-it-")
    _ca(d, "ca")
    _leaf(d, "good", NAME, "ca")
    # Valid from two days ahead (inside the CA's 30 days): a router whose clock is behind.
    _dated(d, "future", NAME, _openssl_date(2), _openssl_date(20))
    # dproxy reads the CA file after dropping to nobody.
    os.chmod(d, 0o755)
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)
    yield d
    subprocess.run(["rm", "-rf", d])


class Backend:
    """unbound on a plain loopback port: the server dnsdist forwards to."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="dproxy-doh-unbound-")
        self.port = _free_port()
        conf = os.path.join(self.dir, "unbound.conf")
        with open(conf, "w") as f:
            f.write(
                "server:\n  interface: 127.0.0.1@%d\n"
                "  username: \"\"\n  chroot: \"\"\n  directory: %s\n  pidfile: \"\"\n"
                "  use-syslog: no\n  do-daemonize: no\n  num-threads: 1\n  do-ip6: no\n"
                "  so-reuseport: no\n  access-control: 127.0.0.0/8 allow\n"
                "  module-config: \"iterator\"\n  local-zone: \"example.test.\" static\n"
                "  local-data: \"a.example.test. 300 IN A 192.0.2.1\"\n"
                "  local-data: \"b.example.test. 300 IN A 192.0.2.2\"\n"
                "  local-data: \"c.example.test. 300 IN A 192.0.2.3\"\n"
                % (self.port, self.dir))
        self.proc = subprocess.Popen(["unbound", "-d", "-c", conf], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_listening(self.proc, self.port, "unbound")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)
        subprocess.run(["rm", "-rf", self.dir])


class Dnsdist:
    """dnsdist serving DoH (HTTP/1.1 and HTTP/2 on one port) in front of `backend`."""

    def __init__(self, certs, backend):
        self.dir = tempfile.mkdtemp(prefix="dproxy-doh-dnsdist-")
        self.port = _free_port()
        conf = os.path.join(self.dir, "dnsdist.conf")
        with open(conf, "w") as f:
            f.write('setSecurityPollSuffix("")\n'
                    'setLocal("127.0.0.1:%d")\n'
                    # One late health check must not mark the backend down on a loaded
                    # machine (the default: 1 s timeout, down after 1 failure), or dnsdist
                    # itself answers SERVFAIL and a dproxy test fails for nothing.
                    'newServer({address="127.0.0.1:%d", checkName="a.example.test.", '
                    'checkTimeout=5000, maxCheckFailures=30})\n'
                    'addDOHLocal("127.0.0.1:%d", "%s/good.pem", "%s/good.key", "/dns-query")\n'
                    % (_free_port(), backend.port, self.port, certs, certs))
        self.log = os.path.join(self.dir, "log")
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(["dnsdist", "--supervised", "--disable-syslog",
                                          "-C", conf], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT)
        _wait_listening(self.proc, self.port, "dnsdist")
        # dnsdist answers only once its health check marked the backend up.
        deadline = time.monotonic() + 10
        while "as 'up'" not in open(self.log).read():
            assert time.monotonic() < deadline, open(self.log).read()
            time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)
        subprocess.run(["rm", "-rf", self.dir])


@pytest.fixture
def dnsdist(certs):
    backend = Backend()
    d = Dnsdist(certs, backend)
    yield d
    d.stop()
    backend.stop()


class Bootstrap:
    """A plain DNS server of our own: answers A for doh.test with 127.0.0.1 and
    REFUSED for anything else, and records every name asked. With `hold`, the reply to
    an A query for doh.test is not sent but kept in `held` (ID, reply, peer) until
    `release()`, and `held_event` is set."""

    def __init__(self, hold=False):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.names = []
        self.hold = hold
        self.held = None
        self.held_event = threading.Event()
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                wire, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            q = dns.message.from_wire(wire)
            qname = str(q.question[0].name).rstrip(".").lower()
            self.names.append(qname)
            r = dns.message.make_response(q)
            if qname == NAME and q.question[0].rdtype == 1:
                r.answer.append(dns.rrset.from_text(NAME + ".", 60, "IN", "A", "127.0.0.1"))
                if self.hold:
                    self.held = (q.id, r.to_wire(), peer)
                    self.held_event.set()
                    continue
            elif qname != NAME:
                r.set_rcode(dns.rcode.REFUSED)
            self.sock.sendto(r.to_wire(), peer)

    def release(self):
        _, wire, peer = self.held
        self.sock.sendto(wire, peer)

    def stop(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


class Dnsmasq:
    """Real dnsmasq as the bootstrap server: doh.test from a hosts file (SIGHUP re-reads
    it) with TTL `ttl`, nothing else (no upstream: REFUSED)."""

    def __init__(self, addr="127.0.0.1", ttl=1):
        self.dir = tempfile.mkdtemp(prefix="dproxy-doh-dnsmasq-")
        os.chmod(self.dir, 0o755)
        self.hosts = os.path.join(self.dir, "hosts")
        self.set_address(addr)
        self.port = _free_port()
        self.log = os.path.join(self.dir, "log")
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                ["dnsmasq", "-k", "--conf-file=/dev/null", "--user=root", "--pid-file=",
                 "--port=%d" % self.port, "--listen-address=127.0.0.1", "--bind-interfaces",
                 "--no-resolv", "--no-hosts", "--addn-hosts=" + self.hosts, "--local-ttl=%d" % ttl,
                 "--log-queries", "--log-facility=-"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while "started" not in open(self.log).read():
            assert self.proc.poll() is None and time.monotonic() < deadline, open(self.log).read()
            time.sleep(0.05)

    def set_address(self, addr):
        with open(self.hosts, "w") as f:
            f.write("%s %s\n" % (addr, NAME))
        os.chmod(self.hosts, 0o644)

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def waiting_queries(self):
        """Datagrams in dnsmasq's receive queue (from /proc/net/udp): asked, unread."""
        local = "0100007F:%04X" % self.port
        with open("/proc/net/udp") as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[1] == local:
                    return int(cols[4].split(":")[1], 16)
        return 0

    def stop(self):
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        self.proc.wait(5)
        subprocess.run(["rm", "-rf", self.dir])


def _answer(wire, qid=0):
    q = dns.message.from_wire(wire)
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text(q.question[0].name, 300, "IN", "A", "192.0.2.7"))
    r.id = qid
    return r.to_wire()


class FaultServer(LoopbackTlsServer):
    """A DoH server of our own over HTTP/1.1 (Python ssl, requests read by hand),
    answering A queries with 192.0.2.7. mode: normal, status404, status503, html (wrong
    content type), oversize (Content-Length above 65,535), garbage (a 3-byte body),
    close_mid (reads the second request of a connection, then closes without an
    answer), chunked (the answer in two chunks), badid (the answer's ID is not 0),
    close_header (answers with `Connection: close`, then closes), stall (accepts TCP,
    never speaks TLS)."""

    def __init__(self, certs, mode="normal", stem="good", host="127.0.0.1", port=None):
        self.mode = mode
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(os.path.join(certs, stem + ".pem"),
                                 os.path.join(certs, stem + ".key"))
        self.ctx.set_alpn_protocols(["http/1.1"])
        self.requests = []  # (method, path, headers dict, DNS ID of the body)
        self.alpn = set()
        super().__init__(host, port)

    @staticmethod
    def _read_request(s, buf):
        while b"\r\n\r\n" not in buf:
            b = s.recv(4096)
            if not b:
                return None, buf
            buf += b
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        while len(rest) < n:
            b = s.recv(4096)
            if not b:
                return None, b""
            rest += b
        return (method, path, headers, rest[:n]), rest[n:]

    def _respond(self, s, body):
        m = self.mode
        ctype = b"text/html" if m == "html" else b"application/dns-message"
        if m in ("status404", "status503"):
            code = b"404 Not Found" if m == "status404" else b"503 Service Unavailable"
            s.sendall(b"HTTP/1.1 " + code + b"\r\nContent-Length: 0\r\n\r\n")
            return
        if m == "oversize":
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/dns-message\r\n"
                      b"Content-Length: 70000\r\n\r\n" + b"\0" * 70000)
            return
        out = b"abc" if m == "garbage" else _answer(body, qid=0x1234 if m == "badid" else 0)
        if m == "chunked":
            h = len(out) // 2
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/dns-message\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n"
                      + b"%x\r\n" % h + out[:h] + b"\r\n"
                      + b"%x\r\n" % (len(out) - h) + out[h:] + b"\r\n0\r\n\r\n")
            return
        extra = b"Connection: close\r\n" if m == "close_header" else b""
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype + b"\r\n" + extra
                  + b"Content-Length: %d\r\n\r\n" % len(out) + out)

    def _serve(self, c, n):
        first = c.recv(1, socket.MSG_PEEK)
        if first and first[0] != 0x16:  # not a TLS handshake record
            with self.lock:
                self.plaintext += 1
            return
        if self.mode == "stall":
            time.sleep(8)
            return
        s = self.ctx.wrap_socket(c, server_side=True)
        with self.lock:
            self.alpn.add(s.selected_alpn_protocol())
        buf = b""
        served = 0
        while True:
            req, buf = self._read_request(s, buf)
            if req is None:
                return
            method, path, headers, body = req
            with self.lock:
                self.requests.append((method, path, headers, int.from_bytes(body[:2], "big")))
            if self.mode == "close_mid" and served == 1:
                # A FIN with the request unanswered, then read until the client
                # closes (closing with unread data would be a reset).
                s.shutdown(socket.SHUT_WR)
                while s.recv(4096):
                    pass
                return
            self._respond(s, body)
            served += 1
            if self.mode == "close_header":
                return


def _start(dproxy, certs, port, host=NAME, inline="#127.0.0.1", lists=None, options=None):
    all_lists = {"server": ["https://%s:%d/dns-query%s" % (host, port, inline)]}
    all_lists.update(lists or {})
    all_options = {"ca_file": os.path.join(certs, "ca.pem")}
    all_options.update(options or {})
    return dproxy(options=all_options, lists=all_lists)


def _servfail_with_ede(r):
    return r is not None and r.rcode() == dns.rcode.SERVFAIL and (
        EDE_NO_REACHABLE in ede_codes(r) or EDE_NETWORK in ede_codes(r))


def _ask_at_once(px, names):
    """Asks every name at the same time (one thread each); name -> response or None."""
    results = {}

    def ask(n):
        results[n] = px.query(n, timeout=8, expect_answer=False)

    ts = [threading.Thread(target=ask, args=(n,)) for n in names]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return results


def test_answers_over_https_from_dnsdist_then_from_cache(dproxy, certs, dnsdist):
    watch = PlainWatch(dnsdist.port)
    try:
        px = _start(dproxy, certs, dnsdist.port)
        r = px.query("a.example.test", timeout=5, qid=0x4321)
        assert r.rcode() == dns.rcode.NOERROR and "192.0.2.1" in r.to_text(), r.to_text()
        assert r.id == 0x4321
        for name, addr in (("b.example.test", "192.0.2.2"), ("c.example.test", "192.0.2.3")):
            assert addr in px.query(name, timeout=5).to_text()
        before = px.stats()
        assert "192.0.2.1" in px.query("a.example.test").to_text()
        s = px.stats()
        assert s["upstream_queries"] == before["upstream_queries"], s
        assert s["hits"] == before["hits"] + 1, s
        assert s["tls_upstream.0.name"] == "https://%s:%d/dns-query" % (NAME, dnsdist.port), s
        assert s["tls_upstream.0.state"] == "ok", s
        assert watch.packets() == 0, "a query left in plaintext"
    finally:
        watch.close()


def test_requests_are_rfc8484_posts_on_kept_alive_connections(dproxy, certs):
    fs = FaultServer(certs)
    try:
        px = _start(dproxy, certs, fs.port)
        for i in range(5):
            r = px.query("k%d.example.test" % i, timeout=5)
            assert "192.0.2.7" in r.to_text(), r.to_text()
        # One after the other: all on one kept-alive connection.
        assert fs.connections == 1, fs.connections
        # At once: the pool has two connections at most.
        results = _ask_at_once(px, ["m%d.example.test" % i for i in range(8)])
        assert all(r is not None and "192.0.2.7" in r.to_text() for r in results.values())
        assert fs.connections <= 2, fs.connections
        assert fs.alpn == {"http/1.1"}
        for method, path, headers, qid in fs.requests:
            assert (method, path, qid) == ("POST", "/dns-query", 0)
            assert headers["content-type"] == "application/dns-message"
            assert headers["host"] == "%s:%d" % (NAME, fs.port)
        assert fs.plaintext == 0
    finally:
        fs.stop()


def test_chunked_answer_and_connection_close_header_are_followed(dproxy, certs):
    for mode in ("chunked", "close_header"):
        fs = FaultServer(certs, mode=mode)
        try:
            px = _start(dproxy, certs, fs.port)
            for i in range(3):
                r = px.query("h%d.example.test" % i, timeout=5)
                assert r.rcode() == dns.rcode.NOERROR and "192.0.2.7" in r.to_text(), (mode, r.to_text())
            if mode == "close_header":
                assert fs.connections == 3, "a connection the server closes is not reused"
            else:
                assert fs.connections == 1
        finally:
            fs.stop()


def _bad_answers_servfail_and_log_once(dproxy, certs, fs, mode, log, names, also=lambda px: None):
    """Each of NAMES asked through dproxy against the fault server FS gets SERVFAIL with an
    EDE, the reason LOG is logged once as a warning, nothing leaves in plaintext and dproxy
    lives on; ALSO(dproxy) checks what else the caller needs while FS still runs."""
    watch = PlainWatch(fs.port)
    try:
        px = _start(dproxy, certs, fs.port)
        for name in names:
            r = px.query(name, timeout=8, edns=0)
            assert _servfail_with_ede(r), (mode, r.to_text())
        err = px.stderr_text()
        warnings = [l for l in err.splitlines() if "warn" in l and log in l]
        assert len(warnings) == 1, err[-2000:]
        also(px)
        assert fs.requests, "the server was asked"
        assert fs.plaintext == 0 and watch.packets() == 0, "something left in plaintext"
        assert px.alive()
    finally:
        watch.close()
        fs.stop()


@pytest.mark.parametrize("mode,log", [
    ("status404", "HTTP status 404 Not Found"),
    ("status503", "HTTP status 503 Service Unavailable"),
    ("html", "content type 'text/html'"),
    ("oversize", "larger than a DNS message"),
    ("garbage", "3-byte body, not a DNS message"),
    ("badid", "answer ID 4660, not 0"),
])
def test_bad_http_answers_give_servfail_ede_and_one_log_line(dproxy, certs, mode, log):
    fs = FaultServer(certs, mode=mode)
    def state_names_it(px):
        assert log in px.stats()["tls_upstream.0.state"]
    _bad_answers_servfail_and_log_once(dproxy, certs, fs, mode, log, ["a.example.test", "b.example.test"],
                                       also=state_names_it)


def test_server_closing_mid_request_costs_no_query(dproxy, certs):
    fs = FaultServer(certs, mode="close_mid")
    try:
        px = _start(dproxy, certs, fs.port)
        # Each connection answers one request and closes on the next: the unanswered
        # ones go out again on a new connection.
        for i in range(4):
            r = px.query("c%d.example.test" % i, timeout=8)
            assert r.rcode() == dns.rcode.NOERROR and "192.0.2.7" in r.to_text(), px.stderr_text()[-2000:]
        assert fs.connections >= 3
        assert fs.plaintext == 0
    finally:
        fs.stop()


def test_unreachable_server_gives_servfail_not_plaintext(dproxy, certs):
    port = _free_port()
    watch = PlainWatch(port)
    try:
        px = _start(dproxy, certs, port)
        r = px.query("a.example.test", timeout=8, edns=0)
        assert _servfail_with_ede(r), r.to_text()
        assert "TCP connect failed" in px.stats()["tls_upstream.0.state"]
        assert watch.packets() == 0
    finally:
        watch.close()


def test_link_down_closes_connections_and_link_up_reconnects(dproxy, certs):
    fs = FaultServer(certs)
    try:
        px = _start(dproxy, certs, fs.port)
        assert "192.0.2.7" in px.query("a.example.test", timeout=5).to_text()
        assert fs.connections == 1 and fs.active == 1
        px.signal(signal.SIGUSR2)
        wait_until(lambda: fs.active == 0, timeout=5)
        assert fs.active == 0, "link down must close the DoH connection"
        r = px.query("x1.example.test", timeout=5)
        assert r.rcode() == dns.rcode.SERVFAIL, r.to_text()
        assert fs.connections == 1
        px.signal(signal.SIGUSR1)
        r = px.wait_answer("x2.example.test", timeout=5,
                           until=lambda m: m.rcode() == dns.rcode.NOERROR)
        assert r is not None and "192.0.2.7" in r.to_text()
        assert fs.connections == 2, "link up must reconnect on a new connection"
    finally:
        fs.stop()


def test_certificate_not_valid_yet_is_accepted_until_the_clock_is_synced(dproxy, certs):
    """The clock policy holds for DoH as for DoT: before `ctl time-synced` a server whose
    certificate starts in two days is used; the sync closes its connection and from then
    on it is refused, without a byte in plaintext."""
    fs = FaultServer(certs, stem="future")
    watch = PlainWatch(fs.port)
    try:
        px = _start(dproxy, certs, fs.port)
        r = px.query("a.example.test", timeout=5)
        assert r.rcode() == dns.rcode.NOERROR and "192.0.2.7" in r.to_text(), r.to_text()
        assert fs.active == 1
        assert px.ctl("time-synced").stdout == "clock=synced\n"
        wait_until(lambda: fs.active == 0, timeout=5)
        assert fs.active == 0, "the sync must close DoH connections checked before it"
        r = px.query("b.example.test", timeout=6, edns=0)
        assert _servfail_with_ede(r), r.to_text()
        assert "not valid yet" in px.stderr_text(), px.stderr_text()[-2000:]
        assert len(fs.requests) == 1 and fs.plaintext == 0 and watch.packets() == 0
    finally:
        watch.close()
        fs.stop()


def test_host_name_resolved_through_bootstrap_only_for_doh(dproxy, certs, dnsdist):
    boot = Bootstrap()
    watch = PlainWatch(dnsdist.port)
    try:
        px = _start(dproxy, certs, dnsdist.port, inline="",
                    lists={"bootstrap": ["127.0.0.1:%d" % boot.port]})
        r = px.query("a.example.test", timeout=5)
        assert r.rcode() == dns.rcode.NOERROR and "192.0.2.1" in r.to_text(), px.stderr_text()[-2000:]
        assert "192.0.2.2" in px.query("b.example.test", timeout=5).to_text()
        # The bootstrap server was asked the DoH server's name, and nothing else.
        assert boot.names and set(boot.names) == {NAME}, boot.names
        assert watch.packets() == 0
    finally:
        watch.close()
        boot.stop()


def _udp_socket(port, peer=None):
    """(inode, bytes waiting) of the UDP socket at 127.0.0.1:port (and connected to
    127.0.0.1:peer, if given), from /proc/net/udp; None if there is none."""
    local = "0100007F:%04X" % port
    remote = "0100007F:%04X" % peer if peer else None
    with open("/proc/net/udp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if cols[1] == local and remote in (None, cols[2]):
                return int(cols[9]), int(cols[4].split(":")[1], 16)
    return None


def _in_epoll(pid, inode):
    """True if socket `inode` is in an epoll set of process `pid` (its fdinfo)."""
    links = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            links[fd] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            pass
    mine = [fd for fd, link in links.items() if link == "socket:[%d]" % inode]
    for fd, link in links.items():
        if mine and link == "anon_inode:[eventpoll]":
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                if re.search(r"^tfd:\s+%s\s" % mine[0], f.read(), re.M):
                    return True
    return False


def _stopped(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


def test_first_query_read_with_the_bootstrap_reply_waits_for_the_address(dproxy, certs, dnsdist):
    """At boot, the reply that gives the DoH server's address and a client's first query
    are often read in the same turn of dproxy's loop, the reply first (likely on a busy
    machine). Made certain here: dproxy is stopped (SIGSTOP) while it waits for the
    reply, the reply and then the query are queued for it, and it continues. The query
    must wait for the new upstream list and be answered over DoH, not get SERVFAIL."""
    boot = Bootstrap(hold=True)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    px = None
    try:
        px = _start(dproxy, certs, dnsdist.port, inline="",
                    lists={"bootstrap": ["127.0.0.1:%d" % boot.port]})
        pid = px.proc.pid
        # Stopped while its socket for the A query is open and polled: that lookup step
        # still waits (a step that timed out has closed its socket; then the next A).
        def polled():
            sock = _udp_socket(boot.held[2][1], boot.port)
            return sock is not None and _in_epoll(pid, sock[0])

        for _ in range(20):
            assert boot.held_event.wait(10), px.stderr_text()[-2000:]
            os.kill(pid, signal.SIGSTOP)
            assert wait_until(lambda: _stopped(pid), timeout=5)
            if polled():
                break
            if _udp_socket(boot.held[2][1], boot.port) is None:
                boot.held_event.clear()
            os.kill(pid, signal.SIGCONT)
            wait_until(polled, timeout=1, interval=0.001)
        else:
            pytest.fail("dproxy was never stopped during its lookup")
        peer_port = boot.held[2][1]
        boot.release()
        assert wait_until(lambda: (_udp_socket(peer_port, boot.port) or (0, 0))[1] > 0)
        q = dns.message.make_query("a.example.test", "A", use_edns=0)
        client.sendto(q.to_wire(), ("127.0.0.1", px.port))
        assert wait_until(lambda: (_udp_socket(px.port) or (0, 0))[1] > 0)
        os.kill(pid, signal.SIGCONT)
        client.settimeout(8)
        r = dns.message.from_wire(client.recv(4096))
        assert r.rcode() == dns.rcode.NOERROR and "192.0.2.1" in r.to_text(), (
            r.to_text(), px.stderr_text()[-2000:])
    finally:
        if px is not None and px.alive():
            os.kill(px.proc.pid, signal.SIGCONT)
        client.close()
        boot.stop()


def test_hold_timeout_during_the_first_lookup_says_so_not_link_down(dproxy, certs):
    """A miss waits for the DoH server's first address lookup at most hold_timeout: then
    its SERVFAIL says the address is still being looked up (EDE 22), not "link down"
    (EDE 23): the link is up. The bootstrap server never answers here."""
    boot = Bootstrap(hold=True)
    try:
        px = _start(dproxy, certs, 443, inline="", options={"hold_timeout": "1"},
                    lists={"bootstrap": ["127.0.0.1:%d" % boot.port]})
        r = px.query("a.example.test", timeout=5, edns=0)
        eds = [o for o in r.options if o.otype == dns.edns.OptionType.EDE]
        assert r.rcode() == dns.rcode.SERVFAIL and [int(o.code) for o in eds] == [EDE_NO_REACHABLE], \
            r.to_text()
        # Not the end of the lookup (4 s: two rounds of A and AAAA), which would say
        # "no upstream servers configured".
        assert eds[0].text == "DoH server address still being looked up", r.to_text()
    finally:
        boot.stop()


def test_unresolvable_doh_name_gives_servfail_not_plaintext(dproxy, certs):
    boot = Bootstrap()
    try:
        px = _start(dproxy, certs, 443, host="other.test", inline="",
                    lists={"bootstrap": ["127.0.0.1:%d" % boot.port]})
        r = px.query("a.example.test", timeout=5, edns=0)
        assert _servfail_with_ede(r), r.to_text()
        assert "DoH server other.test left out" in px.stderr_text()
        assert set(boot.names) == {"other.test"}, boot.names
    finally:
        boot.stop()


def test_stalled_handshake_gives_servfail_not_plaintext(dproxy, certs):
    fs = FaultServer(certs, mode="stall")
    watch = PlainWatch(fs.port)
    try:
        px = _start(dproxy, certs, fs.port)
        r = px.query("g.example.test", timeout=12, edns=0)
        assert _servfail_with_ede(r), r.to_text()
        wait_until(lambda: "handshake timed out" in px.stderr_text(), timeout=8, interval=0.1)
        assert "handshake timed out" in px.stderr_text(), px.stderr_text()[-2000:]
        assert fs.plaintext == 0 and watch.packets() == 0
        assert px.alive()
    finally:
        watch.close()
        fs.stop()


def test_startup_and_cache_hits_do_not_wait_for_a_silent_bootstrap_server(dproxy, certs, dnsdist):
    """The lookup of the DoH server's name runs on the loop: with the bootstrap server
    (real dnsmasq) stopped, dproxy starts and answers its control socket while the
    lookup is pending; later, a lookup pending after link up does not hold up a cache
    hit; once the server answers again the address is found without a restart."""
    boot = Dnsmasq()
    watch = PlainWatch(dnsdist.port)
    try:
        boot.proc.send_signal(signal.SIGSTOP)
        px = _start(dproxy, certs, dnsdist.port, inline="",
                    lists={"bootstrap": ["127.0.0.1:%d" % boot.port]})
        # Started and serving while the lookup waits on the silent server.
        s = px.stats()
        assert "left out" not in px.stderr_text(), px.stderr_text()[-2000:]
        assert s["tls_upstream.0.state"] == "looking up its address", s
        # No address yet: said so, not shown as an address (0.0.0.0) it is not at.
        assert s["tls_upstream.0.addr"] == "unresolved", s
        assert s["tls_upstream.0.name"] == "https://%s:%d/dns-query" % (NAME, dnsdist.port), s
        # A miss with no server to go to waits for the lookup (bounded), then SERVFAIL.
        r = px.query("a.example.test", timeout=8, edns=0)
        assert _servfail_with_ede(r), r.to_text()
        assert "DoH server %s left out" % NAME in px.stderr_text()
        # The server answers again: the retry finds the address, no restart.
        boot.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: "%s is at 127.0.0.1" % NAME in px.stderr_text(), timeout=15)
        r = px.query("a.example.test", timeout=5)
        assert "192.0.2.1" in r.to_text(), px.stderr_text()[-2000:]
        # Link up looks the name up again; the bootstrap server is silent once more.
        boot.proc.send_signal(signal.SIGSTOP)
        before = px.stderr_text().count("address lookup failed")
        px.signal(signal.SIGUSR1)
        assert wait_until(lambda: boot.waiting_queries() > 0, timeout=5), "no lookup at link up"
        t0 = time.monotonic()
        r = px.query("a.example.test", timeout=5)
        took = time.monotonic() - t0
        # Answered while the lookup was still pending (its failure is logged later).
        assert px.stderr_text().count("address lookup failed") == before, (
            "the hit waited for the lookup (%.2f s)" % took)
        assert "192.0.2.1" in r.to_text()
        wait_until(lambda: px.stderr_text().count("address lookup failed") > before, timeout=8)
        assert "still using 127.0.0.1" in px.stderr_text(), px.stderr_text()[-2000:]
        assert watch.packets() == 0
    finally:
        watch.close()
        boot.stop()


def test_new_address_at_the_bootstrap_server_is_used_after_its_ttl(dproxy, certs, dnsdist):
    """dnsmasq gives doh.test with TTL 1 (kept for the minimum of 10 s); when its hosts
    file moves the name to 127.0.0.2, the next lookup finds it and the next connection
    goes there (a DoH server of our own answering 192.0.2.7), without a restart."""
    boot = Dnsmasq()
    moved = FaultServer(certs, host="127.0.0.2", port=dnsdist.port)
    try:
        px = _start(dproxy, certs, dnsdist.port, inline="",
                    lists={"bootstrap": ["127.0.0.1:%d" % boot.port]})
        r = px.query("a.example.test", timeout=5)
        assert "192.0.2.1" in r.to_text(), px.stderr_text()[-2000:]
        assert "%s is at 127.0.0.1 (bootstrap" % NAME in px.stderr_text()
        boot.set_address("127.0.0.2")
        boot.reload()
        assert wait_until(lambda: "%s is at 127.0.0.2" % NAME in px.stderr_text(), timeout=20), (
            px.stderr_text()[-2000:])
        r = px.query("b.example.test", timeout=5)
        assert "192.0.2.7" in r.to_text(), r.to_text()
        assert moved.connections == 1 and len(moved.requests) == 1
        s = px.stats()
        assert s["tls_upstream.0.addr"].startswith("127.0.0.2"), s
        # TTL 1 is kept for the minimum, 10 s.
        assert "%s is at 127.0.0.1 (bootstrap, for 10 s)" % NAME in px.stderr_text()
        # Only the DoH server's name went to the bootstrap server.
        asked = [l for l in open(boot.log).read().splitlines() if "query[" in l]
        assert asked and all(NAME in l for l in asked), asked
    finally:
        moved.stop()
        boot.stop()


def test_queries_waiting_on_the_old_address_go_to_the_new_one_at_once(dproxy, certs):
    """dnsmasq moves the DoH server's name to 127.0.0.2 while a query waits on the old
    address (a server of our own that takes requests and never answers). When the next
    lookup (10 s after the first: TTL 1, kept for the minimum) finds the new address,
    the connections to the old one close and the query goes out at once to the new
    server on the attempt it had: the new upstream is never sent a new attempt, as it
    would be once the query's retransmission timeout had passed."""
    boot = Dnsmasq()
    old = H2FaultServer(certs, batch=1000)
    new = H2FaultServer(certs, host="127.0.0.2", port=old.port)
    try:
        px = _start(dproxy, certs, old.port, inline="",
                    lists={"bootstrap": ["127.0.0.1:%d" % boot.port]})
        assert wait_until(lambda: "%s is at 127.0.0.1 (bootstrap, for 10 s)" % NAME
                          in px.stderr_text(), timeout=5), px.stderr_text()[-2000:]
        found = time.monotonic()
        boot.set_address("127.0.0.2")
        boot.reload()
        # Asked about 2 s before the next lookup: well within the query's 4 s.
        time.sleep(max(0.0, found + 7.5 - time.monotonic()))
        r = px.query("m.example.test", timeout=8)
        assert r is not None and "192.0.2.7" in r.to_text(), px.stderr_text()[-2000:]
        assert "%s is at 127.0.0.2" % NAME in px.stderr_text()
        assert "m.example.test" in [n for _, n in old.asked], old.asked
        assert "m.example.test" in [n for _, n in new.asked], new.asked
        s = px.stats()
        rows = [k[:-len(".addr")] for k, v in s.items()
                if re.fullmatch(r"upstream\.\d+\.addr", k) and v == "127.0.0.2:%d" % old.port]
        assert len(rows) == 1, s
        assert str(s[rows[0] + ".queries"]) == "0", s
        assert old.plaintext == 0 and new.plaintext == 0 and px.alive()
    finally:
        new.stop()
        old.stop()
        boot.stop()


def test_failed_connections_to_the_old_address_look_the_name_up_again(dproxy, certs, dnsdist):
    """The address is kept for an hour (dnsmasq's TTL), but when the server there stops
    (real dnsdist killed) and the name has moved, three failed connections in a row
    send dproxy back to the bootstrap server, and the new address answers."""
    boot = Dnsmasq(ttl=3600)
    moved = FaultServer(certs, host="127.0.0.2", port=dnsdist.port)
    try:
        px = _start(dproxy, certs, dnsdist.port, inline="",
                    lists={"bootstrap": ["127.0.0.1:%d" % boot.port]})
        assert "192.0.2.1" in px.query("a.example.test", timeout=5).to_text()
        assert "%s is at 127.0.0.1 (bootstrap" % NAME in px.stderr_text()
        boot.set_address("127.0.0.2")
        boot.reload()
        dnsdist.proc.terminate()
        dnsdist.proc.wait(5)
        names = iter("n%d.example.test" % i for i in range(1000))

        def answered_by_the_new_address():
            r = px.query(next(names), timeout=2, edns=0, expect_answer=False)
            return r is not None and "192.0.2.7" in r.to_text()

        assert wait_until(answered_by_the_new_address, timeout=20, interval=0.2), (
            px.stderr_text()[-2000:])
        assert "failed connections to 127.0.0.1:%d; looking up its address again" % dnsdist.port \
            in px.stderr_text()
        assert "%s is at 127.0.0.2" % NAME in px.stderr_text()
        # Not the TTL: the first address was to be kept for an hour.
        assert "%s is at 127.0.0.1 (bootstrap, for 3600 s)" % NAME in px.stderr_text()
    finally:
        moved.stop()
        boot.stop()


def test_a_restart_in_the_same_boot_keeps_the_clock_synced(dproxy, certs):
    """`ctl time-synced` leaves a marker next to the control socket (wall time and time
    since boot): a restart in the same boot starts synced, so a certificate that is not
    valid yet is refused at once; a marker from another boot is not trusted."""
    fs = FaultServer(certs, stem="future")
    try:
        px = _start(dproxy, certs, fs.port)
        assert px.stats()["clock"] == "unsynced"
        assert px.ctl("time-synced").stdout == "clock=synced\n"
        marker = px.options["control_socket"] + ".clock-synced"
        wall, boot = (int(x) for x in open(marker).read().split())
        assert abs(wall - time.time()) < 60 and abs(boot - time.clock_gettime(time.CLOCK_BOOTTIME)) < 60
        px.stop()
        px.start()
        assert px.stats()["clock"] == "synced", px.stderr_text()[-2000:]
        r = px.query("a.example.test", timeout=6, edns=0)
        assert _servfail_with_ede(r), r.to_text()
        assert "not valid yet" in px.stderr_text()
        assert len(fs.requests) == 0
        # A sync from before a reboot: the boot clock is now behind the marker's.
        px.stop()
        with open(marker, "w") as f:
            f.write("%d %d\n" % (wall, boot + 10 ** 7))
        px.start()
        assert px.stats()["clock"] == "unsynced", px.stderr_text()[-2000:]
        assert "192.0.2.7" in px.query("b.example.test", timeout=5).to_text()
    finally:
        fs.stop()


# HTTP/2 (ALPN h2): one connection carries many queries at once.

def _frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def _h2_headers(status=b"200", ctype=b"application/dns-message"):
    """A response header block by hand (RFC 7541): :status indexed (200) or a literal
    with an indexed name, content-type a literal with name index 31, no Huffman."""
    block = b"\x88" if status == b"200" else b"\x08" + bytes([len(status)]) + status
    return block + b"\x0f\x10" + bytes([len(ctype)]) + ctype


class H2FaultServer(FaultServer):
    """A DoH server of our own over HTTP/2 (raw frames, Python ssl, ALPN h2 only),
    answering A queries with 192.0.2.7. It holds the requests until `batch` of them are
    in, then: reverse (answers them last first), goaway (answers the first, sends
    GOAWAY naming it as the last stream, closes; later connections answer normally),
    close (the same without GOAWAY), reset (no answer, a TCP reset), status500, html, badframe (a
    PUSH_PROMISE, which the client disabled), oversize (a frame header of 20,000 bytes);
    normal answers each at once; stall_first too, but for the first request of the first
    connection, which it never answers. `streams_seen` holds the size of each batch."""

    # A frame or header block it cannot read also ends a connection quietly.
    ERRORS = FaultServer.ERRORS + (KeyError,)

    def __init__(self, certs, mode="normal", batch=1, host="127.0.0.1", port=None):
        super().__init__(certs, mode=mode, host=host, port=port)
        self.ctx.set_alpn_protocols(["h2"])
        self.batch = batch
        self.streams_seen = []
        self.opened = 0
        # (connection number from 1, name) of each request, and the names answered
        # before a goaway or close.
        self.asked = []
        self.answered_first = []

    @staticmethod
    def _frames(s, buf):
        while True:
            while len(buf) >= 9:
                n = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + n:
                    break
                yield buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7fffffff, buf[9:9 + n]
                buf = buf[9 + n:]
            b = s.recv(65536)
            if not b:
                return
            buf += b

    def _accept_h2(self, c):
        """TLS (ALPN h2) on accepted socket c and the client's connection preface ->
        (TLS socket, number of this connection from 1)."""
        s = self.ctx.wrap_socket(c, server_side=True)
        with self.lock:
            self.alpn.add(s.selected_alpn_protocol())
        pre = b""
        while len(pre) < 24:
            b = s.recv(24 - len(pre))
            if not b:
                raise ValueError("connection closed before the HTTP/2 preface")
            pre += b
        if pre != b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n":
            raise ValueError("not an HTTP/2 connection preface")
        with self.lock:
            self.opened += 1
            return s, self.opened

    def _requests(self, s, number):
        """Sends our SETTINGS (at most 100 streams), acknowledges the client's, and yields
        each request as (stream id, body) once its last DATA frame is in, noting it in
        `asked` as (number, name)."""
        s.sendall(_frame(4, 0, 0, (3).to_bytes(2, "big") + (100).to_bytes(4, "big")))
        bodies = {}
        for kind, flags, sid, p in self._frames(s, b""):
            if kind == 4 and not flags & 1:
                s.sendall(_frame(4, 1, 0))
            if kind == 1:
                bodies[sid] = b""
            if kind == 0:
                bodies[sid] += p
                if flags & 1:
                    with self.lock:
                        self.asked.append((number, _qname(bodies[sid])))
                    yield sid, bodies[sid]

    def _answer_h2(self, s, sid, body, m):
        if m == "status500":
            s.sendall(_frame(1, 0x5, sid, _h2_headers(status=b"500")))
            return
        ctype = b"text/html" if m == "html" else b"application/dns-message"
        s.sendall(_frame(1, 0x4, sid, _h2_headers(ctype=ctype)) + _frame(0, 0x1, sid, _answer(body)))

    def _serve(self, c, n):
        s, number = self._accept_h2(c)
        mode, batch = self.mode, self.batch
        if mode in ("goaway", "close", "reset") and number > 1:
            mode, batch = "normal", 1
        bodies, done = {}, []
        for sid, body in self._requests(s, number):
            bodies[sid] = body
            done.append(sid)
            with self.lock:
                self.requests.append(("POST", "/dns-query", {}, int.from_bytes(body[:2], "big")))
            if len(done) < batch:
                continue
            with self.lock:
                self.streams_seen.append(len(done))
            if mode == "reverse":
                for sid in reversed(done):
                    self._answer_h2(s, sid, bodies[sid], mode)
            elif mode == "reset":
                # No answer, and a reset (SO_LINGER 0) rather than a FIN.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
                return
            elif mode in ("goaway", "close"):
                with self.lock:
                    self.answered_first.append(_qname(bodies[done[0]]))
                self._answer_h2(s, done[0], bodies[done[0]], mode)
                if mode == "goaway":
                    s.sendall(_frame(7, 0, 0, done[0].to_bytes(4, "big") + bytes(4)))
                # Closed as real servers do: a FIN, then the client's last frames
                # read until it closes. Closing with them unread would be a reset
                # (RFC 2525 2.17), which throws away what is still in our send
                # queue: at times the answer, which then never reaches dproxy.
                s.shutdown(socket.SHUT_WR)
                while s.recv(4096):
                    pass
                return
            elif mode == "badframe":
                s.sendall(_frame(5, 0x4, done[0], (2).to_bytes(4, "big") + b"\x88"))
            elif mode == "oversize":
                s.sendall((20000).to_bytes(3, "big") + bytes([0, 0]) + done[0].to_bytes(4, "big"))
            else:
                for sid in done:
                    if mode == "stall_first" and number == 1 and sid == 1:
                        continue  # never answered
                    self._answer_h2(s, sid, bodies[sid], mode)
            done = []


def _qname(wire):
    return str(dns.message.from_wire(wire).question[0].name).rstrip(".")


class H2ResendServer(H2FaultServer):
    """Over HTTP/2: its first connection never answers, and closes (a FIN) once the
    second one holds the question again (its second attempt), so that dproxy sends the
    first attempt again there too, next to the second. The second connection answers
    when it holds three requests, all in one write: the two of the first question, then
    the other question's. dproxy takes the first, which closes the other attempt; that
    one's answer comes next and must not hold back the answer written after it. After
    that batch, and on later connections, every request is answered at once."""

    def __init__(self, certs):
        super().__init__(certs)
        self.first = None
        self.second_has_it = threading.Event()

    def _serve(self, c, n):
        s, number = self._accept_h2(c)
        bodies, done, batched = {}, [], False
        for sid, body in self._requests(s, number):
            bodies[sid] = body
            done.append(sid)
            name = _qname(body)
            with self.lock:
                if number == 1 and self.first is None:
                    self.first = name
                if number == 2 and name == self.first:
                    self.second_has_it.set()
            if number == 1:
                self.second_has_it.wait(8)
                s.shutdown(socket.SHUT_WR)
                while s.recv(4096):
                    pass
                return
            if number == 2 and not batched:
                if len(done) < 3:
                    continue
                # dproxy takes the answers of one read in the order written.
                done.sort(key=lambda sid: _qname(bodies[sid]) != self.first)
                batched = True
            out = b""
            for sid in done:
                out += _frame(1, 0x4, sid, _h2_headers()) + _frame(0, 0x1, sid, _answer(bodies[sid]))
            s.sendall(out)
            done = []


def _established(port):
    """TCP connections established to 127.0.0.1:port (from ss)."""
    out = subprocess.run(["ss", "-Htn", "state", "established", "( dport = :%d )" % port],
                         capture_output=True, text=True, check=True).stdout
    return len([l for l in out.splitlines() if l.strip()])


def test_http2_to_dnsdist_many_queries_share_one_connection(dproxy, certs, dnsdist):
    watch = PlainWatch(dnsdist.port)
    try:
        px = _start(dproxy, certs, dnsdist.port)
        assert "192.0.2.1" in px.query("a.example.test", timeout=5).to_text()
        names = ["n%d.example.test" % i for i in range(100)]
        results = _ask_at_once(px, names)
        # The backend's static zone answers these NXDOMAIN: an answer, not a failure.
        bad = [n for n, r in results.items() if r is None or r.rcode() != dns.rcode.NXDOMAIN]
        assert not bad, (len(bad), px.stderr_text()[-2000:])
        # HTTP/1.1 would have needed the pool's two connections (and refused most).
        assert _established(dnsdist.port) == 1
        assert watch.packets() == 0, "a query left in plaintext"
    finally:
        watch.close()


def test_http2_answers_out_of_order_all_arrive(dproxy, certs):
    # 12: fewer than a connection queues while its handshake is under way (16).
    fs = H2FaultServer(certs, mode="reverse", batch=12)
    try:
        px = _start(dproxy, certs, fs.port)
        results = _ask_at_once(px, ["r%d.example.test" % i for i in range(12)])
        assert all(r is not None and "192.0.2.7" in r.to_text() for r in results.values()), \
            px.stderr_text()[-2000:]
        assert fs.alpn == {"h2"} and fs.connections == 1 and fs.streams_seen == [12]
        assert all(qid == 0 for _, _, _, qid in fs.requests)
        assert fs.plaintext == 0
    finally:
        fs.stop()


@pytest.mark.parametrize("mode", ["goaway", "close", "reset"])
def test_http2_goaway_or_close_mid_flight_loses_nothing(dproxy, certs, mode):
    names = ["g%d.example.test" % i for i in range(6)]
    fs = H2FaultServer(certs, mode=mode, batch=6)
    try:
        px = _start(dproxy, certs, fs.port)
        results = _ask_at_once(px, names)
        # The first connection answers one of six and goes (GOAWAY naming that stream,
        # or a plain close); the five others go out again on a second connection. After
        # a reset without an answer, all six do.
        assert all(r is not None and "192.0.2.7" in r.to_text() for r in results.values()), \
            px.stderr_text()[-2000:]
        assert fs.connections == 2 and fs.streams_seen[0] == 6
        first = {n for c, n in fs.asked if c == 1}
        again = {n for c, n in fs.asked if c == 2}
        assert first == set(names), fs.asked
        # The answer that came before the GOAWAY or close is taken: its query is not
        # asked again (6 + 5 requests). Counted by name, not by request: on a busy
        # machine the retransmit timer can repeat a query on the second connection.
        if mode == "reset":
            assert fs.answered_first == [] and again == set(names), fs.asked
        else:
            assert len(fs.answered_first) == 1, fs.answered_first
            assert again == set(names) - set(fs.answered_first), (
                fs.asked, px.stderr_text()[-2000:])
        assert px.alive() and fs.plaintext == 0
    finally:
        fs.stop()


def test_http2_resend_goes_on_another_connection(dproxy, certs):
    """A query the server leaves unanswered is asked again after its retransmission
    timeout on a second connection, never as a duplicate behind the first on the
    connection that still carries it (as over DoT); the second connection answers."""
    fs = H2FaultServer(certs, mode="stall_first")
    try:
        px = _start(dproxy, certs, fs.port)
        r = px.query("s.example.test", timeout=8)
        assert r is not None and "192.0.2.7" in r.to_text(), px.stderr_text()[-2000:]
        on = [c for c, n in fs.asked if n == "s.example.test"]
        assert on[:2] == [1, 2] and on.count(1) == 1, fs.asked
        assert fs.alpn == {"h2"} and fs.plaintext == 0 and px.alive()
    finally:
        fs.stop()


def test_answer_for_a_closed_attempt_does_not_hold_back_the_next(dproxy, certs):
    """Answers read together on one connection: one for an attempt closed meanwhile (its
    question was just answered through its other attempt) is dropped, and the answer
    read after it is delivered at once, not after its question's retransmission timeout
    (which would ask it again on another connection)."""
    fs = H2ResendServer(certs)
    try:
        px = _start(dproxy, certs, fs.port)
        first = {}
        t = threading.Thread(target=lambda: first.update(r=px.query("q1.example.test", timeout=8)))
        t.start()
        # Its second attempt (after 1 to 2 s) on connection 2; connection 1 then closes
        # and its first attempt goes out again on connection 2 as well.
        assert wait_until(lambda: fs.asked.count((2, "q1.example.test")) == 2, timeout=8), (
            fs.asked, px.stderr_text()[-2000:])
        r = px.query("q2.example.test", timeout=5)
        t.join()
        assert r is not None and "192.0.2.7" in r.to_text(), px.stderr_text()[-2000:]
        assert first.get("r") is not None and "192.0.2.7" in first["r"].to_text()
        # Answered by the one request it had: not asked again.
        assert [c for c, n in fs.asked if n == "q2.example.test"] == [2], fs.asked
        assert fs.plaintext == 0 and px.alive()
    finally:
        fs.stop()


@pytest.mark.parametrize("mode,log", [
    ("status500", "HTTP status 500"),
    ("html", "content type 'text/html'"),
    ("badframe", "PUSH_PROMISE although push is off"),
    ("oversize", "HTTP/2 frame of 20000 bytes"),
])
def test_http2_bad_answers_give_servfail_ede_and_one_log_line(dproxy, certs, mode, log):
    fs = H2FaultServer(certs, mode=mode)
    _bad_answers_servfail_and_log_once(dproxy, certs, fs, mode, log, ["a.example.test"])
    assert fs.alpn == {"h2"}
