# dproxy: build, run and test. Every target installs what it needs itself
# (scripts/install-deps.sh), so a fresh Debian 12 clone needs only these.
#
#   make run    build and run the daemon on 127.0.0.1:1296 and [::1]:1296
#   make test   every test (unit, integration, packaging, cross under qemu)
#   make bench  benchmarks against dnsmasq and unbound (not part of test)

# rustup's cargo when there is one, else Debian's (scripts/ensure-rust.sh installs it).
CARGO ?= $(shell command -v cargo 2>/dev/null || echo /usr/bin/cargo)
VENV := .tools/venv
PYTEST := $(VENV)/bin/pytest
BIN := target/release/dproxy

# Fragments add their own targets and append to TEST_SETUP (the installers the
# cross lanes need, run first and one at a time; the host lane runs its own
# installers, their downloads overlapping the cross builds), TEST_PARTS (parts
# that mostly wait: daemons, timers, shell and Node tests) or TEST_CROSS_PARTS and
# TEST_CROSS2_PARTS (the two lanes of parts that mostly compile or emulate; mostly
# single-threaded chains, so the two run side by side).
TEST_SETUP :=
TEST_PARTS :=
TEST_CROSS_PARTS :=
TEST_CROSS2_PARTS :=
-include mk/*.mk

.PHONY: all build rust run test test-unit test-integration test-suites test-integration-shared \
	lint deps bench clean \
	test-lane-host test-lane-cross test-lane-cross2

all: build

build: rust
	$(CARGO) build --release

rust:
	@./scripts/ensure-rust.sh

run: build
	./$(BIN) -c conf/dev.conf

deps:
	./scripts/install-deps.sh

lint: rust
	$(CARGO) fmt --check
	@# One pass for what `clippy --all-targets` and `clippy --release` check: the
	@# library and binary with the release profile, which aborts on panic and so
	@# compiles other code (src/uci_guard.rs), and the test targets (always unwinding).
	@# After the full pass, `--lib --bins` alone would save about 13 of the two passes'
	@# 90 to 100 CPU-seconds, but leave the plain build's tests (its refusals of what needs
	@# dproxy-full, the unit tests without the TLS ones) unchecked.
	$(CARGO) clippy --release --all-targets -- -D warnings
	@# The same for the full build (mk/tls.mk), whose tests `make test-unit` runs; the
	@# dependencies both builds share are checked once.
	$(CARGO) clippy --release --all-targets --features full -- -D warnings
	@# Layering: no I/O, clock or CSPRNG in src/core/, no import cycles (and the check's own test).
	python3 scripts/check-layers.py
	sh scripts/check-layers-selftest.sh

# The test-release profile (Cargo.toml): release code at opt-level "s" without fat
# LTO. With the full features, so that one compile of the library, its tests and the
# tests in tests/ serves both builds: every test of the plain build runs in the full
# one too, except the plain build's refusals of what needs dproxy-full, which the
# integration suite checks on the plain daemon (tests/integration/test_plain_build.py).
# The tests in tests/ are one binary, tests/it (one module per topic: its
# dev-dependencies are compiled and linked once), and tests/localnames_mem.rs, which
# counts the heap with a global allocator and so needs a process of its own. The full
# daemon built next to the tests (target/test-release/dproxy) is the one the DoT and
# DoH suites run (mk/tls.mk). `cargo test` alone still runs the plain build's tests.
test-unit: rust
	$(CARGO) test --profile test-release --features full

# The suite in IT_WORKERS parallel workers (pytest-xdist; every test has its own
# daemons, ports and files, and the tests mostly wait on timers), then the CPU-heavy
# tests marked `alone` one at a time (tests/integration/conftest.py).
IT_WORKERS ?= 4
IT_SHARED = DPROXY_BIN=$(CURDIR)/$(BIN) $(PYTEST) -q -n $(IT_WORKERS) --dist load -m "not alone" tests/integration
IT_ALONE = DPROXY_BIN=$(CURDIR)/$(BIN) $(PYTEST) -q -m alone tests/integration
test-integration: deps build
	$(IT_SHARED)
	$(IT_ALONE)

# `make test`'s step for the two suites that mostly wait on timers and daemons: this
# one and the full build's DoT and DoH suites (mk/tls.mk, test-tls-integration). Their
# tests that may share the machine run side by side, each suite in its own workers
# (its output printed whole when it ends); then the tests marked `alone`, one at a
# time. One after the other they took about 67 and 52 s, mostly waiting.
test-suites: deps build
	$(CARGO) test --profile test-release --features full --no-run
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-integration-shared \
	    test-tls-integration-shared
	$(IT_ALONE)
	$(TLS_IT_ALONE)

test-integration-shared:
	$(IT_SHARED)

# After the cross lanes' installers, three lanes side by side: the host lane (its
# installers, the lint, the daemon, its unit tests, then the suites that mostly
# wait on timers and processes) and, at a lower CPU priority, the two cross lanes
# (builds for the routers, their tests under qemu; they start at once, being the
# longest). Their lines interleave: each step starts with "== [lane] target" and
# ends with its wall and CPU time (scripts/test-lane.sh); the installers run first
# are the lane "setup".
test:
	@./scripts/test-lane.sh setup "$(MAKE)" $(TEST_SETUP)
	@ready=$$($(MAKE) --no-print-directory -s cross-std-ready); \
	echo "== cross lanes' std already on this machine: $$ready"; \
	$(MAKE) --no-print-directory -j3 CROSS_STD_READY=$$ready test-lane-host test-lane-cross \
	    test-lane-cross2

test-lane-host:
	@./scripts/test-lane.sh host "$(MAKE)" deps lint build test-unit test-suites $(TEST_PARTS)

test-lane-cross:
	@nice -n 5 ./scripts/test-lane.sh cross "$(MAKE)" $(TEST_CROSS_PARTS)

test-lane-cross2:
	@nice -n 5 ./scripts/test-lane.sh cross2 "$(MAKE)" $(TEST_CROSS2_PARTS)

clean:
	$(CARGO) clean
	rm -rf dist
