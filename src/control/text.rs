//! `ctl stats`: a snapshot as `key=value` lines.

use std::fmt::Write;

use crate::stats::Snapshot;

/// The text of `ctl stats`.
pub fn stats(snap: &Snapshot) -> String {
    let s = &snap.counters;
    let mut o = String::new();
    let rows = [
        ("uptime", snap.uptime),
        ("queries", s.queries),
        ("replies", s.replies),
        ("hits", s.hits),
        ("misses", s.misses),
        ("merged", s.merged),
        ("local", s.local),
        ("blocked", s.blocked),
        ("stale", s.stale),
        ("prefetch", s.prefetch),
        ("servfail", s.servfail),
        ("truncated", s.truncated),
        ("upstream_queries", s.upstream_queries),
        ("upstream_answers", s.upstream_answers),
        ("tcp_clients", s.tcp_clients),
        ("cache_entries", snap.cache_entries),
        ("cache_bytes", snap.cache_bytes),
        ("cache_budget", snap.cache_budget),
        ("drop_malformed", s.drop_malformed),
        ("drop_mismatch", s.drop_mismatch),
        ("drop_upstream_malformed", s.drop_upstream_malformed),
        ("drop_tcp_full", s.drop_tcp_full),
        ("drop_overload", s.drop_overload),
        ("drop_case", s.drop_case),
        ("drop_rebind", s.drop_rebind),
        ("drop_refused", s.drop_refused),
        ("drop_ratelimit", s.drop_ratelimit),
        // UDP replies the kernel would not take (sendmmsg errors).
        ("send_errors", s.send_errors),
    ];
    let _ = writeln!(o, "link={}", snap.link);
    for (k, v) in rows {
        let _ = writeln!(o, "{k}={v}");
    }
    for (k, v) in &snap.extra {
        let _ = writeln!(o, "{k}={v}");
    }
    snap.config.write_text(&mut o);
    for (i, u) in snap.upstreams.iter().enumerate() {
        let state = if u.up { "up" } else { "down" };
        let _ = writeln!(o, "upstream.{i}.addr={}", u.addr);
        let _ = writeln!(o, "upstream.{i}.state={state}");
        let _ = writeln!(o, "upstream.{i}.srtt_ms={}", u.srtt_ms);
        let _ = writeln!(o, "upstream.{i}.queries={}", u.queries);
        let _ = writeln!(o, "upstream.{i}.answers={}", u.answers);
        let _ = writeln!(o, "upstream.{i}.timeouts={}", u.timeouts);
    }
    #[cfg(any(feature = "tls", feature = "dnssec"))]
    let _ = writeln!(o, "clock={}", snap.clock);
    #[cfg(feature = "tls")]
    for (i, (addr, name, state)) in snap.tls_upstreams.iter().enumerate() {
        // A DoH server whose host name is not looked up yet is connected to nowhere:
        // said in a word, not as an address (0.0.0.0 would read as a real one).
        let _ = match addr {
            Some(a) => writeln!(o, "tls_upstream.{i}.addr={a}"),
            None => writeln!(o, "tls_upstream.{i}.addr=unresolved"),
        };
        let _ = writeln!(o, "tls_upstream.{i}.name={name}");
        let _ = writeln!(o, "tls_upstream.{i}.state={state}");
    }
    o
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::stats::{ConfigStatus, Stats, UpstreamRow};

    /// A snapshot whose every number is different, so a row that shows the wrong one
    /// fails.
    pub(crate) fn sample() -> Snapshot {
        Snapshot {
            link: "down-auto",
            link_auto: true,
            link_since: 1_700_000_100,
            started: 1_700_000_000,
            uptime: 77,
            counters: Stats {
                queries: 1,
                replies: 2,
                hits: 3,
                misses: 4,
                merged: 5,
                local: 6,
                blocked: 7,
                stale: 8,
                prefetch: 9,
                upstream_queries: 10,
                upstream_answers: 11,
                servfail: 12,
                truncated: 13,
                tcp_clients: 14,
                send_errors: 15,
                drop_malformed: 16,
                drop_mismatch: 17,
                drop_upstream_malformed: 18,
                drop_tcp_full: 19,
                drop_overload: 20,
                drop_case: 21,
                drop_rebind: 22,
                drop_refused: 23,
                drop_ratelimit: 24,
            },
            cache_entries: 25,
            cache_bytes: 26,
            cache_budget: 27,
            cache_inserted: 28,
            cache_live_freed: 29,
            extra: vec![
                ("pending", 30),
                ("local_names", 31),
                ("blocklist_domains", 32),
            ],
            config_file: Some("/etc/config/dproxy".into()),
            config: ConfigStatus {
                loaded_at: 1_700_000_050,
                reload_at: Some(1_700_000_060),
                reload_error: Some("bad\nthing".into()),
            },
            upstreams: vec![UpstreamRow {
                addr: "192.0.2.1:53".parse().unwrap_or(([0, 0, 0, 0], 0).into()),
                up: false,
                srtt_ms: 33,
                failures: 34,
                queries: 35,
                answers: 36,
                timeouts: 37,
            }],
            #[cfg(feature = "tls")]
            tls_upstreams: Vec::new(),
            #[cfg(any(feature = "tls", feature = "dnssec"))]
            clock: "unsynced",
        }
    }

    #[test]
    fn text_is_the_documented_lines_in_order() {
        let want = "link=down-auto\nuptime=77\nqueries=1\nreplies=2\nhits=3\nmisses=4\n\
merged=5\nlocal=6\nblocked=7\nstale=8\nprefetch=9\nservfail=12\ntruncated=13\n\
upstream_queries=10\nupstream_answers=11\ntcp_clients=14\ncache_entries=25\n\
cache_bytes=26\ncache_budget=27\ndrop_malformed=16\ndrop_mismatch=17\n\
drop_upstream_malformed=18\ndrop_tcp_full=19\ndrop_overload=20\ndrop_case=21\n\
drop_rebind=22\ndrop_refused=23\ndrop_ratelimit=24\nsend_errors=15\npending=30\n\
local_names=31\nblocklist_domains=32\nconfig_loaded=1700000050\nconfig_reload=failed\n\
config_reload_at=1700000060\nconfig_reload_error=bad thing\n\
upstream.0.addr=192.0.2.1:53\nupstream.0.state=down\nupstream.0.srtt_ms=33\n\
upstream.0.queries=35\nupstream.0.answers=36\nupstream.0.timeouts=37\n";
        // Builds that check validity dates say how.
        #[cfg(any(feature = "tls", feature = "dnssec"))]
        let want = format!("{want}clock=unsynced\n");
        assert_eq!(stats(&sample()), want);
    }

    /// An encrypted server shows its address; a DoH server whose host name has no
    /// address yet shows `unresolved`, not an address it is not at (0.0.0.0).
    #[cfg(feature = "tls")]
    #[test]
    fn encrypted_upstreams_show_their_address_or_unresolved() {
        let mut snap = sample();
        snap.tls_upstreams = vec![
            (
                Some(([192, 0, 2, 2], 853).into()),
                "dot.test".into(),
                "ok".into(),
            ),
            (
                None,
                "https://doh.test/dns-query".into(),
                "looking up its address".into(),
            ),
        ];
        let text = stats(&snap);
        let tail = "clock=unsynced\n\
tls_upstream.0.addr=192.0.2.2:853\ntls_upstream.0.name=dot.test\ntls_upstream.0.state=ok\n\
tls_upstream.1.addr=unresolved\ntls_upstream.1.name=https://doh.test/dns-query\n\
tls_upstream.1.state=looking up its address\n";
        assert!(text.ends_with(tail), "{text}");
        // Everything before the encrypted servers is as without them.
        let plain = stats(&sample());
        assert_eq!(&text[..text.len() - tail.len()], &plain[..plain.len() - 15]);
    }
}
