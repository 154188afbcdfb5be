'use strict';
// luci-app-dproxy's views loaded in Node's vm against the stand-ins of
// standins.js (not LuCI: LuCI cannot run outside OpenWrt), and its menu and
// ACL files checked against what the views declare.
//
// Run: DPROXY_BIN=target/release/dproxy node --test tests/luci/
// The settings test asks the real daemon (dproxy --check-config) whether it
// rejects each bad value, so the form's datatypes are checked against the
// daemon itself, not against a copy of its rules.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const { loadView, text, findAll } = require('./standins');
const { compile } = require('./datatypes');
const { configOptions, readmeOptions, REPO } = require('./options');

const APP = path.join(REPO, 'openwrt', 'luci-app-dproxy');
const VIEWS = path.join(APP, 'htdocs', 'luci-static', 'resources', 'view');
const MENU = path.join(APP, 'root', 'usr', 'share', 'luci', 'menu.d', 'luci-app-dproxy.json');
const ACL = path.join(APP, 'root', 'usr', 'share', 'rpcd', 'acl.d', 'luci-app-dproxy.json');
const SCHEMA = path.join(REPO, 'tests', 'integration', 'stats.schema.json');

function viewFiles() {
	return fs.readdirSync(path.join(VIEWS, 'dproxy')).filter((f) => f.endsWith('.js'))
		.map((f) => path.join(VIEWS, 'dproxy', f));
}

// A status object as `dproxy ctl stats --json` writes it, with every key the
// schema requires (checked below, so the stand-in data cannot drift from it).
function sampleStatus(over) {
	const st = {
		version: '0.1.0', uptime: 3725, queries: 1000, replies: 1000, hits: 700, misses: 250,
		merged: 3, dns_local_answered: 40, dns_stale_answered: 6, prefetch: 12, dns_unanswered: 4,
		truncated: 0, dns_queries_forwarded: 260, upstream_answers: 240, tcp_connections: 5,
		cache_entries: 321, cache_bytes: 524288, cache_budget: 1048576, drop_malformed: 0,
		drop_mismatch: 0, drop_upstream_malformed: 0, drop_tcp_full: 0, drop_overload: 0,
		drop_case: 0, drop_rebind: 0, drop_refused: 0, drop_ratelimit: 0, pending: 0,
		local_names: 12, dns_cache_inserted: 400, dns_cache_live_freed: 2, hit_ratio: 0.7368,
		link: 'up', link_auto: false, link_since: 1700000000, started: 1700000000,
		config_file: '/etc/config/dproxy', config_loaded: 1700000000, config_reload: 'none',
		config_reload_at: null, config_reload_error: null,
		upstreams: [{ address: '192.0.2.53:53', protocol: 'udp', state: 'up', srtt_ms: 23,
			failures: 0, queries: 260, answers: 240, timeouts: 20 }]
	};
	return Object.assign(st, over || {});
}

test('the sample status has every key the --json schema requires', () => {
	const schema = JSON.parse(fs.readFileSync(SCHEMA, 'utf8'));
	const st = sampleStatus();
	for (const k of schema.required)
		assert.ok(k in st, 'sample status lacks ' + k);
	for (const k of schema.$defs.upstream.required)
		assert.ok(k in st.upstreams[0], 'sample upstream lacks ' + k);
});

// ------------------------------------------------------------------ ACL, menu

function aclGrants() {
	const acl = JSON.parse(fs.readFileSync(ACL, 'utf8'));
	const app = acl['luci-app-dproxy'];
	assert.ok(app, 'the ACL file must define luci-app-dproxy');
	return app;
}

