"""Helpers for the local-names, link-loss and security tests: Extended DNS
Errors, file writing as the daemon sees it, the persist file format, polling,
and a fast raw-bytes upstream for floods."""
import os
import socket
import struct
import threading
import time
import zlib

import dns.edns


# ------------------------------------------------------------------ EDNS
def ede_codes(msg):
    """Extended DNS Error codes (RFC 8914) in a response, as ints."""
    if msg is None or msg.edns < 0:
        return []
    return [int(o.code) for o in msg.options if o.otype == dns.edns.OptionType.EDE]


# ------------------------------------------------------------------ files
def write_file(path, data, mode=0o644):
    """Write in place (truncate + write), readable by the daemon after it dropped root."""
    if isinstance(data, str):
        data = data.encode()
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def replace_file(path, data, mode=0o644):
    """Rename-into-place write (a new inode), as dnsmasq and odhcpd do."""
    if isinstance(data, str):
        data = data.encode()
    tmp = os.path.join(os.path.dirname(path), ".%s.new" % os.path.basename(path))
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def wait_until(fn, timeout=5.0, interval=0.05):
    """Poll fn() until it returns something true or timeout; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# ------------------------------------------------------------------ persist file
PERSIST_MAGIC = b"DPROXYC\0"
_HDR = 8 + 2 + 2 + 8 + 4
_EHDR = 8 + 4 + 1 + 1 + 2 + 2 + 2


def persist_parse(data):
    """(version, written_at, [entry dicts]) of a persist file (see src/persist.rs).
    Entries: expires_at, lifetime, flags, key, msg, ttls, and their byte offset."""
    assert data[:8] == PERSIST_MAGIC, "not a persist file: %r" % data[:16]
    body, crc = data[:-4], struct.unpack("!I", data[-4:])[0]
    assert zlib.crc32(body) & 0xFFFFFFFF == crc, "persist file CRC mismatch"
    version, _res, written_at, count = struct.unpack("!HHQI", body[8:_HDR])
    entries, p = [], _HDR
    for _ in range(count):
        exp, life, flags, _r, klen, mlen, tcount = struct.unpack("!QIBBHHH", body[p:p + _EHDR])
        k0 = p + _EHDR
        m0 = k0 + klen
        t0 = m0 + mlen
        entries.append({"offset": p, "expires_at": exp, "lifetime": life, "flags": flags,
                        "key": body[k0:m0], "msg": body[m0:t0],
                        "ttls": [struct.unpack("!H", body[t0 + 2 * i:t0 + 2 * i + 2])[0]
                                 for i in range(tcount)]})
        p = t0 + 2 * tcount
    assert p == len(body), "persist file has %d trailing bytes" % (len(body) - p)
    return version, written_at, entries


def persist_shift_time(data, seconds):
    """The same file with written_at and every expires_at moved by `seconds`
    and the CRC32 recomputed (a file 'from the future' for a clock that is behind)."""
    _v, written_at, entries = persist_parse(data)
    body = bytearray(data[:-4])
    body[12:20] = struct.pack("!Q", written_at + seconds)
    for e in entries:
        body[e["offset"]:e["offset"] + 8] = struct.pack("!Q", e["expires_at"] + seconds)
    return bytes(body) + struct.pack("!I", zlib.crc32(bytes(body)) & 0xFFFFFFFF)


def persist_with_crc(body):
    """body + a correct CRC32 trailer."""
    return body + struct.pack("!I", zlib.crc32(body) & 0xFFFFFFFF)


# ------------------------------------------------------------------ fast upstream
def _question_end(wire):
    p = 12
    while p < len(wire):
        ln = wire[p]
        if ln == 0:
            return p + 1 + 4
        if ln & 0xC0:
            return p + 2 + 4
        p += 1 + ln
    return None


class FastUpstream:
    """A UDP-only upstream that answers every query by echoing its question
    (case included) with one TXT record of `txt_len` bytes, TTL `ttl`.  Plain
    byte manipulation, so it keeps up with floods that FakeUpstream cannot."""

    def __init__(self, host="127.0.0.254", txt_len=200, ttl=3600):
        self.host = host
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        chunk = min(txt_len, 255)
        self.rdata = bytes([chunk]) + b"x" * chunk
        self.ttl = ttl
        self.count = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def start(self):
        self._t.start()
        return self

    def stop(self):
        self._stop.set()
        self._t.join(timeout=2)
        self.sock.close()

    def _loop(self):
        rr_tail = struct.pack("!HHIH", 16, 1, self.ttl, len(self.rdata)) + self.rdata
        while not self._stop.is_set():
            try:
                wire, src = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.count += 1
            end = _question_end(wire)
            if end is None or len(wire) < 12:
                continue
            qtype = struct.unpack("!H", wire[end - 4:end - 2])[0]
            hdr = wire[:2] + struct.pack("!HHHHH", 0x8180, 1, 1 if qtype == 16 else 0, 0, 0)
            out = hdr + wire[12:end]
            if qtype == 16:
                out += b"\xc0\x0c" + rr_tail
            try:
                self.sock.sendto(out, src)
            except OSError:
                pass
