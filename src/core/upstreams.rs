//! Upstream servers: smoothed RTT, health, and which one to ask next (the core: time
//! and random draws are inputs).
//!
//! The fastest healthy server gets the query; now and then another one is tried so
//! its RTT stays known; a server that stops answering is penalised until it answers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How often (one query in N) a server other than the best is asked, to keep its RTT known.
const PROBE_ONE_IN: u32 = 32;
/// RTT assumed for a server never heard from.
const INITIAL_RTT_MS: u32 = 100;
/// Consecutive timeouts after which a server counts as down.
const DOWN_AFTER: u32 = 3;

/// A server's identity for as long as it stays configured. Positions in the list change
/// when the list is rebuilt (resolv file rewritten, link up); an attempt in flight keeps
/// the id, so what it learns is charged to the server it went to, or to nobody.
pub type UpstreamId = u32;

/// How long a server that rejected EDNS (FORMERR) is asked without it.
pub const NO_EDNS_FOR: Duration = Duration::from_secs(600);

/// A source of random choices; the kernel's CSPRNG in the daemon, a script in tests.
pub trait Draw {
    /// A number in `0..n` (n > 0).
    fn below(&mut self, n: u32) -> u32;
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub id: UpstreamId,
    pub addr: SocketAddr,
    /// Smoothed RTT in milliseconds.
    pub srtt_ms: u32,
    /// Consecutive timeouts or failures.
    pub fails: u32,
    pub queries: u64,
    pub answers: u64,
    pub timeouts: u64,
    pub last_answer: Option<Instant>,
    /// Does not echo the case of the question (DNS 0x20): asked in lowercase.
    pub no_0x20: bool,
    /// Answers with the right ID but the case changed, since the last exact echo.
    pub case_misses: u32,
    pub case_hits: u64,
    /// Answered FORMERR to a query with EDNS (RFC 6891 7): asked without it until then.
    pub no_edns_until: Option<Instant>,
    /// A plain server mixed with encrypted ones: asked only once every other server
    /// has been tried for the query, and never to re-probe.
    pub fallback: bool,
}

/// Case-changing answers (with no exact echo ever) before 0x20 is given up for a server.
pub const CASE_MISSES_TO_EXEMPT: u32 = 3;

impl Upstream {
    pub fn new(id: UpstreamId, addr: SocketAddr) -> Upstream {
        Upstream {
            id,
            addr,
            srtt_ms: INITIAL_RTT_MS,
            fails: 0,
            queries: 0,
            answers: 0,
            timeouts: 0,
            last_answer: None,
            no_0x20: false,
            case_misses: 0,
            case_hits: 0,
            no_edns_until: None,
            fallback: false,
        }
    }

    pub fn is_up(&self) -> bool {
        self.fails < DOWN_AFTER
    }

    /// Should a query sent `now` carry an OPT record?
    pub fn edns(&self, now: Instant) -> bool {
        !matches!(self.no_edns_until, Some(until) if now < until)
    }

    /// Lower is better: RTT plus a penalty per consecutive failure.
    fn score(&self) -> u64 {
        self.srtt_ms as u64 + 1000 * self.fails.min(10) as u64
    }

    /// The first retransmit timeout for this server.
    pub fn rto(&self) -> Duration {
        let ms = (2 * self.srtt_ms as u64 + 100).clamp(150, 1500);
        Duration::from_millis(ms)
    }
}

#[derive(Debug, Default)]
pub struct Upstreams {
    pub list: Vec<Upstream>,
    next_id: UpstreamId,
}

impl Upstreams {
    /// Replaces the server list, keeping what is known about servers that stay (and
    /// their ids); new servers get ids never used before.
    pub fn set(&mut self, addrs: &[SocketAddr]) {
        let old = std::mem::take(&mut self.list);
        for a in addrs {
            let u = match old.iter().find(|u| u.addr == *a) {
                Some(u) => u.clone(),
                None => {
                    self.next_id = self.next_id.wrapping_add(1);
                    Upstream::new(self.next_id, *a)
                }
            };
            self.list.push(u);
        }
    }

    /// Marks the servers at `addrs` as fallbacks (see [`Upstream::fallback`]), the
    /// others not.
    pub fn set_fallback(&mut self, addrs: &[SocketAddr]) {
        for u in &mut self.list {
            u.fallback = addrs.contains(&u.addr);
        }
    }

    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.list.iter().map(|u| u.addr).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The server with this id, if it is still configured.
    pub fn get(&self, id: UpstreamId) -> Option<&Upstream> {
        self.list.iter().find(|u| u.id == id)
    }

    pub fn get_mut(&mut self, id: UpstreamId) -> Option<&mut Upstream> {
        self.list.iter_mut().find(|u| u.id == id)
    }

    /// Is some configured server not in `tried`?
    pub fn any_untried(&self, tried: &[UpstreamId]) -> bool {
        self.list.iter().any(|u| !tried.contains(&u.id))
    }

    /// Forgets failures (link came back, or servers changed).
    pub fn reset_health(&mut self) {
        for u in &mut self.list {
            u.fails = 0;
        }
    }

    pub fn any_up(&self) -> bool {
        self.list.iter().any(|u| u.is_up())
    }

    /// Picks the server for the next attempt, preferring ones not in `tried`.
    pub fn pick(&self, tried: &[UpstreamId], draw: &mut impl Draw) -> Option<UpstreamId> {
        let times_tried = |u: &Upstream| tried.iter().filter(|&&t| t == u.id).count();
        // Least tried first (untried ones before all others), fallback servers after
        // the others, then the best score; the first of equals wins, so the order of
        // the configuration breaks ties.
        let best = self
            .list
            .iter()
            .min_by_key(|u| (times_tried(u), u.fallback, u.score()))?;
        let probes = self.list.iter().filter(|u| u.id != best.id && !u.fallback);
        let n_probes = probes.clone().count() as u32;
        // Re-probe only once the best server has a measured RTT to compare against;
        // before that, the order of the configuration decides.
        if tried.is_empty() && n_probes > 0 && best.answers > 0 && draw.below(PROBE_ONE_IN) == 0 {
            // Re-probe: any server but the best (and the fallbacks), each as likely.
            let k = draw.below(n_probes) as usize;
            return probes.clone().nth(k).map(|u| u.id);
        }
        Some(best.id)
    }

    pub fn on_answer(&mut self, id: UpstreamId, rtt: Duration, now: Instant) {
        if let Some(u) = self.get_mut(id) {
            let sample = rtt.as_millis().min(10_000) as u32;
            u.srtt_ms = (7 * u.srtt_ms + sample) / 8;
            u.fails = 0;
            u.answers += 1;
            u.last_answer = Some(now);
        }
    }

    pub fn on_timeout(&mut self, id: UpstreamId) {
        if let Some(u) = self.get_mut(id) {
            u.fails = u.fails.saturating_add(1);
            u.timeouts += 1;
            u.srtt_ms = (u.srtt_ms.saturating_mul(2)).clamp(INITIAL_RTT_MS, 3000);
        }
    }

    /// A server answered, but uselessly (SERVFAIL, REFUSED, malformed).
    pub fn on_failure(&mut self, id: UpstreamId) {
        if let Some(u) = self.get_mut(id) {
            u.fails = u.fails.saturating_add(1);
        }
    }
}
