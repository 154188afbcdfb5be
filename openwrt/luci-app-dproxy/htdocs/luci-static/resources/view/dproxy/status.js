'use strict';
'require view';
'require dom';
'require poll';
'require rpc';
'require ui';

// dproxy status: what `dproxy ctl stats --json` says, through the rpcd plugin
// luci.dproxy, refreshed every 5 seconds. No regular expression literals here:
// LuCI's build minifies views with jsmin, which mangles some of them.

// expect '': the whole reply, which must be an object; anything else (a ubus
// error code: no plugin, no permission) becomes the error object given.
var NO_REPLY = { error: _('no reply from luci.dproxy (is the dproxy package installed, and rpcd reloaded?)') };

var callStatus = rpc.declare({
	object: 'luci.dproxy',
	method: 'status',
	expect: { '': NO_REPLY }
});

var callFlush = rpc.declare({
	object: 'luci.dproxy',
	method: 'flush',
	expect: { '': NO_REPLY }
});

var callLink = rpc.declare({
	object: 'luci.dproxy',
	method: 'link',
	params: [ 'state' ],
	expect: { '': NO_REPLY }
});

// rpc.js rejects a call that uhttpd refuses (-32002 Access denied: a session
// whose ACL grants status but not flush or link). The buttons show that as an
// error notification; unhandled, the click would do nothing visible. LuCI's
// errors carry the stack after the first line: only that line is shown.
function refused(err) {
	return { error: String((err && err.message) || err).split('\n')[0] };
}

var POLL_SECONDS = 5;
// Bars in the queries-per-interval chart (10 minutes at 5 s).
var CHART_BARS = 120;

function num(v) {
	return (typeof v === 'number' && isFinite(v)) ? v : 0;
}

// 1234567 -> '1,234,567'
function fmtCount(v) {
	var digits = String(Math.round(num(v))), out = '';
	for (var i = 0; i < digits.length; i++) {
		if (i > 0 && (digits.length - i) % 3 === 0)
			out += ',';
		out += digits.charAt(i);
	}
	return out;
}

function fmtBytes(v) {
	var units = [ 'B', 'KiB', 'MiB', 'GiB' ];
	var n = num(v), i = 0;
	while (n >= 1024 && i < units.length - 1) {
		n /= 1024;
		i++;
	}
	return (i === 0 ? String(n) : n.toFixed(1)) + ' ' + units[i];
}

function fmtDuration(s) {
	s = Math.max(0, Math.floor(num(s)));
	var d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24,
	    m = Math.floor(s / 60) % 60, sec = s % 60;
	if (d > 0)
		return _('%dd %dh %dm').format(d, h, m);
	if (h > 0)
		return _('%dh %dm').format(h, m);
	if (m > 0)
		return _('%dm %ds').format(m, sec);
	return _('%ds').format(sec);
}

function fmtTime(unix) {
	if (typeof unix !== 'number' || unix <= 0)
		return '-';
	return new Date(unix * 1000).toLocaleString();
}

function fmtPercent(part, whole) {
	if (!(whole > 0))
		return '-';
	return (100 * part / whole).toFixed(1) + ' %';
}

function row(label, value) {
	return E('tr', { 'class': 'tr' }, [
		E('td', { 'class': 'td left', 'width': '33%' }, [ label ]),
		E('td', { 'class': 'td left' }, [ value ])
	]);
}

