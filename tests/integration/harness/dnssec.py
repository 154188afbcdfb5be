"""DNSSEC end to end: zones signed at test time (ldns-keygen, ldns-signzone from
ldnsutils) and a validating unbound on loopback that forwards them to a given server.

  sign_zone(dir, origin, text, nsec3) -> (signed zone text, trust anchor DNSKEY line)
  Validator(dir, forward_to, anchors, zones).start()  -> unbound in the foreground;
      .query(name, type) asks it with DO=1 and returns the parsed answer.

unbound is kept away from everything but the test zones: the root is refused locally
(local-zone "." refuse) and only the test zones are forwarded, so a test never sends a
packet off this machine.
"""
import glob
import os
import subprocess
import time

import dns.message

from .dnsutil import make_query, udp_exchange
from .ports import free_port, started_on
from .procs import terminate

UNBOUND = os.environ.get("UNBOUND_BIN", "/usr/sbin/unbound")
LDNS_KEYGEN = "ldns-keygen"
LDNS_SIGNZONE = "ldns-signzone"

# Every case the validator must see as secure, in each of the two signed zones.
ZONE_TEMPLATE = """$ORIGIN {origin}.
$TTL 300
@        IN SOA ns1 hostmaster 1 3600 900 604800 60
@        IN NS  ns1
ns1      IN A   192.0.2.53
www      IN A   192.0.2.10
www      IN AAAA 2001:db8::10
txtonly  IN TXT "no address here"
*.wild   IN A   192.0.2.77
c1       IN CNAME c2
c2       IN CNAME www
cnx      IN CNAME missing
dn       IN DNAME target.{origin}.
h1.target IN A  192.0.2.88
; Delegations: a signed child (DS in this zone) and an unsigned one (proof of no DS).
signed   IN NS  ns.signed
signed   IN DS  4242 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
ns.signed IN A  192.0.2.54
unsigned IN NS  ns.unsigned
ns.unsigned IN A 192.0.2.55
"""


def run(cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s%s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
    return r.stdout


def sign_zone(workdir, origin, text, nsec3=False):
    """Signs `text` (zone `origin`) with a fresh ECDSA P-256 KSK and ZSK. Returns the
    signed zone text and the KSK's DNSKEY record (the trust anchor)."""
    d = os.path.join(str(workdir), "keys-" + origin)
    os.makedirs(d, exist_ok=True)
    zone = os.path.join(d, origin + ".zone")
    with open(zone, "w") as f:
        f.write(text)
    while True:
        ksk = run([LDNS_KEYGEN, "-a", "ECDSAP256SHA256", "-k", origin], d).strip()
        zsk = run([LDNS_KEYGEN, "-a", "ECDSAP256SHA256", origin], d).strip()
        # Same tag: ldns-keygen wrote the ZSK over the KSK's files. Both again.
        if zsk != ksk:
            break
    # Valid from an hour ago: a validator with a clock a little behind still accepts it.
    inception = time.strftime("%Y%m%d%H%M%S", time.gmtime(time.time() - 3600))
    cmd = [LDNS_SIGNZONE, "-i", inception, "-f", zone + ".signed"]
    if nsec3:
        # RFC 9276: no extra iterations, no salt (validators treat many iterations as insecure).
        cmd += ["-n", "-t", "0"]
    run(cmd + [zone, ksk, zsk], d)
    with open(zone + ".signed") as f:
        signed = f.read()
    with open(os.path.join(d, ksk + ".key")) as f:
        anchor = f.read().split(";")[0].strip()
    for p in glob.glob(os.path.join(d, "*.private")):
        os.chmod(p, 0o600)
    return signed, anchor


UNBOUND_CONF = """server:
    interface: 127.0.0.1
    port: {port}
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    username: ""
    chroot: ""
    directory: "{dir}"
    pidfile: "{dir}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    val-log-level: 2
    log-servfail: yes
    num-threads: 1
    so-reuseport: no
    module-config: "validator iterator"
    trust-anchor-file: "{dir}/anchors"
    do-not-query-localhost: no
    aggressive-nsec: no
    qname-minimisation: no
    prefetch: no
    prefetch-key: no
    access-control: 127.0.0.0/8 allow
    local-zone: "." refuse
    local-zone: "test." nodefault
"""


class Validator:
    """A validating unbound that forwards `zones` to `forward_to` ("host:port")."""

    def __init__(self, workdir, forward_to, anchors, zones):
        self.dir = str(workdir)
        self.forward_to = forward_to
        self.anchors = anchors
        self.zones = zones
        self.host = "127.0.0.1"
        self.port = None
        self.proc = None

    def log_text(self):
        try:
            with open(os.path.join(self.dir, "unbound.stderr")) as f:
                return f.read()
        except OSError:
            return ""

    def start(self, timeout=10.0):
        os.makedirs(self.dir, exist_ok=True)
        with open(os.path.join(self.dir, "anchors"), "w") as f:
            f.write("\n".join(self.anchors) + "\n")
        host, port = self.forward_to.rsplit(":", 1)
        local = "".join('    local-zone: "%s." transparent\n' % z for z in self.zones)
        # forward-zone clauses end the server clause: they go after it.
        forward = "".join('forward-zone:\n    name: "%s."\n    forward-addr: %s@%s\n'
                          % (z, host, port) for z in self.zones)
        last = ""
        for _ in range(3):
            self.port = free_port(self.host)
            conf = os.path.join(self.dir, "unbound.conf")
            with open(conf, "w") as f:
                f.write(UNBOUND_CONF.format(port=self.port, dir=self.dir) + local + forward
                        + "remote-control:\n    control-enable: no\n")
            chk = subprocess.run([UNBOUND + "-checkconf", conf], capture_output=True, text=True,
                                 timeout=10)
            if chk.returncode != 0:
                raise RuntimeError("unbound-checkconf rejected %s: %s%s" % (conf, chk.stdout,
                                                                            chk.stderr))
            self.err = open(os.path.join(self.dir, "unbound.stderr"), "w+")
            self.proc = subprocess.Popen([UNBOUND, "-d", "-c", conf], stdin=subprocess.DEVNULL,
                                         stdout=self.err, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                # Answered by unbound itself (hide-identity is off): no forwarding.
                wire = udp_exchange(self.host, self.port,
                                    make_query("id.server.", "TXT", rdclass="CH").to_wire(), 0.2)
                if wire is not None and started_on(self.proc, self.port):
                    return self
            self.stop()
            last = self.log_text()
        raise RuntimeError("unbound did not start on %s:%s: %s" % (self.host, self.port, last))

    def query(self, name, rdtype="A", timeout=10.0):
        q = make_query(name, rdtype, edns=1232, do=True)
        wire = udp_exchange(self.host, self.port, q.to_wire(), timeout)
        assert wire is not None, "no answer from unbound for %s %s; its log:\n%s" % (
            name, rdtype, self.log_text()[-3000:])
        return dns.message.from_wire(wire)

    def stop(self):
        if self.proc is None:
            return
        terminate(self.proc)
        self.proc = None
