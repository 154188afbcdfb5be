# Static musl cross builds for routers, run under qemu-user.
#
#   make cross TARGET=mips|mipsel|armv7|aarch64|x86_64 [FEATURES=full]
#                      -> dist/dproxy-<version>-<rust-triple>, static, stripped
#                      (FEATURES=full: dist/dproxy-full-<version>-<rust-triple>,
#                      with DNS over TLS, built in its own target dir)
#   make cross-all     every target above, one after the other
#   make cross-test TARGET=...
#                      the built binary answering DNS under qemu on loopback,
#                      then the crate's unit tests for that target under qemu
#   make size          sizes of every built binary; fails if mips > 400 KB, or
#                      if a full mips binary was built and is over 1.1 MiB
#   make test-cross    cross-test for mips and armv7, then the size check; `make
#                      test` runs its parts in two lanes side by side, one per
#                      target: test-cross-mips then cross-full-mips, and
#                      test-cross-armv7 then cross-full-armv7 (the size check
#                      ends test-openwrt-ipk)
#
# Debian's Rust 1.96 (rustc-web, cargo-web, rust-web-src) builds std from
# source with -Zbuild-std, once per machine (scripts/cross-std.sh, CROSS_STD below);
# it is called by full path and with its own target dir so it never touches the
# rustup toolchain or the host build in target/.
# scripts/cross-setup.sh installs it, qemu and zig (the linker, see cross/).

CROSS_TARGETS := mips mipsel armv7 aarch64 x86_64
CROSS_TRIPLE_mips := mips-unknown-linux-musl
CROSS_TRIPLE_mipsel := mipsel-unknown-linux-musl
CROSS_TRIPLE_armv7 := armv7-unknown-linux-musleabihf
CROSS_TRIPLE_aarch64 := aarch64-unknown-linux-musl
CROSS_TRIPLE_x86_64 := x86_64-unknown-linux-musl
CROSS_QEMU_mips := qemu-mips-static
CROSS_QEMU_mipsel := qemu-mipsel-static
CROSS_QEMU_armv7 := qemu-arm-static
CROSS_QEMU_aarch64 := qemu-aarch64-static
CROSS_QEMU_x86_64 :=
# The flash budget for the mips binary, in bytes (400 KB).
CROSS_SIZE_BUDGET := 409600
# The budget of the full mips binary (DoT, DoH over HTTP/1.1 and HTTP/2, DNSSEC
# validation), 1.2 MiB: rustls and ring alone are about 590 KB on mips, the DNSSEC
# validator about 70 KB, HTTP/2 with its HPACK decoder about 36 KB.
CROSS_SIZE_BUDGET_FULL := 1258291
# Cargo features of the cross build: empty (the plain build) or "full".
FEATURES ?=
CROSS_VARIANT = $(if $(strip $(FEATURES)),-$(strip $(FEATURES)))

CROSS_VERSION := $(shell sed -n 's/^version *= *"\(.*\)"/\1/p' $(CURDIR)/Cargo.toml | head -n 1)
CROSS_TRIPLES := $(foreach t,$(CROSS_TARGETS),$(CROSS_TRIPLE_$(t)))
CROSS_TRIPLE = $(CROSS_TRIPLE_$(TARGET))
CROSS_QEMU = $(CROSS_QEMU_$(TARGET))
# One target dir per target: builds of different targets share no lock, so two of
# them can run side by side (the lanes of `make test`). The plain and the full build
# of a target share it (and one std: the flags of CROSS_BUILD_STD, not of a variant).
CROSS_DIR = $(CURDIR)/target/cross/$(TARGET)
CROSS_DIST = dist/dproxy$(CROSS_VARIANT)-$(CROSS_VERSION)-$(CROSS_TRIPLE)
CROSS_FEATURE_ARGS = $(if $(strip $(FEATURES)),--features $(strip $(FEATURES)))

