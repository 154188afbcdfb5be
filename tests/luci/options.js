'use strict';
// The option list the settings form must cover, read from the shipped
// files/dproxy.config (set and commented-out example options) and from the
// README's option table, so a new option in either makes the form test fail
// until the form has it.

const fs = require('fs');
const path = require('path');

const REPO = path.resolve(__dirname, '..', '..');

// { name: { kind: 'option'|'list', values: [...] } } from the shipped config,
// including '#option x' / '#list x' examples.
function configOptions() {
	const out = {};
	const src = fs.readFileSync(path.join(REPO, 'files', 'dproxy.config'), 'utf8');
	for (const line of src.split('\n')) {
		const m = /^\s*#?\s*(option|list)\s+([a-z_0-9]+)\s+'([^']*)'\s*$/.exec(line);
		if (!m)
			continue;
		const o = out[m[2]] || (out[m[2]] = { kind: m[1], values: [] });
		o.values.push(m[3]);
	}
	return out;
}

// Option names from the README: the rows of the table under "## Configuration"
// (`option x` / `list x` in the first column) and the script options named
// right after it.
function readmeOptions() {
	const src = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
	const start = src.indexOf('\n## Configuration');
	if (start < 0)
		throw new Error('README.md has no "## Configuration" section');
	const end = src.indexOf('\n### ', start);
	const section = src.slice(start, end < 0 ? undefined : end);
	const names = new Set();
	for (const line of section.split('\n')) {
		if (!line.startsWith('|'))
			continue;
		const first = line.split('|')[1] || '';
		for (const m of first.matchAll(/`(?:option|list) ([a-z_0-9]+)`/g))
			names.add(m[1]);
	}
	// "`enabled`, `dnsmasq_integration` and `list wan_interface` belong to ..."
	const script = /\n`([a-z_]+)`, `([a-z_]+)` and `list ([a-z_]+)` belong to the OpenWrt/.exec(section);
	if (script)
		script.slice(1).forEach((n) => names.add(n));
	return names;
}

module.exports = { configOptions, readmeOptions, REPO };
