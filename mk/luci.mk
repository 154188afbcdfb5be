# luci-app-dproxy: its tests and its package.
#
#   make test-luci     (part of `make test`) ESLint, node --check before and
#                      after jsmin, the Node vm tests of the views against
#                      stand-ins of LuCI's runtime, ACL/menu/.pot checks, and
#                      shellcheck of the rpcd plugin. The rpcd plugin against a
#                      real daemon and `ctl stats --json` against its schema
#                      run in the integration suite (tests/integration).
#   make ipk-luci      dist/luci-app-dproxy_<version>-r<release>_all.ipk;
#                      `make ipk ARCH=...` builds it too.

LUCI_APP := openwrt/luci-app-dproxy
LUCI_VERSION := $(shell sed -n 's/^PKG_VERSION:=//p' $(CURDIR)/$(LUCI_APP)/Makefile)
LUCI_RELEASE := $(shell sed -n 's/^PKG_RELEASE:=//p' $(CURDIR)/$(LUCI_APP)/Makefile)

.PHONY: test-luci luci-deps ipk-luci

luci-deps:
	./scripts/luci-deps.sh

test-luci: deps luci-deps build
	shellcheck -s sh files/dproxy.rpcd scripts/luci-deps.sh scripts/mkipk-luci.sh
	busybox sh -n files/dproxy.rpcd
	DPROXY_BIN=$(CURDIR)/$(BIN) node --test tests/luci/

ipk-luci:
	./scripts/mkipk-luci.sh --version $(LUCI_VERSION) --release $(LUCI_RELEASE) --out dist

ipk: ipk-luci

# luci-deps runs as test-luci's prerequisite, in the host lane.
TEST_PARTS += test-luci
