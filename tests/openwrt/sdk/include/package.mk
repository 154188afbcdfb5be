# Stand-in for OpenWrt's include/package.mk. BuildPackage checks the fields
# OpenWrt requires and defines stub-* targets that print the package's
# variables or run its install recipe into $(DESTDIR).
PKG_BUILD_DIR ?= $(BUILD_DIR)/$(PKG_NAME)-$(PKG_VERSION)
PKG_INSTALL_DIR ?= $(PKG_BUILD_DIR)/ipkg-install

STUB_VARS := PKG_NAME PKG_VERSION PKG_RELEASE PKG_SOURCE PKG_SOURCE_URL PKG_HASH \
	PKG_MAINTAINER PKG_LICENSE PKG_LICENSE_FILES PKG_BUILD_DEPENDS PKG_BUILD_PARALLEL \
	SECTION CATEGORY SUBMENU TITLE URL DEPENDS USERID STUB_RUST_MK \
	VARIANT DEFAULT_VARIANT PROVIDES CONFLICTS RUST_PKG_FEATURES
# Reset before each package, as OpenWrt's Package/Default does.
STUB_PKG_VARS := SECTION CATEGORY SUBMENU TITLE URL DEPENDS USERID \
	VARIANT DEFAULT_VARIANT PROVIDES CONFLICTS

# Every package gets stub-*-NAME targets; the first one also the plain stub-*
# names. Values are captured when BuildPackage is expanded, package by package.
define BuildPackage
  $(foreach v,$(STUB_PKG_VARS),$(eval $(v):=))
  $(eval $(Package/$(1)))
  $(foreach field,TITLE CATEGORY SECTION,$(if $($(field)),,$(error Package/$(1) is missing $(field))))
  $(if $(Package/$(1)/install),,$(error Package/$(1) has no install recipe))

$(if $(STUB_FIRST),,stub-vars stub-conffiles stub-description stub-install: %: %-$(1))
$(eval STUB_FIRST ?= $(1))

stub-vars-$(1):
	@$(foreach v,$(STUB_VARS),echo '$(v)=$($(v))';)

stub-conffiles-$(1):
	$$(info $$(Package/$(1)/conffiles))
	@:

stub-description-$(1):
	$$(info $$(Package/$(1)/description))
	@:

stub-install-$(1):
	@test -n "$(DESTDIR)"
	$(call Package/$(1)/install,$(DESTDIR))
endef
