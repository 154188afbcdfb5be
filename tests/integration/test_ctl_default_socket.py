"""The control socket when `control_socket` is unset: its built-in default
(/var/run/dproxy/dproxy.sock) must work whichever way the daemon is started.

procd starts the daemon as its own unprivileged user, after the init script made
the socket's directory and gave it to that user; Buildroot's init and systemd
make the directory and run it as root, and it drops to `option user` after binding.
The default path is absolute, so each daemon runs in a mount namespace of its own
with a fresh tmpfs on /var/run (never the machine's), and `dproxy ctl` is run
inside that namespace (nsenter), with no --socket: it must find the same default.
"""
import json
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

from harness.dproxy import Dproxy, finish_all

DEFAULT_SOCKET = "/var/run/dproxy/dproxy.sock"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: a mount namespace and a start as another user")

# Run as the wrapper's argv: a private /var/run, the directory the OpenWrt init
# script makes (when SOCKDIR_OWNER is set), then the daemon as RUN_AS:RUN_GID
# (or root).
WRAPPER = r"""#!/bin/sh
exec unshare --mount --propagation private sh -c '
	mount -t tmpfs -o mode=0755 dproxy-test-run /var/run || exit 97
	if [ -n "$SOCKDIR_OWNER" ]; then
		mkdir /var/run/dproxy && chown "$SOCKDIR_OWNER" /var/run/dproxy || exit 98
	fi
	if [ -n "$RUN_AS" ]; then
		exec setpriv --reuid="$RUN_AS" --regid="$RUN_GID" --clear-groups "$@"
	fi
	exec "$@"
' sh "$DPROXY_REAL" "$@"
"""


@pytest.fixture
def isolated(dproxy_bin, monkeypatch):
    """Factory: a Dproxy whose /var/run is private, started as run_as (None: root)."""
    # Not pytest's 0700 tmp_path: the daemon reads its config as another user.
    base = tempfile.mkdtemp(prefix="dproxy-ctlsock-")
    os.chmod(base, 0o755)
    wrapper = os.path.join(base, "dproxy-in-ns")
    with open(wrapper, "w") as f:
        f.write(WRAPPER)
    os.chmod(wrapper, 0o755)
    made = []

    def make(run_as=None, sockdir_owner=None, options=None):
        monkeypatch.setenv("DPROXY_REAL", dproxy_bin)
        pw = pwd.getpwnam(run_as) if run_as else None
        monkeypatch.setenv("RUN_AS", str(pw.pw_uid) if pw else "")
        monkeypatch.setenv("RUN_GID", str(pw.pw_gid) if pw else "")
        monkeypatch.setenv("SOCKDIR_OWNER", sockdir_owner or "")
        opts = {"control_socket": None}
        opts.update(options or {})
        d = Dproxy(wrapper, os.path.join(base, "d%d" % len(made)), servers=(),
                   options=opts)
        os.chmod(d.dir, 0o777)
        with open(os.path.join(d.dir, "hosts"), "w") as f:
            f.write("192.0.2.9 ctltest\n")
        made.append(d)
        d.start()
        # Answered: the daemon is past its start-up (the control socket is bound
        # after the DNS sockets), so what ctl finds now is what it will find.
        answer = d.query("ctltest")
        assert "192.0.2.9" in str(answer), str(answer)
        return d

    yield make
    finish_all(made, base)


def in_ns(d, argv, user=None):
    """Runs argv in the daemon's mount namespace (as user, if given)."""
    cmd = ["nsenter", "-t", str(d.proc.pid), "-m", "--"]
    if user:
        pw = pwd.getpwnam(user)
        cmd += ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid,
                "--clear-groups"]
    return subprocess.run(cmd + argv, capture_output=True, text=True, timeout=20)


def ctl(d, dproxy_bin, *words, user=None, config=True):
    """`dproxy ctl` without --socket: from the daemon's config file (option unset)
    or, with config=False, from nothing at all (no /etc/config/dproxy here)."""
    argv = [dproxy_bin, "ctl"] + (["-c", d.conf] if config else []) + list(words)
    return in_ns(d, argv, user=user)


def socket_stat(d):
    r = in_ns(d, ["stat", "-c", "%u %a %F", DEFAULT_SOCKET])
    assert r.returncode == 0, "no socket at %s: %s\ndaemon stderr:\n%s" % (
        DEFAULT_SOCKET, r.stderr, d.stderr_text())
    uid, mode, kind = r.stdout.split(" ", 2)
    return int(uid), mode, kind.strip()


