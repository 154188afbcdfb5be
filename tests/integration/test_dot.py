"""DNS over TLS upstreams, end to end with the full build (`DPROXY_BIN` built with
--features full): dproxy -> real unbound serving DoT (do-udp off, so a plain UDP
listener can sit on the same address and port and prove nothing leaves in the clear),
and fault servers of our own (Python ssl) for what unbound will not do: close
mid-pipeline, answer out of order, stall the handshake, send garbage.

Certificates (a test CA, a server certificate for dot.test, one for another name, one
from an unknown CA, an expired one, one not valid yet) are made at test time with openssl."""

import json
import os
import shutil
import signal
import socket
import ssl
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
from harness.dproxy import DproxyStartError
from harness.ports import started_on
from harness.upstream import FakeUpstream

NAME = "dot.test"
EDE_NO_REACHABLE = 22
EDE_NETWORK = 23


@pytest.fixture(autouse=True)
def _needs_full(dproxy_bin):
    if os.environ.get("DPROXY_FULL") != "1":
        pytest.skip("needs the full build: DPROXY_FULL=1 DPROXY_BIN=<dproxy built with --features full>")


def _openssl(d, *args):
    subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)


def _ca(d, stem):
    _openssl(d, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", stem + ".key", "-out", stem + ".pem", "-days", "30",
             "-subj", "/CN=dproxy test " + stem,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def _csr(d, stem, name):
    _openssl(d, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", stem + ".key", "-out", stem + ".csr", "-subj", "/CN=" + name)
    with open(os.path.join(d, stem + ".ext"), "w") as f:
        f.write("subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n" % name)


def _leaf(d, stem, name, ca):
    _csr(d, stem, name)
    _openssl(d, "x509", "-req", "-in", stem + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
             "-CAcreateserial", "-days", "30", "-out", stem + ".pem", "-extfile", stem + ".ext")


def _dated(d, stem, name, start, end):
    """A certificate valid from `start` to `end` (openssl dates): `openssl ca` sets them."""
    _csr(d, stem, name)
    if not os.path.exists(os.path.join(d, "ca.cnf")):
        with open(os.path.join(d, "index.txt"), "w"):
            pass
        with open(os.path.join(d, "serial"), "w") as f:
            f.write("1000\n")
        with open(os.path.join(d, "ca.cnf"), "w") as f:
            f.write("[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\n"
                    "serial = serial\ndefault_md = sha256\npolicy = p\nunique_subject = no\n"
                    "[p]\ncommonName = supplied\n")
    _openssl(d, "ca", "-batch", "-notext", "-config", "ca.cnf", "-cert", "ca.pem",
             "-keyfile", "ca.key", "-in", stem + ".csr", "-out", stem + ".pem",
             "-startdate", start, "-enddate", end, "-extfile", stem + ".ext")


def _openssl_date(days):
    return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(time.time() + days * 86400))


@pytest.fixture(scope="module")
def certs():
    # Not under pytest's tmp_path: dproxy reads the CA file after dropping to nobody,
    # and pytest's base directory is root's alone (0700).
    d = tempfile.mkdtemp(prefix="dproxy-dot-it-")
    try:
        _ca(d, "ca")
        _ca(d, "otherca")
        _leaf(d, "good", NAME, "ca")
        _leaf(d, "wrongname", "other.test", "ca")
        _leaf(d, "unknownca", NAME, "otherca")
        _dated(d, "expired", NAME, "20200101000000Z", "20200201000000Z")
        # Valid from two days ahead (inside the CA's 30 days): a router whose clock is behind.
        _dated(d, "future", NAME, _openssl_date(2), _openssl_date(20))
        os.chmod(d, 0o755)
        for f in os.listdir(d):
            os.chmod(os.path.join(d, f), 0o644)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _free_port():
    # A port free for TCP and UDP at once on 127.0.0.1.
    for _ in range(100):
        t = socket.socket()
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
        except OSError:
            t.close()
            continue
        u.close()
        t.close()
        return port
    raise AssertionError("no free port")


class PlainWatch:
    """A UDP listener on the DoT server's address and port: any packet is a query
    that left in the clear."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.setblocking(False)

    def packets(self):
        n = 0
        while True:
            try:
                self.sock.recv(4096)
                n += 1
            except BlockingIOError:
                return n

    def close(self):
        self.sock.close()


def _wait_listening(proc, port, what):
    """Waits (10 s at most) until `proc` accepts TCP on 127.0.0.1:`port` itself."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert proc.poll() is None, what + " exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            # Another worker's server on the port accepts too.
            if started_on(proc, port):
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("%s does not listen on %d" % (what, port))


class Unbound:
    def __init__(self, certs, port):
        self.dir = tempfile.mkdtemp(prefix="dproxy-dot-unbound-")
        self.port = port
        conf = os.path.join(self.dir, "unbound.conf")
        with open(conf, "w") as f:
            f.write(
                "server:\n  interface: 127.0.0.1@%d\n  tls-port: %d\n  do-udp: no\n"
                "  tls-service-key: %s/good.key\n  tls-service-pem: %s/good.pem\n"
                "  username: \"\"\n  chroot: \"\"\n  directory: %s\n  pidfile: \"\"\n"
                "  use-syslog: no\n  do-daemonize: no\n  num-threads: 1\n  do-ip6: no\n"
                "  so-reuseport: no\n  access-control: 127.0.0.0/8 allow\n"
                "  module-config: \"iterator\"\n  local-zone: \"example.test.\" static\n"
                "  local-data: \"a.example.test. 300 IN A 192.0.2.1\"\n"
                "  local-data: \"b.example.test. 300 IN A 192.0.2.2\"\n"
                "  local-data: \"c.example.test. 300 IN A 192.0.2.3\"\n"
                "  log-queries: yes\n  logfile: %s/log\n  verbosity: 1\n"
                % (port, port, certs, certs, self.dir, self.dir))
        self.conf = conf
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["unbound", "-d", "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        _wait_listening(self.proc, self.port, "unbound")
        return self

    def queries(self):
        try:
            with open(os.path.join(self.dir, "log")) as f:
                return sum(1 for line in f if " IN" in line and "query:" in line.lower()
                           or "info: 127.0.0.1" in line)
        except FileNotFoundError:
            return 0

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


class LoopbackTlsServer:
    """The listening half of the suites' own TLS servers (DoT here, DoH in test_doh):
    a socket on HOST:PORT (a free port by default), one thread per accepted connection
    running `_serve(c, n)` (per server kind; n numbers the connections from 1 in the
    order they were accepted), and the counts the tests read: connections,
    active ones, plaintext ones (`_serve` counts those). A subclass sets what its
    `_serve` uses before it calls this `__init__`, which starts accepting."""

    # What ends a connection thread quietly: the client going away, or bytes the
    # server cannot read.
    ERRORS = (OSError, ssl.SSLError, ValueError)

    def __init__(self, host="127.0.0.1", port=None):
        self.port = port or _free_port()
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, self.port))
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        self.connections = 0
        self.active = 0
        self.plaintext = 0
        self.running = True
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self.running:
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.active += 1
                n = self.connections
            threading.Thread(target=self._connection, args=(c, n), daemon=True).start()

    def _connection(self, c, n):
        """One client connection in its own thread: served, then closed and no longer
        counted as active."""
        c.settimeout(10)
        try:
            self._serve(c, n)
        except self.ERRORS:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass
            with self.lock:
                self.active -= 1

    def _serve(self, c, n):
        raise NotImplementedError

    def stop(self):
        self.running = False
        self.lsock.close()