return view.extend({
	// Total queries at each poll, for the chart.
	history: [],

	load: function() {
		return callStatus().catch(function(err) {
			return { error: String(err) };
		});
	},

	sources: function(st) {
		return [
			[ _('Cache'), num(st.hits) ],
			[ _('Local names'), num(st.dns_local_answered) ],
			[ _('Upstream servers'), num(st.upstream_answers) ],
			[ _('Stale cache (upstream slow or unreachable)'), num(st.dns_stale_answered) ],
			[ _('Failed (offline or no upstream answer)'), num(st.dns_unanswered) ]
		];
	},

	renderOverview: function(st) {
		var down = (st.link === 'down');
		var link = down
			? (st.link_auto ? _('Down (no upstream server answers)') : _('Down (told by hotplug or by hand)'))
			: _('Up');
		var reload = _('Never reloaded');
		if (st.config_reload === 'ok')
			reload = _('Reloaded at %s').format(fmtTime(st.config_reload_at));
		else if (st.config_reload === 'failed')
			reload = E('span', { 'class': 'label warning' }, [
				_('Last reload failed at %s; the previous settings stay in force: %s')
					.format(fmtTime(st.config_reload_at), st.config_reload_error || '')
			]);

		return E('table', { 'class': 'table' }, [
			row(_('Link'), E('span', { 'class': down ? 'label warning' : 'label success' }, [ link ])),
			row(_('Link state since'), fmtTime(st.link_since)),
			row(_('Running for'), fmtDuration(st.uptime)),
			row(_('Version'), st.version || '-'),
			row(_('Settings loaded'), fmtTime(st.config_loaded)),
			row(_('Last reload'), reload)
		]);
	},

	renderCache: function(st) {
		var answered = num(st.hits) + num(st.misses);
		return E('table', { 'class': 'table' }, [
			row(_('Entries'), fmtCount(st.cache_entries)),
			row(_('Fill'), '%s / %s (%s)'.format(fmtBytes(st.cache_bytes), fmtBytes(st.cache_budget),
				fmtPercent(num(st.cache_bytes), num(st.cache_budget)))),
			row(_('Hit ratio'), fmtPercent(num(st.hits), answered)),
			row(_('Inserted'), fmtCount(st.dns_cache_inserted)),
			row(_('Evicted before expiry'), fmtCount(st.dns_cache_live_freed)),
			row(_('Refreshed ahead of expiry'), fmtCount(st.prefetch))
		]);
	},

	renderSources: function(st) {
		var sources = this.sources(st);
		var total = 0;
		sources.forEach(function(s) { total += s[1]; });
		var rows = [
			E('tr', { 'class': 'tr table-titles' }, [
				E('th', { 'class': 'th' }, [ _('Answered from') ]),
				E('th', { 'class': 'th' }, [ _('Queries') ]),
				E('th', { 'class': 'th' }, [ _('Share') ])
			])
		];
		sources.forEach(function(s) {
			rows.push(E('tr', { 'class': 'tr' }, [
				E('td', { 'class': 'td' }, [ s[0] ]),
				E('td', { 'class': 'td' }, [ fmtCount(s[1]) ]),
				E('td', { 'class': 'td' }, [ fmtPercent(s[1], total) ])
			]));
		});
		rows.push(E('tr', { 'class': 'tr' }, [
			E('td', { 'class': 'td' }, [ E('strong', {}, [ _('All queries') ]) ]),
			E('td', { 'class': 'td' }, [ E('strong', {}, [ fmtCount(st.queries) ]) ]),
			E('td', { 'class': 'td' }, [ '' ])
		]));
		return E('table', { 'class': 'table' }, rows);
	},

	renderChart: function() {
		var deltas = [];
		for (var i = 1; i < this.history.length; i++)
			deltas.push(Math.max(0, this.history[i] - this.history[i - 1]));
		var highest = Math.max.apply(null, deltas.concat([ 0 ]));
		var scale = Math.max(highest, 1);
		var bars = deltas.map(function(d) {
			return E('div', {
				'title': _('%d queries').format(d),
				'style': 'display:inline-block;vertical-align:bottom;width:4px;margin-right:1px;' +
					'background:#4a90d9;height:' + Math.max(1, Math.round(48 * d / scale)) + 'px'
			});
		});
		return E('div', {}, [
			E('div', { 'style': 'height:50px;white-space:nowrap;overflow:hidden' }, bars),
			E('div', { 'class': 'cbi-value-description' }, [
				_('Queries per %d s over the last %d minutes; highest: %d')
					.format(POLL_SECONDS, Math.round(CHART_BARS * POLL_SECONDS / 60), highest)
			])
		]);
	},

	renderUpstreams: function(st) {
		var rows = [
			E('tr', { 'class': 'tr table-titles' }, [
				E('th', { 'class': 'th' }, [ _('Server') ]),
				E('th', { 'class': 'th' }, [ _('Protocol') ]),
				E('th', { 'class': 'th' }, [ _('State') ]),
				E('th', { 'class': 'th' }, [ _('Round trip (smoothed)') ]),
				E('th', { 'class': 'th' }, [ _('Failures in a row') ]),
				E('th', { 'class': 'th' }, [ _('Queries') ]),
				E('th', { 'class': 'th' }, [ _('Answers') ]),
				E('th', { 'class': 'th' }, [ _('Timeouts') ])
			])
		];
		var ups = Array.isArray(st.upstreams) ? st.upstreams : [];
		ups.forEach(function(u) {
			rows.push(E('tr', { 'class': 'tr' }, [
				E('td', { 'class': 'td' }, [ u.address || '?' ]),
				E('td', { 'class': 'td' }, [ u.protocol || '?' ]),
				E('td', { 'class': 'td' }, [ u.state === 'up' ? _('Up') : _('Down') ]),
				E('td', { 'class': 'td' }, [ '%d ms'.format(num(u.srtt_ms)) ]),
				E('td', { 'class': 'td' }, [ fmtCount(u.failures) ]),
				E('td', { 'class': 'td' }, [ fmtCount(u.queries) ]),
				E('td', { 'class': 'td' }, [ fmtCount(u.answers) ]),
				E('td', { 'class': 'td' }, [ fmtCount(u.timeouts) ])
			]));
		});
		if (!ups.length)
			rows.push(E('tr', { 'class': 'tr placeholder' }, [
				E('td', { 'class': 'td' }, [ E('em', {}, [ _('No upstream servers (none configured, and none in the resolv file yet)') ]) ])
			]));
		return E('table', { 'class': 'table' }, rows);
	},

	renderAll: function(st) {
		if (!st || st.error)
			return E('div', { 'class': 'alert-message warning' }, [
				_('dproxy does not answer: %s').format((st && st.error) || _('no status'))
			]);
		return E('div', {}, [
			E('h3', {}, [ _('Overview') ]), this.renderOverview(st),
			E('h3', {}, [ _('Cache') ]), this.renderCache(st),
			E('h3', {}, [ _('Queries by where the answer came from') ]), this.renderSources(st),
			this.renderChart(),
			E('h3', {}, [ _('Upstream servers') ]), this.renderUpstreams(st)
		]);
	},

	// record: a poll, whose query count goes into the chart.
	update: function(st, node, record) {
		if (record && st && !st.error) {
			this.history.push(num(st.queries));
			if (this.history.length > CHART_BARS + 1)
				this.history.shift();
		}
		dom.content(node, this.renderAll(st));
	},

	// Fetches the status now and shows it.
	refresh: function(record) {
		var self = this;
		return callStatus().catch(function(err) {
			return { error: String(err) };
		}).then(function(next) {
			self.update(next, self.body, record);
		});
	},

	handleFlush: function(ev) {
		var self = this;
		return callFlush().catch(refused).then(function(res) {
			if (res && res.error)
				ui.addNotification(null, E('p', {}, [ _('Flush failed: %s').format(res.error) ]), 'error');
			else
				ui.addNotification(null, E('p', {}, [
					_('Cache flushed (%d entries).').format(num(res && res.flushed))
				]), 'info');
			return self.refresh();
		});
	},

	handleLink: function(state, ev) {
		var self = this;
		return callLink(state).catch(refused).then(function(res) {
			if (res && res.error)
				ui.addNotification(null, E('p', {}, [ _('Link change failed: %s').format(res.error) ]), 'error');
			return self.refresh();
		});
	},

	render: function(st) {
		var self = this;
		// LuCI marks the page read-only when the session's ACL grants
		// luci-app-dproxy for reading only: flush and link would be refused.
		var readonly = (typeof L.hasViewPermission === 'function') && !L.hasViewPermission();
		this.body = E('div', { 'id': 'dproxy-status' });
		this.update(st, this.body, true);

		poll.add(function() {
			return self.refresh(true);
		}, POLL_SECONDS);

		return E('div', { 'class': 'cbi-map' }, [
			E('h2', {}, [ _('dproxy') ]),
			E('div', { 'class': 'cbi-map-descr' }, [
				_('The DNS caching proxy: link state, cache, where answers come from and the upstream servers, refreshed every %d seconds.').format(POLL_SECONDS)
			]),
			E('div', { 'class': 'cbi-section' }, [
				E('button', { 'class': 'btn cbi-button cbi-button-action', 'disabled': readonly || null, 'click': ui.createHandlerFn(this, 'handleFlush') }, [ _('Flush cache') ]),
				' ',
				E('button', { 'class': 'btn cbi-button', 'disabled': readonly || null, 'click': ui.createHandlerFn(this, 'handleLink', 'down') }, [ _('Link down') ]),
				' ',
				E('button', { 'class': 'btn cbi-button', 'disabled': readonly || null, 'click': ui.createHandlerFn(this, 'handleLink', 'up') }, [ _('Link up') ])
			]),
			E('div', { 'class': 'cbi-section' }, [ this.body ])
		]);
	},

	handleSave: null,
	handleSaveApply: null,
	handleReset: null
});
