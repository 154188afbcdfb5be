'use strict';
// Static checks of luci-app-dproxy's views and JSON files: ESLint with LuCI's
// conventions (tools.js), `node --check` on each view as shipped and after a
// jsmin pass (LuCI's build minifies views; jsmin here is the npm port of
// Crockford's jsmin, a stand-in for luci-base's jsmin.c), and the .pot
// template against the strings the views use.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const { tool, eslintConfig } = require('./tools');
const { requires } = require('./standins');
const { REPO } = require('./options');
const pot = require('./pot');

const APP = path.join(REPO, 'openwrt', 'luci-app-dproxy');
const VIEW_DIR = path.join(APP, 'htdocs', 'luci-static', 'resources', 'view', 'dproxy');
const views = fs.readdirSync(VIEW_DIR).filter((f) => f.endsWith('.js')).map((f) => path.join(VIEW_DIR, f));

function nodeCheck(file) {
	const r = spawnSync(process.execPath, ['--check', file], { encoding: 'utf8' });
	return { ok: r.status === 0, err: r.stderr };
}

test('there are views to check', () => {
	assert.deepEqual(views.map((f) => path.basename(f)).sort(), ['settings.js', 'status.js']);
});

for (const file of views) {
	const name = path.basename(file);

	test('eslint: ' + name, async () => {
		const { ESLint } = tool('eslint');
		const src = fs.readFileSync(file, 'utf8');
		const eslint = new ESLint({ cwd: REPO, overrideConfigFile: true,
			overrideConfig: eslintConfig(requires(src)) });
		const results = await eslint.lintText(src, { filePath: file });
		const msgs = results.flatMap((r) => r.messages)
			.map((m) => name + ':' + m.line + ':' + m.column + ' ' + m.message + ' (' + m.ruleId + ')');
		assert.deepEqual(msgs, []);
	});

	test('node --check, as shipped and after jsmin: ' + name, () => {
		const plain = nodeCheck(file);
		assert.ok(plain.ok, plain.err);
		const { jsmin } = tool('jsmin');
		const min = jsmin(fs.readFileSync(file, 'utf8'), 2);
		assert.ok(min.length > 100 && min.length < fs.statSync(file).size, 'jsmin did not minify ' + name);
		const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'luci-jsmin-'));
		try {
			const out = path.join(dir, name);
			fs.writeFileSync(out, min);
			const r = nodeCheck(out);
			assert.ok(r.ok, 'the minified ' + name + ' does not parse:\n' + r.err);
		} finally {
			fs.rmSync(dir, { recursive: true, force: true });
		}
	});
}

test('eslint finds what it must (an undefined name, an unrequired module, a regex literal)', async () => {
	const { ESLint } = tool('eslint');
	const src = "'use strict';\n'require view';\nvar r = /a+/;\nreturn view.extend({ x: function() { return form.Map(r, undefinedThing); } });\n";
	const eslint = new ESLint({ cwd: REPO, overrideConfigFile: true, overrideConfig: eslintConfig(requires(src)) });
	const [res] = await eslint.lintText(src, { filePath: path.join(VIEW_DIR, 'probe.js') });
	const rules = res.messages.map((m) => m.ruleId).sort();
	assert.deepEqual(rules, ['no-restricted-syntax', 'no-undef', 'no-undef']);
});

test('node --check rejects a broken view (the check can fail)', () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'luci-check-'));
	try {
		const f = path.join(dir, 'broken.js');
		fs.writeFileSync(f, "'use strict';\nreturn view.extend({ render: function() { return [; } });\n");
		assert.ok(!nodeCheck(f).ok);
	} finally {
		fs.rmSync(dir, { recursive: true, force: true });
	}
});

test('menu and ACL files are valid JSON', () => {
	for (const f of ['root/usr/share/luci/menu.d/luci-app-dproxy.json',
		'root/usr/share/rpcd/acl.d/luci-app-dproxy.json'])
		assert.doesNotThrow(() => JSON.parse(fs.readFileSync(path.join(APP, f), 'utf8')), f);
});

test('po/templates/dproxy.pot has every _() string (regenerate: node tests/luci/pot.js --write)', () => {
	const have = fs.readFileSync(pot.POT, 'utf8');
	assert.equal(have, pot.render());
	assert.ok(pot.strings().length > 50);
});