class FaultServer(LoopbackTlsServer):
    """A DoT server of our own (Python ssl) answering A queries with 192.0.2.7 and
    misbehaving on purpose. mode: normal, close_mid (answers the first query of a
    connection, then closes with the rest unanswered), reverse (waits for `batch`
    queries and answers them last first), stall (accepts TCP, never speaks TLS),
    garbage (answers with a frame too short to be DNS), oversize (answers with a
    65,535-byte length prefix followed by junk, and nothing more), tls12 (TLS 1.2 only), reset
    (a TCP reset once the client has sent its ClientHello), keepalive (announces an
    edns-tcp-keepalive timeout of 1.5 s to queries that carry the option), servfail_first (answers
    the first query it gets with SERVFAIL, the others normally)."""

    def __init__(self, certs, stem="good", mode="normal", batch=3):
        self.mode = mode
        self.batch = batch
        self.ctx = None
        if mode not in ("stall", "reset"):
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(os.path.join(certs, stem + ".pem"),
                                     os.path.join(certs, stem + ".key"))
            if mode == "tls12":
                self.ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        self.queries = 0
        # Queries that carried edns-tcp-keepalive (option 11).
        self.keepalive_asked = 0
        # Handshakes that resumed an earlier session (no certificate sent).
        self.resumed = 0
        super().__init__()

    def _read_frame(self, s):
        hdr = b""
        while len(hdr) < 2:
            b = s.recv(2 - len(hdr))
            if not b:
                return None
            hdr += b
        n = int.from_bytes(hdr, "big")
        body = b""
        while len(body) < n:
            b = s.recv(n - len(body))
            if not b:
                return None
            body += b
        return body

    def _answer(self, wire):
        q = dns.message.from_wire(wire)
        r = dns.message.make_response(q)
        if any(o.otype == 11 for o in q.options):
            with self.lock:
                self.keepalive_asked += 1
            if self.mode == "keepalive":
                # 1.5 s, in units of 100 ms (RFC 7828).
                r.use_edns(0, options=[dns.edns.GenericOption(11, b"\x00\x0f")])
        r.answer.append(dns.rrset.from_text(q.question[0].name, 300, "IN", "A", "192.0.2.7"))
        out = r.to_wire()
        return len(out).to_bytes(2, "big") + out

    def _servfail(self, wire):
        r = dns.message.make_response(dns.message.from_wire(wire))
        r.set_rcode(dns.rcode.SERVFAIL)
        out = r.to_wire()
        return len(out).to_bytes(2, "big") + out

    def _serve(self, c, n):
        first = c.recv(1, socket.MSG_PEEK)
        if first and first[0] != 0x16:  # not a TLS handshake record
            with self.lock:
                self.plaintext += 1
            return
        if self.mode == "stall":
            time.sleep(8)
            return
        if self.mode == "reset":
            # SO_LINGER 0: close sends a TCP reset instead of a FIN.
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return
        s = self.ctx.wrap_socket(c, server_side=True)
        if s.session_reused:
            with self.lock:
                self.resumed += 1
        held = []
        answered = 0
        while True:
            q = self._read_frame(s)
            if q is None:
                return
            with self.lock:
                self.queries += 1
            if self.mode == "garbage":
                s.sendall(b"\x00\x03abc")
                continue
            if self.mode == "oversize":
                s.sendall(b"\xff\xff" + b"\xff" * 100)
                continue
            if self.mode == "close_mid":
                if answered == 0:
                    s.sendall(self._answer(q))
                    answered += 1
                    continue
                # The second query arrived: close with it (and any after it)
                # unanswered. A FIN, then reading until the client closes: closing
                # with unread data would be a reset that also destroys the answer
                # already sent (that is a lost answer, not a server closing first).
                s.shutdown(socket.SHUT_WR)
                while s.recv(4096):
                    pass
                return
            if self.mode == "reverse":
                held.append(q)
                if len(held) >= self.batch:
                    for h in reversed(held):
                        s.sendall(self._answer(h))
                    held = []
                continue
            if self.mode == "servfail_first" and self.queries == 1:
                s.sendall(self._servfail(q))
                continue
            s.sendall(self._answer(q))


