"""The plain build (no cargo features, the router default) refuses what only dproxy-full
can do, with one clear error per entry and never a plaintext fallback: encrypted
upstreams and their options, DNSSEC validation.

`make test` runs the Rust tests of the crate with the full features only (one compile
for both), so the plain build's refusals are checked here, on the plain daemon the
integration suite runs (`make build`), through `--check-config`. The same cases as the
plain-only tests in tests/it/config_encrypted.rs and tests/it/dnssec_options.rs."""
import os

import pytest

from harness.cli import run_bin


@pytest.fixture(autouse=True)
def _plain_only():
    if os.environ.get("DPROXY_FULL") == "1":
        pytest.skip("checks the plain build; DPROXY_BIN is dproxy-full")


def _errors(dproxy_bin, tmp_path, body):
    """The `dproxy: error:` lines of --check-config as (place, problem), and its status."""
    conf = tmp_path / "dproxy"
    conf.write_text("config dproxy 'main'\n" + body)
    res = run_bin(dproxy_bin, "-c", str(conf), "--check-config")
    prefix = "dproxy: error: %s: " % conf
    errs = []
    for line in (res.stdout + res.stderr).splitlines():
        if line.startswith(prefix):
            place, _, problem = line[len(prefix):].partition(": ")
            errs.append((place, problem))
    assert (res.returncode == 1) == bool(errs), "status %d with errors %r:\n%s%s" % (
        res.returncode, errs, res.stdout, res.stderr)
    return errs


def _has(errs, place, text):
    return any(p == place and text in problem for p, problem in errs)


def test_plain_servers_load(dproxy_bin, tmp_path):
    assert _errors(dproxy_bin, tmp_path,
                   "\tlist server '192.0.2.1'\n\tlist server '192.0.2.2#5300'\n") == []


@pytest.mark.parametrize("entry", [
    "tls://1.1.1.1#cloudflare-dns.com",
    "1.1.1.1@853#cloudflare-dns.com",
    "https://dns.quad9.net/dns-query",
])
def test_encrypted_upstream_is_one_clear_error(dproxy_bin, tmp_path, entry):
    errs = _errors(dproxy_bin, tmp_path,
                   "\tlist server '192.0.2.1'\n\tlist server '%s'\n" % entry)
    assert len(errs) == 1, errs
    assert _has(errs, "main.server", "needs dproxy-full"), errs
    assert entry in errs[0][1], errs


@pytest.mark.parametrize("opt", [
    "option ca_file '/etc/ssl/certs/ca-certificates.crt'",
    "list bootstrap '9.9.9.9'",
    "list tls_pin 'a.b sha256/AAAA'",
    "option allow_plain_fallback '1'",
])
def test_option_of_encrypted_upstreams_is_an_error(dproxy_bin, tmp_path, opt):
    errs = _errors(dproxy_bin, tmp_path, "\t%s\n" % opt)
    assert _has(errs, "main." + opt.split()[1], "needs dproxy-full"), errs


@pytest.mark.parametrize("value", ["1", "yes", "on"])
def test_dnssec_on_is_one_clear_error(dproxy_bin, tmp_path, value):
    errs = _errors(dproxy_bin, tmp_path, "\toption dnssec '%s'\n" % value)
    assert len(errs) == 1, errs
    assert _has(errs, "main.dnssec", "needs dproxy-full"), errs


def test_dnssec_not_a_boolean_is_still_reported(dproxy_bin, tmp_path):
    errs = _errors(dproxy_bin, tmp_path, "\toption dnssec 'maybe'\n")
    assert _has(errs, "main.dnssec", "not a boolean"), errs


def test_dnssec_off_loads(dproxy_bin, tmp_path):
    assert _errors(dproxy_bin, tmp_path, "\toption dnssec '0'\n") == []
