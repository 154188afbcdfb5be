"""Dproxy: start the daemon under test with a generated UCI config."""
import os
import shutil
import signal
import socket
import subprocess
import time


from . import dnsutil
from .ports import free_port, started_on, udp_port_taken

START_TIMEOUT = 5.0
STOP_TIMEOUT = 1.0


class DproxyStartError(AssertionError):
    pass


def uci_quote(value):
    return "'" + str(value).replace("'", "'\\''") + "'"


def render_config(options, lists):
    lines = ["config dproxy 'main'"]
    for key, values in lists.items():
        for v in values:
            lines.append("\tlist %s %s" % (key, uci_quote(v)))
    for key, value in options.items():
        if value is None:
            continue
        lines.append("\toption %s %s" % (key, uci_quote(value)))
    return "\n".join(lines) + "\n"


def server_addr(s):
    """An upstream given as FakeUpstream/NsdServer (has .addr) or a string."""
    return getattr(s, "addr", s)


def finish_all(made, base):
    """Teardown of a fixture that started daemons: each must have exited cleanly (all are
    checked, the failures reported together), and their directories under BASE go."""
    import pytest
    errors = []
    for d in made:
        try:
            d.check_clean_exit()
        except AssertionError as e:
            errors.append(str(e))
    shutil.rmtree(base, ignore_errors=True)
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


