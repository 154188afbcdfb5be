#!/bin/sh
# The feed Makefile evaluated by GNU make with our stand-ins for OpenWrt's
# rules.mk, package.mk and rust-package.mk; the feed's test.sh; and
# scripts/mkipk.sh with a stand-in binary, its .ipk checked by check_ipk.py.
# Usage: test-feed.sh RESULTS_FILE
# shellcheck shell=sh
# shellcheck disable=SC3043,SC2034,SC1091,SC1090,SC2016,SC2317

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SUITE=feed
RESULTS="$1"
. "$HERE/lib.sh"

FEED_MK="$REPO/openwrt/net/dproxy/Makefile"
APK_RE='^[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc|p)[0-9]*)*-r[0-9]+$'
CARGO_VERSION="$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -n 1)"

# feed_make SDK TARGET [VAR=VALUE...]
feed_make() {
	local sdk="$1"
	shift
	mkdir -p "$CASE_DIR/pkg-install/bin"
	[ -f "$CASE_DIR/pkg-install/bin/dproxy" ] || echo "binary" >"$CASE_DIR/pkg-install/bin/dproxy"
	make -s --no-print-directory -f "$FEED_MK" TOPDIR="$sdk" \
		PKG_BUILD_DIR="$REPO" PKG_INSTALL_DIR="$CASE_DIR/pkg-install" "$@"
}

var() {
	sed -n "s/^$1=//p" "$CASE_DIR/vars"
}

case_variables() {
	feed_make "$HERE/sdk" stub-vars >"$CASE_DIR/vars" || fail "make stub-vars failed"
	assert_eq PKG_NAME dproxy "$(var PKG_NAME)"
	assert_eq "PKG_VERSION (Cargo.toml)" "$CARGO_VERSION" "$(var PKG_VERSION)"
	echo "$(var PKG_VERSION)-r$(var PKG_RELEASE)" | grep -Eq "$APK_RE" ||
		fail "$(var PKG_VERSION)-r$(var PKG_RELEASE) does not parse for apk"
	assert_eq PKG_BUILD_DEPENDS rust/host "$(var PKG_BUILD_DEPENDS)"
	assert_eq "DEPENDS (RUST_ARCH_DEPENDS)" \
		"@(aarch64||arm||i386||i686||mips||mipsel||mips64||mips64el||powerpc64||riscv64||x86_64)" \
		"$(var DEPENDS)"
	assert_eq PKG_SOURCE "dproxy-$CARGO_VERSION.tar.gz" "$(var PKG_SOURCE)"
	for v in PKG_SOURCE_URL PKG_HASH PKG_MAINTAINER PKG_LICENSE PKG_LICENSE_FILES TITLE URL; do
		[ -n "$(var "$v")" ] || fail "$v is empty"
	done
	assert_eq SECTION net "$(var SECTION)"
	assert_eq CATEGORY Network "$(var CATEGORY)"
	assert_eq SUBMENU "IP Addresses and Names" "$(var SUBMENU)"
	assert_eq USERID "dproxy:dproxy" "$(var USERID)"
	assert_eq "rust-package.mk of a separate feed" feeds "$(var STUB_RUST_MK)"
}

