#!/bin/sh
# Builds an OpenWrt .ipk of dproxy without the OpenWrt SDK, from a binary
# that is already cross-built:
#
#   scripts/mkipk.sh --arch mips_24kc --binary dist/dproxy-0.1.0-mips-unknown-linux-musl \
#       --version 0.1.0 --release 1 [--package dproxy|dproxy-full] [--files files] [--out dist]
#
# Writes OUT/<package>_<version>-r<release>_<arch>.ipk: a gzipped tar (as
# OpenWrt's own ipkg-build makes it) of ./debian-binary, ./control.tar.gz and
# ./data.tar.gz. Every file is owned by root; modes are set here, not taken
# from the work tree. The control fields match what the feed Makefile would
# produce (Require-User makes opkg's default_postinst create the user).
set -eu

usage() {
	echo "usage: $0 --arch ARCH --binary FILE --version X.Y.Z --release N [--package NAME] [--files DIR] [--out DIR]" >&2
	exit 2
}

arch='' binary='' version='' release='' out=dist package=dproxy
here="$(cd "$(dirname "$0")/.." && pwd)"
files="$here/files"
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || usage
	case "$1" in
		--arch) arch="$2" ;;
		--binary) binary="$2" ;;
		--version) version="$2" ;;
		--release) release="$2" ;;
		--files) files="$2" ;;
		--package) package="$2" ;;
		--out) out="$2" ;;
		*) usage ;;
	esac
	shift 2
done
if [ -z "$arch" ] || [ -z "$binary" ] || [ -z "$version" ] || [ -z "$release" ]; then
	usage
fi
[ -f "$binary" ] || { echo "mkipk: no binary at $binary (run make cross first)" >&2; exit 1; }

# apk (OpenWrt 25.12+) parses VERSION-rRELEASE; keep the .ipk to the same rule.
if ! echo "$version-r$release" | grep -Eq '^[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc|p)[0-9]*)*-r[0-9]+$'; then
	echo "mkipk: version '$version-r$release' is not valid for apk" >&2
	exit 1
fi

# The variants of the feed Makefile: dproxy-full (DNS over TLS) replaces dproxy.
case "$package" in
	dproxy) depends="libc" relations="" extra_desc="" ;;
	dproxy-full)
		depends="libc, ca-bundle"
		relations="Provides: dproxy
Conflicts: dproxy
"
		extra_desc="
 This variant can also use encrypted upstreams (DNS over TLS), checked
 against the CA bundle." ;;
	*) echo "mkipk: unknown package '$package' (dproxy or dproxy-full)" >&2; exit 2 ;;
esac

ipk="$out/${package}_${version}-r${release}_${arch}.ipk"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT INT TERM

# Reproducible archives: fixed times and owners, sorted names.
epoch="${SOURCE_DATE_EPOCH:-$(git -C "$here" log -1 --format=%ct 2>/dev/null || echo 0)}"
[ -n "$epoch" ] || epoch=0
mktar() {
	# mktar DIR OUTPUT.tar.gz NAMES...
	dir="$1" tgz="$2"
	shift 2
	tar -C "$dir" --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner \
		--format=gnu -cf - "$@" | gzip -9n >"$tgz"
}

# data: the root filesystem part.
data="$work/data"
install -d -m 0755 "$data/usr/sbin" "$data/etc/init.d" "$data/etc/config" \
	"$data/etc/hotplug.d/iface" "$data/etc/hotplug.d/ntp" "$data/etc/uci-defaults" "$data/etc/capabilities"
install -m 0755 "$binary" "$data/usr/sbin/dproxy"
install -m 0755 "$files/dproxy.init" "$data/etc/init.d/dproxy"
install -m 0600 "$files/dproxy.config" "$data/etc/config/dproxy"
install -m 0644 "$files/dproxy.hotplug" "$data/etc/hotplug.d/iface/30-dproxy"
install -m 0644 "$files/dproxy.ntp-hotplug" "$data/etc/hotplug.d/ntp/30-dproxy"
install -m 0755 "$files/dproxy.uci-defaults" "$data/etc/uci-defaults/50-dproxy"
install -m 0644 "$files/dproxy.capabilities.json" "$data/etc/capabilities/dproxy.json"
install -d -m 0755 "$data/usr/libexec/rpcd"
install -m 0755 "$files/dproxy.rpcd" "$data/usr/libexec/rpcd/luci.dproxy"
chmod 0755 "$data/usr/libexec"
if [ "$package" = dproxy-full ]; then
	# DNSSEC: the root trust anchors (option trust_anchor_file's default).
	install -d -m 0755 "$data/usr/share/dproxy"
	install -m 0644 "$files/root-anchors.ds" "$data/usr/share/dproxy/root-anchors.ds"
	chmod 0755 "$data/usr/share"
fi
chmod 0755 "$data" "$data/usr" "$data/etc" "$data/etc/hotplug.d"

size="$(find "$data" -type f -exec cat {} + | wc -c)"
size=$((size + 0))

# control: metadata and maintainer scripts.
ctl="$work/control"
install -d -m 0755 "$ctl"
cat >"$ctl/control" <<EOF
Package: $package
Version: $version-r$release
Depends: $depends
${relations}Source: feeds/dproxy/net/dproxy
SourceName: dproxy
License: MIT Apache-2.0
LicenseFiles: LICENSE-MIT LICENSE-APACHE
Section: net
Require-User: dproxy:dproxy
URL: https://dproxy.invalid/
Maintainer: dproxy maintainers <maintainers@dproxy.invalid>
Architecture: $arch
Installed-Size: $size
Description:  dproxy is a small DNS caching proxy for routers. It keeps its cache
 across reloads and restarts, answers from the cache while the uplink is
 down (driven by hotplug), reads local names from hosts and lease files,
 and can sit behind dnsmasq or take over DNS from it.$extra_desc
EOF
echo /etc/config/dproxy >"$ctl/conffiles"

# OpenWrt's /lib/functions.sh does the work, as for packages built by the SDK:
# default_postinst creates the Require-User user, runs the uci-defaults,
# enables the init script and starts it (a no-op while enabled is '0');
# default_prerm stops it and, unless this is an upgrade, disables it.
cat >"$ctl/postinst" <<'EOF'
#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0
. "${IPKG_INSTROOT}/lib/functions.sh"
default_postinst "$0" "$@"
EOF
cat >"$ctl/prerm" <<'EOF'
#!/bin/sh
[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0
. "${IPKG_INSTROOT}/lib/functions.sh"
default_prerm "$0" "$@"
EOF
chmod 0644 "$ctl/control" "$ctl/conffiles"
chmod 0755 "$ctl/postinst" "$ctl/prerm"

pkg="$work/pkg"
install -d -m 0755 "$pkg"
echo "2.0" >"$pkg/debian-binary"
chmod 0644 "$pkg/debian-binary"
mktar "$data" "$pkg/data.tar.gz" .
mktar "$ctl" "$pkg/control.tar.gz" .
chmod 0644 "$pkg/data.tar.gz" "$pkg/control.tar.gz"

mkdir -p "$out"
mktar "$pkg" "$work/out.ipk" ./debian-binary ./control.tar.gz ./data.tar.gz
mv "$work/out.ipk" "$ipk"
echo "mkipk: $ipk ($size bytes installed)"
