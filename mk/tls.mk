# The full build (cargo feature "full": DNS over TLS, the DNSSEC crypto core). `make
# test` runs its lint and its tests: the sans-IO DoT core against an in-memory rustls
# server, and against unbound and openssl s_server on loopback with certificates made
# at test time; the encrypted-upstream options; the DNSSEC core against zones signed
# at test time by ldns-signzone.
#
#   make build-full   target/release/dproxy built with --features full
#   make test-tls     clippy and every Rust test of the full build, then
#                     test-tls-integration
#   make test-tls-integration
#                     the daemon built full (target/test-release/dproxy, by that
#                     cargo test) against unbound serving DoT and fault servers
#                     (test_dot.py, test_dot_conns.py), and against dnsdist serving
#                     DoH and HTTP fault servers (test_doh.py); the three files side
#                     by side
#
# `make test` compiles the full build once: its clippy runs in `make lint`, its Rust
# tests are `make test-unit` (built with --features full), then the suites of
# test-tls-integration, side by side with test-integration's (test-suites, Makefile).

.PHONY: build-full test-tls test-tls-integration test-tls-integration-shared

build-full: rust
	$(CARGO) build --release --features full

test-tls: deps rust
	@# One pass for both profiles, as in `make lint`.
	$(CARGO) clippy --release --all-targets --features full -- -D warnings
	@# The test-release profile (Cargo.toml): release code without fat LTO.
	$(CARGO) test --profile test-release --features full
	@$(MAKE) --no-print-directory test-tls-integration

# The full daemon comes from the test build of `make test-unit` (the same command, so
# nothing is compiled again after it). Not `cargo build --bin dproxy`: without the
# dev-dependencies' features that compiles the library once more.
# DoT: unbound and fault servers of our own (test_dot, test_dot_conns); DoH: dnsdist
# (HTTP/2) in front of unbound, dnsmasq and a server of our own as bootstrap servers,
# HTTP/1.1 and HTTP/2 fault servers of our own. The files mostly wait on timers: each
# runs in a pytest-xdist worker of its own (--dist loadfile), its tests one after
# the other as before and its module fixtures (unbound, dnsdist) started once; then
# the tests marked `alone` (tests/integration/conftest.py) one at a time, as in
# `make test-integration`.
TLS_IT_FILES := tests/integration/test_dot.py tests/integration/test_dot_conns.py \
	tests/integration/test_doh.py
TLS_IT_RUN = DPROXY_FULL=1 DPROXY_BIN=$(CURDIR)/target/test-release/dproxy $(PYTEST) -q
TLS_IT_SHARED = $(TLS_IT_RUN) -n 2 --dist loadfile -m "not alone" $(TLS_IT_FILES)
TLS_IT_ALONE = $(TLS_IT_RUN) -m alone $(TLS_IT_FILES)
test-tls-integration: deps rust
	$(CARGO) test --profile test-release --features full --no-run
	$(TLS_IT_SHARED)
	$(TLS_IT_ALONE)

# In `make test` these run side by side with the plain daemon's suite (the
# Makefile's test-suites, after test-unit has built the full daemon).
test-tls-integration-shared:
	$(TLS_IT_SHARED)
