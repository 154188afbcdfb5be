# The full build (cargo feature "full": DNS over TLS, the DNSSEC crypto core). `make
# test` runs its lint and its tests: the sans-IO DoT core against an in-memory rustls
# server, and against unbound and openssl s_server on loopback with certificates made
# at test time; the encrypted-upstream options; the DNSSEC core against zones signed
# at test time by ldns-signzone.
#
#   make build-full   target/release/dproxy built with --features full
#   make test-tls     clippy and the unit, DoT and DNSSEC tests of the full build, and
#                     the daemon built full (target/test-release/dproxy, by that cargo test)
#                     against unbound serving DoT and fault servers (test_dot.py,
#                     test_dot_conns.py), and
#                     against dnsdist serving DoH and HTTP fault servers (test_doh.py)

.PHONY: build-full test-tls

build-full: rust
	$(CARGO) build --release --features full

test-tls: deps rust
	@# One pass for both profiles, as in `make lint`.
	$(CARGO) clippy --release --all-targets --features full -- -D warnings
	@# The test-release profile (Cargo.toml): release code without fat LTO.
	$(CARGO) test --profile test-release --features full --lib --test dot_core --test dot_servers \
	    --test config_encrypted --test dnssec_core --test dnssec_denial --test dnssec_chain \
	    --test dnssec_options
	@# That cargo test built target/test-release/dproxy with the full features too (the
	@# binary of the integration tests): the DoT tests run the daemon from it.
	@# DoT: unbound and fault servers of our own (test_dot, test_dot_conns); DoH: dnsdist
	@# (HTTP/2) in front of unbound, dnsmasq and a server of our own as bootstrap servers,
	@# HTTP/1.1 and HTTP/2 fault servers of our own.
	DPROXY_FULL=1 DPROXY_BIN=$(CURDIR)/target/test-release/dproxy $(PYTEST) -q \
	    tests/integration/test_dot.py tests/integration/test_dot_conns.py tests/integration/test_doh.py

TEST_PARTS += test-tls
