"""The rpcd exec plugin (files/dproxy.rpcd, /usr/libexec/rpcd/luci.dproxy on the
router) run as rpcd runs it (`list`, `call METHOD` with the arguments as JSON on
stdin), under busybox sh (OpenWrt's shell), against a real daemon on loopback.
rpcd itself is not run here: it only execs the script and passes JSON through."""
import json
import os
import shutil
import subprocess

import pytest

from harness.tools import wait_until
from test_stats_json import validate

PLUGIN = os.path.join(os.path.dirname(__file__), "..", "..", "files", "dproxy.rpcd")
RECORDS = ["n%d 300 IN A 192.0.2.%d" % (i, 10 + i) for i in range(4)]


def plugin(px, *args, stdin="", socket=None):
    env = dict(os.environ, DPROXY=px.binary,
               DPROXY_SOCKET=socket or px.options["control_socket"])
    r = subprocess.run([shutil.which("busybox"), "sh", PLUGIN] + list(args), input=stdin,
                       capture_output=True, text=True, timeout=10, env=env)
    assert r.returncode == 0, "plugin %s exited %d: %s%s" % (args, r.returncode, r.stdout, r.stderr)
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise AssertionError("plugin %s printed no JSON object: %r" % (args, r.stdout))


@pytest.fixture
def px(dproxy, upstream):
    return dproxy(servers=[upstream(RECORDS)])


def test_list_declares_the_methods(px):
    assert plugin(px, "list") == {"status": {}, "flush": {}, "link": {"state": "str"}}


def test_status_matches_the_schema(px):
    px.query("n0.example.test")
    doc = plugin(px, "call", "status")
    validate(doc)
    assert doc["misses"] == 1 and doc["cache_entries"] == 1


def test_flush_empties_the_cache(px):
    for i in range(3):
        px.query("n%d.example.test" % i)
    assert px.stats()["cache_entries"] == 3
    assert plugin(px, "call", "flush") == {"flushed": 3}
    assert px.stats()["cache_entries"] == 0


def test_link_down_and_up(px):
    assert plugin(px, "call", "link", stdin='{ "state": "down" }') == {"link": "down"}
    assert px.stats()["link"] == "down"
    assert plugin(px, "call", "status")["link"] == "down"
    assert plugin(px, "call", "link", stdin='{"state":"up"}') == {"link": "up"}
    assert wait_until(lambda: px.stats()["link"] == "up")


def test_bad_arguments_change_nothing(px):
    out = plugin(px, "call", "link", stdin='{"state":"sideways"}')
    assert "error" in out
    out = plugin(px, "call", "link", stdin='{}')
    assert "error" in out
    assert px.stats()["link"] == "up"
    assert "error" in plugin(px, "call", "frobnicate")


def test_daemon_not_running_is_an_error_object(px, tmp_path):
    out = plugin(px, "call", "status", socket=str(tmp_path / "nothing.sock"))
    assert set(out) == {"error"} and "not running" in out["error"]


def test_socket_from_uci(px, tmp_path):
    """On the router the socket comes from `uci -q get dproxy.main.control_socket`.
    uci is a stand-in here (it exists only on OpenWrt): it answers that one
    question with the daemon's socket and fails on anything else."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    uci = bindir / "uci"
    uci.write_text("#!/bin/sh\n"
                   "[ \"$*\" = '-q get dproxy.main.control_socket' ] || exit 1\n"
                   "echo '%s'\n" % px.options["control_socket"])
    uci.chmod(0o755)
    env = dict(os.environ, DPROXY=px.binary, PATH="%s:%s" % (bindir, os.environ["PATH"]))
    env.pop("DPROXY_SOCKET", None)
    r = subprocess.run([shutil.which("busybox"), "sh", PLUGIN, "call", "status"], capture_output=True,
                       text=True, timeout=10, env=env)
    doc = json.loads(r.stdout)
    validate(doc)