def test_ctl_stats_on_default_socket_when_started_as_its_own_user(isolated, dproxy_bin):
    # As procd starts it on OpenWrt: as user 'dproxy' (here nobody), in the
    # directory the init script made for it; /var/run itself is root's.
    nobody = pwd.getpwnam("nobody").pw_uid
    d = isolated(run_as="nobody", sockdir_owner="nobody")
    assert d.proc_status()["Uid"].split()[0] == str(nobody)
    r = ctl(d, dproxy_bin, "stats")
    assert r.returncode == 0 and "cache_budget=" in r.stdout, (
        "ctl stats on the default socket failed (rc %d): %s\ndaemon stderr:\n%s"
        % (r.returncode, r.stderr, d.stderr_text()))
    assert socket_stat(d) == (nobody, "600", "socket")
    # ctl with no config file at all falls back to the same built-in default,
    # and the daemon's own user may use it too (rpcd runs as root, both work).
    r = ctl(d, dproxy_bin, "stats", "--json", config=False, user="nobody")
    assert r.returncode == 0 and r.stdout.startswith("{"), r.stderr
    assert "control socket" not in d.stderr_text(), d.stderr_text()


def test_ctl_stats_on_default_socket_when_started_as_root(isolated, dproxy_bin):
    # Buildroot's S50dproxy or systemd (RuntimeDirectory): root made the
    # directory and starts the daemon as root; it binds, then drops to nobody.
    d = isolated(run_as=None, sockdir_owner="root")
    r = ctl(d, dproxy_bin, "stats")
    assert r.returncode == 0 and "cache_budget=" in r.stdout, (
        "ctl stats on the default socket failed (rc %d): %s\ndaemon stderr:\n%s"
        % (r.returncode, r.stderr, d.stderr_text()))
    uid, mode, kind = socket_stat(d)
    assert (mode, kind) == ("600", "socket")
    r = in_ns(d, ["stat", "-c", "%u %a", os.path.dirname(DEFAULT_SOCKET)])
    assert r.stdout.split() == ["0", "755"], r.stdout


@pytest.mark.skipif(os.environ.get("DPROXY_FULL") != "1",
                    reason="the clock marker is written by the full build only")
def test_clock_marker_next_to_default_socket(isolated, dproxy_bin):
    # `ctl time-synced` (the NTP hotplug) leaves its marker next to the socket,
    # written by the daemon's own user: a restart in this boot starts synced.
    d = isolated(run_as="nobody", sockdir_owner="nobody")
    r = ctl(d, dproxy_bin, "time-synced")
    assert r.returncode == 0 and r.stdout.strip() == "clock=synced", (r.stdout, r.stderr)
    marker = DEFAULT_SOCKET + ".clock-synced"
    r = in_ns(d, ["stat", "-c", "%U", marker])
    assert r.returncode == 0 and r.stdout.strip() == "nobody", (
        "no marker at %s: %s\ndaemon stderr:\n%s" % (marker, r.stderr, d.stderr_text()))


def test_old_default_named_explicitly_serves_dns_and_names_the_socket(isolated, dproxy_bin):
    # An older config that names /var/run/dproxy.sock, daemon started as its own
    # user: no socket in root's /var/run, but DNS is served and the log names
    # the path and the reason (the OpenWrt init script adds what to do).
    d = isolated(run_as="nobody", sockdir_owner="nobody",
                 options={"control_socket": "/var/run/dproxy.sock"})
    err = d.stderr_text()
    assert "/var/run/dproxy.sock" in err and "ermission denied" in err, err
    r = ctl(d, dproxy_bin, "stats")
    assert r.returncode != 0


RPCD_PLUGIN = os.path.join(os.path.dirname(__file__), "..", "..", "files", "dproxy.rpcd")


def rpcd_status(d, dproxy_bin):
    """The rpcd plugin's `call status` in the daemon's namespace, as rpcd runs it
    but with no uci on PATH (this is not OpenWrt): the socket is the default."""
    r = in_ns(d, ["env", "-i", "PATH=/usr/bin:/bin", "DPROXY=" + dproxy_bin,
                  "busybox", "sh", os.path.abspath(RPCD_PLUGIN), "call", "status"])
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.skipif(not shutil.which("busybox"), reason="busybox runs the rpcd plugin")
def test_rpcd_plugin_finds_the_default_socket(isolated, dproxy_bin):
    d = isolated(run_as="nobody", sockdir_owner="nobody")
    doc = rpcd_status(d, dproxy_bin)
    assert "error" not in doc and "cache_entries" in doc, doc


@pytest.mark.skipif(not shutil.which("busybox"), reason="busybox runs the rpcd plugin")
def test_rpcd_plugin_falls_back_to_the_old_default_socket(isolated, dproxy_bin):
    # A daemon of an older version, started before the upgrade, listens on the
    # old default path (started as root, it could create it in /var/run).
    d = isolated(run_as=None, options={"control_socket": "/var/run/dproxy.sock"})
    doc = rpcd_status(d, dproxy_bin)
    assert "error" not in doc and "cache_entries" in doc, doc
