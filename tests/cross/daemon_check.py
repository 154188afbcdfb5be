#!/usr/bin/env python3
"""Runs a (cross-built) dproxy binary on loopback and checks that it works.

  daemon_check.py --bin dist/dproxy-0.1.0-mips-unknown-linux-musl \
                 --runner qemu-mips-static --version 0.1.0

Checks, in order: `--version` prints the version; with a config pointing at a
hosts file and at a counting upstream started here, the daemon answers the
hosts name, forwards a name once and answers it again from cache; SIGHUP keeps
it answering from the same cache (no new upstream query); SIGTERM ends it with
status 0. Uses only the standard library and dnstool.py beside this file.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dnstool  # noqa: E402

HOSTS_NAME = "router.lan"
HOSTS_ADDR = "192.0.2.1"
FORWARD_NAME = "www.example.com"
UPSTREAM_ADDR = "198.51.100.7"
UPSTREAM_TTL = 300
# Under qemu-user a 32-bit guest starts in well under a second; leave room for
# a loaded machine.
START_TIMEOUT = 20.0
EXIT_TIMEOUT = 3.0


class Failed(Exception):
    pass


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise Failed("timed out after %.0f s waiting for %s" % (timeout, what))


class Check:
    """What every check of a binary starts with: the command (under the runner), a
    scratch directory the dropped daemon can read, the daemon's log file."""

    def __init__(self, args, prefix):
        self.args = args
        self.cmd = ([args.runner] if args.runner else []) + [os.path.abspath(args.bin)]
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        # Started as root, the daemon drops to an unprivileged user and must
        # still read the files in here.
        os.chmod(self.tmp, 0o755)
        self.daemon = None
        self.log_path = os.path.join(self.tmp, "dproxy.log")

    def step(self, text):
        print("  %s" % text, flush=True)

    def start_on_free_port(self, what, start, ready, said, timeout):
        """Starts a server with start(port) on a port of 127.0.0.1 free for UDP and TCP,
        and waits until ready(port) or it exits. One that exits saying its port is in
        use (said(): its output) lost the port to another process after free_port()
        looked, such as a test beside this one: it starts again on another port, up to
        PORT_TRIES times. Returns the process and its port."""
        for attempt in range(1, dnstool.PORT_TRIES + 1):
            port = dnstool.free_port()
            proc = start(port)
            wait_for(lambda: proc.poll() is not None or ready(port), timeout,
                     "%s on 127.0.0.1:%d" % (what, port))
            if proc.poll() is None:
                return proc, port
            text = said()
            if not dnstool.port_in_use(text) or attempt == dnstool.PORT_TRIES:
                raise Failed("%s exited with status %d: %s"
                             % (what, proc.returncode, text.strip()[-800:]))
            self.step("port %d taken by another process: %s again on another" % (port, what))

    def daemon_said(self):
        """The daemon's log so far."""
        with open(self.log_path, errors="replace") as f:
            return f.read()