def _start(dproxy, certs, port, name=NAME, extra_lists=None, options=None):
    opts = {"ca_file": os.path.join(certs, "ca.pem")}
    opts.update(options or {})
    lists = {"server": ["tls://127.0.0.1:%d#%s" % (port, name)]}
    lists.update(extra_lists or {})
    return dproxy(options=opts, lists=lists)


def _servfail_with_ede(r):
    return r is not None and r.rcode() == dns.rcode.SERVFAIL and (
        EDE_NO_REACHABLE in ede_codes(r) or EDE_NETWORK in ede_codes(r))


@pytest.fixture
def unbound(certs):
    made = []

    def make(port=None):
        u = Unbound(certs, port or _free_port())
        made.append(u)
        return u.start()

    yield make
    # Its directory goes with it, also when the test (or unbound's start) failed.
    for u in made:
        u.stop()
        shutil.rmtree(u.dir, ignore_errors=True)


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


def test_answers_over_tls_from_unbound_then_from_cache(dproxy, certs, unbound):
    ub = unbound()
    watch = PlainWatch(ub.port)
    px = _start(dproxy, certs, ub.port)
    r = px.query("a.example.test", timeout=5)
    assert r.rcode() == dns.rcode.NOERROR and "192.0.2.1" in r.to_text(), r.to_text()
    before = px.stats()
    r2 = px.query("a.example.test")
    assert "192.0.2.1" in r2.to_text()
    s = px.stats()
    # The second answer came from the cache (a slow handshake may have cost the
    # first one a retry, so only the difference is checked).
    assert s["upstream_queries"] == before["upstream_queries"], s
    assert s["hits"] == before["hits"] + 1, s
    assert s["tls_upstream.0.name"] == NAME and s["tls_upstream.0.state"] == "ok", s
    assert watch.packets() == 0, "a query left in plaintext"
    watch.close()