# RUSTFLAGS from the environment would replace the musl rustflags in
# .cargo/config.toml; CARGO* and RUSTUP* variables left by a rustup proxy
# would point back at the rustup toolchain.
CROSS_CARGO_ENV = env -u RUSTFLAGS -u CARGO -u RUSTUP_TOOLCHAIN -u CARGO_BUILD_TARGET \
	RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 $(CROSS_CC_ENV)
CROSS_CARGO = $(CROSS_CARGO_ENV) CARGO_TARGET_DIR=$(CROSS_DIR) /usr/bin/cargo
# std for a target, built once per machine and kept outside the clone
# (scripts/cross-std.sh; ~/.cache/dproxy/std): `$(CROSS_STD) release|test <how std is
# built>` prints a sysroot, which CROSS_SYSROOT (a shell variable of the recipe)
# hands to rustc. The builds themselves then compile no std.
CROSS_STD = CROSS_STD_CARGO='$(CROSS_CARGO_ENV) /usr/bin/cargo' ./scripts/cross-std.sh $(CROSS_TRIPLE)
CROSS_SYSROOT = --config "target.$(CROSS_TRIPLE).rustflags=[\"--sysroot=$$sysroot\"]"
CROSS_STD_HAVE = ./scripts/cross-std.sh --have $(CROSS_TRIPLE)
# C code (ring, full build only) is compiled by the same zig wrappers that link.
CROSS_CC_ENV = CC_$(subst -,_,$(CROSS_TRIPLE))=$(CURDIR)/cross/$(CROSS_TRIPLE)-cc \
	AR_$(subst -,_,$(CROSS_TRIPLE))=$(CURDIR)/cross/zig-ar
# The smallest std.
CROSS_BUILD_STD := -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size
# Release binaries only (not the unit tests): Debug formatting compiles to nothing
# (dproxy logs only Display), about 4 % of the mips binary; with panic=abort nothing
# needs unwind tables (about 8 %). A panic stops the process at once, without printing
# its message (panic=immediate-abort): the message formatting and printing machinery
# was 29,616 bytes of the mips binary (427,508 -> 397,892). A panic is a bug and aborts
# either way (procd respawns the daemon; the uci_guard child's death is a config
# error); host builds, OpenWrt's own build and the unit tests keep the message.
# LLVM's inlining threshold a little below opt-level "s"'s (60): 1,872 bytes less on
# mips (410,636 -> 408,764), and the x86 build with the same threshold answers a cache
# hit in as many instructions as without it (callgrind, 2,117 against 2,127); 150
# gave 551,852 bytes, and 10 a longer hit path.
# Router binaries are built for size: "s" measured smaller than "z" on mips once
# unwinding is gone (394,756 against 424,020 bytes), and it keeps loops such as the TTL
# rewrite unrolled. (The release profile of Cargo.toml is the host build's, level 3.)
CROSS_OPT_FLAGS = --config 'profile.release.opt-level="s"'
# Joined to the rustflags of .cargo/config.toml.
CROSS_SIZE_FLAGS = $(CROSS_OPT_FLAGS) --config 'target.$(CROSS_TRIPLE).rustflags=["-Zunstable-options", "-Cpanic=immediate-abort", "-Zlocation-detail=none", "-Zfmt-debug=none", "-Cforce-unwind-tables=no", "-Cllvm-args=-inline-threshold=60", "-Clink-arg=-Wl,-T,$(CURDIR)/cross/discard-release.ld"]'
# Unit tests need the test crate and unwinding. std without its "backtrace" feature
# (-Zbuild-std-features without "backtrace"): object, gimli, addr2line and miniz_oxide
# are not built, a fifth of this build at opt-level 0; a failing test still prints its
# panic message and location, only no symbolised backtrace. cargo adds proc_macro
# (3 % of the build, unused: proc macros run on the host) to any build of std, named
# crates or not, so it cannot be left out here.
CROSS_TEST_STD := -Zbuild-std=std,panic_unwind,test -Zbuild-std-features=panic-unwind
# Everything at opt-level 0 and without debug info: the cheapest build whose tests still
# run in seconds under qemu. Measured for mips on a fresh target dir, CPU seconds
# (user+sys) of the build, then of the whole test binary under qemu-mips (2026-11-30,
# a loaded 2-core machine, so only CPU counts; the runs with 3,000 fuzz rounds):
#   all at opt-level 1, with backtrace (before; run with 500 rounds)    149 build,  2 run
#   std and the other crates at 0, dproxy at 1                           114 build, 16 run
#   all at 0                                                              81 build, 30 run
#   all at 0, std without backtrace (taken)                               65 build, 29 run
#   armv7, the same as taken                                              79 build, 60 run
# At opt-level 0 the two randomised localnames parser tests were most of the run (armv7:
# 17 and 8.5 CPU-seconds), so on these targets they run the first 500 of their 3,000
# rounds, which the host's unit tests in `make test` run in full (src/localnames/tests.rs):
# the whole run then takes 15 CPU-seconds under qemu-mips and 26 under qemu-arm.
# An earlier try of std at 0 with dproxy at 1 had two localnames tests run for minutes
# under qemu. The cause: every line reader zero-filled its 64 KiB buffer with
# Vec<u8>::resize, and with std at opt-level 0 that is std's unoptimised copy (generic
# code already instantiated in an upstream crate is shared, not compiled again at the
# caller's level; with debug assertions it checks every byte written). The reader now
# starts with a zeroed allocation (calloc) instead, and with 3,000 rounds those two
# tests took about 6 CPU-seconds each under qemu-mips at opt-level 0 (perf on an x86
# build of the same kind: 95 % of their time was in that resize, 6.5 CPU-seconds each,
# now 0.4). The slow try with only the test harness at 0 was most likely the same
# instance shared from the test crate (not checked).
CROSS_TEST_PROFILE := --config profile.test.debug=false --config profile.dev.debug=false \
	--config profile.test.opt-level=0 --config profile.dev.opt-level=0
