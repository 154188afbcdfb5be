'use strict';
'require view';
'require form';
'require uci';
'require validation';

// dproxy settings: every option of /etc/config/dproxy, with the ranges the
// daemon enforces (src/config.rs). Save & Apply commits the config; the init
// script's reload trigger then sends SIGHUP, which re-reads it and keeps the
// cache. No regular expression literals here (LuCI's jsmin pass).

// A whole number from min to max, as the daemon reads it.
function uint(min, max) {
	return (min > 0) ? 'and(uinteger,range(%d,%d))'.format(min, max) : 'and(uinteger,max(%d))'.format(max);
}

// An address with an optional port: ADDR, V4ADDR:PORT or [V6ADDR]:PORT.
var ADDRESS = 'or(ipaddr(1),ipaddrport(1))';

function isIP(s) {
	return validation.parseIPv4(s) != null || validation.parseIPv6(s) != null;
}

function isDigits(s) {
	return s.length > 0 && s.split('').every(function(c) { return c >= '0' && c <= '9'; });
}

function isPort(s) {
	return isDigits(s) && s.length <= 5 && +s >= 1 && +s <= 65535;
}

// A host name: letters, digits and hyphens in labels of 1 to 63, one trailing dot allowed.
function isHostName(s) {
	var n = (s.charAt(s.length - 1) == '.') ? s.slice(0, -1) : s;
	return n.length > 0 && n.length <= 253 && n.split('.').every(function(l) {
		return l.length > 0 && l.length <= 63 && l.charAt(0) != '-' && l.charAt(l.length - 1) != '-' &&
			l.toLowerCase().split('').every(function(c) {
				return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
			});
	});
}

// ADDR, V4ADDR:PORT or [V6ADDR]:PORT; also [V6ADDR] when bare is true.
function isAddrPort(s, bare) {
	if (s.charAt(0) == '[') {
		var close = s.indexOf(']'), after = s.slice(close + 1);
		return close > 0 && validation.parseIPv6(s.slice(1, close)) != null &&
			((bare && after == '') || (after.charAt(0) == ':' && isPort(after.slice(1))));
	}
	if (isIP(s))
		return true;
	var colon = s.lastIndexOf(':');
	return colon > 0 && validation.parseIPv4(s.slice(0, colon)) != null && isPort(s.slice(colon + 1));
}

// The part of s before the first '#', and the part after it (null without one).
function splitHash(s) {
	var i = s.indexOf('#');
	return (i < 0) ? [ s, null ] : [ s.slice(0, i), s.slice(i + 1) ];
}

// A `list server` entry as the daemon reads it (the table tests/data/server-entries.txt
// holds both sides to the same lines): a plain ADDR, V4ADDR:PORT, [V6ADDR]:PORT or
// ADDR#PORT; for dproxy-full also tls://ADDR[:PORT][#NAME], ADDR@PORT[#NAME] and
// https://HOST[:PORT][/PATH][#ADDR].
function validateServer(section_id, value) {
	var v = String(value).trim(), p, i;

	if (v.indexOf('tls://') == 0) {
		p = splitHash(v.slice(6));
		if (!isAddrPort(p[0], true))
			return _('tls:// takes an IP address (and :PORT); the server name goes after #');
		return (p[1] == null || isHostName(p[1])) || _('Expecting a server name after #');
	}
	if (v.indexOf('https://') == 0) {
		p = splitHash(v.slice(8));
		if (p[0].indexOf('?') >= 0 || p[0].indexOf('@') >= 0 || p[0].indexOf(' ') >= 0)
			return _('Expecting https://HOST[:PORT]/PATH, without a query, user or spaces');
		i = p[0].indexOf('/');
		var authority = (i < 0) ? p[0] : p[0].slice(0, i), host = authority, port = null;
		if (authority.charAt(0) == '[') {
			i = authority.indexOf(']');
			if (i < 0)
				return _('Unclosed [ in the URL');
			host = authority.slice(1, i);
			if (authority.length > i + 1) {
				if (authority.charAt(i + 1) != ':')
					return _('Expecting a port after ]:');
				port = authority.slice(i + 2);
			}
		}
		else if (authority.lastIndexOf(':') >= 0) {
			host = authority.slice(0, authority.lastIndexOf(':'));
			port = authority.slice(authority.lastIndexOf(':') + 1);
		}
		if (port != null && !isPort(port))
			return _('Expecting a port from 1 to 65535');
		if (!isIP(host) && !isHostName(host))
			return _('Expecting a host name or IP address');
		return (p[1] == null || isIP(p[1])) || _('Expecting the IP address of the host after #');
	}
	if (v.indexOf('://') >= 0)
		return _('Only tls:// and https:// are supported');
	if (v.indexOf('@') >= 0) {
		p = splitHash(v.slice(v.indexOf('@') + 1));
		if (!isIP(v.slice(0, v.indexOf('@'))) || !(p[0] == '' || isPort(p[0])))
			return _('Expecting ADDR@PORT#NAME');
		return (p[1] == null || isHostName(p[1])) || _('Expecting a server name after #');
	}
	p = splitHash(v);
	if (p[1] != null)
		return (isIP(p[0]) && isPort(p[1])) || _('Expecting ADDR#PORT');
	return isAddrPort(v, false) || _('Expecting an IP address with an optional port');
}

