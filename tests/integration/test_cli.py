"""Command line, config checking and signals."""
import signal
import socket
import time

import pytest

from harness.cli import run_bin
from harness.dnsutil import describe, make_query, rrset_texts, tcp_frame
from harness.dproxy import render_config


def test_version(dproxy_bin):
    res = run_bin(dproxy_bin, "--version")
    assert res.returncode == 0, "--version must exit 0, got %d: %s" % (res.returncode, res.stderr)
    assert res.stdout.rstrip("\n") == "0.1.0" and res.stdout.count("\n") <= 1, \
        "--version must print exactly 0.1.0, got %r" % res.stdout


def _conf(tmp_path, name, **options):
    path = tmp_path / name
    opts = {"port": "5399", "control_socket": str(tmp_path / "ctl.sock"),
            "resolvfile": str(tmp_path / "resolv.conf")}
    opts.update(options)
    (tmp_path / "resolv.conf").write_text("")
    path.write_text(render_config(opts, {"listen": ["127.0.0.1"], "server": ["127.0.0.2"]}))
    return str(path)


def _lines(res):
    return [l for l in (res.stdout + res.stderr).splitlines() if l.strip()]


def test_check_config_good(dproxy_bin, tmp_path):
    conf = _conf(tmp_path, "good.conf", min_ttl="0", trust_ad="yes", prefetch="off")
    res = run_bin(dproxy_bin, "-c", conf, "--check-config")
    assert res.returncode == 0, "a valid config must pass --check-config, got %d:\n%s%s" % (
        res.returncode, res.stdout, res.stderr)


def test_check_config_bad_port(dproxy_bin, tmp_path):
    conf = _conf(tmp_path, "bad.conf", port="abc")
    res = run_bin(dproxy_bin, "-c", conf, "--check-config")
    assert res.returncode == 1, "option port 'abc' must make --check-config exit 1, got %d" % res.returncode
    lines = _lines(res)
    assert len(lines) == 1, "expected exactly one line for one problem, got:\n" + "\n".join(lines)
    line = lines[0]
    for needle in (conf, "main", "port"):
        assert needle in line, "the problem line must name %r: %r" % (needle, line)


def test_check_config_two_problems_two_lines(dproxy_bin, tmp_path):
    conf = _conf(tmp_path, "bad2.conf", port="abc", min_ttl="-5x")
    res = run_bin(dproxy_bin, "-c", conf, "--check-config")
    assert res.returncode == 1
    lines = _lines(res)
    assert len(lines) == 2, "expected one line per problem (2), got:\n" + "\n".join(lines)
    assert any("port" in l for l in lines) and any("min_ttl" in l for l in lines), "\n".join(lines)


def test_check_config_unknown_option_is_a_warning(dproxy_bin, tmp_path):
    conf = _conf(tmp_path, "unknown.conf", frobnicate_zz="1")
    res = run_bin(dproxy_bin, "-c", conf, "--check-config")
    assert res.returncode == 0, "an unknown option must not be fatal, got %d:\n%s%s" % (
        res.returncode, res.stdout, res.stderr)
    assert "frobnicate_zz" in res.stdout + res.stderr, "expected a warning naming the unknown option"


# Two sections both named '@a' make the uci_rs parser unwrap an error: the daemon must
# report the file as unparseable, not die with it.
PARSER_PANIC = "config dproxy '@a'\nconfig dproxy '@a'\n"


def test_check_config_parser_panic_is_an_error(dproxy_bin, tmp_path):
    conf = tmp_path / "panic.conf"
    conf.write_text(PARSER_PANIC)
    res = run_bin(dproxy_bin, "-c", str(conf), "--check-config")
    assert res.returncode == 1, "a file the UCI parser chokes on must make --check-config exit 1, got %d:\n%s%s" % (
        res.returncode, res.stdout, res.stderr)
    lines = _lines(res)
    assert any("cannot parse as UCI" in l and str(conf) in l for l in lines), \
        "expected one problem line naming the file:\n" + "\n".join(lines)
    assert "panicked" not in res.stderr, "the parser's panic must not reach the user:\n" + res.stderr


