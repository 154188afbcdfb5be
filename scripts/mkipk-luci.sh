#!/bin/sh
# Builds luci-app-dproxy_<version>-r<release>_all.ipk from openwrt/luci-app-dproxy
# without the OpenWrt SDK, laid out as LuCI's luci.mk would install it:
# htdocs/ -> /www, root/ -> /. No minification here (luci.mk runs jsmin when
# built in an OpenWrt tree; the views are tested to parse either way).
#
#   scripts/mkipk-luci.sh --version 0.1.0 --release 1 [--out dist]
#
# The archive format and owners match scripts/mkipk.sh: a gzipped tar of
# ./debian-binary, ./control.tar.gz and ./data.tar.gz, files owned by root.
set -eu

usage() {
	echo "usage: $0 --version X.Y.Z --release N [--out DIR]" >&2
	exit 2
}

version='' release='' out=dist
here="$(cd "$(dirname "$0")/.." && pwd)"
app="$here/openwrt/luci-app-dproxy"
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || usage
	case "$1" in
		--version) version="$2" ;;
		--release) release="$2" ;;
		--out) out="$2" ;;
		*) usage ;;
	esac
	shift 2
done
if [ -z "$version" ] || [ -z "$release" ]; then
	usage
fi

ipk="$out/luci-app-dproxy_${version}-r${release}_all.ipk"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT INT TERM

epoch="${SOURCE_DATE_EPOCH:-$(git -C "$here" log -1 --format=%ct 2>/dev/null || echo 0)}"
[ -n "$epoch" ] || epoch=0
mktar() {
	dir="$1" tgz="$2"
	shift 2
	tar -C "$dir" --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner \
		--format=gnu -cf - "$@" | gzip -9n >"$tgz"
}

data="$work/data"
view=www/luci-static/resources/view/dproxy
install -d -m 0755 "$data/$view" "$data/usr/share/luci/menu.d" "$data/usr/share/rpcd/acl.d"
for f in status.js settings.js; do
	install -m 0644 "$app/htdocs/luci-static/resources/view/dproxy/$f" "$data/$view/$f"
done
install -m 0644 "$app/root/usr/share/luci/menu.d/luci-app-dproxy.json" "$data/usr/share/luci/menu.d/"
install -m 0644 "$app/root/usr/share/rpcd/acl.d/luci-app-dproxy.json" "$data/usr/share/rpcd/acl.d/"
find "$data" -type d -exec chmod 0755 {} +

size="$(find "$data" -type f -exec cat {} + | wc -c)"
size=$((size + 0))

ctl="$work/control"
install -d -m 0755 "$ctl"
cat >"$ctl/control" <<CONTROL
Package: luci-app-dproxy
Version: $version-r$release
Depends: libc, luci-base, dproxy, rpcd
Source: feeds/dproxy/luci-app-dproxy
SourceName: luci-app-dproxy
License: MIT Apache-2.0
Section: luci
URL: https://dproxy.invalid/
Maintainer: dproxy maintainers <maintainers@dproxy.invalid>
Architecture: all
Installed-Size: $size
Description:  LuCI support for dproxy: status (link state, cache, answers by
 source, upstream servers, flush, link up/down) and settings pages.
CONTROL
# As luci.mk's postinst: drop LuCI's caches and make rpcd read the new ACL
# and the luci.dproxy plugin (rpcd looks for them only when it starts).
cat >"$ctl/postinst" <<'POSTINST'
#!/bin/sh
[ -n "${IPKG_INSTROOT}" ] && exit 0
rm -f /tmp/luci-indexcache /tmp/luci-indexcache.*
rm -rf /tmp/luci-modulecache/
[ -x /etc/init.d/rpcd ] && /etc/init.d/rpcd reload
exit 0
POSTINST
chmod 0644 "$ctl/control"
chmod 0755 "$ctl/postinst"

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
echo "mkipk-luci: $ipk ($size bytes installed)"