# dproxy-full: the dnsmasq/dnsmasq-full pattern. It replaces dproxy, needs the
# CA bundle, installs the same files, and only its build has the cargo feature.
case_full_variant() {
	feed_make "$HERE/sdk" stub-vars-dproxy-full >"$CASE_DIR/vars" || fail "make stub-vars-dproxy-full failed"
	assert_eq "full TITLE" "Small DNS caching proxy for routers (with DNS over TLS)" "$(var TITLE)"
	assert_eq "full DEPENDS" \
		"@(aarch64||arm||i386||i686||mips||mipsel||mips64||mips64el||powerpc64||riscv64||x86_64) +ca-bundle" \
		"$(var DEPENDS)"
	assert_eq "full VARIANT" full "$(var VARIANT)"
	assert_eq "full PROVIDES" dproxy "$(var PROVIDES)"
	assert_eq "full CONFLICTS" dproxy "$(var CONFLICTS)"
	assert_eq "full USERID" "dproxy:dproxy" "$(var USERID)"
	assert_eq "full DEFAULT_VARIANT" "" "$(var DEFAULT_VARIANT)"
	feed_make "$HERE/sdk" stub-vars-dproxy >"$CASE_DIR/vars" || fail "make stub-vars-dproxy failed"
	assert_eq "plain VARIANT" plain "$(var VARIANT)"
	assert_eq "plain DEFAULT_VARIANT" 1 "$(var DEFAULT_VARIANT)"
	assert_eq "plain PROVIDES" "" "$(var PROVIDES)"
	assert_eq "plain CONFLICTS" "" "$(var CONFLICTS)"
	assert_eq "plain RUST_PKG_FEATURES" "" "$(var RUST_PKG_FEATURES)"
	feed_make "$HERE/sdk" stub-vars-dproxy-full BUILD_VARIANT=full >"$CASE_DIR/vars" || fail "make failed"
	assert_eq "RUST_PKG_FEATURES of the full variant build" full "$(var RUST_PKG_FEATURES)"
	feed_make "$HERE/sdk" stub-install-dproxy DESTDIR="$CASE_DIR/plain" || fail "plain install failed"
	feed_make "$HERE/sdk" stub-install-dproxy-full DESTDIR="$CASE_DIR/full" || fail "full install failed"
	# The full variant adds the DNSSEC root trust anchors; otherwise the same files.
	[ -s "$CASE_DIR/full/usr/share/dproxy/root-anchors.ds" ] ||
		fail "the full variant does not install /usr/share/dproxy/root-anchors.ds"
	rm -rf "$CASE_DIR/full/usr/share"
	diff -r "$CASE_DIR/plain" "$CASE_DIR/full" >"$CASE_DIR/diff" 2>&1 ||
		fail "the variants install different files: $(cat "$CASE_DIR/diff")"
	feed_make "$HERE/sdk" stub-conffiles-dproxy-full >"$CASE_DIR/conffiles" || fail "make failed"
	assert_eq "full conffiles" /etc/config/dproxy "$(cat "$CASE_DIR/conffiles")"
}

case_mkipk_full_variant() {
	printf '#!/bin/sh\necho %s\n' "$CARGO_VERSION" >"$CASE_DIR/dproxy-bin"
	sh "$REPO/scripts/mkipk.sh" --arch mips_24kc --binary "$CASE_DIR/dproxy-bin" --package dproxy-full \
		--version "$CARGO_VERSION" --release 1 --out "$CASE_DIR/dist" >"$CASE_DIR/mkipk.out" 2>&1 ||
		{ fail "mkipk failed: $(cat "$CASE_DIR/mkipk.out")"; return; }
	ipk="$CASE_DIR/dist/dproxy-full_${CARGO_VERSION}-r1_mips_24kc.ipk"
	python3 "$HERE/check_ipk.py" --native --no-elf --package dproxy-full "$ipk" mips_24kc "$CARGO_VERSION-r1" \
		>"$CASE_DIR/check.out" 2>&1 || fail "$(cat "$CASE_DIR/check.out")"
	# The checker tells the variants apart: the full package is not a plain one.
	cp "$ipk" "$CASE_DIR/dist/dproxy_${CARGO_VERSION}-r1_mips_24kc.ipk"
	python3 "$HERE/check_ipk.py" --native --no-elf "$CASE_DIR/dist/dproxy_${CARGO_VERSION}-r1_mips_24kc.ipk" \
		mips_24kc "$CARGO_VERSION-r1" >"$CASE_DIR/check.out" 2>&1 && fail "the full package passed as plain"
	grep -q "Provides in the plain package" "$CASE_DIR/check.out" || fail "no Provides complaint: $(cat "$CASE_DIR/check.out")"
	if sh "$REPO/scripts/mkipk.sh" --arch mips_24kc --binary "$CASE_DIR/dproxy-bin" --package dproxy-tiny \
		--version "$CARGO_VERSION" --release 1 --out "$CASE_DIR/dist" >/dev/null 2>&1; then
		fail "mkipk accepted an unknown package"
	fi
	return 0
}

case_rust_in_core_tree() {
	# sdk-core has only include/rust-package.mk: borrow the rest from sdk.
	mkdir -p "$CASE_DIR/tree/include"
	cp "$HERE/sdk/rules.mk" "$CASE_DIR/tree/"
	cp "$HERE/sdk/include/package.mk" "$HERE/sdk-core/include/rust-package.mk" "$CASE_DIR/tree/include/"
	feed_make "$CASE_DIR/tree" stub-vars >"$CASE_DIR/vars" || fail "make failed"
	assert_eq "rust-package.mk from include/" include "$(var STUB_RUST_MK)"
}

