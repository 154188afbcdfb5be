'use strict';
// Builds po/templates/dproxy.pot of luci-app-dproxy: every _('...') string of
// the views (found by parsing them, not by pattern matching) and the menu
// titles, as LuCI's i18n-scan collects them.
//
//   node tests/luci/pot.js          prints the template
//   node tests/luci/pot.js --write  rewrites openwrt/luci-app-dproxy/po/templates/dproxy.pot

const fs = require('fs');
const path = require('path');
const { REPO } = require('./options');
const { tool } = require('./tools');

const APP = path.join(REPO, 'openwrt', 'luci-app-dproxy');
const POT = path.join(APP, 'po', 'templates', 'dproxy.pot');

function walk(node, visit) {
	if (!node || typeof node.type !== 'string')
		return;
	visit(node);
	for (const key of Object.keys(node)) {
		if (key === 'parent')
			continue;
		const v = node[key];
		if (Array.isArray(v))
			v.forEach((c) => walk(c, visit));
		else if (v && typeof v.type === 'string')
			walk(v, visit);
	}
}

// [{ msgid, where }] in the order found.
function strings() {
	const espree = tool('espree');
	const out = [];
	const viewDir = path.join(APP, 'htdocs', 'luci-static', 'resources', 'view', 'dproxy');
	for (const f of fs.readdirSync(viewDir).filter((n) => n.endsWith('.js')).sort()) {
		const file = path.join(viewDir, f);
		const src = fs.readFileSync(file, 'utf8');
		const ast = espree.parse(src, { ecmaVersion: 2020, sourceType: 'script', loc: true,
			ecmaFeatures: { globalReturn: true } });
		walk(ast, (n) => {
			if (n.type !== 'CallExpression' || n.callee.type !== 'Identifier' ||
			    (n.callee.name !== '_' && n.callee.name !== 'N_'))
				return;
			const arg = n.arguments[0];
			if (!arg || arg.type !== 'Literal' || typeof arg.value !== 'string')
				throw new Error(file + ':' + n.loc.start.line + ': _() needs a string literal');
			// File names only: line numbers would change the template on every edit.
			out.push({ msgid: arg.value, where: path.relative(APP, file) });
		});
	}
	const menuFile = path.join(APP, 'root', 'usr', 'share', 'luci', 'menu.d', 'luci-app-dproxy.json');
	const menu = JSON.parse(fs.readFileSync(menuFile, 'utf8'));
	for (const e of Object.values(menu)) {
		if (e.title)
			out.push({ msgid: e.title, where: path.relative(APP, menuFile) });
	}
	return out;
}

function quote(s) {
	return '"' + s.split('\\').join('\\\\').split('"').join('\\"').split('\n').join('\\n') + '"';
}

function render() {
	const seen = new Map();
	for (const s of strings()) {
		if (!seen.has(s.msgid))
			seen.set(s.msgid, []);
		if (!seen.get(s.msgid).includes(s.where))
			seen.get(s.msgid).push(s.where);
	}
	let out = 'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8"\n';
	for (const [msgid, wheres] of [...seen.entries()].sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)) {
		out += '\n';
		for (const w of wheres)
			out += '#: ' + w + '\n';
		out += 'msgid ' + quote(msgid) + '\nmsgstr ""\n';
	}
	return out;
}

if (require.main === module) {
	if (process.argv[2] === '--write')
		fs.writeFileSync(POT, render());
	else
		process.stdout.write(render());
}

module.exports = { render, strings, POT };