class Dproxy:
    """One daemon instance.  Use via the `dproxy` fixture (a factory)."""

    def __init__(self, binary, workdir, servers=(), options=None, lists=None,
                 listen6=False, args=(), name="dproxy", listen_extra=()):
        self.binary = binary
        self.dir = str(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.name = name
        self.listen6 = listen6
        # More listen addresses (e.g. a veth address in a test namespace).
        self.listen_extra = list(listen_extra)
        self.extra_args = list(args)
        self.host = "127.0.0.1"
        self.host6 = "::1"
        self.port = None
        self.proc = None
        self.exit_checked = False
        self.conf = os.path.join(self.dir, name + ".conf")
        self.stderr_path = os.path.join(self.dir, name + ".stderr")
        resolv = os.path.join(self.dir, "resolv.conf")
        hosts = os.path.join(self.dir, "hosts")
        for p in (resolv, hosts):
            open(p, "a").close()
            os.chmod(p, 0o644)
        # Defaults that isolate the daemon from this machine and keep the
        # core behaviour deterministic; a test can override any of them and
        # drop one by passing None.
        self.options = {
            "control_socket": os.path.join(self.dir, name + ".sock"),
            "resolvfile": resolv,
            "log_level": "debug",
            "prefetch": "0",
            "rebind_protection": "0",
        }
        self.options.update(options or {})
        self.lists = {"hosts": [hosts]}
        if servers:
            self.lists["server"] = [server_addr(s) for s in servers]
        for k, v in (lists or {}).items():
            self.lists[k] = list(v)

    # ---------------------------------------------------------------- life
    def write_config(self):
        lists = {"listen": self._hosts()}
        lists.update(self.lists)
        opts = dict(self.options)
        opts["port"] = self.port
        with open(self.conf, "w") as f:
            f.write(render_config(opts, lists))
        os.chmod(self.conf, 0o644)       # readable after dproxy drops root

    def start(self):
        errors = []
        for _attempt in range(3):
            hosts = self._hosts()
            self.port = free_port(*hosts)
            self.write_config()
            self._err = open(self.stderr_path, "ab")
            self.proc = subprocess.Popen([self.binary, "-c", self.conf] + self.extra_args,
                                         stdin=subprocess.DEVNULL, stdout=self._err,
                                         stderr=self._err)
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline:
                rc = self.proc.poll()
                if rc is not None:
                    break
                if self._listening(hosts) and started_on(self.proc, self.port):
                    return self
                time.sleep(0.02)
            rc = self.proc.poll()
            if rc is None:
                self.proc.kill()
                self.proc.wait(timeout=5)
                raise DproxyStartError(
                    "dproxy did not listen on %s port %d (udp+tcp) within %.0fs.\n"
                    "config:\n%s\nstderr:\n%s" % (hosts, self.port, START_TIMEOUT,
                                                 self.config_text(), self.stderr_text()))
            err = self.stderr_text()
            errors.append(err)
            self.exit_checked = True
            # Port stolen between our check and the daemon's bind: retry.
            if "in use" not in err.lower():
                break
        raise DproxyStartError(
            "dproxy exited with status %s before it was ready (expected it to keep "
            "running and listen on 127.0.0.1:%d).\ncommand: %s -c %s\nconfig:\n%s\nstderr:\n%s"
            % (self.proc.returncode, self.port, self.binary, self.conf,
               self.config_text(), errors[-1] or "<empty>"))

    def _hosts(self):
        return [self.host] + ([self.host6] if self.listen6 else []) + self.listen_extra

    def _listening(self, hosts):
        for h in hosts:
            fam = socket.AF_INET6 if ":" in h else socket.AF_INET
            with socket.socket(fam, socket.SOCK_STREAM) as s:
                s.settimeout(0.2)
                try:
                    s.connect((h, self.port))
                except OSError:
                    return False
            if not udp_port_taken(h, self.port):
                return False
        return True

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        assert self.alive(), "dproxy is not running (exit status %s); stderr:\n%s" % (
            self.proc.poll() if self.proc else None, self.stderr_text())
        self.proc.send_signal(sig)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM; returns (exit status, seconds it took).  Kills on timeout."""
        if self.proc is None:
            return None, 0.0
        if self.proc.poll() is not None:
            return self.proc.returncode, 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
            return rc, time.monotonic() - t0
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            return None, time.monotonic() - t0

    def check_clean_exit(self):
        """Teardown check: SIGTERM → exit 0 within 1 s, no panic in stderr."""
        if self.exit_checked or self.proc is None:
            return
        self.exit_checked = True
        was_alive = self.alive()
        rc, took = self.stop()
        err = self.stderr_text()
        problems = []
        if not was_alive:
            problems.append("dproxy had already exited (status %s) before teardown" % rc)
        elif rc is None:
            problems.append("dproxy did not exit within %.1fs of SIGTERM (killed)" % STOP_TIMEOUT)
        elif rc != 0:
            problems.append("dproxy exited with status %s after SIGTERM, expected 0%s" % (
                rc, " (killed by the signal: no handler?)" if rc < 0 else ""))
        if "panicked at" in err:
            problems.append("dproxy panicked")
        if problems:
            raise AssertionError("; ".join(problems) + "\nstderr (tail):\n" + err[-4000:])

    # ---------------------------------------------------------------- output
    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def config_text(self):
        try:
            with open(self.conf) as f:
                return f.read()
        except OSError:
            return ""

    def ctl(self, *args, timeout=5):
        """`dproxy ctl --socket <ours> ARGS...`"""
        return subprocess.run([self.binary, "ctl", "--socket", self.options["control_socket"]]
                              + list(args), capture_output=True, text=True, timeout=timeout)

    def stats(self):
        """`ctl stats` as a dict (numbers as int, the rest as str)."""
        r = self.ctl("stats")
        assert r.returncode == 0, "ctl stats failed (%d): %s%s" % (r.returncode, r.stdout, r.stderr)
        out = {}
        for line in r.stdout.splitlines():
            k, sep, v = line.partition("=")
            if sep:
                out[k.strip()] = int(v) if v.strip().isdigit() else v.strip()
        return out

    def proc_status(self):
        """/proc/PID/status as a dict of str."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)

    def stop_now(self):
        """SIGTERM now (for restart tests); asserts exit 0 within 1 s and
        takes this instance out of the teardown check."""
        rc, took = self.stop()
        self.exit_checked = True
        assert rc == 0, "dproxy exited with %s (%.2fs) after SIGTERM; stderr tail:\n%s" % (
            rc, took, self.stderr_text()[-3000:])
        return took

    # ---------------------------------------------------------------- queries
    def addr(self, v6=False):
        return (self.host6 if v6 else self.host), self.port

    def query(self, name, rdtype="A", tcp=False, edns=None, do=False, cd=False,
              ad=False, rd=True, qid=None, timeout=3.0, v6=False, expect_answer=True):
        """Send one query (fresh socket) and return the parsed response.
        Raises NoAnswer (an AssertionError) on timeout unless expect_answer
        is False, in which case None is returned."""
        q = dnsutil.make_query(name, rdtype, edns=edns, do=do, cd=cd, ad=ad, rd=rd, qid=qid)
        wire = self.query_raw(q.to_wire(), tcp=tcp, timeout=timeout, v6=v6)
        if wire is None:
            if not expect_answer:
                return None
            raise dnsutil.NoAnswer(
                "no answer from dproxy [%s]:%d/%s within %.1fs for %s %s (id %d)%s" % (
                    self.addr(v6)[0], self.port, "tcp" if tcp else "udp", timeout, name,
                    rdtype, q.id, "" if self.alive() else
                    "; dproxy is not running any more, stderr:\n" + self.stderr_text()[-3000:]))
        msg = dnsutil.parse(wire)
        msg.wire = wire
        msg.sent = q
        return msg

    def query_raw(self, wire, tcp=False, timeout=2.0, v6=False):
        host, port = self.addr(v6)
        if tcp:
            return dnsutil.tcp_exchange(host, port, wire, timeout)
        return dnsutil.udp_exchange(host, port, wire, timeout)

    def query_from(self, src, name, rdtype="A", tcp=False, timeout=2.0, **kw):
        """A query sent from source address `src` (e.g. 127.0.0.3).  Returns
        the parsed answer, or None on silence (UDP) / closed connection (TCP)."""
        q = dnsutil.make_query(name, rdtype, **kw)
        if tcp:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with s:
            s.settimeout(timeout)
            s.bind((src, 0))
            try:
                if tcp:
                    s.connect((self.host, self.port))
                    s.sendall(dnsutil.tcp_frame(q.to_wire()))
                    wire = dnsutil.tcp_recv_msg(s, time.monotonic() + timeout)
                else:
                    s.sendto(q.to_wire(), (self.host, self.port))
                    wire, _ = s.recvfrom(65535)
            except (socket.timeout, ConnectionError, OSError):
                return None
        msg = dnsutil.parse(wire)
        msg.wire = wire
        msg.sent = q
        return msg

    def tcp_connect(self, v6=False, timeout=3.0):
        host, port = self.addr(v6)
        s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect((host, port))
        return s

    def wait_answer(self, name, rdtype="A", timeout=5.0, until=None, interval=0.2, **kw):
        """Repeat a query (each try up to 1 s, then `interval` pause) until an
        answer arrives that satisfies until(msg) (default: any answer), or
        the timeout passes.  Returns the last answer (or None)."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            left = deadline - time.monotonic()
            r = self.query(name, rdtype, timeout=max(0.1, min(1.0, left)),
                           expect_answer=False, **kw)
            if r is not None:
                last = r
                if until is None or until(r):
                    return r
            if time.monotonic() + interval >= deadline:
                return last
            time.sleep(interval)