# The binaries' own tests only when they have any: src/main.rs calls into the
# library, and a --bins test build compiles the library once more (without cfg(test))
# to link a test binary that runs nothing.
CROSS_TEST_BIN_SRC := $(shell grep -rlE --include='*.rs' '^[[:space:]]*(pub[[:space:]]+)?mod[[:space:]]|\#\[(test|cfg\(test\))\]' src/main.rs src/bin 2>/dev/null)
CROSS_TEST_KINDS = $(if $(wildcard src/lib.rs),--lib) $(if $(or $(CROSS_TEST_BIN_SRC),$(if $(wildcard src/lib.rs),,none)),--bins)
# Unit tests skipped per target. On mips (big-endian) under qemu-user,
# musl's getifaddrs() never returns: qemu's netlink translation gives the
# guest an attribute of length 0 (a plain C program hangs the same way).
# These tests list the host's interfaces; they run on every other target,
# and on a real big-endian MIPS kernel the same code (local_service 1,
# on-link and off-link clients) passes in `make vm-test TARGET=mips`.
CROSS_TEST_SKIP_mips := acl::tests::attached_subnets_include_loopback \
	acl::tests::deny_beats_allow_beats_local \
	acl::tests::local_service_admits_loopback_and_on_link_only
CROSS_TEST_ARGS = $(if $(CROSS_TEST_SKIP_$(TARGET)),-- $(foreach t,$(CROSS_TEST_SKIP_$(TARGET)),--skip $(t)))

.PHONY: cross-std-ready cross-std-have
# Prints "yes" when this machine has std for both kinds and both targets of `make
# test`'s cross lanes, else "no" (`make test` places a step by it, see the Makefile).
cross-std-ready:
	@ok=yes; for t in mips armv7; do \
	    $(MAKE) --no-print-directory -s cross-std-have TARGET=$$t 2>/dev/null || ok=no; \
	done; echo $$ok

