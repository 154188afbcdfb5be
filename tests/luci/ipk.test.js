'use strict';
// scripts/mkipk-luci.sh: the luci-app-dproxy .ipk holds the views, menu and
// ACL at the paths luci.mk installs them to, owned by root with fixed modes,
// and control fields opkg needs.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const { REPO } = require('./options');

const APP = path.join(REPO, 'openwrt', 'luci-app-dproxy');

test('luci-app-dproxy ipk: files, modes, owners, control', () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'luci-ipk-'));
	try {
		execFileSync('sh', [path.join(REPO, 'scripts', 'mkipk-luci.sh'), '--version', '0.1.0',
			'--release', '1', '--out', dir], { encoding: 'utf8' });
		const ipk = path.join(dir, 'luci-app-dproxy_0.1.0-r1_all.ipk');
		const outer = execFileSync('tar', ['-tzf', ipk], { encoding: 'utf8' }).split('\n').filter(Boolean);
		assert.deepEqual(outer, ['./debian-binary', './control.tar.gz', './data.tar.gz']);
		const x = path.join(dir, 'x');
		fs.mkdirSync(x);
		execFileSync('tar', ['-xzf', ipk, '-C', x]);
		const listing = execFileSync('tar', ['-tvzf', path.join(x, 'data.tar.gz')], { encoding: 'utf8' })
			.split('\n').filter((l) => l && !l.startsWith('d'))
			.map((l) => { const w = l.split(/\s+/); return w[0] + ' ' + w[1] + ' ' + w[w.length - 1]; });
		assert.deepEqual(listing.sort(), [
			'-rw-r--r-- 0/0 ./usr/share/luci/menu.d/luci-app-dproxy.json',
			'-rw-r--r-- 0/0 ./usr/share/rpcd/acl.d/luci-app-dproxy.json',
			'-rw-r--r-- 0/0 ./www/luci-static/resources/view/dproxy/settings.js',
			'-rw-r--r-- 0/0 ./www/luci-static/resources/view/dproxy/status.js',
		]);
		const data = path.join(dir, 'data');
		fs.mkdirSync(data);
		execFileSync('tar', ['-xzf', path.join(x, 'data.tar.gz'), '-C', data]);
		for (const v of ['status.js', 'settings.js'])
			assert.equal(fs.readFileSync(path.join(data, 'www/luci-static/resources/view/dproxy', v), 'utf8'),
				fs.readFileSync(path.join(APP, 'htdocs/luci-static/resources/view/dproxy', v), 'utf8'));
		const control = execFileSync('tar', ['-xzOf', path.join(x, 'control.tar.gz'), './control'],
			{ encoding: 'utf8' });
		assert.match(control, /^Package: luci-app-dproxy$/m);
		assert.match(control, /^Architecture: all$/m);
		assert.match(control, /^Depends: libc, luci-base, dproxy, rpcd$/m);
		// The feed Makefile says the same.
		const mk = fs.readFileSync(path.join(APP, 'Makefile'), 'utf8');
		assert.match(mk, /^LUCI_DEPENDS:=\+luci-base \+dproxy \+rpcd$/m);
		assert.match(mk, /^include \$\(firstword \$\(wildcard \.\.\/\.\.\/luci\.mk\) \$\(TOPDIR\)\/feeds\/luci\/luci\.mk\)$/m);
	} finally {
		fs.rmSync(dir, { recursive: true, force: true });
	}
});
