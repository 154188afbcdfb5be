"""What the daemon checks before it serves: a source of randomness (query IDs and
0x20 must be unpredictable), and access to its files as the user it runs as."""
import os
import pathlib
import signal
import subprocess
import time

import pytest

from harness import dnsutil
from harness import norandom
from harness.dproxy import render_config
from harness.ports import free_port

needs_norandom = pytest.mark.skipif(
    not norandom.supported(), reason="needs root and x86_64/aarch64 to take randomness away")


def _config(tmp_path, **extra):
    """A config in `tmp_path`, which must be readable by the user dproxy becomes."""
    port = free_port("127.0.0.1")
    hosts = tmp_path / "hosts"
    hosts.write_text("192.0.2.77 box.lan\n")
    (tmp_path / "resolv.conf").write_text("")
    opts = {"port": port, "control_socket": "", "resolvfile": str(tmp_path / "resolv.conf")}
    opts.update(extra)
    conf = tmp_path / "dproxy.conf"
    conf.write_text(render_config(opts, {"listen": ["127.0.0.1"], "hosts": [str(hosts)]}))
    for p in (conf, hosts, tmp_path / "resolv.conf"):
        os.chmod(p, 0o644)
    return str(conf), port


@needs_norandom
def test_no_randomness_at_all_refuses_to_start(dproxy_bin, shared_dir):
    conf, _port = _config(pathlib.Path(shared_dir))
    try:
        res = norandom.run([dproxy_bin, "-c", conf], no_urandom=True, timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail("dproxy kept running without a source of randomness")
    lines = [l for l in (res.stdout + res.stderr).splitlines() if l.strip()]
    assert res.returncode == 1, "expected exit 1, got %d:\n%s" % (res.returncode, "\n".join(lines))
    assert len(lines) == 1, "expected one clear line, got:\n" + "\n".join(lines)
    assert "random" in lines[0] and "refusing to start" in lines[0], lines[0]


@needs_norandom
def test_without_getrandom_dev_urandom_is_used(dproxy_bin, shared_dir):
    tmp_path = pathlib.Path(shared_dir)
    conf, port = _config(tmp_path)
    err = open(tmp_path / "stderr", "wb")
    proc = norandom.popen([dproxy_bin, "-c", conf], stdout=err, stderr=err)
    try:
        deadline = time.monotonic() + 5
        r = None
        while r is None and time.monotonic() < deadline and proc.poll() is None:
            wire = dnsutil.udp_exchange("127.0.0.1", port,
                                        dnsutil.make_query("box.lan").to_wire(), 0.2)
            r = dnsutil.parse(wire) if wire else None
        assert r is not None, "no answer; stderr:\n" + (tmp_path / "stderr").read_text()
        assert dnsutil.rrset_texts(r, rdtype="A") == ["192.0.2.77"]
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=5)
        err.close()
    text = (tmp_path / "stderr").read_text()
    assert rc == 0 and "random" not in text, text
