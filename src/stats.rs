//! Counters, printed by `dproxy ctl stats` as key=value lines.

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub queries: u64,
    pub replies: u64,
    pub hits: u64,
    pub misses: u64,
    pub merged: u64,
    pub local: u64,
    pub blocked: u64,
    pub stale: u64,
    pub prefetch: u64,
    pub upstream_queries: u64,
    pub upstream_answers: u64,
    pub servfail: u64,
    pub truncated: u64,
    pub tcp_clients: u64,
    pub send_errors: u64,
    pub drop_malformed: u64,
    pub drop_mismatch: u64,
    pub drop_upstream_malformed: u64,
    pub drop_tcp_full: u64,
    pub drop_overload: u64,
    pub drop_case: u64,
    pub drop_rebind: u64,
    pub drop_refused: u64,
    pub drop_ratelimit: u64,
}

/// When the configuration in force was read, and how the last reload went, so that
/// `ctl stats` (and LuCI through it) can show a reload that kept the old settings.
#[derive(Debug, Default, Clone)]
pub struct ConfigStatus {
    /// UNIX seconds when the configuration in force was read.
    pub loaded_at: u64,
    /// UNIX seconds of the last reload (SIGHUP), if there was one.
    pub reload_at: Option<u64>,
    /// The first error of the last reload; None if it succeeded (or none happened).
    pub reload_error: Option<String>,
}

impl ConfigStatus {
    /// `none`, `ok` or `failed`.
    pub fn reload_word(&self) -> &'static str {
        match (&self.reload_at, &self.reload_error) {
            (None, _) => "none",
            (Some(_), None) => "ok",
            (Some(_), Some(_)) => "failed",
        }
    }

    /// The `key=value` lines of `ctl stats` (the error text on one line).
    pub fn write_text(&self, o: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(o, "config_loaded={}", self.loaded_at);
        let _ = writeln!(o, "config_reload={}", self.reload_word());
        if let Some(at) = self.reload_at {
            let _ = writeln!(o, "config_reload_at={at}");
        }
        if let Some(e) = &self.reload_error {
            o.push_str("config_reload_error=");
            o.extend(e.chars().map(|c| if c.is_control() { ' ' } else { c }));
            o.push('\n');
        }
    }
}

/// One upstream's row in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRow {
    pub addr: std::net::SocketAddr,
    pub up: bool,
    pub srtt_ms: u32,
    pub failures: u32,
    pub queries: u64,
    pub answers: u64,
    pub timeouts: u64,
}

/// Everything `ctl stats` shows, copied out of the running daemon at one moment, so
/// that rendering it (text or JSON) needs nothing else.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `up`, `down` (told so) or `down-auto` (found out by itself).
    pub link: &'static str,
    /// Down by itself (true also while told down on top).
    pub link_auto: bool,
    /// UNIX seconds of the last link change (of the start if none).
    pub link_since: u64,
    /// UNIX seconds of the start.
    pub started: u64,
    pub uptime: u64,
    pub counters: Stats,
    pub cache_entries: u64,
    pub cache_bytes: u64,
    pub cache_budget: u64,
    pub cache_inserted: u64,
    pub cache_live_freed: u64,
    /// Counters kept outside `Stats` (questions in flight, local names, ...).
    pub extra: Vec<(&'static str, u64)>,
    pub config_file: Option<String>,
    pub config: ConfigStatus,
    pub upstreams: Vec<UpstreamRow>,
    /// DNS over TLS and HTTPS servers: address (None while a DoH server's host name
    /// has no address yet), authentication name or URL, state ("ok" or why not).
    #[cfg(feature = "tls")]
    pub tls_upstreams: Vec<(Option<std::net::SocketAddr>, String, String)>,
    /// "synced" once the clock is known good, "unsynced" before (see `clock_trust`).
    #[cfg(any(feature = "tls", feature = "dnssec"))]
    pub clock: &'static str,
}