cross-std-have: cross-check-target
	@$(CROSS_STD_HAVE) release $(CROSS_BUILD_STD) $(CROSS_SIZE_FLAGS) && \
	$(CROSS_STD_HAVE) test $(CROSS_TEST_STD) $(CROSS_TEST_PROFILE)

.PHONY: cross cross-all cross-test cross-setup cross-check-target size size-table test-cross \
	test-cross-mips test-cross-armv7 cross-full-mips cross-full-armv7 cross-test-dot

cross-setup:
	@./scripts/cross-setup.sh

cross-check-target:
	@if [ -z "$(CROSS_TRIPLE)" ]; then \
	    echo "usage: make $(firstword $(MAKECMDGOALS) cross) TARGET=<$(CROSS_TARGETS)>" >&2; \
	    exit 2; \
	fi

cross: cross-check-target cross-setup
	@# cargo does not see changes to the linker wrappers: relink after one.
	@bin=$(CROSS_DIR)/$(CROSS_TRIPLE)/release/dproxy; \
	if [ -f $$bin ] && [ -n "$$(find cross .cargo/config.toml -newer $$bin -print 2>/dev/null | head -n 1)" ]; then \
	    rm -f $$bin; \
	fi
	sysroot=$$($(CROSS_STD) release $(CROSS_BUILD_STD) $(CROSS_SIZE_FLAGS)) && \
	$(CROSS_CARGO) build --release --locked --target $(CROSS_TRIPLE) $(CROSS_FEATURE_ARGS) \
	    $(CROSS_SIZE_FLAGS) $(CROSS_SYSROOT)
	@mkdir -p dist
	@# Copied, then renamed into place: a lane that reads the binary never sees half a copy.
	cp $(CROSS_DIR)/$(CROSS_TRIPLE)/release/dproxy $(CROSS_DIST).tmp$$$$ && mv -f $(CROSS_DIST).tmp$$$$ $(CROSS_DIST)
	@info=$$(file -b $(CROSS_DIST)); \
	case $$info in \
	    *"statically linked"*stripped*) ;; \
	    *) echo "cross: $(CROSS_DIST) is not a static stripped executable: $$info" >&2; exit 1 ;; \
	esac; \
	case $$info in *"not stripped"*) echo "cross: $(CROSS_DIST) is not stripped" >&2; exit 1 ;; esac
	@echo "$(CROSS_DIST): $$(wc -c <$(CROSS_DIST)) bytes"

# One target after the other, even under make -j: one cargo at a time.
cross-all:
	@for t in $(CROSS_TARGETS); do $(MAKE) --no-print-directory cross TARGET=$$t || exit 1; done
	@$(MAKE) --no-print-directory size-table
	@n=$$(wc -c <dist/dproxy-$(CROSS_VERSION)-$(CROSS_TRIPLE_mips)); \
	if [ $$n -gt $(CROSS_SIZE_BUDGET) ]; then \
	    echo "cross-all: warning: mips is $$n bytes, over the budget of $(CROSS_SIZE_BUDGET) (make size fails)"; \
	fi

cross-test: cross
	python3 tests/cross/daemon_check.py --bin $(CROSS_DIST) --version $(CROSS_VERSION) \
	    $(if $(CROSS_QEMU),--runner $(CROSS_QEMU))
	sysroot=$$($(CROSS_STD) test $(CROSS_TEST_STD) $(CROSS_TEST_PROFILE)) && \
	$(CROSS_CARGO) test --locked --target $(CROSS_TRIPLE) $(CROSS_FEATURE_ARGS) $(CROSS_TEST_PROFILE) \
	    $(CROSS_SYSROOT) $(CROSS_TEST_KINDS) $(CROSS_TEST_ARGS)