test('every rpc call the views declare is granted in the ACL', () => {
	const app = aclGrants();
	const granted = (level, object, method) =>
		((app[level] && app[level].ubus && app[level].ubus[object]) || []).includes(method);
	let declared = 0;
	for (const f of viewFiles()) {
		const { rec } = loadView(f);
		for (const d of rec.rpc) {
			declared++;
			assert.deepEqual(Object.keys(d.expect || {}), [''],
				d.method + ": expect { '': default } so a ubus error becomes an object");
			assert.ok(granted('read', d.object, d.method) || granted('write', d.object, d.method),
				path.basename(f) + ' declares ' + d.object + '.' + d.method + ' but the ACL grants it nowhere');
		}
	}
	assert.ok(declared >= 3, 'the status view declares status, flush and link');
	// What the issue asks: read = status and uci dproxy; write = uci dproxy, flush, link.
	assert.deepEqual(app.read.ubus, { 'luci.dproxy': ['status'] });
	assert.deepEqual(app.read.uci, ['dproxy']);
	assert.deepEqual(app.write.ubus, { 'luci.dproxy': ['flush', 'link'] });
	assert.deepEqual(app.write.uci, ['dproxy']);
});

test('the ACL names only methods the rpcd plugin lists', () => {
	const r = spawnSync('sh', [path.join(REPO, 'files', 'dproxy.rpcd'), 'list'], { encoding: 'utf8' });
	assert.equal(r.status, 0, r.stderr);
	const methods = Object.keys(JSON.parse(r.stdout));
	const app = aclGrants();
	for (const level of ['read', 'write'])
		for (const m of app[level].ubus['luci.dproxy'])
			assert.ok(methods.includes(m), 'ACL grants luci.dproxy.' + m + ', which the plugin does not list');
});

test('menu: Services -> dproxy, every view path exists, the ACL it depends on exists', () => {
	const menu = JSON.parse(fs.readFileSync(MENU, 'utf8'));
	assert.ok(menu['admin/services/dproxy'], 'menu entry admin/services/dproxy');
	assert.deepEqual(menu['admin/services/dproxy'].depends.acl, ['luci-app-dproxy']);
	aclGrants();
	const views = Object.values(menu).filter((e) => e.action && e.action.type === 'view')
		.map((e) => e.action.path);
	assert.deepEqual(views.sort(), ['dproxy/settings', 'dproxy/status']);
	for (const p of views)
		assert.ok(fs.existsSync(path.join(VIEWS, p + '.js')), 'menu names view ' + p + ', no such file');
	for (const key of Object.keys(menu))
		assert.ok(key === 'admin/services/dproxy' || key.startsWith('admin/services/dproxy/'), key);
});

// ------------------------------------------------------------------ status view

function statusView(respond, L) {
	return loadView(path.join(VIEWS, 'dproxy', 'status.js'), respond, L);
}

test('status view renders link, uptime, cache, sources and upstreams; polls every 5 s', async () => {
	let st = sampleStatus();
	const { view, rec } = statusView((obj, method) => {
		if (method === 'status')
			return st;
		if (method === 'flush')
			return { flushed: 321 };
		if (method === 'link')
			return { link: 'down' };
		return {};
	});
	const data = await view.load();
	const node = view.render(data);
	const all = text(node);
	assert.match(all, /Up/);
	assert.match(all, /1h 2m/, 'uptime 3725 s');
	assert.match(all, /512\.0 KiB \/ 1\.0 MiB \(50\.0 %\)/, 'cache fill');
	assert.match(all, /73\.7 %/, 'hit ratio 700 / 950');
	assert.match(all, /192\.0\.2\.53:53/);
	assert.match(all, /23 ms/);
	for (const label of ['Cache', 'Local names', 'Upstream servers', 'Stale cache', 'Failed'])
		assert.ok(all.includes(label), 'answers by source: ' + label);
	assert.equal(rec.polls.length, 1);
	assert.equal(rec.polls[0].interval, 5);

	// A poll brings new numbers and the chart gets a bar for the interval.
	st = sampleStatus({ queries: 1060, link: 'down', link_auto: true });
	await rec.polls[0].fn();
	const after = text(node);
	assert.match(after, /Down \(no upstream server answers\)/);
	const bars = findAll(node, (n) => n.attrs && typeof n.attrs.title === 'string' &&
		n.attrs.title.endsWith('queries'));
	assert.deepEqual(bars.map((b) => b.attrs.title), ['60 queries']);

	// Buttons: flush and link call the plugin.
	const buttons = findAll(node, (n) => n.tag === 'button');
	const byLabel = (l) => buttons.find((b) => text(b).includes(l));
	const statusCalls = () => rec.calls.filter((c) => c.method === 'status').length;
	const before = statusCalls();
	await byLabel('Flush cache').attrs.click();
	assert.deepEqual(rec.calls.filter((c) => c.method === 'flush').length, 1);
	assert.equal(statusCalls(), before + 1, 'the status is fetched again after a flush');
	assert.equal(findAll(node, (n) => n.attrs && typeof n.attrs.title === 'string' &&
		n.attrs.title.endsWith('queries')).length, 1, 'a refresh by a button adds no chart bar');
	assert.match(rec.notes.at(-1).body, /321 entries/);
	await byLabel('Link down').attrs.click();
	assert.deepEqual(rec.calls.find((c) => c.method === 'link').args, ['down']);
});

