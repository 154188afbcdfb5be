# `make bench`: dproxy side by side with dnsmasq and unbound (one thread),
# all forwarding to nsd behind +20 ms; see bench/bench.py. Not part of
# `make test`. Needs root for its own network namespaces (it falls back to
# host loopback without them) and writes the table to stdout and
# $(BENCH_OUT).
#
#   make bench         full run (hot / cold / mixed, callgrind, start-up,
#                      local names, persist file, DoT against unbound and stubby,
#                      callgrind of the full build, DNSSEC validation against
#                      unbound and dnsmasq over a signed hierarchy made at bench
#                      time, bench/dnssec.py), about 15 minutes
#   BENCH_ONLY=dnssec,dnssec-cg make bench   only the DNSSEC phases (5-8 minutes)
#   BENCH_ONLY=dot-ab BENCH_DOT_BEFORE=<another dproxy-full> make bench
#                      the two builds side by side over DoT at the paced rate
#                      (bench/dotab.py), about 2 minutes
#   make bench-quick   smaller counts, about 4 minutes (2.5 of them DNSSEC), for development
#   make profile       where dproxy's CPU goes on a hit and on a miss (perf
#                      samples by system call, bench/profile.py), under a minute
#   make test-bench    the tests of the bench's own tools (tests/bench: the DoT relay's
#                      TLS handshake classifier on openssl's handshakes, its drops; the
#                      DoT floor's forwarding; the side-by-side table's ratios), in
#                      `make test`, a few seconds
#
# BENCH_BUILD= skips the cargo builds (bench an existing binary, or set
# DPROXY_BIN=/path/to/dproxy, and DPROXY_FULL_BIN for the full build's rows); BENCH_NET=relay|host
# forces a network setup. The full build for the DoT and DNSSEC rows has a target directory of its
# own (target/bench-full), so that it does not replace the plain target/release/dproxy.

BENCH_BUILD ?= build
BENCH_OUT ?= /tmp/dproxy-bench/latest.md
BENCH_PY ?= python3

BENCH_FULL_BIN := target/bench-full/release/dproxy

.PHONY: bench-quick bench-deps bench-build-full profile test-bench

bench-deps: deps
	./scripts/install-bench-deps.sh

bench-build-full: rust
	$(CARGO) build --release --features full --target-dir target/bench-full

bench: bench-deps $(BENCH_BUILD) $(if $(BENCH_BUILD),bench-build-full)
	DPROXY_BIN=$${DPROXY_BIN:-$(CURDIR)/$(BIN)} DPROXY_FULL_BIN=$${DPROXY_FULL_BIN:-$(CURDIR)/$(BENCH_FULL_BIN)} $(BENCH_PY) bench/bench.py --out $(BENCH_OUT) --command "make bench$(if $(BENCH_BUILD),, BENCH_BUILD=)"

bench-quick: bench-deps $(BENCH_BUILD) $(if $(BENCH_BUILD),bench-build-full)
	DPROXY_BIN=$${DPROXY_BIN:-$(CURDIR)/$(BIN)} DPROXY_FULL_BIN=$${DPROXY_FULL_BIN:-$(CURDIR)/$(BENCH_FULL_BIN)} $(BENCH_PY) bench/bench.py --quick --out $(BENCH_OUT) --command "make bench-quick$(if $(BENCH_BUILD),, BENCH_BUILD=)"

profile: bench-deps $(BENCH_BUILD)
	DPROXY_BIN=$${DPROXY_BIN:-$(CURDIR)/$(BIN)} $(BENCH_PY) bench/profile.py

test-bench: deps
	$(PYTEST) -q tests/bench

TEST_PARTS += test-bench