case_install_recipe() {
	feed_make "$HERE/sdk" stub-install DESTDIR="$CASE_DIR/root" || fail "install recipe failed"
	(cd "$CASE_DIR/root" && find . -print | sort | while read -r f; do
		printf '%s %s\n' "$(stat -c %a "$f")" "$f"
	done) >"$CASE_DIR/got"
	cat >"$CASE_DIR/want" <<'EOF'
755 .
755 ./etc
755 ./etc/capabilities
644 ./etc/capabilities/dproxy.json
755 ./etc/config
600 ./etc/config/dproxy
755 ./etc/hotplug.d
755 ./etc/hotplug.d/iface
644 ./etc/hotplug.d/iface/30-dproxy
755 ./etc/hotplug.d/ntp
644 ./etc/hotplug.d/ntp/30-dproxy
755 ./etc/init.d
755 ./etc/init.d/dproxy
755 ./etc/uci-defaults
755 ./etc/uci-defaults/50-dproxy
755 ./usr
755 ./usr/libexec
755 ./usr/libexec/rpcd
755 ./usr/libexec/rpcd/luci.dproxy
755 ./usr/sbin
755 ./usr/sbin/dproxy
EOF
	chmod 755 "$CASE_DIR/root"
	assert_file_eq "installed files and modes" "$CASE_DIR/want" "$CASE_DIR/got"
	for pair in dproxy.init:etc/init.d/dproxy dproxy.config:etc/config/dproxy \
		dproxy.hotplug:etc/hotplug.d/iface/30-dproxy \
		dproxy.ntp-hotplug:etc/hotplug.d/ntp/30-dproxy \
		dproxy.uci-defaults:etc/uci-defaults/50-dproxy \
		dproxy.capabilities.json:etc/capabilities/dproxy.json \
		dproxy.rpcd:usr/libexec/rpcd/luci.dproxy; do
		cmp -s "$REPO/files/${pair%%:*}" "$CASE_DIR/root/${pair#*:}" ||
			fail "${pair#*:} is not files/${pair%%:*}"
	done
	assert_eq "binary" binary "$(cat "$CASE_DIR/root/usr/sbin/dproxy")"
}

case_conffiles() {
	feed_make "$HERE/sdk" stub-conffiles >"$CASE_DIR/conffiles" || fail "make failed"
	assert_eq conffiles /etc/config/dproxy "$(cat "$CASE_DIR/conffiles")"
}

case_feed_test_sh() {
	mkdir -p "$CASE_DIR/bin"
	printf '#!/bin/sh\n[ "$1" = --version ] && echo %s\n' "$CARGO_VERSION" >"$CASE_DIR/bin/dproxy"
	chmod 755 "$CASE_DIR/bin/dproxy"
	PATH="$CASE_DIR/bin:$PATH" sh "$REPO/openwrt/net/dproxy/test.sh" dproxy "$CARGO_VERSION-r1" ||
		fail "test.sh fails on the right version"
	PATH="$CASE_DIR/bin:$PATH" sh "$REPO/openwrt/net/dproxy/test.sh" dproxy "$CARGO_VERSION" ||
		fail "test.sh fails on the version without release"
	if PATH="$CASE_DIR/bin:$PATH" sh "$REPO/openwrt/net/dproxy/test.sh" dproxy 9.9.9-r1 2>/dev/null; then
		fail "test.sh passes a wrong version"
	fi
	PATH="$CASE_DIR/bin:$PATH" sh "$REPO/openwrt/net/dproxy/test.sh" other-package 1.0-r1 ||
		fail "test.sh fails for another package"
}

case_apk_version_rule() {
	for v in 0.1.0-r1 1.2.3-r10 0.1.0_rc1-r1 2.0a-r3; do
		echo "$v" | grep -Eq "$APK_RE" || fail "$v should parse"
	done
	for v in 0.1.0-rc1 v0.1.0-r1 0.1.0+git1-r1 0.1.0 0.1-r; do
		echo "$v" | grep -Eq "$APK_RE" && fail "$v should not parse"
	done
	return 0
}

