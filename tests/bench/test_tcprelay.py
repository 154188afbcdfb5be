"""The DoT bench's relay: its TLS handshake classifier (bench/tlshello.py) on handshakes
of the real openssl s_client and s_server made at test time, fed whole and split at
every size, on bad bytes; and the relay (bench/tcprelay.py) counting full and resumed
handshakes and dropping connections with a FIN or a reset."""
import os
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench")
sys.path.insert(0, BENCH)
import tlshello  # noqa: E402

NAME = "relay.test"


def openssl(cwd, *args):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    openssl(d, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "key.pem", "-out", "cert.pem", "-days", "2", "-subj", f"/CN={NAME}",
            "-addext", f"subjectAltName=DNS:{NAME}")
    return d


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listen(port, proc, secs=10):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        assert proc.poll() is None, "server exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"nothing listens on {port}")


class SServer:
    """openssl s_server on a free port (its own session cache and ticket keys)."""

    def __init__(self, certs, *extra):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["openssl", "s_server", "-accept", f"127.0.0.1:{self.port}", "-cert", "cert.pem",
             "-key", "key.pem", "-quiet", *extra], cwd=certs, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # s_server answers the probe connect with a failed handshake: harmless, nothing relayed
        wait_listen(self.port, self.proc)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def s_client(certs, port, *extra):
    """One openssl s_client handshake to PORT; -> "Reused" or "New" as openssl saw it.
    Its input stays open until it has its session file (-sess_out): a TLS 1.3 ticket
    comes after the handshake, and s_client leaves at the end of its input."""
    p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", NAME,
                          "-CAfile", "cert.pem", *extra], cwd=certs, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    watchdog = threading.Timer(20, p.kill)
    watchdog.start()
    try:
        seen, out = None, []
        for raw in p.stdout:
            line = raw.decode(errors="replace")
            out.append(line)
            if line.startswith(("Reused,", "New,")):
                seen = line.split(",")[0]
                break
        if seen and "-sess_out" in extra:
            path = os.path.join(certs, extra[list(extra).index("-sess_out") + 1])
            deadline = time.monotonic() + 10
            while not os.path.exists(path) and time.monotonic() < deadline:
                time.sleep(0.01)
        p.stdin.close()
        out += [raw.decode(errors="replace") for raw in p.stdout]
        p.wait()
    finally:
        watchdog.cancel()
    if seen is None:
        raise AssertionError("s_client printed no session line:\n" + "".join(out))
    return seen


