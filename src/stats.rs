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
