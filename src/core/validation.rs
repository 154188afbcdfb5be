//! The state of DNSSEC validation in the daemon (full build): the walks in progress,
//! each tied to the question in flight it validates, the validated DNSKEY sets kept to
//! seed new walks, and the counters of `ctl stats`. Data only; `forward::validate`
//! drives it.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::answer::Prepared;
use crate::dnssec::walk::Walk;
use crate::slab::Slab;

/// One walk over one answer: the question `pi` (generation `gen`) it belongs to and
/// the answer that will be delivered if it is good.
pub(crate) struct Validation {
    pub walk: Walk,
    pub pi: usize,
    pub gen: u32,
    pub prepared: Prepared,
    /// The question in flight whose answer the walk waits for.
    pub sub: Option<(usize, u32)>,
}

/// Counters for `ctl stats`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Counters {
    pub secure: u64,
    pub insecure: u64,
    pub bogus: u64,
    /// Bogus answers by the EDE they carried (index as in EDE_CODES).
    pub bogus_by_ede: [u64; 7],
    pub indeterminate: u64,
    /// Walks stopped by the work or sub-query caps (KeyTrap, NSEC3 floods).
    pub limit_hits: u64,
    pub subqueries: u64,
    /// DNSKEY or DS answers that came back without RRSIGs (stripping upstream).
    pub stripped: u64,
    pub overload: u64,
}

/// The validator's state in the server.
#[derive(Default)]
pub(crate) struct State {
    pub walks: Slab<Validation>,
    /// Validated DNSKEY sets by zone (lowercase wire name), with their expiry.
    pub zones: BTreeMap<Vec<u8>, (Vec<Vec<u8>>, u32)>,
    pub counters: Counters,
    /// Upstreams already reported as stripping RRSIGs (logged once each).
    pub stripping: Vec<SocketAddr>,
}

const BOGUS_NAMES: [&str; 7] = [
    "dnssec_bogus_ede0",
    "dnssec_bogus_ede6",
    "dnssec_bogus_ede7",
    "dnssec_bogus_ede8",
    "dnssec_bogus_ede9",
    "dnssec_bogus_ede10",
    "dnssec_bogus_ede12",
];

impl State {
    /// The counters `ctl stats` shows (text and JSON).
    pub(crate) fn stats(&self) -> Vec<(&'static str, u64)> {
        let c = &self.counters;
        let mut v = vec![
            ("dnssec_secure", c.secure),
            ("dnssec_insecure", c.insecure),
            ("dnssec_bogus", c.bogus),
            ("dnssec_indeterminate", c.indeterminate),
            ("dnssec_limit_hits", c.limit_hits),
            ("dnssec_subqueries", c.subqueries),
            ("dnssec_stripped", c.stripped),
            ("dnssec_overload", c.overload),
            ("dnssec_validating", self.walks.len() as u64),
            ("dnssec_zone_keys", self.zones.len() as u64),
        ];
        v.extend(
            BOGUS_NAMES
                .iter()
                .copied()
                .zip(c.bogus_by_ede.iter().copied()),
        );
        v
    }
}
