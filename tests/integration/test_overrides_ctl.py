"""Command-line overrides across reloads, the reload error line, and how `dproxy ctl`
finds the daemon's control socket from the config (`-c FILE`)."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from harness.cli import run_bin
from harness.dnsutil import describe, rrset_texts
from harness.dproxy import render_config, server_addr
from harness.ports import free_port, udp_port_taken
from harness.procs import terminate


def _wait_for(cond, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    pytest.fail("timed out waiting for " + what)


def _listening(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            return False
    return udp_port_taken("127.0.0.1", port)


class Daemon:
    """dproxy started by hand with extra command-line arguments; the config lives in
    a world-readable dir, so the daemon can re-read it after dropping root."""

    def __init__(self, binary, options, lists, args):
        self.dir = tempfile.mkdtemp(prefix="dproxy-ov-")
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "dproxy.conf")
        self.sock = os.path.join(self.dir, "ctl.sock")
        resolv = os.path.join(self.dir, "resolv.conf")
        open(resolv, "w").close()
        self.options = {"control_socket": self.sock, "resolvfile": resolv,
                        "log_level": "debug", "prefetch": "0", "rebind_protection": "0",
                        "hosts": os.path.join(self.dir, "none")}
        self.options.update(options)
        self.lists = lists
        self.write()
        self.err_path = os.path.join(self.dir, "stderr")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([binary, "-c", self.conf] + list(args),
                                     stdin=subprocess.DEVNULL, stdout=self.err, stderr=self.err)

    def write(self, mode=0o644):
        with open(self.conf, "w") as f:
            f.write(render_config(self.options, self.lists))
        os.chmod(self.conf, mode)

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def reload(self):
        """SIGHUP, then wait until the daemon has handled it (it logs 'signal: reload')."""
        before = self.stderr().count("signal: reload")
        self.proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: self.stderr().count("signal: reload") > before, "the reload")

    def stop(self):
        terminate(self.proc)
        self.err.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def daemon(dproxy_bin):
    made = []

    def make(options=None, lists=None, args=()):
        d = Daemon(dproxy_bin, options or {}, lists or {}, args)
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop()


def _query(port, name):
    import dns.message
    import dns.query
    return dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=2)


def test_reload_keeps_listen_override_without_warning(daemon, upstream):
    """The OpenWrt init script passes -l in replace mode; every SIGHUP used to log
    'listen addresses changed; restart dproxy'."""
    up = upstream(["www 300 IN A 192.0.2.1"])
    file_port = free_port()
    cli_port = free_port()
    d = daemon(options={"port": file_port}, lists={"listen": ["127.0.0.1"], "server": [server_addr(up)]},
               args=["-l", "127.0.0.1:%d" % cli_port])
    _wait_for(lambda: _listening(cli_port), "dproxy on the -l port")
    d.options["cache_size"] = "2048"
    d.write()
    d.reload()
    r = _query(cli_port, "www.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)
    err = d.stderr()
    assert "listen addresses changed" not in err, err[-3000:]
    assert not _listening(file_port), "the file's listen address must stay overridden by -l"


def test_reload_keeps_upstream_override(daemon, upstream):
    a = upstream(["www 300 IN A 192.0.2.1"])
    b = upstream(["www 300 IN A 192.0.2.2", "new 300 IN A 192.0.2.3"])
    port = free_port()
    d = daemon(options={"port": port}, lists={"listen": ["127.0.0.1"], "server": [server_addr(a)]},
               args=["-u", server_addr(b)])
    _wait_for(lambda: _listening(port), "dproxy")
    d.reload()
    r = _query(port, "new.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.3"], describe(r)
    assert a.count("new.example.test") == 0, a.summary()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the daemon drops to nobody")
def test_reload_of_unreadable_config_logs_one_line(daemon, upstream):
    """A config the daemon's user cannot read (uci keeps /etc/config files 0600 root):
    the reload keeps the running config and says so in one line naming file and reason."""
    up = upstream(["www 300 IN A 192.0.2.1"])
    port = free_port()
    d = daemon(options={"port": port}, lists={"listen": ["127.0.0.1"], "server": [server_addr(up)]})
    _wait_for(lambda: _listening(port), "dproxy")
    d.options["cache_size"] = "2048"
    d.write(mode=0o600)
    before = len(d.stderr().splitlines())
    d.reload()
    r = _query(port, "www.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)
    new = d.stderr().splitlines()[before:]
    errors = [l for l in new if ": error: " in l]
    assert len(errors) == 1, "expected one error line, got:\n" + "\n".join(new)
    assert d.conf in errors[0] and "Permission denied" in errors[0], errors[0]


def test_ctl_finds_the_socket_of_the_config(daemon, dproxy_bin, upstream):
    up = upstream(["www 300 IN A 192.0.2.1"])
    port = free_port()
    d = daemon(options={"port": port, "cache_size": "777"},
               lists={"listen": ["127.0.0.1"], "server": [server_addr(up)]})
    _wait_for(lambda: _listening(port), "dproxy")
    res = run_bin(dproxy_bin, "ctl", "-c", d.conf, "stats")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "cache" in res.stdout, res.stdout
    # --socket still wins over the config's.
    res = run_bin(dproxy_bin, "ctl", "-c", d.conf, "--socket", d.sock + ".other", "stats")
    assert res.returncode == 1 and d.sock + ".other" in res.stderr, res.stdout + res.stderr
    res = run_bin(dproxy_bin, "ctl", "--socket", d.sock, "stats")
    assert res.returncode == 0, res.stdout + res.stderr


def test_ctl_config_problems_are_clear(dproxy_bin, tmp_path):
    missing = str(tmp_path / "nope")
    res = run_bin(dproxy_bin, "ctl", "-c", missing, "stats")
    assert res.returncode == 1 and missing in res.stderr and "--socket" in res.stderr, res.stderr
    conf = tmp_path / "nosock.conf"
    conf.write_text(render_config({"control_socket": ""}, {}))
    res = run_bin(dproxy_bin, "ctl", "-c", str(conf), "stats")
    assert res.returncode == 1 and "control_socket" in res.stderr, res.stderr


def test_help_config_lists_options(dproxy_bin):
    res = run_bin(dproxy_bin, "--help-config")
    assert res.returncode == 0, res.stderr
    for opt in ("cache_size", "control_socket", "dnsmasq_integration", "persist_file"):
        assert opt in res.stdout, opt
