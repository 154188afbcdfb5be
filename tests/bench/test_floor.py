"""The DoT bench's floor (bench/floor.c), compiled at test time: queries from several UDP
clients (with the same DNS ID) go out on one TCP connection with IDs of its own, and the
answers, in any order, two in one segment or one split over two, go back to the client
that asked with its own ID; a closed upstream ends it with an error."""
import os
import socket
import struct
import subprocess
import threading
import time

import pytest

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench")


@pytest.fixture(scope="module")
def floor_bin(tmp_path_factory):
    out = tmp_path_factory.mktemp("floor") / "floor"
    subprocess.run(["cc", "-O2", "-Wall", "-Werror", "-o", str(out), os.path.join(BENCH, "floor.c")],
                   check=True, capture_output=True, timeout=60)
    return str(out)


def udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def query(qid, label):
    """A DNS query for LABEL.test A with ID QID."""
    name = bytes([len(label)]) + label.encode() + b"\x04test\x00"
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + name + b"\x00\x01\x00\x01"


def frame(msg):
    return struct.pack(">H", len(msg)) + msg


class Upstream:
    """A DNS-over-TCP server for one connection: takes WANT queries, then answers them in
    reverse order (the query with QR set), the last two in one send, the next split over
    two sends."""

    def __init__(self, want):
        self.want = want
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.seen = []
        self.close_after = False
        self.accepted = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        conn, _ = self.sock.accept()
        self.accepted.set()
        conn.settimeout(10)
        buf = b""
        while len(self.seen) < self.want:
            data = conn.recv(4096)
            if not data:
                return
            buf += data
            while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
                n = struct.unpack(">H", buf[:2])[0]
                self.seen.append(buf[2:2 + n])
                buf = buf[2 + n:]
        answers = [frame(q[:2] + bytes([q[2] | 0x80]) + q[3:]) for q in reversed(self.seen)]
        conn.sendall(answers[0] + answers[1])
        conn.sendall(answers[2][:3])
        time.sleep(0.05)
        conn.sendall(answers[2][3:] + b"".join(answers[3:]))
        if self.close_after:
            time.sleep(0.2)
            conn.close()
        else:
            time.sleep(2)
            conn.close()


def start_floor(floor_bin, up):
    """The floor on a free port, once it listens (it binds its UDP port before it
    connects to the upstream)."""
    port = udp_port()
    p = subprocess.Popen([floor_bin, str(port), "127.0.0.1", str(up.port)], stderr=subprocess.PIPE,
                         text=True)
    assert up.accepted.wait(10), "the floor did not connect"
    return p, port


def test_answers_go_back_to_the_client_that_asked_with_its_id(floor_bin):
    up = Upstream(want=4)
    p, port = start_floor(floor_bin, up)
    try:
        clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
        sent = []
        # Both clients use ID 0x1234 for one query: the floor must tell them apart.
        for i, (c, qid, label) in enumerate([(clients[0], 0x1234, "a"), (clients[1], 0x1234, "b"),
                                             (clients[0], 0x0101, "c"), (clients[1], 0xfffe, "d")]):
            c.settimeout(5)
            c.sendto(query(qid, label), ("127.0.0.1", port))
            sent.append((c, qid, label))
            time.sleep(0.02)          # one per loop turn or several: both are fine
        got = {0: [], 1: []}
        for i, c in enumerate(clients):
            for _ in range(2):
                got[i].append(c.recv(4096))
        for i, c in enumerate(clients):
            want = {query(qid, label)[:2] + b"\x81" + query(qid, label)[3:] for cc, qid, label in sent
                    if cc is c}
            assert set(got[i]) == want
        ids = [q[:2] for q in up.seen]
        assert len(set(ids)) == 4, "the floor's own IDs on the connection are not distinct"
        assert all(q[2:] == query(0, label)[2:] for q, (_, _, label) in zip(up.seen, sent))
        assert p.poll() is None
    finally:
        p.kill()
        p.wait()


def test_a_closed_upstream_ends_it_with_an_error(floor_bin):
    up = Upstream(want=4)
    up.close_after = True
    p, port = start_floor(floor_bin, up)
    try:
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(5)
        for i in range(4):
            c.sendto(query(i, f"q{i}"), ("127.0.0.1", port))
        for _ in range(4):
            c.recv(4096)
        assert p.wait(timeout=5) == 1
        assert "upstream closed" in p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_usage_and_bad_address(floor_bin):
    r = subprocess.run([floor_bin], capture_output=True, text=True, timeout=5)
    assert r.returncode == 2 and "usage" in r.stderr
    r = subprocess.run([floor_bin, str(udp_port()), "not-an-address", "53"], capture_output=True, text=True,
                       timeout=5)
    assert r.returncode == 2 and "bad upstream address" in r.stderr