def test_server_restart_mid_run_costs_no_answer(dproxy, certs, unbound):
    ub = unbound()
    px = _start(dproxy, certs, ub.port)
    assert "192.0.2.1" in px.query("a.example.test", timeout=5).to_text()
    ub.stop()
    ub.start()
    # The old connection is dead; the next miss opens a new one, no restart needed.
    r = px.query("b.example.test", timeout=5)
    assert r.rcode() == dns.rcode.NOERROR and "192.0.2.2" in r.to_text(), r.to_text()
    assert px.alive()


def test_link_down_closes_connections_and_link_up_reconnects(dproxy, certs):
    fs = FaultServer(certs)
    try:
        px = _start(dproxy, certs, fs.port)
        assert "192.0.2.7" in px.query("a.example.test", timeout=5).to_text()
        assert fs.connections == 1 and fs.active == 1
        px.signal(signal.SIGUSR2)
        # Down: the connection is closed by dproxy.
        wait_until(lambda: fs.active == 0, timeout=5)
        assert fs.active == 0, "link down must close the TLS connection"
        # Down: a miss is not sent anywhere and no connection is opened.
        r = px.query("x1.example.test", timeout=5)
        assert r.rcode() == dns.rcode.SERVFAIL, r.to_text()
        assert fs.connections == 1
        px.signal(signal.SIGUSR1)
        r = px.wait_answer("x2.example.test", timeout=5,
                           until=lambda m: m.rcode() == dns.rcode.NOERROR)
        assert r is not None and "192.0.2.7" in r.to_text()
        assert fs.connections == 2, "link up must reconnect on a new connection"
        assert "link down" in px.stderr_text()
    finally:
        fs.stop()


