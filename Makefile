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

# Fragments add their own targets and append to TEST_PARTS.
TEST_PARTS :=
-include mk/*.mk

.PHONY: all build rust run test test-unit test-integration lint deps bench clean

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
	$(CARGO) clippy --all-targets -- -D warnings
	@# The release profile aborts on panic, which compiles other code (src/uci_guard.rs).
	$(CARGO) clippy --release -- -D warnings
	@# Layering: no I/O, clock or CSPRNG in src/core/, no import cycles (and the check's own test).
	python3 scripts/check-layers.py
	sh scripts/check-layers-selftest.sh

test-unit: rust
	$(CARGO) test --release

test-integration: deps build
	DPROXY_BIN=$(CURDIR)/$(BIN) $(PYTEST) -q tests/integration

test: deps lint test-unit $(TEST_PARTS) test-integration

clean:
	$(CARGO) clean
	rm -rf dist
