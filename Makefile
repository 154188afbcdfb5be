# dproxy: build, run and test. Every target installs what it needs itself
# (scripts/install-deps.sh), so a fresh Debian 12 clone needs only these.
#
#   make run    build and run the daemon on 127.0.0.1:1296 and [::1]:1296
#   make test   every test (unit, integration, packaging, cross under qemu)
#   make bench  benchmarks against dnsmasq and unbound (not part of test)

CARGO ?= cargo
VENV := .tools/venv
PYTEST := $(VENV)/bin/pytest
BIN := target/release/dproxy

# Fragments add their own targets and append to TEST_PARTS.
TEST_PARTS :=
-include mk/*.mk

.PHONY: all build run test test-unit test-integration lint deps bench clean

all: build

build:
	$(CARGO) build --release

run: build
	./$(BIN) -c conf/dev.conf

deps:
	./scripts/install-deps.sh

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

test-unit:
	$(CARGO) test --release

test-integration: deps build
	DPROXY_BIN=$(CURDIR)/$(BIN) $(PYTEST) -q tests/integration

test: deps lint test-unit $(TEST_PARTS) test-integration

clean:
	$(CARGO) clean
	rm -rf dist