# mkipk.sh with a stand-in binary; the real one is checked by
# `make test-openwrt-ipk` after `make cross TARGET=mips`.
case_mkipk_structure() {
	printf '#!/bin/sh\necho %s\n' "$CARGO_VERSION" >"$CASE_DIR/dproxy-bin"
	sh "$REPO/scripts/mkipk.sh" --arch mips_24kc --binary "$CASE_DIR/dproxy-bin" \
		--version "$CARGO_VERSION" --release 1 --out "$CASE_DIR/dist" >"$CASE_DIR/mkipk.out" 2>&1 ||
		{ fail "mkipk failed: $(cat "$CASE_DIR/mkipk.out")"; return; }
	ipk="$CASE_DIR/dist/dproxy_${CARGO_VERSION}-r1_mips_24kc.ipk"
	python3 "$HERE/check_ipk.py" --native --no-elf "$ipk" mips_24kc "$CARGO_VERSION-r1" \
		>"$CASE_DIR/check.out" 2>&1 || fail "$(cat "$CASE_DIR/check.out")"
	# Reproducible: the same inputs give the same bytes.
	sleep 1
	sh "$REPO/scripts/mkipk.sh" --arch mips_24kc --binary "$CASE_DIR/dproxy-bin" \
		--version "$CARGO_VERSION" --release 1 --out "$CASE_DIR/dist2" >/dev/null 2>&1
	cmp -s "$ipk" "$CASE_DIR/dist2/$(basename "$ipk")" || fail "two builds differ"
}

case_mkipk_checker_catches_a_bad_package() {
	# The checker itself: an ar archive, wrong modes and a wrong name fail.
	printf '#!/bin/sh\necho 0\n' >"$CASE_DIR/dproxy-bin"
	sh "$REPO/scripts/mkipk.sh" --arch x86_64 --binary "$CASE_DIR/dproxy-bin" \
		--version "$CARGO_VERSION" --release 1 --out "$CASE_DIR/dist" >/dev/null 2>&1
	ipk="$CASE_DIR/dist/dproxy_${CARGO_VERSION}-r1_x86_64.ipk"
	python3 "$HERE/check_ipk.py" --native --no-elf "$ipk" x86_64 "$CARGO_VERSION-r1" \
		>"$CASE_DIR/check.out" 2>&1 && fail "a binary printing 0 passed --version"
	python3 "$HERE/check_ipk.py" "$ipk" x86_64 "$CARGO_VERSION-r1" >"$CASE_DIR/check.out" 2>&1 &&
		fail "a shell script passed the ELF check"
	grep -q "not an ELF" "$CASE_DIR/check.out" || fail "no ELF complaint: $(cat "$CASE_DIR/check.out")"
	mkdir "$CASE_DIR/x" && (cd "$CASE_DIR/x" && tar xzf "$ipk" && echo "2.0" >debian-binary &&
		ar -qc "$CASE_DIR/bad.ipk" debian-binary control.tar.gz data.tar.gz 2>/dev/null)
	if [ -f "$CASE_DIR/bad.ipk" ]; then
		python3 "$HERE/check_ipk.py" --no-elf "$CASE_DIR/bad.ipk" x86_64 "$CARGO_VERSION-r1" \
			>"$CASE_DIR/check.out" 2>&1 && fail "an ar archive passed"
	fi
	return 0
}

case_mkipk_rejects_versions_apk_cannot_parse() {
	printf '#!/bin/sh\n' >"$CASE_DIR/dproxy-bin"
	if sh "$REPO/scripts/mkipk.sh" --arch mips_24kc --binary "$CASE_DIR/dproxy-bin" \
		--version 0.1.0-rc1 --release 1 --out "$CASE_DIR/dist" >/dev/null 2>&1; then
		fail "mkipk accepted 0.1.0-rc1"
	fi
	if sh "$REPO/scripts/mkipk.sh" --arch mips_24kc --binary "$CASE_DIR/missing" \
		--version 0.1.0 --release 1 --out "$CASE_DIR/dist" >/dev/null 2>&1; then
		fail "mkipk accepted a missing binary"
	fi
	return 0
}

