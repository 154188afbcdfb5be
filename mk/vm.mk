# The router binaries on real kernels, under full-system qemu (TCG, no KVM).
#
#   make vm-test TARGET=mips|mipsel|armv7|aarch64
#                  boots a kernel of that architecture with an initramfs holding
#                  dist/dproxy-<version>-<triple> and tests/vm/init (PID 1, built
#                  with the same cross toolchain), which runs dproxy with the
#                  default local_service 1 and prints one line per check;
#                  tests/vm/run.py judges the console
#   make vm-test-all   the four targets, one after the other
#   make test-vm       mips and armv7; `make test` runs vm-lint in the host lane,
#                      test-vm-mips and test-vm-armv7 in the two cross lanes
#
# Kernels: scripts/vm-kernel.sh (Debian's for armv7, aarch64 and mipsel; built
# once from linux-source-6.1 for big-endian mips), cached under ~/.cache/dproxy/vm.
# Uses CROSS_* from mk/cross.mk.

VM_TARGETS := mips mipsel armv7 aarch64
VM_INIT = $(CROSS_DIR)/$(CROSS_TRIPLE)/debug/dproxy-vm-init
VM_WORK = $(CURDIR)/target/vm/$(TARGET)
# Seconds from qemu's start to the last result line, at most (a loaded 2-core
# machine boots the slowest target in well under a minute).
VM_TIMEOUT ?= 300

.PHONY: vm-test vm-test-all vm-setup vm-check-target vm-init vm-lint test-vm test-vm-mips \
	test-vm-armv7

vm-setup:
	@./scripts/vm-setup.sh

vm-check-target:
	@case " $(VM_TARGETS) " in *" $(TARGET) "*) ;; \
	    *) echo "usage: make vm-test TARGET=<$(VM_TARGETS)>" >&2; exit 2 ;; esac

# The test program's size does not matter: it is built like the unit tests of
# `make cross-test` (mk/cross.mk: CROSS_TEST_PROFILE, and their std: unwinding, opt-level
# 0, no LTO, built once per machine by scripts/cross-std.sh), in the same target dir, so
# the libc that test-cross-<target> built is reused. The program itself is at opt-level 1
# (see its Cargo.toml). Still a static musl executable (the rustflags of
# .cargo/config.toml, the same zig link); a panic unwinds and prints its message on
# the console before PID 1 exits (the kernel then panics, and qemu stops: -no-reboot,
# panic=-1). It was built like the daemon (fat LTO over the release std, opt-level
# "s"): in a clean clone after test-cross-mips and cross-full-mips the test-vm-mips
# step took 47 CPU-seconds, 7 now (2026-11-30, a loaded 2-core machine). Most of the
# 47 was zig building musl's libc.a and libunwind.a once more during that link (a
# variant the daemon's own links had not needed), then the LTO (about 5) and libc
# (about 1); qemu takes about 3 (mips) and 5-6 (armv7) of what is left.
vm-init: vm-check-target cross-setup
	@set -e; sysroot=$$($(CROSS_STD) test $(CROSS_TEST_STD) $(CROSS_TEST_PROFILE)); \
	echo "cd tests/vm/init && cargo build --locked --target $(CROSS_TRIPLE) $(CROSS_TEST_PROFILE) --sysroot $$sysroot"; \
	cd tests/vm/init && $(CROSS_CARGO) build --locked --target $(CROSS_TRIPLE) \
	    $(CROSS_TEST_PROFILE) $(CROSS_SYSROOT)

vm-test: vm-check-target vm-setup cross vm-init
	@set -e; out=$$(./scripts/vm-kernel.sh $(TARGET)); \
	kernel=$$(echo "$$out" | sed -n 1p); module=$$(echo "$$out" | sed -n 2p); \
	python3 tests/vm/run.py --target $(TARGET) --dproxy $(CROSS_DIST) --init $(VM_INIT) \
	    --kernel "$$kernel" --module "$$module" --timeout $(VM_TIMEOUT) --workdir $(VM_WORK)

vm-test-all:
	@for t in $(VM_TARGETS); do $(MAKE) --no-print-directory vm-test TARGET=$$t || exit 1; done

# The test program is a crate of its own: `make lint` does not see it.
vm-lint: rust
	cd tests/vm/init && $(CARGO) fmt --check
	cd tests/vm/init && CARGO_TARGET_DIR=$(CURDIR)/target/vm-init-host \
	    $(CARGO) clippy --locked --all-targets -- -D warnings

test-vm: vm-lint test-vm-mips test-vm-armv7

test-vm-mips:
	@$(MAKE) --no-print-directory vm-test TARGET=mips

test-vm-armv7:
	@$(MAKE) --no-print-directory vm-test TARGET=armv7

TEST_SETUP += vm-setup
TEST_PARTS += vm-lint
TEST_CROSS_PARTS += test-vm-mips
TEST_CROSS2_PARTS += test-vm-armv7
