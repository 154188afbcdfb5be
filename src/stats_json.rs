//! `dproxy ctl stats --json`: the counters of `ctl stats` as one JSON object, for LuCI and
//! for dashboards built for dnsmasq's `ubus call dnsmasq metrics`.
//!
//! The flat counters are taken from the text output itself, so that every counter the text
//! has is in the JSON too; a counter that means what a dnsmasq metric means is renamed to
//! dnsmasq's name. Link state, configuration status and upstreams are written from the
//! server's own state. A small hand-written writer keeps serde out of the router binary.

use std::fmt::Write;

use crate::server::Server;

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

/// Appends `s` as a JSON string literal (RFC 8259 escaping).
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes one JSON object member by member, with the commas in the right places.
pub struct Obj<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Obj<'a> {
    pub fn new(out: &'a mut String) -> Obj<'a> {
        out.push('{');
        Obj { out, first: true }
    }

    fn key(&mut self, k: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        write_str(self.out, k);
        self.out.push(':');
        self.out
    }

    pub fn num(&mut self, k: &str, v: u64) {
        let o = self.key(k);
        let _ = write!(o, "{v}");
    }

    pub fn opt_num(&mut self, k: &str, v: Option<u64>) {
        match v {
            Some(v) => self.num(k, v),
            None => self.key(k).push_str("null"),
        }
    }

    pub fn str(&mut self, k: &str, v: &str) {
        let o = self.key(k);
        write_str(o, v);
    }

    pub fn opt_str(&mut self, k: &str, v: Option<&str>) {
        match v {
            Some(v) => self.str(k, v),
            None => self.key(k).push_str("null"),
        }
    }

    pub fn boolean(&mut self, k: &str, v: bool) {
        self.key(k).push_str(if v { "true" } else { "false" });
    }

    /// A value already in JSON form (a number with a fraction, an array).
    pub fn raw(&mut self, k: &str, json: &str) {
        self.key(k).push_str(json);
    }

    pub fn end(self) {
        self.out.push('}');
    }
}

impl Server {
    pub(crate) fn stats_json(&self) -> String {
        let text = self.stats_text();
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
        o.num("dns_cache_inserted", self.cache.inserted);
        o.num("dns_cache_live_freed", self.cache.live_freed);
        o.raw("hit_ratio", &ratio(hits, hits + misses));

        o.str("link", link);
        o.boolean("link_auto", self.link.auto_down);
        o.num(
            "link_since",
            self.wall_of(self.link.since.unwrap_or(self.start)),
        );
        o.num("started", self.wall_of(self.start));
        o.opt_str(
            "config_file",
            self.cfg.file.as_deref().and_then(|p| p.to_str()),
        );
        let cs = &self.config_status;
        o.num("config_loaded", cs.loaded_at);
        o.str("config_reload", cs.reload_word());
        o.opt_num("config_reload_at", cs.reload_at);
        o.opt_str("config_reload_error", cs.reload_error.as_deref());

        let mut ups = String::from("[");
        for (i, u) in self.upstreams.list.iter().enumerate() {
            if i > 0 {
                ups.push(',');
            }
            let mut uo = Obj::new(&mut ups);
            uo.str("address", &u.addr.to_string());
            uo.str("protocol", "udp");
            uo.str("state", if u.is_up() { "up" } else { "down" });
            uo.num("srtt_ms", u.srtt_ms.into());
            uo.num("failures", u.fails.into());
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

    /// UNIX seconds of a moment of this loop's monotonic clock.
    fn wall_of(&self, t: std::time::Instant) -> u64 {
        self.wall_secs()
            .saturating_sub(self.now.saturating_duration_since(t).as_secs())
    }
}

/// `part / whole` with four decimals ("0.7368"), 0 when `whole` is 0. Integer arithmetic:
/// float formatting would cost the router binary more than all of this file.
fn ratio(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0".into();
    }
    let r = (u128::from(part.min(whole)) * 10_000 + u128::from(whole) / 2) / u128::from(whole);
    if r >= 10_000 {
        "1".into()
    } else {
        format!("0.{r:04}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios() {
        assert_eq!(ratio(0, 0), "0");
        assert_eq!(ratio(0, 5), "0.0000");
        assert_eq!(ratio(6, 11), "0.5455");
        assert_eq!(ratio(1, 3), "0.3333");
        assert_eq!(ratio(2, 3), "0.6667");
        assert_eq!(ratio(5, 5), "1");
        assert_eq!(ratio(99_999, 100_000), "1");
        assert_eq!(ratio(u64::MAX, u64::MAX), "1");
    }

    #[test]
    fn strings_are_escaped() {
        let mut s = String::new();
        write_str(&mut s, "a\"b\\c\nd\te\u{1}\u{7f}é\u{2028}");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\te\\u0001\\u007fé\u{2028}\"");
    }

    #[test]
    fn object_members_are_separated() {
        let mut s = String::new();
        let mut o = Obj::new(&mut s);
        o.num("a", 1);
        o.opt_num("b", None);
        o.str("c", "x");
        o.opt_str("d", None);
        o.boolean("e", true);
        o.raw("f", "[]");
        o.end();
        assert_eq!(
            s,
            "{\"a\":1,\"b\":null,\"c\":\"x\",\"d\":null,\"e\":true,\"f\":[]}"
        );
    }

    #[test]
    fn empty_object() {
        let mut s = String::new();
        Obj::new(&mut s).end();
        assert_eq!(s, "{}");
    }
}
