"""A bounded UDP query flood, run as a separate process so that it does not
share the test's GIL:

  python flood.py HOST PORT SRC RATE SECONDS NAME [unique]

Sends up to RATE queries per second for SECONDS (NAME A, or with `unique`
u<N>.NAME TXT), reads whatever replies come back, and prints one JSON line
{"sent": N, "received": M, "seconds": S}.  Everything is capped in count and
time; the traffic goes only to HOST (loopback in the tests)."""
import json
import random
import socket
import struct
import sys
import time


def qwire(qid, name, qtype):
    out = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00" + struct.pack("!HH", qtype, 1)


def main():
    host, port, src = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rate, seconds, name = int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
    unique = len(sys.argv) > 7 and sys.argv[7] == "unique"
    seconds = min(seconds, 5.0)               # hard cap
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((src, 0))
    s.connect((host, port))
    s.setblocking(False)
    fixed = None if unique else qwire(0x4242, name, 1)
    sent = received = 0
    rng = random.Random(1)
    t0 = time.monotonic()
    batch = 100
    while True:
        now = time.monotonic() - t0
        if now >= seconds:
            break
        allowed = int(rate * now) + batch
        if sent < allowed:
            for _ in range(batch):
                wire = fixed if fixed else qwire(rng.randrange(65536), "u%d.%s" % (sent, name), 16)
                try:
                    s.send(wire)
                    sent += 1
                except (BlockingIOError, ConnectionRefusedError):
                    break
        else:
            time.sleep(0.0005)
        while True:
            try:
                s.recv(65535)
                received += 1
            except (BlockingIOError, ConnectionRefusedError):
                break
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        try:
            s.recv(65535)
            received += 1
        except (BlockingIOError, ConnectionRefusedError):
            time.sleep(0.01)
    print(json.dumps({"sent": sent, "received": received, "seconds": time.monotonic() - t0}))


if __name__ == "__main__":
    main()
