################################################################################
#
# dproxy
#
################################################################################

DPROXY_VERSION = 0.1.0
DPROXY_SITE = $(call github,dproxy,dproxy,v$(DPROXY_VERSION))
DPROXY_LICENSE = MIT or Apache-2.0
DPROXY_LICENSE_FILES = LICENSE-MIT LICENSE-APACHE

# Cargo.toml's release profile is the host build's (opt-level 3). On the target the
# level follows Buildroot's own choice: 2 or 3 when it optimises for speed, else "s",
# as the router binaries of `make cross` are built.
DPROXY_CARGO_ENV += CARGO_PROFILE_RELEASE_OPT_LEVEL=$(if $(BR2_OPTIMIZE_2),2,$(if $(BR2_OPTIMIZE_3)$(BR2_OPTIMIZE_FAST),3,s))

# The full build (DNS over TLS). cargo-package builds and then installs with
# cargo install, so both get the feature; the CA bundle is read at run time.
ifeq ($(BR2_PACKAGE_DPROXY_FULL),y)
DPROXY_CARGO_BUILD_OPTS += --features full
DPROXY_CARGO_INSTALL_OPTS += --features full
DPROXY_DEPENDENCIES += ca-certificates
# DNSSEC validation: the root trust anchors (files/ of the source).
define DPROXY_INSTALL_ANCHORS
	$(INSTALL) -D -m 0644 $(@D)/files/root-anchors.ds \
		$(TARGET_DIR)/usr/share/dproxy/root-anchors.ds
endef
DPROXY_POST_INSTALL_TARGET_HOOKS += DPROXY_INSTALL_ANCHORS
endif

# cargo install puts the binary in /usr/bin. The configuration and the
# ifupdown hooks come with the package whatever the init system.
define DPROXY_INSTALL_CONFIG
	$(INSTALL) -D -m 0644 $(DPROXY_PKGDIR)/dproxy.conf \
		$(TARGET_DIR)/etc/dproxy.conf
	$(INSTALL) -D -m 0755 $(DPROXY_PKGDIR)/if-up \
		$(TARGET_DIR)/etc/network/if-up.d/dproxy
	$(INSTALL) -D -m 0755 $(DPROXY_PKGDIR)/if-down \
		$(TARGET_DIR)/etc/network/if-down.d/dproxy
endef
DPROXY_POST_INSTALL_TARGET_HOOKS += DPROXY_INSTALL_CONFIG

define DPROXY_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(DPROXY_PKGDIR)/S50dproxy \
		$(TARGET_DIR)/etc/init.d/S50dproxy
endef

define DPROXY_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(DPROXY_PKGDIR)/dproxy.service \
		$(TARGET_DIR)/usr/lib/systemd/system/dproxy.service
endef

$(eval $(cargo-package))
