'use strict';
// Minimal stand-ins for the LuCI runtime objects the dproxy views use (view,
// form, uci, rpc, poll, ui, dom, E, _ and String.prototype.format), and a
// loader that runs a view file the way LuCI's L.require does: the file body
// becomes a function whose parameters are the modules named by its
// 'require ...' lines, and its top-level return value is the view class.
// These are not LuCI: they record what a view declares and build plain
// objects instead of DOM nodes, so the tests can look at them.

const fs = require('fs');
const vm = require('vm');
const datatypes = require('./datatypes');

// Modules the stand-ins provide; a view requiring anything else fails to load.
const MODULES = ['view', 'form', 'uci', 'rpc', 'poll', 'ui', 'dom', 'validation'];

// The 'require x' lines at the top of a view.
function requires(src) {
	const out = [];
	for (const line of src.split('\n')) {
		const m = /^\s*'require ([a-zA-Z0-9_.]+)';\s*$/.exec(line);
		if (m)
			out.push(m[1]);
	}
	return out;
}

// A node of the stand-in DOM: { tag, attrs, children }.
function E(tag, attrs, children) {
	if (Array.isArray(attrs) || typeof attrs === 'string' || (attrs && attrs.tag)) {
		children = attrs;
		attrs = {};
	}
	const kids = [];
	const add = (c) => {
		if (c === null || c === undefined)
			return;
		if (Array.isArray(c))
			c.forEach(add);
		else
			kids.push(c);
	};
	add(children);
	return { tag, attrs: attrs || {}, children: kids };
}

// All text of a stand-in node, in document order.
function text(node) {
	if (node === null || node === undefined)
		return '';
	if (typeof node !== 'object')
		return String(node);
	return node.children.map(text).join(' ');
}

// Every node of a tree matching pred.
function findAll(node, pred, out = []) {
	if (node && typeof node === 'object') {
		if (pred(node))
			out.push(node);
		node.children.forEach((c) => findAll(c, pred, out));
	}
	return out;
}

// A LuCI-like String.prototype.format for %s, %d and %%.
const FORMAT_SRC = `
String.prototype.format = function() {
	var args = arguments, i = 0;
	return this.replace(/%([%sd])/g, function(m, t) {
		if (t === '%') return '%';
		var v = args[i++];
		return t === 'd' ? String(Math.floor(Number(v))) : String(v);
	});
};`;

// A fresh runtime. `respond(object, method, args)` answers rpc calls; a throw is
// a refused call.
function runtime(respond) {
	const rec = { rpc: [], calls: [], polls: [], notes: [], uciLoads: [], maps: [] };

	const rpc = {
		declare(opts) {
			rec.rpc.push(opts);
			return function() {
				const args = Array.prototype.slice.call(arguments);
				rec.calls.push({ object: opts.object, method: opts.method, args });
				// LuCI's rpc.js rejects the promise when the JSON-RPC reply is an error
				// (-32002 Access denied for a method the session's ACL does not grant):
				// a `respond` that throws stands for that.
				return new Promise((resolve) => resolve(respond(opts.object, opts.method, args)));
			};
		}
	};

	const view = { extend: (o) => o };
	const poll = { add: (fn, interval) => rec.polls.push({ fn, interval }) };
	const ui = {
		createHandlerFn(ctx, name) {
			const extra = Array.prototype.slice.call(arguments, 2);
			const fn = typeof name === 'function' ? name : ctx[name];
			return (ev) => fn.apply(ctx, extra.concat([ev]));
		},
		addNotification: (title, body, kind) => rec.notes.push({ title, body: text(body), kind }),
	};
	const dom = {
		content(node, child) {
			node.children = child === null || child === undefined ? [] : [child];
			return node;
		}
	};
	const uci = { load: (c) => { rec.uciLoads.push(c); return Promise.resolve(); } };

	// form: records every section, tab and option.
	class AbstractValue {
		constructor(kind, name, title, description) {
			Object.assign(this, { kind, name, title, description, choices: [] });
		}
		value(key, label) { this.choices.push({ key, label }); }
	}
	const optionKind = (kind) => ({ kind });
	const form = {
		Flag: optionKind('Flag'),
		Value: optionKind('Value'),
		ListValue: optionKind('ListValue'),
		DynamicList: optionKind('DynamicList'),
		NamedSection: { kind: 'NamedSection' },
		TypedSection: { kind: 'TypedSection' },
		Map: class {
			constructor(config, title, description) {
				Object.assign(this, { config, title, description, sections: [] });
				rec.maps.push(this);
			}
			section(type, ...args) {
				const s = {
					type: type.kind, args, tabs: [], options: [],
					tab(name, title) { this.tabs.push({ name, title }); },
					taboption(tab, cls, name, title, description) {
						const o = new AbstractValue(cls.kind, name, title, description);
						o.tab = tab;
						this.options.push(o);
						return o;
					},
					option(cls, name, title, description) {
						return this.taboption(null, cls, name, title, description);
					}
				};
				this.sections.push(s);
				return s;
			}
			render() { return Promise.resolve(E('div', { 'class': 'cbi-map' }, [])); }
		}
	};

	// validation: the two address parsers of LuCI's validation.js the views call,
	// from the datatype stand-in (null for a string that is not an address).
	const validation = { parseIPv4: datatypes.parseIPv4, parseIPv6: datatypes.parseIPv6 };

	const modules = { view, form, uci, rpc, poll, ui, dom, validation };
	return { rec, modules };
}

// Loads a view file against a runtime; returns { view, rec }. `L` is the
// stand-in for LuCI's global L (only what a test gives it).
function loadView(file, respond, L) {
	const src = fs.readFileSync(file, 'utf8');
	const { rec, modules } = runtime(respond || (() => ({})));
	const names = requires(src);
	for (const n of names) {
		if (!MODULES.includes(n))
			throw new Error(file + ": 'require " + n + "' has no stand-in");
	}
	const ctx = vm.createContext({ console, Promise });
	vm.runInContext(FORMAT_SRC, ctx);
	const params = ['_', 'N_', 'E', 'L'].concat(names);
	const fn = vm.runInContext('(function(' + params.join(',') + ') {\n' + src + '\n})', ctx,
		{ filename: file });
	const args = [(s) => s, (s) => s, E, L || {}].concat(names.map((n) => modules[n]));
	const view = fn.apply(null, args);
	return { view, rec, requires: names };
}

module.exports = { loadView, requires, text, findAll, E, MODULES };