return view.extend({
	load: function() {
		return uci.load('dproxy');
	},

	render: function() {
		var m, s, o;

		m = new form.Map('dproxy', _('dproxy'),
			_('A DNS caching proxy that keeps the LAN resolving when the uplink goes down. Save & Apply reloads it; the cache is kept.'));

		s = m.section(form.NamedSection, 'main', 'dproxy');
		s.anonymous = true;
		s.addremove = false;

		s.tab('general', _('General'));
		s.tab('upstream', _('Upstream servers'));
		s.tab('cache', _('Cache'));
		s.tab('link', _('Link loss'));
		s.tab('local', _('Local names'));
		s.tab('security', _('Security'));

		// --- General
		o = s.taboption('general', form.Flag, 'enabled', _('Enabled'),
			_('Start dproxy. Off by default, so installing the package opens no port.'));
		o.rmempty = false;

		o = s.taboption('general', form.ListValue, 'dnsmasq_integration', _('Sharing DNS with dnsmasq'),
			_('off: dproxy answers only on its own addresses and port. forward: dnsmasq keeps port 53 and forwards every query to dproxy. replace: dproxy answers on port 53 and dnsmasq keeps only DHCP.'));
		o.value('off', _('off'));
		o.value('forward', _('forward'));
		o.value('replace', _('replace'));
		o.default = 'off';

		o = s.taboption('general', form.DynamicList, 'listen', _('Listen addresses'),
			_('Addresses to answer on (UDP and TCP), as ADDR, ADDR:PORT or [V6]:PORT; a changed list needs a restart. Not used in replace mode.'));
		o.datatype = ADDRESS;

		o = s.taboption('general', form.Value, 'port', _('Port'),
			_('Port for listen addresses given without one.'));
		o.datatype = 'and(port,min(1))';
		o.placeholder = '1296';

		o = s.taboption('general', form.ListValue, 'log_level', _('Log level'),
			_('What goes to the system log (logread).'));
		o.value('error', _('error'));
		o.value('warn', _('warn'));
		o.value('info', _('info'));
		o.value('debug', _('debug'));
		o.default = 'info';

		o = s.taboption('general', form.Value, 'control_socket', _('Control socket'),
			_('Unix socket for dproxy ctl and for this page\'s status (mode 0600); empty = none.'));
		o.placeholder = '/var/run/dproxy/dproxy.sock';

		// --- Upstream servers
		o = s.taboption('upstream', form.DynamicList, 'server', _('Servers'),
			_('Upstream servers (port 53 unless given). When none is given, the servers in the resolv file are used. dproxy-full also takes DNS over TLS servers: tls://1.1.1.1#cloudflare-dns.com (port 853 unless given; after # the name the server\'s certificate must carry), and DNS over HTTPS servers by URL: https://dns.quad9.net/dns-query#9.9.9.9 (after # the address to connect to; without it the name is resolved through the bootstrap servers).'));
		o.validate = validateServer;

		o = s.taboption('upstream', form.Value, 'resolvfile', _('Resolv file'),
			_('Upstreams from this file when no server is given; re-read when it changes and at link up. Do not name /etc/resolv.conf or /tmp/resolv.conf: those point at the router itself.'));
		o.placeholder = '/tmp/resolv.conf.d/resolv.conf.auto';

		s.taboption('upstream', form.Flag, 'trust_ad', _('Trust AD bit'),
			_('Pass the upstream\'s AD bit on (only for a validating upstream you trust).'));

		o = s.taboption('upstream', form.Flag, 'case_randomization', _('Case randomization (0x20)'),
			_('Random letter case in upstream questions, which must come back exactly.'));
		o.default = '1';

		// Encrypted upstreams: read by the dproxy-full package only; the plain
		// package refuses a config that sets them (it never falls back to plain DNS).
		o = s.taboption('upstream', form.DynamicList, 'bootstrap', _('Bootstrap servers (dproxy-full)'),
			_('Plain servers used only to resolve the host names of DNS-over-HTTPS upstreams.'));
		o.datatype = ADDRESS;

		o = s.taboption('upstream', form.Value, 'ca_file', _('CA bundle (dproxy-full)'),
			_('The certificates (PEM) that TLS upstreams are checked against (package ca-bundle).'));
		o.placeholder = '/etc/ssl/certs/ca-certificates.crt';

		s.taboption('upstream', form.DynamicList, 'tls_pin', _('Key pins (dproxy-full)'),
			_('NAME sha256/BASE64: the public key the encrypted server of that name must have.'));

		s.taboption('upstream', form.Flag, 'allow_plain_fallback', _('Plain fallback (dproxy-full)'),
			_('Let plain servers listed next to encrypted ones answer when every encrypted server failed a query. Whoever can block the encrypted servers can then read and answer those queries: leave it off unless resolving matters more than privacy.'));

		// --- Cache
		o = s.taboption('cache', form.Value, 'cache_size', _('Cache size (KiB)'),
			_('Cache budget in KiB (entries and their bookkeeping).'));
		o.datatype = uint(0, 4194304);
		o.placeholder = '1024';

		o = s.taboption('cache', form.Value, 'min_ttl', _('Minimum TTL (s)'),
			_('Raise shorter TTLs to this.'));
		o.datatype = uint(0, 604800);
		o.placeholder = '0';

		o = s.taboption('cache', form.Value, 'max_ttl', _('Maximum TTL (s)'),
			_('Lower longer TTLs to this.'));
		o.datatype = uint(0, 604800);
		o.placeholder = '86400';

		o = s.taboption('cache', form.Value, 'neg_ttl', _('Negative TTL cap (s)'),
			_('Cap on negative caching (NXDOMAIN, NODATA).'));
		o.datatype = uint(0, 604800);
		o.placeholder = '3600';

		o = s.taboption('cache', form.Flag, 'prefetch', _('Prefetch'),
			_('Refresh popular entries before they expire.'));
		o.default = '1';

		o = s.taboption('cache', form.Value, 'persist_file', _('Persist file'),
			_('Keep the cache in this file across restarts; empty = off.'));
		o.placeholder = '/tmp/dproxy.cache';

		o = s.taboption('cache', form.Value, 'persist_interval', _('Persist interval (s)'),
			_('Also write the persist file every N seconds (0 = only at exit).'));
		o.datatype = uint(0, 604800);
		o.placeholder = '0';

		o = s.taboption('cache', form.Value, 'memory_limit', _('Memory limit (KiB)'),
			_('KiB for cache, queries in flight and TCP buffers together (0 = cache size only).'));
		o.datatype = uint(0, 4194304);
		o.placeholder = '0';

		// --- Link loss
		o = s.taboption('link', form.DynamicList, 'wan_interface', _('WAN interfaces'),
			_('Logical interfaces whose ifup and ifdown tell dproxy that the uplink came back or went away.'));
		o.datatype = 'uciname';

		o = s.taboption('link', form.Value, 'stale_max', _('Serve stale for at most (s)'),
			_('Serve expired answers at most this long past expiry; 0 = never.'));
		o.datatype = uint(0, 2592000);
		o.placeholder = '86400';

		o = s.taboption('link', form.DynamicList, 'stale_exclude', _('Never stale'),
			_('Names (and their subdomains) never served stale, e.g. dynamic DNS names.'));
		o.datatype = 'hostname';

		o = s.taboption('link', form.ListValue, 'offline_policy', _('Cache miss while offline'),
			_('servfail: answer at once; hold: wait up to the hold timeout for the link.'));
		o.value('servfail', _('servfail'));
		o.value('hold', _('hold'));
		o.default = 'servfail';

		o = s.taboption('link', form.Value, 'hold_timeout', _('Hold timeout (s)'),
			_('With hold, how long a miss waits for the link.'));
		o.datatype = uint(1, 300);
		o.placeholder = '10';

		o = s.taboption('link', form.Value, 'stale_timeout', _('Stale timeout (ms)'),
			_('Online, answer stale if the upstream is slower than this.'));
		o.datatype = uint(0, 60000);
		o.placeholder = '1800';

		// --- Local names
		o = s.taboption('local', form.DynamicList, 'hosts', _('Hosts files'),
			_('Hosts files, or directories of them.'));
		o.placeholder = '/etc/hosts';

		s.taboption('local', form.DynamicList, 'leasefile', _('Lease files'),
			_('DHCP lease files (dnsmasq, odhcpd, ISC dhcpd).'));

		o = s.taboption('local', form.Value, 'domain', _('Local domain'),
			_('Host nas also answers as nas.<domain>; names in it are never forwarded.'));
		o.datatype = 'hostname';

		s.taboption('local', form.Flag, 'domain_needed', _('Domain needed'),
			_('Never forward names without a dot (NXDOMAIN if not local).'));

		s.taboption('local', form.Flag, 'bogus_priv', _('Bogus private reverse lookups'),
			_('Never forward reverse lookups for private ranges (NXDOMAIN if not local).'));

		o = s.taboption('local', form.Value, 'local_ttl', _('Local TTL (s)'),
			_('TTL of answers from local names.'));
		o.datatype = uint(0, 604800);
		o.placeholder = '60';

		o = s.taboption('local', form.DynamicList, 'blocklist', _('Blocklists'),
			_('Files of domains to block (with their subdomains), or directories of them: one domain per line, hosts lines (0.0.0.0 name) or dnsmasq lines (address=/name/). Re-read within a second or two of a change; keep downloaded lists in /tmp.'));
		o.placeholder = '/tmp/dproxy-blocklists';

		o = s.taboption('local', form.DynamicList, 'block_allow', _('Never blocked'),
			_('Domains (and their subdomains) that stay resolvable whatever a blocklist says.'));
		o.datatype = 'hostname';

		o = s.taboption('local', form.ListValue, 'block_answer', _('Answer for blocked names'),
			_('nxdomain: the name does not exist; null: 0.0.0.0 or :: (no data for other types); refused: REFUSED. Every one says Blocked (Extended DNS Error 15).'));
		o.value('nxdomain', _('nxdomain'));
		o.value('null', _('null'));
		o.value('refused', _('refused'));
		o.default = 'nxdomain';

		// --- Security
		s.taboption('security', form.Flag, 'dnssec', _('DNSSEC validation (dproxy-full)'),
			_('Check DNSSEC signatures from the trust anchors down. Not yet applied to answers: this version refuses to start with it on.'));

		o = s.taboption('security', form.Flag, 'dnssec_check_unsigned', _('Check unsigned answers'),
			_('An unsigned answer must be proven unsigned by a signed denial of DS.'));
		o.default = '1';

		o = s.taboption('security', form.Value, 'trust_anchor_file', _('Trust anchor file'),
			_('DS records in zone-file form; by default the root anchors the package installs.'));
		o.placeholder = '/usr/share/dproxy/root-anchors.ds';

		s.taboption('security', form.Flag, 'dnssec_sha1', _('Accept RSASHA1'),
			_('Treat RSASHA1 signatures (algorithms 5 and 7) as secure instead of insecure.'));

		o = s.taboption('security', form.Flag, 'local_service', _('Local service only'),
			_('Answer only loopback and on-link clients.'));
		o.default = '1';

		o = s.taboption('security', form.DynamicList, 'allow', _('Allowed clients'),
			_('CIDR blocks let in (deny wins).'));
		o.datatype = 'or(ipaddr,cidr)';

		o = s.taboption('security', form.DynamicList, 'deny', _('Denied clients'),
			_('CIDR blocks kept out (deny wins).'));
		o.datatype = 'or(ipaddr,cidr)';

		o = s.taboption('security', form.ListValue, 'refuse_action', _('Refused clients get'),
			_('refused: a REFUSED answer; drop: nothing.'));
		o.value('refused', _('refused'));
		o.value('drop', _('drop'));
		o.default = 'refused';

		o = s.taboption('security', form.Flag, 'rebind_protection', _('Rebind protection'),
			_('Refuse private addresses for public names.'));
		o.default = '1';

		o = s.taboption('security', form.DynamicList, 'rebind_domain', _('Rebind exceptions'),
			_('Domains allowed to resolve to private addresses.'));
		o.datatype = 'hostname';

		s.taboption('security', form.Flag, 'rebind_localhost', _('Allow localhost in answers'),
			_('Allow 127.0.0.0/8 in answers (RBL-style lists).'));

		o = s.taboption('security', form.Value, 'rate_limit', _('Rate limit (queries/s)'),
			_('Queries per second per client (0 = off).'));
		o.datatype = uint(0, 1000000);
		o.placeholder = '0';

		o = s.taboption('security', form.Value, 'rate_burst', _('Rate burst'),
			_('Bucket size for the rate limit (default: the rate limit).'));
		o.datatype = uint(0, 1000000);

		o = s.taboption('security', form.Value, 'user', _('Run as user'),
			_('User to switch to after binding, when started as root (root keeps root).'));
		o.placeholder = 'dproxy';

		s.taboption('security', form.Value, 'chroot', _('Chroot directory'),
			_('Chroot here after binding (paths in the config must then exist inside it). procd\'s jail already confines dproxy on OpenWrt.'));

		return m.render();
	}
});
