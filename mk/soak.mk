# `make soak`: the real daemon under steady mixed load (dnsperf Zipf over 50,000
# names at a few hundred q/s plus TCP clients) against nsd behind +20 ms, while a
# fault script on a fixed seed flaps the link, kills the upstream, rewrites
# resolv.conf, hosts and lease files, storms SIGHUP, kills -9 mid persist write and
# breaks the config; see bench/soak.py. Not part of `make test`. Needs root.
#
#   make soak                   20 minutes
#   make soak SOAK_MINUTES=5    shorter
#
# Writes the table (stdout and $(SOAK_OUT)/soak.md), per-minute records
# (soak.jsonl), the fault log and a plot of RSS and queries per second (soak.png).
# Exit status 1 if a check failed. SOAK_BUILD= soaks an existing binary
# (DPROXY_BIN=/path/to/dproxy).

SOAK_MINUTES ?= 20
SOAK_OUT ?= /tmp/dproxy-soak
SOAK_BUILD ?= build
SOAK_VENV := .tools/soak-venv

.PHONY: soak soak-deps

# matplotlib only draws the plot; it lives in a venv of its own, out of the test venv.
$(SOAK_VENV)/.ok:
	python3 -m venv $(SOAK_VENV)
	$(SOAK_VENV)/bin/pip install -q matplotlib
	touch $@

soak-deps: bench-deps $(SOAK_VENV)/.ok

soak: soak-deps $(SOAK_BUILD)
	DPROXY_BIN=$${DPROXY_BIN:-$(CURDIR)/$(BIN)} SOAK_MINUTES=$(SOAK_MINUTES) \
		$(SOAK_VENV)/bin/python bench/soak.py --out $(SOAK_OUT)