def test_sighup_with_unparseable_config_keeps_running(dproxy, upstream):
    a = upstream(["www 300 IN A 192.0.2.1"])
    px = dproxy(servers=[a])
    r = px.query("www.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)
    with open(px.conf, "w") as f:
        f.write(PARSER_PANIC)
    px.signal(signal.SIGHUP)
    time.sleep(0.5)
    assert px.alive(), "dproxy died reloading a file the UCI parser chokes on:\n" + px.stderr_text()[-3000:]
    err = px.stderr_text()
    assert "cannot parse as UCI" in err and "keeping the running configuration" in err, err[-3000:]
    r = px.query("www.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], "the old config (and cache) must stay:\n" + describe(r)
    px.write_config()
    px.signal(signal.SIGHUP)
    time.sleep(0.5)
    r = px.query("www.example.test")
    assert px.alive() and rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)


def test_unknown_option_daemon_runs(dproxy, upstream):
    up = upstream(["www 300 IN A 192.0.2.1"])
    px = dproxy(servers=[up], options={"frobnicate_zz": "1"})
    r = px.query("www.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)
    assert "frobnicate_zz" in px.stderr_text(), "expected a warning naming the unknown option in stderr:\n" + \
        px.stderr_text()[-2000:]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_exit_zero_within_1s_with_work_in_flight(dproxy, upstream, sig):
    up = upstream(["www 300 IN A 192.0.2.1"])
    up.mode = "silent"
    px = dproxy(servers=[up])
    idle = px.tcp_connect()                       # an idle TCP client
    busy = px.tcp_connect()                       # a TCP client waiting for an answer
    busy.sendall(tcp_frame(make_query("www.example.test").to_wire()))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.sendto(make_query("www.example.test", "AAAA").to_wire(), px.addr())
        up.wait_count(2, timeout=2)
        px.exit_checked = True                    # this test checks the exit itself
        t0 = time.monotonic()
        px.proc.send_signal(sig)
        try:
            rc = px.proc.wait(timeout=1.0)
        except Exception:  # noqa: BLE001
            px.proc.kill()
            px.proc.wait(timeout=5)
            pytest.fail("dproxy did not exit within 1 s of %s; stderr:\n%s" % (sig.name, px.stderr_text()[-3000:]))
        took = time.monotonic() - t0
    idle.close()
    busy.close()
    assert rc == 0, "exit status after %s must be 0, got %s; stderr:\n%s" % (sig.name, rc, px.stderr_text()[-3000:])
    assert took <= 1.0, took


def test_sighup_rereads_config_and_survives(dproxy, upstream):
    up = upstream(["www 300 IN A 192.0.2.1"])
    px = dproxy(servers=[up])
    for _ in range(3):
        px.signal(signal.SIGHUP)
        time.sleep(0.1)
    time.sleep(0.2)
    assert px.alive(), "dproxy died on SIGHUP:\n" + px.stderr_text()[-3000:]
    r = px.query("www.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.1"], describe(r)


def test_sighup_picks_up_new_server(dproxy, upstream):
    a = upstream(["www 300 IN A 192.0.2.1"])
    b = upstream(["www 300 IN A 192.0.2.2", "new 300 IN A 192.0.2.3"])
    px = dproxy(servers=[a])
    px.query("www.example.test")
    px.lists["server"] = [b.addr]
    px.write_config()
    px.signal(signal.SIGHUP)
    time.sleep(0.5)
    r = px.query("new.example.test")
    assert rrset_texts(r, rdtype="A") == ["192.0.2.3"], "after SIGHUP the new server list must be used:\n" + describe(r)
    assert b.count("new.example.test") >= 1 and a.count("new.example.test") == 0, a.summary() + "\n" + b.summary()
