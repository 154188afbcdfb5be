#!/usr/bin/env python3
"""Writes dproxy's fuzz seed corpus and the differential test's packet set.

Run with the repo's test venv (it has dnspython):
    .tools/venv/bin/python fuzz/gen_corpus.py
Deterministic: the same files every run. Real DNS messages are built with dnspython
(queries as stub resolvers send them, answers as recursive servers return them), so the
seeds start the fuzzer on well-formed packets; fuzz/corpus/<target>/ gets the seeds and
tests/data/packets/ the raw messages for tests/it/differential.rs.
"""
import os
import random
import shutil
import struct
import zlib

import dns.edns
import dns.opcode
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")
PACKETS = os.path.join(ROOT, "tests", "data", "packets")

rng = random.Random(1296)


def reset(d):
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)


def write(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- queries
def queries():
    out = []
    specs = [
        ("example.com", "A", None),
        ("www.example.com", "AAAA", 1232),
        ("WwW.ExAmPlE.CoM", "A", 4096),
        (".", "NS", 1232),
        ("example.org", "MX", None),
        ("_sip._udp.example.net", "SRV", 1232),
        ("1.0.0.127.in-addr.arpa", "PTR", None),
        ("example.com", "ANY", 1232),
        ("example.com", "TXT", 512),
        ("nas.lan", "A", None),
        ("router", "AAAA", 1232),
        ("xn--bcher-kva.example", "A", 1232),
        ("a." * 60 + "test", "A", None),
        ("x" * 63 + "." + "y" * 63 + "." + "z" * 63 + ".test", "A", 1232),
        ("example.com", "DNSKEY", 1232),
        ("example.com", "TYPE65", 1232),
        ("example.com", "HTTPS", 1232),
        ("example.com", "SOA", None),
    ]
    for i, (name, rdtype, edns) in enumerate(specs):
        q = dns.message.make_query(
            name,
            rdtype,
            use_edns=edns is not None,
            payload=edns or 1232,
            want_dnssec=(i % 3 == 0 and edns is not None),
        )
        q.id = rng.randrange(65536)
        if i % 5 == 4:
            q.flags |= dns.flags.CD
        if i % 7 == 6:
            q.flags &= ~dns.flags.RD
        out.append(("q-%s-%s" % (name.strip(".")[:20] or "root", rdtype.lower()), q.to_wire()))
    # EDNS with options: a cookie and padding, as modern stubs send.
    q = dns.message.make_query("cookie.example", "A", use_edns=0, payload=1232,
                               options=[dns.edns.GenericOption(10, bytes(range(8)))])
    q.id = 0x1001
    out.append(("q-cookie", q.to_wire()))
    q = dns.message.make_query("pad.example", "A", use_edns=0, payload=1232, pad=128)
    q.id = 0x1002
    out.append(("q-padding", q.to_wire()))
    # Not queries dproxy answers normally: EDNS version 1, opcode NOTIFY, class CH.
    q = dns.message.make_query("v1.example", "A", use_edns=1)
    q.id = 0x1003
    out.append(("q-edns1", q.to_wire()))
    q = dns.message.make_query("example.com", "SOA")
    q.set_opcode(dns.opcode.NOTIFY)
    q.id = 0x1004
    out.append(("q-notify", q.to_wire()))
    q = dns.message.make_query("version.bind", "TXT", rdclass="CH")
    q.id = 0x1005
    out.append(("q-chaos", q.to_wire()))
    return out


# ---------------------------------------------------------------- answers
def rr(name, ttl, rdtype, *texts, rdclass="IN"):
    return dns.rrset.from_text_list(dns.name.from_text(name), ttl, rdclass, rdtype,
                                    list(texts), origin=dns.name.root, relativize=False)


def answer(qname, qtype, ans=(), auth=(), add=(), rcode=0, edns=1232, flags=0, do=False):
    q = dns.message.make_query(qname, qtype, use_edns=edns is not None,
                               payload=edns or 1232, want_dnssec=do)
    q.id = rng.randrange(65536)
    r = dns.message.make_response(q, recursion_available=True)
    r.set_rcode(rcode)
    r.flags |= flags
    r.answer.extend(ans)
    r.authority.extend(auth)
    r.additional.extend(add)
    # No shuffling of RRsets: the same bytes on every run.
    return r.to_wire(max_size=65535, want_shuffle=False)


SOA = "ns1.example.com. hostmaster.example.com. 2024010101 7200 3600 1209600 300"


def answers():
    out = []
    a = lambda name, *ips, ttl=300: rr(name, ttl, "A", *ips)
    out.append(("a-simple", answer("example.com", "A", [a("example.com", "93.184.215.14")])))
    out.append(("a-multi", answer("www.example.com", "A",
                                  [a("www.example.com", "10.0.0.1", "10.0.0.2", "10.0.0.3")],
                                  edns=None)))
    out.append(("aaaa", answer("v6.example.com", "AAAA",
                               [rr("v6.example.com", 3600, "AAAA", "2001:db8::1", "2001:db8::2")])))
    out.append(("cname-chain", answer("www.shop.example", "A", [
        rr("www.shop.example", 60, "CNAME", "shop.cdn.example"),
        rr("shop.cdn.example", 30, "CNAME", "edge7.cdn.example"),
        a("edge7.cdn.example", "198.51.100.7", ttl=20)])))
    out.append(("cname-out-of-order", answer("a.example", "A", [
        a("c.example", "192.0.2.3"),
        rr("b.example", 60, "CNAME", "c.example"),
        rr("a.example", 60, "CNAME", "b.example")])))
    out.append(("mx", answer("example.org", "MX",
                             [rr("example.org", 3600, "MX", "10 mail.example.org.", "20 mx2.example.net.")],
                             add=[a("mail.example.org", "192.0.2.25")])))
    out.append(("srv", answer("_sip._udp.example.net", "SRV",
                              [rr("_sip._udp.example.net", 600, "SRV", "10 60 5060 sip.example.net.")])))
    out.append(("ptr", answer("1.2.0.192.in-addr.arpa", "PTR",
                              [rr("1.2.0.192.in-addr.arpa", 86400, "PTR", "host.example.")])))
    out.append(("txt", answer("example.com", "TXT",
                              [rr("example.com", 300, "TXT", '"v=spf1 -all"', '"hello" "world"')])))
    out.append(("ns-glue", answer("example.com", "NS",
                                  [rr("example.com", 172800, "NS", "a.iana-servers.net.", "b.iana-servers.net.")],
                                  add=[a("a.iana-servers.net", "199.43.135.53"),
                                       rr("a.iana-servers.net", 300, "AAAA", "2001:500:8f::53")])))
    out.append(("nxdomain", answer("nope.example.com", "A", [],
                                   auth=[rr("example.com", 3600, "SOA", SOA)], rcode=dns.rcode.NXDOMAIN)))
    out.append(("nodata", answer("example.com", "AAAA", [],
                                 auth=[rr("example.com", 900, "SOA", SOA)])))
    out.append(("servfail", answer("broken.example", "A", [], rcode=dns.rcode.SERVFAIL)))
    out.append(("refused", answer("example.com", "A", [], rcode=dns.rcode.REFUSED, edns=None)))
    out.append(("tc", answer("big.example", "TXT", [], flags=dns.flags.TC, edns=None)))
    big = [rr("big.example", 300, "TXT", *['"%s"' % ("x" * 200 + str(i)) for i in range(12)])]
    out.append(("large-txt", answer("big.example", "TXT", big, edns=4096)))
    many = [a("many.example", *["10.1.%d.%d" % (i // 250, i % 250) for i in range(80)])]
    out.append(("many-a", answer("many.example", "A", many)))
    out.append(("dnssec", answer("example.com", "A", [
        a("example.com", "93.184.215.14"),
        rr("example.com", 300, "RRSIG",
           "A 13 2 300 20260101000000 20251201000000 12345 example.com. "
           "dGVzdHNpZ25hdHVyZXRlc3RzaWduYXR1cmV0ZXN0c2lnbmF0dXJldGVzdHNpZ25hdHVyZQ==")],
        do=True, flags=dns.flags.AD)))
    out.append(("https", answer("example.com", "HTTPS",
                                [rr("example.com", 300, "HTTPS", '1 . alpn="h2,h3" ipv4hint=192.0.2.1')])))
    out.append(("caa-unknown", answer("example.com", "CAA",
                                      [rr("example.com", 300, "CAA", '0 issue "letsencrypt.org"'),
                                       rr("example.com", 300, "TYPE65280", r"\# 4 deadbeef")])))
    out.append(("root-ns", answer(".", "NS", [rr(".", 518400, "NS", *["%s.root-servers.net." % c for c in "abc"])])))
    out.append(("ttl-edges", answer("ttl.example", "A", [
        a("ttl.example", "192.0.2.1", ttl=0),
        a("ttl.example", "192.0.2.2", ttl=2147483647)])))
    out.append(("private-rebind", answer("evil.example", "A", [a("evil.example", "192.168.1.1", "127.0.0.1")])))
    out.append(("out-of-chain", answer("www.victim.example", "A",
                                       [a("www.victim.example", "192.0.2.80"), a("www.bank.example", "203.0.113.66")],
                                       auth=[rr("bank.example", 86400, "NS", "ns.attacker.example.")],
                                       add=[a("ns.attacker.example", "203.0.113.53")])))
    out.append(("chaos", answer("version.bind", "TXT", [rr("version.bind", 0, "TXT", '"9.18"', rdclass="CH")])))
    return out


# ---------------------------------------------------------------- persist files
def crc(b):
    return zlib.crc32(b) & 0xFFFFFFFF


def key(name_wire, qtype, flags=0):
    return bytes([flags]) + struct.pack(">HH", qtype, 1) + name_wire.lower()


def persist_file(entries, written_at=1_800_000_000):
    body = b"DPROXYC\0" + struct.pack(">HHQI", 1, 0, written_at, len(entries))
    for expires_at, lifetime, flags, k, msg, ttls in entries:
        body += struct.pack(">QIBBHHH", expires_at, lifetime, flags, 0, len(k), len(msg), len(ttls))
        body += k + msg + b"".join(struct.pack(">H", t) for t in ttls)
    return body + struct.pack(">I", crc(body))


def ttl_offsets(wire):
    """TTL offsets of every record, walked with dnspython's own parser for the counts."""
    m = dns.message.from_wire(wire)
    pos = 12
    def skip_name(p):
        while True:
            l = wire[p]
            if l == 0:
                return p + 1
            if l & 0xC0 == 0xC0:
                return p + 2
            p += 1 + l
    for _ in range(len(m.question)):
        pos = skip_name(pos) + 4
    offs = []
    d = os.path.join(CORPUS, "local_names")
    for name, (mode, text) in LOCAL.items():
        write(d, name, bytes([mode]) + text.encode())

    total = sum(len(rs) for rs in m.answer + m.authority)
    for _ in range(total):
        pos = skip_name(pos)
        offs.append(pos + 4)
        rdlen = struct.unpack(">H", wire[pos + 8:pos + 10])[0]
        pos += 10 + rdlen
    return offs


def persist():
    out = [("empty", persist_file([]))]
    entries = []
    for name, wire in answers()[:6]:
        m = dns.message.from_wire(wire)
        # Stored form: no OPT record.
        m.use_edns(False)
        w = m.to_wire(want_shuffle=False)
        q = m.question[0]
        entries.append((1_800_000_300, 300, 0, key(q.name.to_wire(), q.rdtype), w, ttl_offsets(w)))
    out.append(("six", persist_file(entries)))
    out.append(("stale", persist_file(entries[:2], written_at=1_700_000_000)))
    out.append(("negative", persist_file([(1_800_000_060, 60, 1) + entries[0][3:]])))
    return out


# ---------------------------------------------------------------- config files
CONFIGS = {
    "dev": open(os.path.join(ROOT, "conf", "dev.conf")).read(),
    "full": """config dproxy 'main'
\tlist listen '127.0.0.1'
\tlist listen '[::1]:5353'
\toption port '1296'
\tlist server '9.9.9.9'
\tlist server '2620:fe::fe#53'
\toption cache_size '2048'
\toption min_ttl '0'
\toption max_ttl '86400'
\toption neg_ttl '3600'
\toption log_level 'debug'
\toption trust_ad 'no'
\tlist hosts '/etc/hosts'
\tlist leasefile '/tmp/dhcp.leases'
\toption domain 'lan'
\toption domain_needed 'on'
\toption bogus_priv 'true'
\toption local_ttl '60'
\toption control_socket '/var/run/dproxy.sock'
\toption stale_max '86400'
\tlist stale_exclude 'bank.example'
\toption offline_policy 'hold'
\toption hold_timeout '10'
\toption stale_timeout '1800'
\toption prefetch '1'
\toption persist_file '/tmp/dproxy.cache'
\toption persist_interval '600'
\toption local_service '1'
\tlist allow '192.168.1.0/24'
\tlist deny '10.0.0.0/8'
\toption refuse_action 'refused'
\toption rebind_protection '1'
\tlist rebind_domain 'plex.direct'
\toption rebind_localhost '0'
\toption case_randomization '1'
\toption rate_limit '100'
\toption rate_burst '200'
\toption memory_limit '8192'
\toption user 'dproxy'
\toption enabled '1'
\toption dnsmasq_integration 'forward'
\tlist wan_interface 'wan'
""",
    "bad-values": """config dproxy 'main'
\toption port '99999'
\toption cache_size '-1'
\tlist server 'not-an-address'
\toption offline_policy 'maybe'
\tlist allow '300.1.1.1/33'
\toption bogus_option 'x'
""",
    "two-sections": """config dproxy 'main'
\toption port '53'

config dproxy 'other'
\toption port '54'

config dnsmasq
\toption domain 'lan'
""",
    "quoting": """# comment
config dproxy main
\toption domain "home.arpa"
\tlist server "1.1.1.1"  # trailing comment
\toption log_level warn
""",
    "option-first": "\toption port '53'\nconfig dproxy 'main'\n",
    "empty": "",
}


# ---------------------------------------------------------------- local names
# First byte: bit 0 = lease file (else hosts file), bit 1 = domain "lan", bit 2 = real clock.
LOCAL = {
    "hosts": (0x02, """# /etc/hosts
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
192.168.1.1 router router.lan gw
192.168.1.10 nas.lan nas # the NAS
fe80::1%eth0 linklocal
2001:db8::10 nas
10.0.0.300 broken
192.168.1.20 UPPER.Case.Name
"""),
    "dnsmasq-leases": (0x07, """1800003600 aa:bb:cc:dd:ee:ff 192.168.1.100 laptop 01:aa:bb:cc:dd:ee:ff
1800007200 11:22:33:44:55:66 192.168.1.101 * *
0 22:33:44:55:66:77 192.168.1.102 phone.corp.example *
duid 00:01:00:01:2c:3e:5f:6a:aa:bb:cc:dd:ee:ff
1800003600 1234 2001:db8::100 laptop 00:01:00:01:2c:3e
"""),
    "isc-leases": (0x05, """# The format of this file is documented in the dhcpd.leases(5) manual page.
authoring-byte-order little-endian;
lease 192.168.1.150 {
  starts 4 2027/01/14 08:00:00;
  ends 4 2027/01/14 20:00:00;
  binding state active;
  hardware ethernet 00:11:22:33:44:55;
  client-hostname "printer";
}
lease 192.168.1.151 {
  starts 4 2020/01/14 08:00:00;
  ends never;
  client-hostname "old-box";
}
"""),
    "odhcpd-hosts": (0x01, """# odhcpd hostsfile
192.168.1.60 tv.lan tv
fd00::60 tv.lan tv
"""),
    "odhcpd-state": (0x05, """# br-lan 000100012c3e5f6a 1 tv 1800003600 4 128 fd00::61/128
"""),
}


# ---------------------------------------------------------------- main
def h2_frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def h2_feed(b):
    """doh_h2's operation 2 for each piece of at most 256 bytes of B."""
    out = b""
    for i in range(0, len(b), 256):
        piece = b[i:i + 256]
        out += bytes([2, len(piece) - 1]) + piece
    return out


def doh_seeds(ans):
    """doh_h2: scripts of operations (see fuzz_targets/doh_h2.rs); doh_http1: responses."""
    for t in ["doh_h2", "doh_http1"]:
        reset(os.path.join(CORPUS, t))
    body = ans[0][1]
    # HPACK: ":status: 200" is static entry 8; content-type (static name 31) as a literal.
    ctype = b"application/dns-message"
    block = b"\x88" + bytes([0x5f, len(ctype)]) + ctype
    settings = h2_frame(4, 0, 0, struct.pack(">HI", 3, 100) + struct.pack(">HI", 4, 65535))
    answer1 = h2_frame(1, 0x4, 1, block) + h2_frame(0, 0x1, 1, body)
    answer3 = h2_frame(1, 0x5, 3, b"\x8d")  # ":status: 404", END_STREAM
    reset3 = h2_frame(3, 0, 3, struct.pack(">I", 8))
    goaway = h2_frame(7, 0, 0, struct.pack(">II", 1, 0))
    ping = h2_frame(6, 0, 0, b"12345678")
    window = h2_frame(8, 0, 0, struct.pack(">I", 1000))
    d = os.path.join(CORPUS, "doh_h2")
    write(d, "answer", b"\x00" + h2_feed(settings + answer1) + b"\x03")
    write(d, "two-streams", b"\x00\x00" + h2_feed(settings + answer1 + answer3) + b"\x03")
    write(d, "split", b"\x00" + h2_feed(settings) + bytes([2, 4]) + answer1[:5] + h2_feed(answer1[5:]))
    write(d, "reset-and-goaway", b"\x00\x00" + h2_feed(settings + ping + window + reset3 + goaway))
    write(d, "cancel", b"\x00\x00\x01\x01" + h2_feed(settings + answer1 + answer3))
    d = os.path.join(CORPUS, "doh_http1")
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/dns-message\r\n"
    write(d, "length", head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    write(d, "chunked", head + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
    write(d, "continue-then-close", b"HTTP/1.1 100 Continue\r\n\r\n" + head
          + b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    write(d, "pipelined", (head + b"Content-Length: %d\r\n\r\n" % len(body) + body) * 2)
    write(d, "status-503", b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")


def main():
    qs = queries()
    ans = answers()
    reset(PACKETS)
    for name, w in qs + [("r-" + n, w) for n, w in ans]:
        write(PACKETS, name + ".bin", w)

    for t in ["wire_query", "wire_answer", "cache_ops", "config_load", "persist_decode", "tcp_frame", "local_names"]:
        reset(os.path.join(CORPUS, t))

    d = os.path.join(CORPUS, "wire_query")
    for name, w in qs:
        write(d, name, w)

    # wire_answer: 8 knob bytes, then the answer (see fuzz_targets/wire_answer.rs).
    d = os.path.join(CORPUS, "wire_answer")
    knobs = [bytes([0x01, 0, 0, 0x12, 0x34, 0, 0, 0]),          # UDP, no EDNS: 512 limit
             bytes([0x07, 0x04, 0xd0, 0xab, 0xcd, 10, 0, 0x55]),  # UDP, EDNS 1232, DO, 0x20
             bytes([0x02, 0x10, 0x00, 0, 1, 3, 2, 0xff]),         # TCP, EDNS 4096
             bytes([0xf1, 0, 0, 7, 7, 1, 5, 0x0f])]               # UDP, TTL policy, stale TTL
    for i, (name, w) in enumerate(ans):
        write(d, name, knobs[i % len(knobs)] + w)

    # cache_ops: budget then op/selector bytes; op 6 carries an answer (len u16 + bytes).
    d = os.path.join(CORPUS, "cache_ops")
    for i in range(8):
        ops = bytes(rng.randrange(256) for _ in range(rng.randrange(20, 120)))
        write(d, "random-%d" % i, struct.pack(">H", rng.choice([40, 200, 4000, 65535])) + ops)
    for i, (name, w) in enumerate(ans[:10]):
        ops = bytes([0x06, i]) + struct.pack(">H", len(w)) + w + bytes([0x01, 0x01, 0x12, 0x40, 0, 0x10, 0x05, 0x3c])
        write(d, "answer-" + name, struct.pack(">H", 2000) + ops)

    d = os.path.join(CORPUS, "config_load")
    for name, text in CONFIGS.items():
        write(d, name, text.encode())

    # persist_decode: one mode byte (bit 0: patch header and CRC), then the file.
    d = os.path.join(CORPUS, "persist_decode")
    for name, f in persist():
        write(d, name, b"\x00" + f)
        write(d, name + "-patched", b"\x01" + f[:-4])

    d = os.path.join(CORPUS, "tcp_frame")
    frames = [w for _, w in qs[:6]]
    write(d, "one", struct.pack(">H", len(frames[0])) + frames[0])
    write(d, "pipelined", b"".join(struct.pack(">H", len(f)) + f for f in frames))
    write(d, "partial", struct.pack(">H", len(frames[1])) + frames[1][:5])
    write(d, "empty-frame", b"\x00\x00\x00\x00" + struct.pack(">H", len(frames[2])) + frames[2])
    write(d, "huge-prefix", b"\xff\xff" + frames[3])

    d = os.path.join(CORPUS, "local_names")
    for name, (mode, text) in LOCAL.items():
        write(d, name, bytes([mode]) + text.encode())

    doh_seeds(ans)

    total = sum(len(files) for _, _, files in os.walk(CORPUS))
    print("corpus: %d files; packets: %d files" % (total, len(os.listdir(PACKETS))))


if __name__ == "__main__":
    main()