test('status view: a refused flush or link call (rpc.js rejects on Access denied) shows an error', async () => {
	// A session whose ACL grants read only (status) but not write (flush, link):
	// uhttpd answers -32002 Access denied and LuCI's rpc.js rejects the call.
	const denied = (method) => new Error('RPC call to luci.dproxy/' + method +
		' failed with error -32002: Access denied\n    at handleCallReply (rpc.js:82:7)');
	const { view, rec } = statusView((obj, method) => {
		if (method === 'status')
			return sampleStatus();
		throw denied(method);
	});
	const node = view.render(await view.load());
	const buttons = findAll(node, (n) => n.tag === 'button');
	const byLabel = (l) => buttons.find((b) => text(b).includes(l));
	const statusCalls = () => rec.calls.filter((c) => c.method === 'status').length;
	const before = statusCalls();

	await byLabel('Flush cache').attrs.click();
	assert.equal(rec.notes.length, 1, 'one notification for the refused flush');
	assert.equal(rec.notes[0].kind, 'error');
	assert.equal(rec.notes[0].body,
		'Flush failed: RPC call to luci.dproxy/flush failed with error -32002: Access denied');
	assert.equal(statusCalls(), before + 1, 'the status is shown again after the refused flush');

	await byLabel('Link down').attrs.click();
	assert.equal(rec.notes.length, 2, 'one notification for the refused link change');
	assert.equal(rec.notes[1].kind, 'error');
	assert.equal(rec.notes[1].body,
		'Link change failed: RPC call to luci.dproxy/link failed with error -32002: Access denied');
	assert.match(text(node), /Up/, 'the link is still shown up');
});

test('status view: flush and link buttons disabled when LuCI says the page is read-only', async () => {
	const buttonsOf = async (L) => {
		const { view } = statusView(() => sampleStatus(), L);
		const node = view.render(await view.load());
		return findAll(node, (n) => n.tag === 'button').map((b) => [text(b), b.attrs.disabled]);
	};
	// L.hasViewPermission() is false when the ACL grants the page's group read-only.
	assert.deepEqual(await buttonsOf({ hasViewPermission: () => false }),
		[['Flush cache', true], ['Link down', true], ['Link up', true]]);
	assert.deepEqual(await buttonsOf({ hasViewPermission: () => true }),
		[['Flush cache', null], ['Link down', null], ['Link up', null]]);
});

