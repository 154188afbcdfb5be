# OpenWrt package: .ipk files without the SDK, and the tests of the
# feed Makefile, UCI config, procd init script and hotplug script.
#
#   make ipk ARCH=mips_24kc|mipsel_24kc|arm_cortex-a7_neon-vfpv4|aarch64_generic|x86_64
#                      -> dist/dproxy_<version>-r<release>_<arch>.ipk and
#                         dist/dproxy-full_<version>-r<release>_<arch>.ipk, from the
#                         static binaries of `make cross` (FEATURES= and FEATURES=full)
#   make test-openwrt  (part of `make test`) shell checks, the procd/UCI stub
#                      harness, the feed Makefile, and the mips .ipk under qemu

OPENWRT_ARCHES := mips_24kc mipsel_24kc arm_cortex-a7_neon-vfpv4 aarch64_generic x86_64
OPENWRT_TARGET_mips_24kc := mips
OPENWRT_TARGET_mipsel_24kc := mipsel
OPENWRT_TARGET_arm_cortex-a7_neon-vfpv4 := armv7
OPENWRT_TARGET_aarch64_generic := aarch64
OPENWRT_TARGET_x86_64 := x86_64
OPENWRT_TRIPLE_mips := mips-unknown-linux-musl
OPENWRT_TRIPLE_mipsel := mipsel-unknown-linux-musl
OPENWRT_TRIPLE_armv7 := armv7-unknown-linux-musleabihf
OPENWRT_TRIPLE_aarch64 := aarch64-unknown-linux-musl
OPENWRT_TRIPLE_x86_64 := x86_64-unknown-linux-musl

OPENWRT_VERSION := $(shell sed -n 's/^version *= *"\(.*\)"/\1/p' $(CURDIR)/Cargo.toml | head -n 1)
OPENWRT_RELEASE := $(shell sed -n 's/^PKG_RELEASE:=//p' $(CURDIR)/openwrt/net/dproxy/Makefile)
OPENWRT_TARGET = $(OPENWRT_TARGET_$(ARCH))
OPENWRT_BIN = dist/dproxy-$(OPENWRT_VERSION)-$(OPENWRT_TRIPLE_$(OPENWRT_TARGET))
OPENWRT_BIN_FULL = dist/dproxy-full-$(OPENWRT_VERSION)-$(OPENWRT_TRIPLE_$(OPENWRT_TARGET))
OPENWRT_IPK = dist/dproxy_$(OPENWRT_VERSION)-r$(OPENWRT_RELEASE)_$(ARCH).ipk

.PHONY: ipk test-openwrt test-openwrt-scripts test-openwrt-ipk

ipk:
	@if [ -z "$(OPENWRT_TARGET)" ]; then \
	    echo "usage: make ipk ARCH=<$(OPENWRT_ARCHES)>" >&2; exit 2; \
	fi
	$(MAKE) --no-print-directory cross TARGET=$(OPENWRT_TARGET) FEATURES=
	./scripts/mkipk.sh --arch $(ARCH) --binary $(OPENWRT_BIN) \
	    --version $(OPENWRT_VERSION) --release $(OPENWRT_RELEASE) --out dist
	$(MAKE) --no-print-directory cross TARGET=$(OPENWRT_TARGET) FEATURES=full
	./scripts/mkipk.sh --arch $(ARCH) --binary $(OPENWRT_BIN_FULL) --package dproxy-full \
	    --version $(OPENWRT_VERSION) --release $(OPENWRT_RELEASE) --out dist

test-openwrt: test-openwrt-scripts test-openwrt-ipk

# `build` gives the host binary that checks the shipped config.
test-openwrt-scripts: build
	DPROXY_BIN=$(CURDIR)/$(BIN) sh tests/openwrt/run.sh

# The real package for mips_24kc, its binary run under qemu.
# Ends with `make size`: both mips binaries now exist, so both budgets are checked.
test-openwrt-ipk:
	@if [ ! -f mk/cross.mk ]; then \
	    echo "test-openwrt-ipk: SKIPPED, no mk/cross.mk (make cross) in this tree"; exit 0; \
	fi; \
	$(MAKE) --no-print-directory ipk ARCH=mips_24kc && \
	sh tests/openwrt/check-ipk.sh --qemu qemu-mips-static \
	    dist/dproxy_$(OPENWRT_VERSION)-r$(OPENWRT_RELEASE)_mips_24kc.ipk \
	    mips_24kc $(OPENWRT_VERSION)-r$(OPENWRT_RELEASE) && \
	sh tests/openwrt/check-ipk.sh --qemu qemu-mips-static --package dproxy-full \
	    dist/dproxy-full_$(OPENWRT_VERSION)-r$(OPENWRT_RELEASE)_mips_24kc.ipk \
	    mips_24kc $(OPENWRT_VERSION)-r$(OPENWRT_RELEASE) && \
	$(MAKE) --no-print-directory size

TEST_CROSS_PARTS += test-openwrt-ipk
# Where `make test` runs these tests (about 50-60 CPU-seconds, two cores' worth; they
# need only the host daemon, built early in the host lane): when this machine has the
# cross lanes' std already (CROSS_STD_READY, from `make cross-std-ready`), the cross
# lanes end about a minute before the host lane, so in the mips lane, after the ipk
# checks (clean clone 436 s in the host lane, 402 s there); when each lane builds its
# std first, the cross lanes are the longest, so in the host lane (504 s in the mips
# lane).
ifeq ($(CROSS_STD_READY),yes)
TEST_CROSS_PARTS += test-openwrt-scripts
else
TEST_PARTS += test-openwrt-scripts
endif
