#!/usr/bin/env python3
"""Runs a (cross-built) dproxy-full binary against a real DNS-over-TLS server.

  dot_check.py --bin dist/dproxy-full-0.1.0-mips-unknown-linux-musl \
               --runner qemu-mips-static

A test CA and a server certificate for dot.test are made here with openssl;
unbound (Debian's) serves DNS over TLS with them on loopback. The daemon, given
only that encrypted server, must answer a name unbound knows, answer it again
from its cache (unbound's own count of TLS queries does not move),
and end with status 0 on SIGTERM. This is the one check that the
TLS stack (rustls with ring) works on the target's CPU: byte order, word size,
its assembly. Needs openssl and unbound.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dnstool  # noqa: E402
from daemon_check import Check, Failed, print_tail, run_check, wait_for  # noqa: E402

AUTH_NAME = "dot.test"
NAME, ADDR = "a.example.test", "192.0.2.1"
START_TIMEOUT = 30.0
EXIT_TIMEOUT = 5.0


def run(cmd, cwd):
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise Failed("%s: %s" % (" ".join(cmd), out.stderr.strip()))


def make_certs(d):
    """A CA and a P-256 server certificate for dot.test and 127.0.0.1, valid now."""
    ext = os.path.join(d, "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:%s,IP:127.0.0.1\n" % AUTH_NAME)
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=dproxy test CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"],
        d)
    run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=" + AUTH_NAME], d)
    run(["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", ext], d)


def read(path):
    """A file's text, or "" while it does not exist yet."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


class DotCheck(Check):
    def __init__(self, args):
        super().__init__(args, "dproxy-dot-")
        self.unbound = None
        self.unbound_log = os.path.join(self.tmp, "unbound.log")

    def start_unbound(self):
        """unbound serving DoT; its bind error, if any, is on stderr (unbound.err)."""
        err_path = os.path.join(self.tmp, "unbound.err")

        def start(port):
            self.tls_port = port
            conf = os.path.join(self.tmp, "unbound.conf")
            with open(conf, "w") as f:
                f.write("server:\n  interface: 127.0.0.1@%d\n  tls-port: %d\n"
                        "  tls-service-key: %s/server.key\n  tls-service-pem: %s/server.pem\n"
                        "  username: \"\"\n  chroot: \"\"\n  directory: %s\n  pidfile: \"\"\n"
                        "  use-syslog: no\n  logfile: %s\n  verbosity: 1\n  log-queries: yes\n"
                        "  do-daemonize: no\n  num-threads: 1\n  do-ip6: no\n  so-reuseport: no\n"
                        "  access-control: 127.0.0.0/8 allow\n  module-config: \"iterator\"\n"
                        "  local-zone: \"example.test.\" static\n"
                        "  local-data: \"%s. 300 IN A %s\"\n"
                        % (port, port, self.tmp, self.tmp, self.tmp, self.unbound_log, NAME, ADDR))
            with open(err_path, "w") as err:
                self.unbound = subprocess.Popen(["unbound", "-d", "-c", conf],
                                                stdin=subprocess.DEVNULL,
                                                stdout=subprocess.DEVNULL, stderr=err)
            return self.unbound

        def ready(_port):
            # Its own word, not a connect: a process that holds the port would accept
            # one too. unbound logs this once its ports are bound.
            return "start of service" in read(self.unbound_log)

        self.start_on_free_port("unbound", start, ready,
                                lambda: read(err_path) + "\n" + read(self.unbound_log), 10)
        self.step("unbound serves DNS over TLS on 127.0.0.1:%d" % self.tls_port)

    def unbound_queries(self):
        """Queries for NAME in unbound's log (log-queries), all of them over TLS."""
        with open(self.unbound_log, errors="replace") as f:
            return sum(1 for line in f if (NAME + ". A IN") in line)

    def start_daemon(self):
        local_service = ("\toption local_service '0'\n"
                         if os.path.basename(self.args.runner) == "qemu-mips-static" else "")

        def start(port):
            self.port = port
            conf = os.path.join(self.tmp, "dproxy.conf")
            with open(conf, "w") as f:
                f.write("config dproxy 'main'\n\tlist listen '127.0.0.1'\n\toption port '%d'\n"
                        "\tlist server 'tls://127.0.0.1:%d#%s'\n\toption ca_file '%s/ca.pem'\n"
                        "\toption log_level 'debug'\n%s"
                        % (port, self.tls_port, AUTH_NAME, self.tmp, local_service))
            log = open(self.log_path, "w")
            self.daemon = subprocess.Popen(self.cmd + ["-c", conf], stdout=log, stderr=log,
                                           stdin=subprocess.DEVNULL)
            log.close()
            return self.daemon

        # Its listening sockets are bound once it says so.
        self.start_on_free_port(
            "the daemon", start,
            lambda port: "listening on 127.0.0.1:%d " % port in self.daemon_said(),
            self.daemon_said, START_TIMEOUT)

    def expect_answer(self):
        """The first query also waits out the start and the first TLS handshake."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.daemon.poll() is not None:
                raise Failed("daemon exited with status %d" % self.daemon.returncode)
            try:
                rcode, answers = dnstool.query(self.port, NAME, timeout=1.0)
            except OSError:
                continue
            addrs = [text for rtype, _ttl, text in answers if rtype == dnstool.TYPE_A]
            if rcode == 0 and addrs == [ADDR]:
                return
            raise Failed("%s: rcode %d, A records %s, expected [%s]" % (NAME, rcode, addrs, ADDR))
        raise Failed("no answer for %s in %.0f s" % (NAME, START_TIMEOUT))

    def run(self):
        make_certs(self.tmp)
        self.start_unbound()
        self.start_daemon()
        self.expect_answer()
        n = wait_for(self.unbound_queries, 5, "unbound to log the query")
        self.step("%s -> %s through DNS over TLS (%d query at unbound)" % (NAME, ADDR, n))
        self.expect_answer()
        if self.unbound_queries() != n:
            raise Failed("the second query reached unbound: not answered from the cache")
        self.step("second answer from the cache")
        self.daemon.send_signal(signal.SIGTERM)
        try:
            status = self.daemon.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise Failed("daemon still running %.0f s after SIGTERM" % EXIT_TIMEOUT)
        if status != 0:
            raise Failed("daemon exited with status %d after SIGTERM" % status)
        self.step("SIGTERM: exit 0")

    def cleanup(self, failed):
        for proc in (self.daemon, self.unbound):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        if failed:
            print_tail("daemon", self.log_path, 30)
            print_tail("unbound", self.unbound_log, 30)
        shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the dproxy-full binary to run")
    ap.add_argument("--runner", default="", help="emulator to run it with (qemu-*-static)")
    args = ap.parse_args()
    return run_check(DotCheck(args), "DoT test", args)

if __name__ == "__main__":
    sys.exit(main())