case_shipped_config() {
	conf="$REPO/files/dproxy.config"
	# Every option the daemon and the scripts know, set or shown commented.
	for o in listen port server resolvfile cache_size min_ttl max_ttl neg_ttl log_level trust_ad \
		hosts leasefile domain domain_needed bogus_priv local_ttl \
		control_socket stale_max stale_exclude offline_policy hold_timeout stale_timeout \
		prefetch persist_file persist_interval \
		local_service allow deny refuse_action rebind_protection rebind_domain rebind_localhost \
		case_randomization rate_limit rate_burst memory_limit user chroot \
		enabled dnsmasq_integration wan_interface; do
		grep -Eq "^[[:space:]]*#?(option|list) $o " "$conf" || fail "option $o missing"
		# each option sits under a comment: going up from it over other
		# option lines, the first other line is a comment
		awk -v o="$o" '
			$0 ~ "^[[:space:]]*#?(option|list) " o " " { exit !(state == "comment") }
			/^[[:space:]]*(option|list) / { next }
			/^[[:space:]]*#/ { state = "comment"; next }
			{ state = "" }
		' "$conf" || fail "option $o has no comment above it"
	done
	# Sourced with config/option/list as shell functions, as uci_load does.
	(
		config() { echo "config $1 $2"; }
		option() { echo "option $1=$2"; }
		list() { echo "list $1=$2"; }
		. "$conf"
	) >"$CASE_DIR/parsed" || fail "the config does not source as shell"
	for line in "config dproxy main" "option enabled=0" "option port=1296" \
		"option resolvfile=/tmp/resolv.conf.d/resolv.conf.auto" \
		"list hosts=/etc/hosts" "list hosts=/tmp/hosts" "list leasefile=/tmp/dhcp.leases" \
		"option domain=lan" "option persist_file=/tmp/dproxy.cache" \
		"list wan_interface=wan" "list wan_interface=wan6" "list listen=127.0.0.1" "list listen=::1" \
		"option user=dproxy" "option dnsmasq_integration=off"; do
		assert_line "shipped config" "$line" "$CASE_DIR/parsed"
	done
	assert_count "sections" '^config ' "$CASE_DIR/parsed" 1
}

# The daemon itself (DPROXY_BIN, a host build) accepts the shipped config,
# with every commented example switched on too, and the command line the
# init script builds in replace mode.
case_daemon_accepts_shipped_config() {
	"$DPROXY_BIN" --check-config -c "$REPO/files/dproxy.config" >"$CASE_DIR/out" 2>&1 ||
		fail "shipped config: $(cat "$CASE_DIR/out")"
	sed -E 's/^([[:space:]]*)#((option|list) [a-z_]+ )/\1\2/; /option chroot /d' \
		"$REPO/files/dproxy.config" >"$CASE_DIR/all.conf"
	"$DPROXY_BIN" --check-config -c "$CASE_DIR/all.conf" >"$CASE_DIR/out" 2>&1 ||
		fail "config with the examples on: $(cat "$CASE_DIR/out")"
	"$DPROXY_BIN" --check-config -c "$REPO/files/dproxy.config" -l 127.0.0.1:53 -l '[::1]:53' \
		-l 192.168.1.1:53 -l '[fd00:1::1]:53' >"$CASE_DIR/out" 2>&1 ||
		fail "replace-mode command line: $(cat "$CASE_DIR/out")"
	assert_eq "--version" "$CARGO_VERSION" "$("$DPROXY_BIN" --version)"
}

if [ -x "${DPROXY_BIN:-}" ]; then
	run_case daemon_accepts_shipped_config
else
	echo "SKIP feed/daemon_accepts_shipped_config (set DPROXY_BIN to a host build)" >>"$RESULTS"
fi

# uci-defaults: exits 0, says nothing, changes nothing, any number of times,
# under both shells (default_postinst sources it from /etc/uci-defaults).
case_uci_defaults() {
	mkdir -p "$CASE_DIR/etc/uci-defaults" "$CASE_DIR/config"
	cp "$REPO/files/dproxy.uci-defaults" "$CASE_DIR/etc/uci-defaults/50-dproxy"
	before="$(find "$CASE_DIR" | sort)"
	for sh in "busybox sh" dash; do
		for run in 1 2; do
			out="$(cd "$CASE_DIR/etc/uci-defaults" && $sh ./50-dproxy 2>&1)" ||
				fail "$sh run $run exited $?"
			assert_eq "$sh run $run output" "" "$out"
			# sourced, as default_postinst does it, in a subshell
			out="$(cd "$CASE_DIR/etc/uci-defaults" && $sh -c '( . ./50-dproxy ); echo "rc=$?"' 2>&1)"
			assert_eq "$sh sourced run $run" "rc=0" "$out"
		done
	done
	assert_eq "files" "$before" "$(find "$CASE_DIR" | sort)"
	grep -Eq '(useradd|adduser|user_add|group_add|/etc/passwd)' "$REPO/files/dproxy.uci-defaults" &&
		fail "uci-defaults creates users; USERID does that"
	return 0
}

for c in uci_defaults variables full_variant rust_in_core_tree install_recipe conffiles feed_test_sh apk_version_rule \
	mkipk_structure mkipk_full_variant mkipk_checker_catches_a_bad_package mkipk_rejects_versions_apk_cannot_parse \
	shipped_config; do
	run_case "$c"
done