class LoopbackServer:
    """A TCP listener on a free loopback port whose accept loop hands each connection
    to self.serve in a thread of its own, until close()."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]

    def start(self):
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def close(self):
        self.lsock.close()


class Capture(LoopbackServer):
    """A plain TCP forwarder on a free port to TARGET that keeps each connection's bytes
    per direction, in the pieces it read them."""

    def __init__(self, target):
        super().__init__()
        self.target = target
        self.conns = []
        self.start()

    def serve(self, c):
        u = socket.create_connection(("127.0.0.1", self.target))
        rec = {"client": [], "server": [], "done": threading.Event()}
        self.conns.append(rec)
        self.pump(c, u, rec)

    @staticmethod
    def pump(c, u, rec):
        names = {c: "client", u: "server"}
        peer = {c: u, u: c}
        open_ = {c, u}
        deadline = time.monotonic() + 20
        while open_ and time.monotonic() < deadline:
            r, _, _ = select.select(list(open_), [], [], 0.5)
            for s in r:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    open_.discard(s)
                    try:
                        peer[s].shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    continue
                rec[names[s]].append(data)
                peer[s].sendall(data)
        c.close()
        u.close()
        rec["done"].set()


# (s_client options, s_server options) per kind of session
CASES = {
    "tls13": (["-tls1_3"], []),
    "tls13-hrr": (["-tls1_3", "-groups", "X25519:P-384"], ["-groups", "P-384"]),
    "tls12-ticket": (["-tls1_2"], []),
    "tls12-session-id": (["-tls1_2", "-no_ticket"], ["-no_ticket"]),
}


def captured(certs, case):
    """The bytes of two s_client connections through a Capture, the first saving its
    session, the second offering it: -> [(openssl's verdict, record)]."""
    copts, sopts = CASES[case]
    srv = SServer(certs, *sopts)
    cap = Capture(srv.port)
    try:
        sess = os.path.join(certs, f"sess-{case}.pem")
        v1 = s_client(certs, cap.port, *copts, "-sess_out", sess)
        v2 = s_client(certs, cap.port, *copts, "-sess_in", sess)
        for rec in cap.conns:
            assert rec["done"].wait(20)
        assert len(cap.conns) == 2
        return list(zip((v1, v2), cap.conns))
    finally:
        cap.close()
        srv.stop()


def classify(rec, pieces):
    """Feeds REC to a Handshake in the order it passed, re-cut by PIECES(data) -> sizes;
    -> (result, offered). The client's hello goes first (the server answers it)."""
    h = tlshello.Handshake()
    for side, feed in (("client", h.from_client), ("server", h.from_server)):
        data = b"".join(rec[side])
        i = 0
        for n in pieces(data):
            feed(data[i:i + n])
            i += n
        assert i == len(data)
    return h.finish(), h.offered


def whole(data):
    return [len(data)]


def bytewise(data):
    return [1] * len(data)


def jagged(data):
    rnd = random.Random(len(data))
    out, left = [], len(data)
    while left:
        out.append(min(left, rnd.randint(1, 700)))
        left -= out[-1]
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_openssl_handshakes_full_then_resumed(certs, case):
    first, second = captured(certs, case)
    # openssl's own view: the first connection is new, the second resumed its session
    assert (first[0], second[0]) == ("New", "Reused"), case
    for pieces in (whole, bytewise, jagged):
        assert classify(first[1], pieces) == ("full", False), (case, pieces.__name__)
        assert classify(second[1], pieces) == ("resumed", True), (case, pieces.__name__)


def test_refused_session_is_full_but_offered(certs):
    """A client that offers a ticket the server cannot read (a new server process, new
    ticket keys) gets a full handshake: offered, not resumed."""
    copts, _ = CASES["tls13"]
    sess = os.path.join(certs, "sess-refused.pem")
    srv = SServer(certs)
    try:
        assert s_client(certs, srv.port, *copts, "-sess_out", sess) == "New"
    finally:
        srv.stop()
    srv = SServer(certs)
    cap = Capture(srv.port)
    try:
        assert s_client(certs, cap.port, *copts, "-sess_in", sess) == "New"
        assert cap.conns and cap.conns[0]["done"].wait(20)
        assert classify(cap.conns[0], whole) == ("full", True)
    finally:
        cap.close()
        srv.stop()


def hello_prefix(certs):
    """A real ClientHello and the server's bytes of a TLS 1.3 handshake."""
    (_, rec), _ = captured(certs, "tls13")
    return b"".join(rec["client"]), b"".join(rec["server"])


def test_bad_bytes_are_unknown_or_failed_never_an_exception(certs):
    ch, sh = hello_prefix(certs)
    h = tlshello.Handshake()
    h.from_client(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert h.finish() == "unknown"
    # the server closes after half its ServerHello: no ServerHello, failed
    h = tlshello.Handshake()
    h.from_client(ch)
    h.from_server(sh[:20])
    assert h.result is None and h.finish() == "failed"
    # an alert instead of a ServerHello
    h = tlshello.Handshake()
    h.from_client(ch)
    h.from_server(bytes([21, 3, 3, 0, 2, 2, 40]))
    assert h.result == "failed"
    # a record length beyond TLS's bound
    h = tlshello.Handshake()
    h.from_client(ch)
    h.from_server(bytes([22, 3, 3, 0xff, 0xff]))
    assert h.result == "unknown"
    # ChangeCipherSpec records without end: no verdict within the bound -> unknown
    h = tlshello.Handshake()
    h.from_client(ch)
    for _ in range(tlshello.BOUND // 6 + 2):
        h.from_server(bytes([20, 3, 3, 0, 1, 1]))
        if h.result:
            break
    assert h.result == "unknown"
    # a ServerHello whose extension block overruns the message
    body_at = sh.index(b"\x02", 5)
    bad = bytearray(sh[:body_at + 4 + 70])
    h = tlshello.Handshake()
    h.from_client(ch)
    h.from_server(bytes(bad))
    assert h.finish() in ("unknown", "failed")
    # flipped bytes anywhere in real handshakes: a verdict, never an exception
    rnd = random.Random(1)
    for _ in range(3000):
        c, s = bytearray(ch), bytearray(sh)
        for _ in range(rnd.randint(1, 4)):
            buf = rnd.choice((c, s))
            buf[rnd.randrange(len(buf))] = rnd.randrange(256)
        h = tlshello.Handshake()
        h.from_client(bytes(c))
        h.from_server(bytes(s))
        assert h.finish() in ("full", "resumed", "failed", "unknown")


# ------------------------------------------------------------------ the relay itself

class Relay:
    def __init__(self, tmp, target, drop_secs=None, mode=None):
        self.port = free_port()
        self.stats_file = os.path.join(tmp, f"relay-{self.port}.stats")
        args = [sys.executable, os.path.join(BENCH, "tcprelay.py"), "127.0.0.1", str(self.port),
                "127.0.0.1", str(target), "0", self.stats_file]
        if drop_secs is not None:
            args += [str(drop_secs)] + ([mode] if mode else [])
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE)
        self.wait(lambda st: "accepted" in st)

    def stats(self):
        try:
            with open(self.stats_file) as f:
                v = f.read().split()
            return {v[i]: int(v[i + 1]) for i in range(0, len(v) - 1, 2)}
        except (OSError, ValueError, IndexError):
            return {}

    def wait(self, cond, secs=10):
        deadline = time.monotonic() + secs
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stderr.read().decode()
            st = self.stats()
            if st and cond(st):
                return st
            time.sleep(0.02)
        raise AssertionError(f"relay stats {self.stats()}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.mark.parametrize("case", ["tls13", "tls12-ticket"])
def test_relay_counts_full_and_resumed(certs, tmp_path, case):
    copts, sopts = CASES[case]
    srv = SServer(certs, *sopts)
    relay = Relay(str(tmp_path), srv.port)
    try:
        sess = str(tmp_path / "sess.pem")
        assert s_client(certs, relay.port, *copts, "-sess_out", sess) == "New"
        relay.wait(lambda st: st["full"] == 1 and st["open"] == 0)
        assert s_client(certs, relay.port, *copts, "-sess_in", sess) == "Reused"
        st = relay.wait(lambda st: st["resumed"] == 1 and st["open"] == 0)
        assert (st["accepted"], st["full"], st["resumed"], st["offered"], st["failed"], st["unknown"]) == \
            (2, 1, 1, 1, 0, 0)
    finally:
        relay.stop()
        srv.stop()


class Echo(LoopbackServer):
    """A TCP server that echoes, and counts the connections it saw closed."""

    def __init__(self):
        super().__init__()
        self.closed = 0
        self.start()

    def serve(self, c):
        with c:
            while True:
                try:
                    data = c.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self.closed += 1
                    return
                c.sendall(data)


def recv_outcome(sock, secs=10):
    """What the client's next read gives: "data", "fin" or "rst" (or "timeout")."""
    sock.settimeout(secs)
    try:
        return "data" if sock.recv(100) else "fin"
    except ConnectionResetError:
        return "rst"
    except socket.timeout:
        return "timeout"


@pytest.mark.parametrize("mode,seen", [(None, "fin"), ("fin", "fin"), ("rst", "rst")])
def test_relay_drops_every_connection_when_told(tmp_path, mode, seen):
    echo = Echo()
    relay = Relay(str(tmp_path), echo.port, drop_secs=0.2, mode=mode)
    socks = []
    try:
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
            s.sendall(b"ping")
            s.settimeout(10)
            assert s.recv(100) == b"ping"
            socks.append(s)
        # without the signal, no drop however long the drop interval has passed
        time.sleep(0.5)
        assert relay.stats()["drops"] == 0
        relay.proc.send_signal(signal.SIGUSR1)
        st = relay.wait(lambda st: st["dropped"] >= 3)
        assert st["drops"] >= 1
        assert [recv_outcome(s) for s in socks] == [seen] * 3
        if seen == "fin":
            # what the client sends after the drop goes nowhere; its close ends the pair
            for s in socks:
                s.sendall(b"late")
                s.close()
        relay.wait(lambda st: st["open"] == 0)
        relay.proc.send_signal(signal.SIGUSR2)
        # after SIGUSR2 a new connection lives on
        s = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
        socks.append(s)
        drops = relay.stats()["drops"]
        s.sendall(b"again")
        assert s.recv(100) == b"again"
        time.sleep(0.5)
        s.sendall(b"still")
        assert s.recv(100) == b"still"
        assert relay.stats()["drops"] == drops
        # the echo server saw its three connections closed by the relay
        deadline = time.monotonic() + 10
        while echo.closed < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert echo.closed >= 3
    finally:
        for s in socks:
            s.close()
        relay.stop()
