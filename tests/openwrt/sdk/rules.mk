# Stand-in for OpenWrt's rules.mk, for evaluating the feed Makefile in tests:
# only the variables a package Makefile uses, with OpenWrt's install modes.
INCLUDE_DIR:=$(TOPDIR)/include
INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_DATA:=install -m0644
INSTALL_CONF:=install -m0600
SED:=sed -i -e
