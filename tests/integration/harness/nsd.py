"""A real authoritative server (nsd) serving a test zone on 127.0.0.1."""
import os
import subprocess
import time

import dns.message

from .dnsutil import make_query, udp_exchange
from .ports import free_port, started_on
from .procs import terminate

NSD = os.environ.get("NSD_BIN", "/usr/sbin/nsd")

# TXT RRset of about 800 bytes: bigger than 512, fits into 1232.
BIG_TXT = ['"%s"' % (chr(ord("a") + i) * 180) for i in range(4)]
# TXT RRset of about 2000 bytes: bigger than 1232, needs TCP end to end.
HUGE_TXT = ['"%s"' % (chr(ord("k") + i) * 250) for i in range(8)]

ZONE = """$ORIGIN example.test.
$TTL 300
@       300 IN SOA ns1.example.test. hostmaster.example.test. 2024010101 3600 900 604800 60
@       300 IN NS  ns1
@       300 IN MX  10 mail
@       300 IN MX  20 mail2
ns1     300 IN A   192.0.2.53
mail    300 IN A   192.0.2.25
mail2   300 IN A   192.0.2.26
www     300 IN A   192.0.2.10
www     300 IN AAAA 2001:db8::10
multi   300 IN A   192.0.2.21
multi   300 IN A   192.0.2.22
multi   300 IN A   192.0.2.23
c1      300 IN CNAME c2
c2      300 IN CNAME c3
c3      300 IN CNAME www
txt     300 IN TXT "hello world"
bigtxt  300 IN TXT %s
hugetxt 300 IN TXT %s
_sip._tcp 300 IN SRV 10 60 5060 sip
sip     300 IN A   192.0.2.50
""" % ("\nbigtxt  300 IN TXT ".join(BIG_TXT), "\nhugetxt 300 IN TXT ".join(HUGE_TXT))

REVERSE = """$ORIGIN 2.0.192.in-addr.arpa.
$TTL 300
@  300 IN SOA ns1.example.test. hostmaster.example.test. 2024010101 3600 900 604800 60
@  300 IN NS  ns1.example.test.
10 300 IN PTR www.example.test.
25 300 IN PTR mail.example.test.
"""

CONF = """server:
    ip-address: 127.0.0.1@{port}
    port: {port}
    do-ip4: yes
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "{dir}"
    pidfile: "{dir}/nsd.pid"
    database: ""
    zonelistfile: "{dir}/zone.list"
    xfrdfile: "{dir}/xfrd.state"
    xfrdir: "{dir}"
    logfile: "{dir}/nsd.log"
    verbosity: 1
    server-count: 1
    hide-version: yes
    reuseport: no
    rrl-ratelimit: 0
    refuse-any: no
remote-control:
    control-enable: no
"""

ZONE_CONF = """zone:
    name: "{name}"
    zonefile: "{file}"
"""


class NsdServer:
    """zones: [(name, zone file text)]; by default example.test and its reverse zone."""

    def __init__(self, workdir, zones=None):
        self.dir = str(workdir)
        self.host = "127.0.0.1"
        self.port = None
        self.proc = None
        self.zones = zones or [("example.test", ZONE), ("2.0.192.in-addr.arpa", REVERSE)]

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def log_text(self):
        try:
            with open(os.path.join(self.dir, "nsd.log")) as f:
                return f.read()
        except OSError:
            return ""

    def start(self, timeout=10.0):
        os.makedirs(self.dir, exist_ok=True)
        zone_conf = ""
        for name, text in self.zones:
            path = os.path.join(self.dir, name + ".zone")
            with open(path, "w") as f:
                f.write(text)
            zone_conf += ZONE_CONF.format(name=name, file=path)
        probe = self.zones[0][0] + "."
        last = ""
        for _ in range(3):
            self.port = free_port("127.0.0.1")
            conf = os.path.join(self.dir, "nsd.conf")
            with open(conf, "w") as f:
                f.write(CONF.format(port=self.port, dir=self.dir) + zone_conf)
            chk = subprocess.run([NSD + "-checkconf", conf], capture_output=True, text=True, timeout=10)
            if chk.returncode != 0:
                raise RuntimeError("nsd-checkconf rejected %s: %s%s" % (conf, chk.stdout, chk.stderr))
            self.errfile = open(os.path.join(self.dir, "nsd.stderr"), "w+")
            self.proc = subprocess.Popen([NSD, "-d", "-c", conf], stdin=subprocess.DEVNULL,
                                         stdout=self.errfile, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                wire = udp_exchange(self.host, self.port, make_query(probe, "SOA").to_wire(), 0.2)
                if wire is not None and dns.message.from_wire(wire).answer \
                        and started_on(self.proc, self.port):
                    return self
            self.stop()
            self.errfile.seek(0)
            last = self.errfile.read() + self.log_text()
        raise RuntimeError("nsd did not start answering on %s: %s" % (self.addr, last))

    def stop(self):
        if self.proc is None:
            return
        terminate(self.proc)
        self.proc = None
