# `make fuzz`: every cargo-fuzz target in fuzz/ for FUZZ_SECONDS each, one after the
# other (see fuzz/run.sh for toolchain, corpus and logs). Not part of `make test`;
# the property and differential tests in tests/ are, on stable Rust.
#
#   make fuzz                          60 s per target
#   make fuzz FUZZ_SECONDS=600         the 10-minute run the hardening issue asks for
#   make fuzz FUZZ_TARGETS=wire_answer one target
#   make fuzz-corpus                   regenerate the seed corpus and tests/data/packets
#
# Installs cargo-fuzz from crates.io if it is missing.

FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= wire_query wire_answer cache_ops config_load persist_decode tcp_frame local_names \
	blocklist_parse dnssec_walk doh_h2 doh_http1

.PHONY: fuzz fuzz-deps fuzz-build fuzz-corpus

fuzz-deps:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked

fuzz-build: fuzz-deps
	cd fuzz && RUSTC_BOOTSTRAP=1 nice -n 10 $(CARGO) fuzz build

fuzz: fuzz-build
	@fail=""; for t in $(FUZZ_TARGETS); do \
		./fuzz/run.sh $$t $(FUZZ_SECONDS) || fail="$$fail $$t"; \
	done; \
	if [ -n "$$fail" ]; then echo "fuzz: crashes in:$$fail (inputs in fuzz/artifacts/)"; exit 1; fi

fuzz-corpus: deps
	$(VENV)/bin/python fuzz/gen_corpus.py