test('status view shows a failed reload and a daemon that does not answer', async () => {
	const { view } = statusView(() => sampleStatus({
		config_reload: 'failed', config_reload_at: 1700000100,
		config_reload_error: "/etc/config/dproxy: main.port: 'x' is not a whole number"
	}));
	const node = view.render(await view.load());
	assert.match(text(node), /Last reload failed .*main\.port/);

	const down = statusView(() => ({ error: 'dproxy is not running or its control socket does not answer' }));
	const n2 = down.view.render(await down.view.load());
	assert.match(text(n2), /does not answer: dproxy is not running/);
});

// ------------------------------------------------------------------ settings view

// Values the daemon rejects, per option (checked against the daemon below).
// Options whose value the daemon takes as it is (paths, names of users or
// interfaces, names it skips with a warning) have none.
const x60 = 'x'.repeat(60);
const BAD = {
	listen: ['127.0.0.1/8', 'localhost'],
	port: ['0', '65536', '1.5'],
	server: ['192.0.2.1/24', 'dns.example'],
	cache_size: ['4194305', '-1'],
	min_ttl: ['604801'], max_ttl: ['604801'], neg_ttl: ['604801'], local_ttl: ['604801'],
	log_level: ['verbose'],
	trust_ad: ['maybe'], domain_needed: ['maybe'], bogus_priv: ['maybe'], prefetch: ['maybe'],
	local_service: ['maybe'], rebind_protection: ['maybe'], rebind_localhost: ['maybe'],
	case_randomization: ['maybe'],
	domain: [[x60, x60, x60, x60, x60].join('.')],
	stale_max: ['2592001'],
	offline_policy: ['wait'],
	hold_timeout: ['0', '301'],
	stale_timeout: ['60001'],
	persist_interval: ['604801'],
	allow: ['10.0.0.0/33', 'lan'], deny: ['10.0.0.0/33', 'lan'],
	refuse_action: ['reject'],
	rate_limit: ['1000001'], rate_burst: ['1000001'],
	memory_limit: ['4194305'],
	block_allow: ['not a name', 'a..example'],
	block_answer: ['drop'],
};

// Does the form field accept the value? (Flag: 0/1; ListValue: its choices.)
function formAccepts(o, value) {
	if (o.kind === 'Flag')
		return value === '0' || value === '1';
	if (o.kind === 'ListValue')
		return o.choices.some((c) => c.key === value);
	// LuCI checks the datatype first, then the option's own validate function
	// (true or an error message).
	if (o.datatype && !compile(o.datatype)(value))
		return false;
	return o.validate ? o.validate('main', value) === true : true;
}

function daemonRejects(kind, name, value, dir) {
	const bin = process.env.DPROXY_BIN;
	assert.ok(bin && fs.existsSync(bin), 'set DPROXY_BIN to the dproxy binary (make build)');
	const conf = path.join(dir, 'dproxy.conf');
	fs.writeFileSync(conf, "config dproxy 'main'\n\t" + kind + ' ' + name + " '" + value + "'\n");
	const r = spawnSync(bin, ['-c', conf, '--check-config'], { encoding: 'utf8' });
	return r.status === 1;
}

async function settingsForm() {
	const { view, rec, requires } = loadView(path.join(VIEWS, 'dproxy', 'settings.js'));
	await view.load();
	await view.render();
	assert.deepEqual(rec.uciLoads, ['dproxy']);
	assert.equal(rec.maps.length, 1);
	const m = rec.maps[0];
	assert.equal(m.config, 'dproxy');
	assert.equal(m.sections.length, 1);
	return { m, s: m.sections[0], requires };
}

test('settings form: tabs as the issue names them, in a form.Map over dproxy.main', async () => {
	const { s } = await settingsForm();
	assert.equal(s.type, 'NamedSection');
	assert.deepEqual(s.args, ['main', 'dproxy']);
	assert.deepEqual(s.tabs.map((t) => t.title),
		['General', 'Upstream servers', 'Cache', 'Link loss', 'Local names', 'Security']);
	for (const o of s.options) {
		assert.ok(s.tabs.some((t) => t.name === o.tab), o.name + ' is in no tab');
		assert.ok(o.title && o.description, o.name + ' needs a title and help text');
	}
});

