"""`dproxy ctl stats --json` checked against the schema in this directory
(stats.schema.json), its numbers against the text output and the traffic sent,
and the configuration status (load time, failed reload) in both outputs."""
import json
import os
import signal
import time

import jsonschema
import pytest

from harness.tools import wait_until, write_file

SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "stats.schema.json")
RECORDS = ["n%d 300 IN A 192.0.2.%d" % (i, 10 + i) for i in range(8)]

# Text counter -> JSON name, where the JSON uses dnsmasq's metric name.
DNSMASQ_NAMES = {
    "upstream_queries": "dns_queries_forwarded",
    "local": "dns_local_answered",
    "stale": "dns_stale_answered",
    "servfail": "dns_unanswered",
    "tcp_clients": "tcp_connections",
}


def load_schema():
    with open(SCHEMA_PATH) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def stats_json(px):
    r = px.ctl("stats", "--json")
    assert r.returncode == 0, "ctl stats --json failed (%d): %s%s" % (r.returncode, r.stdout, r.stderr)
    assert r.stdout.endswith("}\n") and r.stdout.count("\n") == 1, \
        "expected one JSON object on one line:\n" + r.stdout
    return json.loads(r.stdout)


def validate(doc):
    errors = sorted(jsonschema.Draft202012Validator(load_schema()).iter_errors(doc), key=str)
    assert not errors, "ctl stats --json does not match stats.schema.json:\n" + "\n".join(
        "%s: %s" % ("/".join(map(str, e.path)), e.message) for e in errors)


def test_schema_rejects_what_it_must():
    """The schema is not a schema that accepts anything."""
    v = jsonschema.Draft202012Validator(load_schema())
    assert not v.is_valid({})
    assert not v.is_valid({"version": "0.1.0"})


def test_stats_json_matches_schema_and_text(dproxy, upstream, shared_dir):
    up = upstream(RECORDS)
    hosts = os.path.join(shared_dir, "hosts")
    write_file(hosts, "192.168.1.10 nas\n")
    px = dproxy(servers=[up], lists={"hosts": [hosts]})
    tcp_before = px.stats()["tcp_clients"]  # the harness's readiness check connects
    for i in range(4):                       # 4 misses, 4 inserts
        px.query("n%d.example.test" % i)
    for i in range(4):                       # 6 hits
        px.query("n%d.example.test" % i)
        if i < 2:
            px.query("n%d.example.test" % i, tcp=True)
    px.query("nas")                          # 1 local
    px.signal(signal.SIGUSR2)
    assert wait_until(lambda: px.stats()["link"] == "down")
    px.query("n7.example.test")              # offline miss: SERVFAIL
    doc = stats_json(px)
    text = px.stats()
    validate(doc)
    assert doc["version"] == open_version()
    # Every counter of the text output is in the JSON, under dnsmasq's name where one fits.
    for k, v in text.items():
        if k == "link" or k.startswith("upstream.") or k.startswith("config_"):
            continue
        name = DNSMASQ_NAMES.get(k, k)
        assert name in doc, "text counter %s is missing from the JSON (as %s)" % (k, name)
        if k != "uptime":
            assert doc[name] == v, "%s: text %r, JSON %r" % (k, v, doc[name])
    want = {"hits": 6, "misses": 5, "dns_local_answered": 1, "dns_unanswered": 1,
            "dns_queries_forwarded": up.count(), "tcp_connections": tcp_before + 2,
            "dns_cache_inserted": 4, "dns_cache_live_freed": 0, "cache_entries": 4,
            "link": "down", "link_auto": False, "config_reload": "none"}
    got = {k: doc.get(k) for k in want}
    assert got == want
    assert doc["hit_ratio"] == pytest.approx(6 / 11, abs=1e-4)
    now = time.time()
    assert now - 30 < doc["link_since"] <= now + 1 and doc["started"] <= doc["link_since"]
    assert doc["config_file"] == px.conf
    assert doc["upstreams"] == [{
        "address": up.addr + ":53" if ":" not in up.addr else up.addr, "protocol": "udp",
        "state": "up", "srtt_ms": text["upstream.0.srtt_ms"], "failures": 0,
        "queries": up.count(), "answers": up.count(), "timeouts": 0}]


def open_version():
    root = os.path.join(os.path.dirname(__file__), "..", "..", "Cargo.toml")
    with open(root) as f:
        for line in f:
            if line.startswith("version"):
                return line.split('"')[1]
    raise AssertionError("no version in Cargo.toml")


def test_live_entries_freed_for_room(dproxy, upstream):
    """dns_cache_live_freed counts entries evicted before they expired."""
    names = ["t%d" % i for i in range(40)]
    up = upstream(["%s 300 IN TXT \"%s\"" % (n, "x" * 200) for n in names])
    px = dproxy(servers=[up], options={"cache_size": "4"})
    for n in names:
        px.query(n + ".example.test", "TXT")
    doc = stats_json(px)
    validate(doc)
    assert doc["dns_cache_inserted"] == 40
    assert doc["dns_cache_live_freed"] == 40 - doc["cache_entries"] > 0, doc


def test_reload_with_bad_config_is_shown(dproxy):
    """A SIGHUP with a bad file keeps the old config: `ctl stats` says so, as
    text and JSON, with the time the config in force was loaded."""
    px = dproxy(options={"cache_size": "512"})
    first = stats_json(px)
    assert first["config_reload"] == "none" and first["config_reload_at"] is None
    assert abs(first["config_loaded"] - time.time()) < 30
    text = px.stats()
    assert text["config_reload"] == "none" and text["config_loaded"] == first["config_loaded"]

    good = px.config_text()
    with open(px.conf, "w") as f:
        f.write(good.replace("option cache_size '512'", "option cache_size 'lots'"))
    px.signal(signal.SIGHUP)
    assert wait_until(lambda: px.stats().get("config_reload") == "failed"), px.stats()
    text = px.stats()
    assert "main.cache_size" in text["config_reload_error"] and "lots" in text["config_reload_error"]
    assert text["config_loaded"] == first["config_loaded"]
    assert text["cache_budget"] == 512 * 1024, "the old config must stay in force"
    doc = stats_json(px)
    validate(doc)
    assert doc["config_reload"] == "failed" and doc["config_loaded"] == first["config_loaded"]
    assert doc["config_reload_error"] == text["config_reload_error"]
    assert doc["config_reload_at"] >= doc["config_loaded"]

    # A good file again: applied, and the failure is gone.
    time.sleep(1.05)  # so the new load time is a later second than the first
    with open(px.conf, "w") as f:
        f.write(good.replace("option cache_size '512'", "option cache_size '256'"))
    px.signal(signal.SIGHUP)
    assert wait_until(lambda: px.stats().get("config_reload") == "ok"), px.stats()
    text = px.stats()
    assert text["cache_budget"] == 256 * 1024 and "config_reload_error" not in text
    doc = stats_json(px)
    validate(doc)
    assert doc["config_reload_error"] is None and doc["config_loaded"] > first["config_loaded"]


def test_json_strings_are_escaped(dproxy, tmp_path):
    """A reload error quoting a value with quotes and backslashes is still valid JSON."""
    px = dproxy()
    good = px.config_text()
    with open(px.conf, "w") as f:
        f.write(good + "\toption port '5\"3\\\\x'\n")
    px.signal(signal.SIGHUP)
    assert wait_until(lambda: px.stats().get("config_reload") == "failed")
    doc = stats_json(px)
    validate(doc)
    assert '5"3\\' in doc["config_reload_error"], doc["config_reload_error"]
