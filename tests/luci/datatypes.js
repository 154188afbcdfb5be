'use strict';
// A stand-in for the part of LuCI's validation.js that the dproxy settings
// form uses: it parses a datatype expression ('and(uinteger,range(1,300))')
// and checks a value with the same rules LuCI applies (as documented in
// luci-base's validation.js). LuCI itself cannot run outside OpenWrt; this
// file is the test's own model of it, not LuCI code.

function parseIPv4(s) {
	const parts = s.split('.');
	if (parts.length !== 4)
		return null;
	for (const p of parts) {
		if (!/^[0-9]{1,3}$/.test(p) || Number(p) > 255)
			return null;
	}
	return parts.map(Number);
}

function parseIPv6(s) {
	if (!/^[0-9a-fA-F:.]+$/.test(s) || s.indexOf(':') < 0)
		return null;
	let head = s, tail4 = null;
	const lastColon = s.lastIndexOf(':');
	if (s.indexOf('.', lastColon) >= 0) {
		tail4 = parseIPv4(s.slice(lastColon + 1));
		if (!tail4)
			return null;
		head = s.slice(0, lastColon + 1) + '0:0';
	}
	const dbl = head.split('::');
	if (dbl.length > 2)
		return null;
	const groups = (x) => x === '' ? [] : x.split(':');
	const left = groups(dbl[0]), right = dbl.length === 2 ? groups(dbl[1]) : [];
	for (const g of left.concat(right)) {
		if (!/^[0-9a-fA-F]{1,4}$/.test(g))
			return null;
	}
	const n = left.length + right.length;
	if (dbl.length === 1 ? n !== 8 : n > 7)
		return null;
	return true;
}

function prefixOk(p, max) {
	return /^[0-9]{1,3}$/.test(p) && Number(p) <= max;
}

function isInteger(v) {
	return /^-?[0-9]+$/.test(v);
}

function decimal(v) {
	return /^-?[0-9]+(\.[0-9]+)?$/.test(v) ? Number(v) : NaN;
}

// Types: name -> function(value, ...args) -> bool.
const types = {
	integer: (v) => isInteger(v),
	uinteger: (v) => isInteger(v) && Number(v) >= 0,
	port: (v) => types.uinteger(v) && Number(v) <= 65535,
	min: (v, m) => decimal(v) >= Number(m),
	max: (v, m) => decimal(v) <= Number(m),
	range: (v, a, b) => decimal(v) >= Number(a) && decimal(v) <= Number(b),
	// ipaddr(nomask): LuCI accepts ADDR/PREFIX too unless nomask is given.
	ip4addr: (v, nomask) => {
		const [a, p, more] = v.split('/');
		if (more !== undefined || (p !== undefined && (nomask || !prefixOk(p, 32))))
			return false;
		return parseIPv4(a) !== null;
	},
	ip6addr: (v, nomask) => {
		const [a, p, more] = v.split('/');
		if (more !== undefined || (p !== undefined && (nomask || !prefixOk(p, 128))))
			return false;
		return parseIPv6(a) !== null;
	},
	ipaddr: (v, nomask) => types.ip4addr(v, nomask) || types.ip6addr(v, nomask),
	cidr4: (v) => {
		const [a, p, more] = v.split('/');
		return more === undefined && p !== undefined && prefixOk(p, 32) && parseIPv4(a) !== null;
	},
	cidr6: (v) => {
		const [a, p, more] = v.split('/');
		return more === undefined && p !== undefined && prefixOk(p, 128) && parseIPv6(a) !== null;
	},
	cidr: (v) => types.cidr4(v) || types.cidr6(v),
	// ipaddrport(bracket): V4:PORT, and [V6]:PORT (bracket = 1) or V6:PORT.
	ipaddrport: (v, bracket) => {
		let m = /^([^[\]:]+):([0-9]+)$/.exec(v);
		if (m)
			return types.ip4addr(m[1], true) && types.port(m[2]);
		m = (String(bracket) === '1' ? /^\[(.+)\]:([0-9]+)$/ : /^([^[\]]+):([0-9]+)$/).exec(v);
		if (m)
			return types.ip6addr(m[1], true) && types.port(m[2]);
		return false;
	},
	hostname: (v) => v.length <= 253 &&
		(/^[a-zA-Z0-9_]+$/.test(v) || /^[a-zA-Z0-9_][a-zA-Z0-9_\-.]*[a-zA-Z0-9]\.?$/.test(v)) &&
		!/\.\./.test(v),
	uciname: (v) => /^[a-zA-Z0-9_]+$/.test(v),
};

// Splits 'a,b(c,d),e' at top-level commas.
function splitArgs(s) {
	const out = [];
	let depth = 0, cur = '';
	for (const ch of s) {
		if (ch === ',' && depth === 0) {
			out.push(cur.trim());
			cur = '';
			continue;
		}
		if (ch === '(')
			depth++;
		if (ch === ')')
			depth--;
		cur += ch;
	}
	if (cur.trim() !== '')
		out.push(cur.trim());
	return out;
}

// compile('and(uinteger,max(5))') -> function(value) -> bool; throws on an unknown type.
function compile(expr) {
	const m = /^([a-zA-Z0-9_]+)(?:\((.*)\))?$/.exec(expr.trim());
	if (!m)
		throw new Error('bad datatype expression: ' + expr);
	const name = m[1], args = m[2] !== undefined ? splitArgs(m[2]) : [];
	if (name === 'and' || name === 'or') {
		const subs = args.map(compile);
		return name === 'and'
			? (v) => subs.every((f) => f(v))
			: (v) => subs.some((f) => f(v));
	}
	const f = types[name];
	if (!f)
		throw new Error('datatype not modelled by the stand-in: ' + name);
	return (v) => f(String(v), ...args);
}

module.exports = { compile, types, parseIPv4, parseIPv6 };