test('settings form: every option of files/dproxy.config and the README exactly once', async () => {
	const { s } = await settingsForm();
	const cfg = configOptions(), readme = readmeOptions();
	const names = new Set([...Object.keys(cfg), ...readme]);
	const counts = {};
	s.options.forEach((o) => { counts[o.name] = (counts[o.name] || 0) + 1; });
	for (const n of names)
		assert.equal(counts[n], 1, 'option ' + n + ' appears ' + (counts[n] || 0) + ' times in the form');
	for (const n of Object.keys(counts))
		assert.ok(names.has(n), 'the form has ' + n + ', which neither files/dproxy.config nor the README knows');
	// A list in the config is a list in the form, and the other way round.
	for (const o of s.options) {
		if (!cfg[o.name])
			continue;
		assert.equal(o.kind === 'DynamicList', cfg[o.name].kind === 'list',
			o.name + ' is a ' + cfg[o.name].kind + ' in the config but a ' + o.kind + ' in the form');
	}
});

test('settings form: datatypes accept the shipped values and reject what the daemon rejects', async () => {
	const { s } = await settingsForm();
	const cfg = configOptions();
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'luci-dproxy-'));
	try {
		for (const o of s.options) {
			for (const v of (cfg[o.name] || { values: [] }).values)
				assert.ok(formAccepts(o, v), o.name + ': the form rejects the shipped value ' + JSON.stringify(v));
			for (const v of BAD[o.name] || []) {
				const kind = cfg[o.name] ? cfg[o.name].kind : 'option';
				assert.ok(daemonRejects(kind, o.name, v, dir),
					o.name + ': the daemon accepts ' + JSON.stringify(v) + '; fix this test\'s BAD table');
				assert.ok(!formAccepts(o, v), o.name + ': the form accepts ' + JSON.stringify(v) +
					', which the daemon rejects');
			}
		}
		for (const n of Object.keys(BAD))
			assert.ok(s.options.some((o) => o.name === n), 'BAD names ' + n + ', not in the form');
	} finally {
		fs.rmSync(dir, { recursive: true, force: true });
	}
});

test('settings form: the server list takes exactly the entries the daemon takes (tests/data/server-entries.txt)', async () => {
	const { s } = await settingsForm();
	const o = s.options.find((x) => x.name === 'server');
	const table = fs.readFileSync(path.join(REPO, 'tests', 'data', 'server-entries.txt'), 'utf8')
		.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
	assert.ok(table.length >= 35, 'the table has ' + table.length + ' entries');
	for (const line of table) {
		const sp = line.indexOf(' ');
		const verdict = line.slice(0, sp), entry = line.slice(sp + 1);
		assert.ok(verdict === 'good' || verdict === 'bad', line);
		const r = o.validate('main', entry);
		if (verdict === 'good')
			assert.equal(r, true, 'the form rejects ' + JSON.stringify(entry) + ': ' + r);
		else
			assert.ok(typeof r === 'string' && r.length > 0, 'the form accepts ' + JSON.stringify(entry));
	}
});

test('the datatype stand-in rejects what it should (it is not a stand-in that accepts anything)', () => {
	assert.ok(!compile('and(uinteger,range(1,300))')('0'));
	assert.ok(compile('and(uinteger,range(1,300))')('300'));
	assert.ok(!compile('or(ipaddr(1),ipaddrport(1))')('[::1]'));
	assert.ok(!compile('or(ipaddr(1),ipaddrport(1))')('10.0.0.1/8'));
	assert.ok(compile('or(ipaddr(1),ipaddrport(1))')('[::1]:53'));
	assert.ok(!compile('or(ipaddr,cidr)')('10.0.0.0/33'));
	assert.throws(() => compile('nosuchtype'));
});