class DaemonCheck(Check):
    def __init__(self, args):
        super().__init__(args, "dproxy-cross-")
        self.upstream = None

    # --- pieces -----------------------------------------------------------
    def check_version(self):
        out = subprocess.run(self.cmd + ["--version"], capture_output=True, text=True,
                             timeout=30)
        if out.returncode != 0 or out.stdout.strip() != self.args.version:
            raise Failed("--version: status %d, stdout %r, expected %r"
                         % (out.returncode, out.stdout, self.args.version))
        self.step("--version prints %s" % self.args.version)

    def check_config_errors(self, good_conf):
        """--check-config: 0 for the good file; 1 and the file named for broken
        ones (unterminated quote, option outside a section, garbage, invalid
        UTF-8, a bad value, a file the UCI parser itself panics on, which the
        release build's trial child must catch): the error paths on this target."""
        out = subprocess.run(self.cmd + ["-c", good_conf, "--check-config"],
                             capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise Failed("--check-config on the test config: status %d: %s"
                         % (out.returncode, (out.stdout + out.stderr).strip()))
        broken = {
            "quote": b"config dproxy 'main'\n\toption port '1\n",
            "orphan": b"option port '1'\n",
            "garbage": b"\x00\x01zzz",
            "binary": b"\xff\xfe\x00",
            "port": b"config dproxy 'main'\n\toption port 'not-a-port'\n",
            "panic": b"config dproxy '@a'\nconfig dproxy '@a'\n",
        }
        for name, text in broken.items():
            path = os.path.join(self.tmp, "broken-%s.conf" % name)
            with open(path, "wb") as f:
                f.write(text)
            out = subprocess.run(self.cmd + ["-c", path, "--check-config"],
                                 capture_output=True, text=True, errors="replace", timeout=30)
            said = (out.stdout + out.stderr).strip()
            if out.returncode != 1 or path not in said:
                raise Failed("--check-config on a broken file (%s): status %d, want 1 and "
                             "the file named; said: %s" % (name, out.returncode, said))
        self.step("--check-config: 0 for the test config, 1 for %d broken ones" % len(broken))

    def start_upstream(self):
        state = os.path.join(self.tmp, "upstream")
        os.mkdir(state)
        self.upstream_state = state
        self.upstream = subprocess.Popen(
            [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "dnstool.py"),
             "upstream", "--state", state, "--answer", UPSTREAM_ADDR, "--ttl", str(UPSTREAM_TTL)])
        port_file = os.path.join(state, "port")
        wait_for(lambda: os.path.exists(port_file), 10, "the test upstream")
        with open(port_file) as f:
            return int(f.read())

    def upstream_queries(self, name):
        with open(os.path.join(self.upstream_state, "queries")) as f:
            return sum(1 for line in f if line.strip() == name.lower())

    def write_config(self, up_port, port):
        self.port = port
        hosts = os.path.join(self.tmp, "hosts")
        with open(hosts, "w") as f:
            f.write("# test hosts file\n%s\t%s router\n" % (HOSTS_ADDR, HOSTS_NAME))
        conf = os.path.join(self.tmp, "dproxy.conf")
        with open(conf, "w") as f:
            f.write("config dproxy 'main'\n"
                    "\tlist listen '127.0.0.1'\n"
                    "\toption port '%d'\n"
                    "\tlist server '127.0.0.1:%d'\n"
                    "\tlist hosts '%s'\n"
                    "\toption control_socket '%s'\n"
                    "\toption log_level 'debug'\n"
                    "%s"
                    % (self.port, up_port, hosts, os.path.join(self.tmp, "dproxy.sock"),
                       self.local_service_line()))
        return conf

    def local_service_line(self):
        """The default local_service 1 makes the daemon list the interfaces
        (getifaddrs). Only under qemu-mips (user mode) does that hang: qemu's
        netlink translation hands the big-endian guest an attribute of length
        0 and musl's getifaddrs loops on it forever (a plain C program does the
        same). On a real big-endian MIPS kernel it works: `make vm-test
        TARGET=mips` runs this binary with local_service 1 there. So qemu-mips
        alone runs with local_service 0; loopback clients need no ACL."""
        if os.path.basename(self.args.runner) == "qemu-mips-static":
            return "\toption local_service '0'\n"
        return ""

    def ask(self, name, timeout=2.0):
        try:
            return dnstool.query(self.port, name, timeout=timeout)
        except OSError:  # includes socket.timeout
            return None

    def expect_a(self, name, addr):
        got = self.ask(name)
        if got is None:
            raise Failed("no answer for %s" % name)
        rcode, answers = got
        addrs = [text for rtype, _ttl, text in answers if rtype == dnstool.TYPE_A]
        if rcode != 0 or addr not in addrs:
            raise Failed("%s: rcode %d, A records %s, expected %s" % (name, rcode, addrs, addr))
        return [ttl for rtype, ttl, text in answers if text == addr][0]

    def expect_alive(self, what):
        if self.daemon.poll() is not None:
            raise Failed("daemon exited with status %d %s" % (self.daemon.returncode, what))

    def start_daemon(self, up_port):
        def start(port):
            conf = self.write_config(up_port, port)
            log = open(self.log_path, "w")
            self.daemon = subprocess.Popen(self.cmd + ["-c", conf], stdout=log, stderr=log,
                                           stdin=subprocess.DEVNULL)
            log.close()
            return self.daemon

        self.start_on_free_port("the daemon", start,
                                lambda port: self.ask(HOSTS_NAME, timeout=0.5) is not None,
                                self.daemon_said, START_TIMEOUT)
        self.step("daemon answers on 127.0.0.1:%d" % self.port)

    # --- the test ---------------------------------------------------------
    def run(self):
        self.check_version()
        up_port = self.start_upstream()
        self.check_config_errors(self.write_config(up_port, dnstool.free_port()))
        self.start_daemon(up_port)

        self.expect_a(HOSTS_NAME, HOSTS_ADDR)
        self.step("hosts name %s -> %s" % (HOSTS_NAME, HOSTS_ADDR))

        ttl1 = self.expect_a(FORWARD_NAME, UPSTREAM_ADDR)
        ttl2 = self.expect_a(FORWARD_NAME, UPSTREAM_ADDR)
        n = self.upstream_queries(FORWARD_NAME)
        if n != 1:
            raise Failed("upstream saw %d queries for %s, expected 1" % (n, FORWARD_NAME))
        if not 0 < ttl2 <= ttl1 <= UPSTREAM_TTL:
            raise Failed("TTLs %d then %d, expected 0 < second <= first <= %d"
                         % (ttl1, ttl2, UPSTREAM_TTL))
        self.step("forwarded %s once, second answer from cache (TTL %d, %d)"
                  % (FORWARD_NAME, ttl1, ttl2))

        self.daemon.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        self.expect_alive("after SIGHUP")
        self.expect_a(FORWARD_NAME, UPSTREAM_ADDR)
        n = self.upstream_queries(FORWARD_NAME)
        if n != 1:
            raise Failed("after SIGHUP upstream saw %d queries for %s, expected 1 (cache lost)"
                         % (n, FORWARD_NAME))
        self.expect_a(HOSTS_NAME, HOSTS_ADDR)
        self.step("SIGHUP: still answers, cache kept")

        start = time.monotonic()
        self.daemon.send_signal(signal.SIGTERM)
        try:
            status = self.daemon.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise Failed("daemon still running %.0f s after SIGTERM" % EXIT_TIMEOUT)
        if status != 0:
            raise Failed("daemon exited with status %d after SIGTERM" % status)
        self.step("SIGTERM: exit 0 after %.2f s" % (time.monotonic() - start))

    def cleanup(self, failed):
        for proc in (self.daemon, self.upstream):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        if failed:
            print_tail("daemon", self.log_path, 40)
        shutil.rmtree(self.tmp, ignore_errors=True)


def print_tail(what, path, n):
    """The last n lines of a log, to stderr, after a failure."""
    if os.path.exists(path):
        with open(path, errors="replace") as f:
            lines = f.readlines()
        print("--- last lines of the %s log ---" % what, file=sys.stderr)
        sys.stderr.writelines(lines[-n:])


def run_check(test, label, args):
    """Runs a check object (run, cleanup); 0 when it passed, 1 with the reason if not."""
    print("%s: %s%s" % (label, args.bin, " under " + args.runner if args.runner else ""),
          flush=True)
    failed = True
    try:
        test.run()
        failed = False
    except Failed as e:
        print("FAIL: %s" % e, file=sys.stderr)
    finally:
        test.cleanup(failed)
    if not failed:
        print("%s: ok" % label)
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the dproxy binary to run")
    ap.add_argument("--runner", default="", help="emulator to run it with (qemu-*-static)")
    ap.add_argument("--version", required=True, help="the version --version must print")
    args = ap.parse_args()
    return run_check(DaemonCheck(args), "daemon test", args)


if __name__ == "__main__":
    sys.exit(main())
