"""Fixtures for dproxy's integration tests.

  dproxy      factory: dproxy(servers=[...], options={...}, lists={...},
              listen6=False, listen_extra=[...]) -> started Dproxy; stopped with SIGTERM at
              teardown, which also asserts exit status 0 within 1 s.
  upstream    factory: upstream(records=[...], origin=..., soa=...) ->
              started FakeUpstream on its own 127.0.0.x address.
  nsd         session-wide nsd serving example.test and 2.0.192.in-addr.arpa.
  dproxy_bin  absolute path of the binary under test ($DPROXY_BIN).
  shared_dir  world-writable temp dir for files the daemon uses after
              dropping root (hosts, leases, persist files).

Everything listens on loopback with random ports in per-test tmp dirs, so
several runs can share a machine, and the tests of one run can run in parallel
workers (pytest-xdist, `make test-integration`): the tests marked `alone` below
run afterwards, one at a time, with nothing of the suite beside them.
"""
import os
import shutil
import tempfile

import pytest

from harness.dproxy import Dproxy, finish_all
from harness.nsd import NsdServer
from harness.upstream import FakeUpstream

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


# CPU-heavy tests: floods and bulk loads that keep a core busy for seconds. Beside
# other tests they would slow those daemons past their time bounds (and be slowed
# past their own), so `make test-integration` runs them after the parallel part,
# by themselves (pytest -m alone). Plain `pytest tests/integration` runs everything
# in one process, as always. Keyed by file, then test function (every parameter).
ALONE = {
    "test_security.py": {
        "test_forged_answer_flood_leaves_cache_clean",
        "test_rate_limited_flooder_other_client_still_answered",
        "test_unique_name_flood_keeps_memory_within_budget",
        "test_malformed_packets_from_fuzz_corpus_and_generated",
    },
    "test_blocklist.py": {
        "test_million_domain_list_memory_and_load_time",
    },
    # Bursts of 100 and 256 queries over TLS that count the connections dproxy opens:
    # a starved daemon opens more than the test allows (`make test-tls-integration`
    # runs them after its parallel part too).
    "test_dot_conns.py": {
        "test_a_hundred_queries_in_flight_share_one_connection",
        "test_a_second_burst_reuses_the_open_connections",
    },
}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "alone: CPU-heavy; run after the parallel part with no other test beside it")


def pytest_collection_modifyitems(config, items):
    for item in items:
        names = ALONE.get(os.path.basename(str(item.fspath)), ())
        if getattr(item, "originalname", item.name) in names:
            item.add_marker(pytest.mark.alone)


def _binary():
    return os.environ.get("DPROXY_BIN") or os.path.join(REPO, "target", "release", "dproxy")


@pytest.fixture(scope="session")
def dproxy_bin():
    path = _binary()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail("dproxy binary not found at %s (set DPROXY_BIN or run `make build`)" % path,
                    pytrace=False)
    return path


@pytest.fixture
def upstream():
    made = []

    def make(records=(), **kw):
        up = FakeUpstream(records=records, **kw).start()
        made.append(up)
        return up

    yield make
    for up in made:
        up.stop()


@pytest.fixture
def dproxy(dproxy_bin):
    # Started as root, dproxy drops to `nobody` (option user): its config,
    # hosts file and control socket live in a world-accessible temp dir (not
    # pytest's 0700 tmp_path) so that SIGHUP re-reads still work after the drop.
    base = tempfile.mkdtemp(prefix="dproxy-it-")
    os.chmod(base, 0o755)
    made = []

    def make(servers=(), options=None, lists=None, listen6=False, args=(), listen_extra=()):
        workdir = os.path.join(base, "d%d" % len(made))
        os.makedirs(workdir)
        os.chmod(workdir, 0o777)
        d = Dproxy(dproxy_bin, workdir, servers=servers,
                   options=options, lists=lists, listen6=listen6, args=args,
                   listen_extra=listen_extra)
        made.append(d)
        return d.start()

    yield make
    finish_all(made, base)


@pytest.fixture(scope="session")
def nsd(tmp_path_factory):
    server = NsdServer(tmp_path_factory.mktemp("nsd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def shared_dir():
    """A world-writable temp dir for files the daemon reads or writes after
    it dropped root (hosts, leases, persist files)."""
    base = tempfile.mkdtemp(prefix="dproxy-files-")
    os.chmod(base, 0o777)
    yield base
    shutil.rmtree(base, ignore_errors=True)
