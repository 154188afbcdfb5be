//! `dproxy ctl stats --json`: the counters of `ctl stats` as one JSON object, for LuCI and
//! for dashboards built for dnsmasq's `ubus call dnsmasq metrics`.
//!
//! The flat counters are taken from the text output itself, so that every counter the text
//! has is in the JSON too; a counter that means what a dnsmasq metric means is renamed to
//! dnsmasq's name. Link state, configuration status and upstreams are written from the
//! snapshot's own fields.

use crate::stats::Snapshot;
use crate::stats_json::{ratio, Obj};

/// Text counter name → dnsmasq metric name (dnsmasq's `src/metrics.c`), where they mean
/// the same thing.
const DNSMASQ_NAMES: &[(&str, &str)] = &[
    ("upstream_queries", "dns_queries_forwarded"),
    ("local", "dns_local_answered"),
    ("stale", "dns_stale_answered"),
    // Queries answered SERVFAIL because no upstream answer could be had.
    ("servfail", "dns_unanswered"),
    ("tcp_clients", "tcp_connections"),
];

/// The text of `ctl stats --json` (one line).
pub fn stats(snap: &Snapshot) -> String {
    let text = super::text::stats(snap);
    let mut out = String::with_capacity(2048);
    let mut o = Obj::new(&mut out);
    o.str("version", env!("CARGO_PKG_VERSION"));
    let mut hits = 0u64;
    let mut misses = 0u64;
    let mut link = "up";
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k == "link" {
            link = if v.starts_with("down") { "down" } else { "up" };
            continue;
        }
        // Upstreams and the configuration are written below, from their structures.
        if k.starts_with("upstream.") || k.starts_with("config_") {
            continue;
        }
        let name = DNSMASQ_NAMES
            .iter()
            .find(|(t, _)| *t == k)
            .map_or(k, |(_, d)| *d);
        match v.parse::<u64>() {
            Ok(n) => {
                match k {
                    "hits" => hits = n,
                    "misses" => misses = n,
                    _ => {}
                }
                o.num(name, n)
            }
            Err(_) => o.str(name, v),
        }
    }
    o.num("dns_cache_inserted", snap.cache_inserted);
    o.num("dns_cache_live_freed", snap.cache_live_freed);
    o.raw("hit_ratio", &ratio(hits, hits + misses));

    o.str("link", link);
    o.boolean("link_auto", snap.link_auto);
    o.num("link_since", snap.link_since);
    o.num("started", snap.started);
    o.opt_str("config_file", snap.config_file.as_deref());
    let cs = &snap.config;
    o.num("config_loaded", cs.loaded_at);
    o.str("config_reload", cs.reload_word());
    o.opt_num("config_reload_at", cs.reload_at);
    o.opt_str("config_reload_error", cs.reload_error.as_deref());

    let mut ups = String::from("[");
    for (i, u) in snap.upstreams.iter().enumerate() {
        if i > 0 {
            ups.push(',');
        }
        let mut uo = Obj::new(&mut ups);
        uo.str("address", &u.addr.to_string());
        uo.str("protocol", "udp");
        uo.str("state", if u.up { "up" } else { "down" });
        uo.num("srtt_ms", u.srtt_ms.into());
        uo.num("failures", u.failures.into());
        uo.num("queries", u.queries);
        uo.num("answers", u.answers);
        uo.num("timeouts", u.timeouts);
        uo.end();
    }
    ups.push(']');
    o.raw("upstreams", &ups);
    o.end();
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_has_every_text_counter_and_the_snapshot_fields() {
        let j = super::stats(&crate::control::text::tests::sample());
        for part in [
            "\"send_errors\":15",
            "\"dns_unanswered\":12",
            "\"pending\":30",
            "\"link\":\"down\"",
            "\"link_auto\":true",
            "\"link_since\":1700000100",
            "\"config_reload_error\":\"bad\\nthing\"",
            "\"failures\":34",
        ] {
            assert!(j.contains(part), "{part} missing in {j}");
        }
    }
}