@pytest.mark.parametrize("stem,name,pin,log", [
    ("wrongname", NAME, None, "not valid for the server's name"),
    ("unknownca", NAME, None, "not issued by a CA of ca_file"),
    ("expired", NAME, None, "expired"),
    ("good", NAME, "sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "SPKI pin"),
])
def test_authentication_failure_gives_servfail_ede_and_no_plaintext(
        dproxy, certs, stem, name, pin, log):
    fs = FaultServer(certs, stem=stem)
    watch = PlainWatch(fs.port)
    try:
        lists = {"tls_pin": ["%s %s" % (name, pin)]} if pin else None
        px = _start(dproxy, certs, fs.port, name=name, extra_lists=lists)
        r = px.query("a.example.test", timeout=6, edns=0)
        assert _servfail_with_ede(r), r.to_text()
        r = px.query("b.example.test", timeout=6, edns=0)
        assert _servfail_with_ede(r), r.to_text()
        err = px.stderr_text()
        assert log in err, err[-2000:]
        # One warning per state change, not one per query.
        warnings = [l for l in err.splitlines() if "warn" in l and log in l]
        assert len(warnings) == 1, err[-2000:]
        assert log in px.stats()["tls_upstream.0.state"]
        assert fs.queries == 0
        assert fs.plaintext == 0 and watch.packets() == 0, "something left in plaintext"
    finally:
        watch.close()
        fs.stop()


def test_server_closing_mid_pipeline_costs_no_query(dproxy, certs):
    fs = FaultServer(certs, mode="close_mid")
    try:
        px = _start(dproxy, certs, fs.port)
        # More queries than a question has attempts (8): each connection answers one,
        # so the last ones are answered only if closing costs them no attempt.
        names = ["p%d.example.test" % i for i in range(12)]
        results = _ask_at_once(px, names)
        for n in names:
            r = results[n]
            assert r is not None and r.rcode() == dns.rcode.NOERROR, (n, px.stderr_text()[-3000:])
            assert "192.0.2.7" in r.to_text()
        assert fs.connections >= 2
    finally:
        fs.stop()


def test_answers_out_of_order_are_matched(dproxy, certs):
    fs = FaultServer(certs, mode="reverse", batch=3)
    try:
        px = _start(dproxy, certs, fs.port, options={"case_randomization": "0"})
        names = ["o%d.example.test" % i for i in range(3)]
        results = _ask_at_once(px, names)
        for n in names:
            r = results[n]
            assert r is not None and r.rcode() == dns.rcode.NOERROR, (n, px.stderr_text()[-3000:])
            assert str(r.answer[0].name).rstrip(".") == n
        assert fs.connections == 1
    finally:
        fs.stop()


def test_stalled_handshake_and_garbage_frame_give_servfail_not_plaintext(dproxy, certs):
    for mode, log in (("stall", "handshake timed out"), ("garbage", "frame")):
        fs = FaultServer(certs, mode=mode)
        watch = PlainWatch(fs.port)
        try:
            px = _start(dproxy, certs, fs.port)
            r = px.query("g.example.test", timeout=12, edns=0)
            assert _servfail_with_ede(r), (mode, r.to_text())
            wait_until(lambda: log in px.stderr_text(), timeout=8, interval=0.1)
            assert log in px.stderr_text(), (mode, px.stderr_text()[-2000:])
            assert fs.plaintext == 0 and watch.packets() == 0
            assert px.alive()
        finally:
            watch.close()
            fs.stop()


def test_oversize_frame_drops_the_connection_with_a_logged_reason(dproxy, certs):
    # 65,535 bytes announced, 100 bytes of junk sent, the connection kept open: dproxy
    # must see from the junk that no answer is coming rather than wait for the rest.
    fs = FaultServer(certs, mode="oversize")
    watch = PlainWatch(fs.port)
    try:
        px = _start(dproxy, certs, fs.port)
        r = px.query("big.example.test", timeout=12, edns=0)
        assert _servfail_with_ede(r), r.to_text()
        assert fs.queries >= 1
        assert "65535-byte frame" in px.stderr_text(), px.stderr_text()[-2000:]
        # dproxy closed every connection the server kept open.
        wait_until(lambda: fs.active == 0, timeout=5)
        assert fs.active == 0, "the connection with the junk frame is still open"
        assert "tls_upstream.0.state" in px.stats()
        assert "frame" in px.stats()["tls_upstream.0.state"]
        assert fs.plaintext == 0 and watch.packets() == 0, "something left in plaintext"
        assert px.alive()
    finally:
        watch.close()
        fs.stop()


def test_certificate_not_valid_yet_is_accepted_until_the_clock_is_synced(dproxy, certs):
    fs = FaultServer(certs, stem="future")
    watch = PlainWatch(fs.port)
    try:
        px = _start(dproxy, certs, fs.port)
        assert px.stats()["clock"] == "unsynced"
        r = px.query("a.example.test", timeout=5)
        assert r.rcode() == dns.rcode.NOERROR and "192.0.2.7" in r.to_text(), r.to_text()
        assert fs.active == 1
        c = px.ctl("time-synced")
        assert c.returncode == 0 and c.stdout == "clock=synced\n", (c.stdout, c.stderr)
        assert px.stats()["clock"] == "synced"
        assert json.loads(px.ctl("stats", "--json").stdout)["clock"] == "synced"
        # The connection authenticated under the lenient check is closed.
        wait_until(lambda: fs.active == 0, timeout=5)
        assert fs.active == 0, "the sync must close connections checked before it"
        r = px.query("b.example.test", timeout=6, edns=0)
        assert _servfail_with_ede(r), r.to_text()
        err = px.stderr_text()
        assert "clock synced" in err and "not valid yet" in err, err[-2000:]
        assert fs.queries == 1
        # Said again (each NTP stratum change): nothing changes, nothing is logged.
        assert px.ctl("time-synced").returncode == 0
        assert px.stderr_text().count("clock synced") == 1
        assert fs.plaintext == 0 and watch.packets() == 0
    finally:
        watch.close()
        fs.stop()


def test_plain_servers_answer_only_when_no_encrypted_one_does(dproxy, certs):
    """option allow_plain_fallback: a plain server next to a TLS one is asked only
    after the TLS server failed the query; without the option the mix is refused."""
    plain = FakeUpstream(records=["a 300 IN A 192.0.2.99", "b 300 IN A 192.0.2.99",
                                  "c 300 IN A 192.0.2.99"]).start()
    good = FaultServer(certs, mode="servfail_first")
    bad = FaultServer(certs, stem="wrongname")
    try:
        with pytest.raises(DproxyStartError, match="allow_plain_fallback"):
            _start(dproxy, certs, good.port, extra_lists={"server": [
                "tls://127.0.0.1:%d#%s" % (good.port, NAME), plain.addr]})
        # The TLS server fails the first query (SERVFAIL): the plain one answers it.
        px = _start(dproxy, certs, good.port, options={"allow_plain_fallback": "1"},
                    extra_lists={"server": [plain.addr,
                                            "tls://127.0.0.1:%d#%s" % (good.port, NAME)]})
        r = px.query("a.example.test", timeout=5)
        assert "192.0.2.99" in r.to_text(), r.to_text()
        assert plain.count() == 1, plain.summary()
        # Then the TLS server works again: the plain one gets nothing more, though it
        # is listed first and scores better than a server that just failed.
        for n in ("b", "c"):
            r = px.query(n + ".example.test", timeout=5)
            assert "192.0.2.7" in r.to_text(), r.to_text()
        assert plain.count() == 1, plain.summary()
        assert "allow_plain_fallback" in px.stderr_text()
        # The TLS server fails authentication: the plain one answers.
        px2 = _start(dproxy, certs, bad.port, options={"allow_plain_fallback": "1"},
                     extra_lists={"server": ["tls://127.0.0.1:%d#%s" % (bad.port, NAME),
                                             plain.addr]})
        r = px2.query("a.example.test", timeout=6)
        assert r.rcode() == dns.rcode.NOERROR and "192.0.2.99" in r.to_text(), r.to_text()
        assert plain.count() >= 1 and bad.queries == 0 and bad.plaintext == 0
    finally:
        good.stop()
        bad.stop()
        plain.stop()


def test_server_keepalive_timeout_closes_the_idle_connection_sooner(dproxy, certs):
    fs = FaultServer(certs, mode="keepalive")
    try:
        px = _start(dproxy, certs, fs.port)
        t0 = time.monotonic()
        r = px.query("a.example.test", timeout=5, edns=0)
        assert "192.0.2.7" in r.to_text(), r.to_text()
        assert fs.keepalive_asked == 1, "the query must carry edns-tcp-keepalive"
        # Idle: closed by dproxy after the server's 1.5 s, not our own 10 s.
        deadline = t0 + 8
        while fs.active and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fs.active == 0, "still open after 8 s: the server's keepalive was ignored"
        assert time.monotonic() - t0 >= 1.4
        # Closing idle is no failure: the next query opens a new connection.
        assert "192.0.2.7" in px.query("b.example.test", timeout=5).to_text()
        assert fs.connections == 2
        assert px.stats()["tls_upstream.0.state"] == "ok"
    finally:
        fs.stop()


@pytest.mark.parametrize("mode,log", [
    ("tls12", "does not offer TLS 1.3"),
    ("reset", "reset by peer"),
])
def test_tls12_only_and_tcp_reset_give_servfail_one_log_line_no_plaintext(
        dproxy, certs, mode, log):
    fs = FaultServer(certs, mode=mode)
    watch = PlainWatch(fs.port)
    try:
        px = _start(dproxy, certs, fs.port)
        for n in ("a", "b"):
            r = px.query(n + ".example.test", timeout=6, edns=0)
            assert _servfail_with_ede(r), (mode, r.to_text())
            # Past the backoff (0.5 s after one failure, 1 s after two): the next query
            # meets the server again, not just the backoff.
            time.sleep(1.2)
        err = px.stderr_text()
        warnings = [l for l in err.splitlines() if "warn" in l and log in l]
        assert len(warnings) == 1, err[-2000:]
        assert log in px.stats()["tls_upstream.0.state"]
        assert fs.connections >= 2
        assert fs.queries == 0 and fs.plaintext == 0 and watch.packets() == 0
        assert px.alive()
    finally:
        watch.close()
        fs.stop()


def test_reconnect_resumes_the_tls_session(dproxy, certs):
    # The server's keepalive (1.5 s) makes dproxy close the idle connection soon.
    fs = FaultServer(certs, mode="keepalive")
    try:
        px = _start(dproxy, certs, fs.port)
        assert "192.0.2.7" in px.query("a.example.test", timeout=5, edns=0).to_text()
        wait_until(lambda: fs.active == 0, timeout=8)
        assert fs.active == 0
        assert "192.0.2.7" in px.query("b.example.test", timeout=5, edns=0).to_text()
        assert fs.connections == 2
        # One full handshake, then a resumption.
        assert fs.resumed == 1, "the reconnect did a full handshake"
    finally:
        fs.stop()
