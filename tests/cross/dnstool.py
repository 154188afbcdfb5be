#!/usr/bin/env python3
"""Minimal DNS client and counting upstream for the cross and Buildroot tests.

Standard library only (raw UDP sockets), so the tests need nothing beyond
python3. As a script:

  dnstool.py query PORT NAME [--server ADDR] [--timeout S]
      prints one line per A record and exits 0 if the answer is NOERROR with
      at least one A record, 1 otherwise.
  dnstool.py upstream --state DIR [--answer ADDR] [--ttl N]
      serves A queries on 127.0.0.1 (a free port) with one fixed A record,
      writes DIR/port once listening, and after every query appends its name
      (lower-cased) to DIR/queries and rewrites DIR/count.
"""
import argparse
import os
import random
import socket
import struct
import sys
import time

TYPE_A = 1
CLASS_IN = 1


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\x00"


def build_query(name, qtype=TYPE_A, qid=None):
    qid = random.randrange(65536) if qid is None else qid
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)  # RD=1
    return qid, header + encode_name(name) + struct.pack("!HH", qtype, CLASS_IN)


def skip_name(msg, off):
    while True:
        n = msg[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            return off + 2
        off += 1 + n


def read_name(msg, off):
    labels = []
    jumps = 0
    while True:
        n = msg[off]
        if n == 0:
            return ".".join(labels)
        if n & 0xC0 == 0xC0:
            off = ((n & 0x3F) << 8) | msg[off + 1]
            jumps += 1
            if jumps > 20:
                raise ValueError("compression loop")
            continue
        labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n


def parse_response(msg):
    """Returns (id, flags, rcode, question name, [(type, ttl, rdata-as-text)])."""
    qid, flags, qd, an, _ns, _ar = struct.unpack("!HHHHHH", msg[:12])
    off = 12
    qname = ""
    for _ in range(qd):
        qname = read_name(msg, off)
        off = skip_name(msg, off) + 4
    answers = []
    for _ in range(an):
        off = skip_name(msg, off)
        rtype, _rclass, ttl, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        rdata = msg[off:off + rdlen]
        off += rdlen
        text = socket.inet_ntoa(rdata) if rtype == TYPE_A and rdlen == 4 else rdata.hex()
        answers.append((rtype, ttl, text))
    return qid, flags, flags & 0x000F, qname, answers


def query(port, name, server="127.0.0.1", timeout=2.0, qtype=TYPE_A):
    """One UDP query; returns (rcode, answers) or raises socket.timeout."""
    qid, packet = build_query(name, qtype)
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet, (server, port))
        deadline = time.monotonic() + timeout
        while True:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            data, _ = s.recvfrom(4096)
            rid, flags, rcode, _qname, answers = parse_response(data)
            if rid == qid and flags & 0x8000:
                return rcode, answers


def free_port():
    """A port of 127.0.0.1 free for UDP and for TCP at this moment: the daemon and
    unbound bind both. A port only free for UDP may be a TCP connection's local port
    (the two draw from the same ephemeral range), and any free port may still be
    taken before the server binds it, by the other tests that run beside these:
    callers start again on another port when the bind fails (port_in_use)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise OSError("no port of 127.0.0.1 free for both UDP and TCP in 100 tries")


# How many times a server that lost its port to another process is started again.
PORT_TRIES = 5


def port_in_use(text):
    """Whether a server's output says its bind failed on a port in use: "Address
    already in use" (glibc: unbound, the host build), "Address in use" (musl: the
    router builds under qemu)."""
    return "ddress already in use" in text or "ddress in use" in text


def serve_upstream(state, answer, ttl):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    count = 0

    def write(name, value):
        tmp = os.path.join(state, name + ".tmp")
        with open(tmp, "w") as f:
            f.write("%s\n" % value)
        os.replace(tmp, os.path.join(state, name))

    open(os.path.join(state, "queries"), "w").close()
    write("count", 0)
    write("port", sock.getsockname()[1])
    addr = socket.inet_aton(answer)
    while True:
        data, peer = sock.recvfrom(4096)
        if len(data) < 12:
            continue
        qid, flags, qd = struct.unpack("!HHH", data[:6])
        if flags & 0x8000 or qd != 1:
            continue
        qend = skip_name(data, 12) + 4
        qtype, _qclass = struct.unpack("!HH", data[qend - 4:qend])
        question = data[12:qend]
        count += 1
        with open(os.path.join(state, "queries"), "a") as f:
            f.write(read_name(data, 12).lower() + "\n")
        write("count", count)
        # QR, opcode 0, AA, RD copied, RA; NOERROR. Any EDNS OPT is dropped.
        rflags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080
        if qtype == TYPE_A:
            header = struct.pack("!HHHHHH", qid, rflags, 1, 1, 0, 0)
            rr = b"\xc0\x0c" + struct.pack("!HHIH", TYPE_A, CLASS_IN, ttl, 4) + addr
            sock.sendto(header + question + rr, peer)
        else:  # NODATA for anything else
            header = struct.pack("!HHHHHH", qid, rflags, 1, 0, 0, 0)
            sock.sendto(header + question, peer)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("query")
    q.add_argument("port", type=int)
    q.add_argument("name")
    q.add_argument("--server", default="127.0.0.1")
    q.add_argument("--timeout", type=float, default=2.0)
    u = sub.add_parser("upstream")
    u.add_argument("--state", required=True)
    u.add_argument("--answer", default="198.51.100.7")
    u.add_argument("--ttl", type=int, default=300)
    args = ap.parse_args(argv)
    if args.cmd == "upstream":
        serve_upstream(args.state, args.answer, args.ttl)
        return 0
    try:
        rcode, answers = query(args.port, args.name, args.server, args.timeout)
    except (socket.timeout, OSError) as e:
        print("no answer: %s" % e, file=sys.stderr)
        return 1
    a = [text for rtype, _ttl, text in answers if rtype == TYPE_A]
    for text in a:
        print(text)
    return 0 if rcode == 0 and a else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