# Sizes of the binaries in dist/ (those built).
size-table:
	@printf '%-34s %10s\n' target bytes
	@for tr in $(CROSS_TRIPLES); do \
	    f=dist/dproxy-$(CROSS_VERSION)-$$tr; \
	    if [ -f $$f ]; then printf '%-34s %10s\n' $$tr $$(wc -c <$$f); fi; \
	    f=dist/dproxy-full-$(CROSS_VERSION)-$$tr; \
	    if [ -f $$f ]; then printf '%-34s %10s\n' "$$tr (full)" $$(wc -c <$$f); fi; \
	done

# Rebuilds mips (a no-op when current) so the budget is checked on this tree.
# The full mips binary is rebuilt and checked only when one was built before
# (a cold full build takes minutes; `make cross TARGET=mips FEATURES=full` first).
size:
	@out=$$($(MAKE) --no-print-directory cross TARGET=mips FEATURES= 2>&1) || { echo "$$out" >&2; exit 1; }
	@if [ -f dist/dproxy-full-$(CROSS_VERSION)-$(CROSS_TRIPLE_mips) ]; then \
	    out=$$($(MAKE) --no-print-directory cross TARGET=mips FEATURES=full 2>&1) || { echo "$$out" >&2; exit 1; }; \
	fi
	@$(MAKE) --no-print-directory size-table
	@n=$$(wc -c <dist/dproxy-$(CROSS_VERSION)-$(CROSS_TRIPLE_mips)); \
	if [ $$n -gt $(CROSS_SIZE_BUDGET) ]; then \
	    echo "size: mips binary is $$n bytes, over the budget of $(CROSS_SIZE_BUDGET)" >&2; exit 1; \
	else echo "size: mips $$n bytes, within the budget of $(CROSS_SIZE_BUDGET)"; fi
	@f=dist/dproxy-full-$(CROSS_VERSION)-$(CROSS_TRIPLE_mips); \
	if [ -f $$f ]; then \
	    n=$$(wc -c <$$f); \
	    if [ $$n -gt $(CROSS_SIZE_BUDGET_FULL) ]; then \
	        echo "size: full mips binary is $$n bytes, over the budget of $(CROSS_SIZE_BUDGET_FULL)" >&2; exit 1; \
	    else echo "size: full mips $$n bytes, within the budget of $(CROSS_SIZE_BUDGET_FULL)"; fi; \
	fi

test-cross: test-cross-mips test-cross-armv7
	@# The mips binary is built by now: a change that grows it past the budget fails here.
	@$(MAKE) --no-print-directory size

test-cross-mips:
	@$(MAKE) --no-print-directory cross-test TARGET=mips

test-cross-armv7:
	@$(MAKE) --no-print-directory cross-test TARGET=armv7

# The full build on a router target: the binary under qemu-user answers through a
# real unbound serving DNS over TLS with a test CA (tests/cross/dot_check.py), the
# check that rustls and ring work on that CPU.
cross-test-dot: cross-check-target
	@$(MAKE) --no-print-directory cross TARGET=$(TARGET) FEATURES=full
	python3 tests/cross/dot_check.py --bin dist/dproxy-full-$(CROSS_VERSION)-$(CROSS_TRIPLE) \
	    $(if $(CROSS_QEMU),--runner $(CROSS_QEMU))

# The full mips binary (the dproxy-full .ipk, its size budget, its DoT check). Each
# cross lane of `make test` holds one target, so the full build follows the plain one
# in the same target dir and reuses its std; test-openwrt-ipk comes after it.
cross-full-mips:
	@$(MAKE) --no-print-directory cross-test-dot TARGET=mips

cross-full-armv7:
	@$(MAKE) --no-print-directory cross-test-dot TARGET=armv7

TEST_SETUP += cross-setup
TEST_CROSS_PARTS += test-cross-mips cross-full-mips
TEST_CROSS2_PARTS += test-cross-armv7 cross-full-armv7
