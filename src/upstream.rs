//! Upstream servers: smoothed RTT, health, and which one to ask next.
//!
//! The fastest healthy server gets the query; now and then another one is tried so
//! its RTT stays known; a server that stops answering is penalised until it answers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::rand::Rng;

/// How often (one query in N) a server other than the best is asked, to keep its RTT known.
const PROBE_ONE_IN: u32 = 32;
/// RTT assumed for a server never heard from.
const INITIAL_RTT_MS: u32 = 100;
/// Consecutive timeouts after which a server counts as down.
const DOWN_AFTER: u32 = 3;

#[derive(Debug, Clone)]
pub struct Upstream {
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
}

/// Case-changing answers (with no exact echo ever) before 0x20 is given up for a server.
pub const CASE_MISSES_TO_EXEMPT: u32 = 3;

impl Upstream {
    pub fn new(addr: SocketAddr) -> Upstream {
        Upstream {
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
        }
    }

    pub fn is_up(&self) -> bool {
        self.fails < DOWN_AFTER
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
}

impl Upstreams {
    /// Replaces the server list, keeping what is known about servers that stay.
    pub fn set(&mut self, addrs: &[SocketAddr]) {
        let old = std::mem::take(&mut self.list);
        for a in addrs {
            let u = old
                .iter()
                .find(|u| u.addr == *a)
                .cloned()
                .unwrap_or_else(|| Upstream::new(*a));
            self.list.push(u);
        }
    }

    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.list.iter().map(|u| u.addr).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
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
    pub fn pick(&self, tried: &[usize], rng: &mut Rng) -> Option<usize> {
        if self.list.is_empty() {
            return None;
        }
        let mut order: Vec<usize> = (0..self.list.len()).collect();
        order.sort_by_key(|&i| (tried.contains(&i), self.list[i].score()));
        let untried = order.iter().filter(|i| !tried.contains(i)).count();
        // Re-probe only once the best server has a measured RTT to compare against;
        // before that, the order of the configuration decides.
        let measured = self.list[order[0]].answers > 0;
        if tried.is_empty() && untried > 1 && measured && rng.below(PROBE_ONE_IN) == 0 {
            // Re-probe: any server but the best.
            let k = 1 + rng.below(untried as u32 - 1) as usize;
            return Some(order[k]);
        }
        if untried == 0 {
            // Every server has been tried: go round again, the least recently tried first.
            return tried.first().copied().map(|first| {
                let n = tried.iter().filter(|&&t| t == first).count();
                let mut best = first;
                for &i in &order {
                    if tried.iter().filter(|&&t| t == i).count() < n {
                        best = i;
                        break;
                    }
                }
                best
            });
        }
        Some(order[0])
    }

    pub fn on_answer(&mut self, i: usize, rtt: Duration, now: Instant) {
        if let Some(u) = self.list.get_mut(i) {
            let sample = rtt.as_millis().min(10_000) as u32;
            u.srtt_ms = (7 * u.srtt_ms + sample) / 8;
            u.fails = 0;
            u.answers += 1;
            u.last_answer = Some(now);
        }
    }

    pub fn on_timeout(&mut self, i: usize) {
        if let Some(u) = self.list.get_mut(i) {
            u.fails = u.fails.saturating_add(1);
            u.timeouts += 1;
            u.srtt_ms = (u.srtt_ms.saturating_mul(2)).clamp(INITIAL_RTT_MS, 3000);
        }
    }

    /// A server answered, but uselessly (SERVFAIL, REFUSED, malformed).
    pub fn on_failure(&mut self, i: usize) {
        if let Some(u) = self.list.get_mut(i) {
            u.fails = u.fails.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ups(n: u16) -> Upstreams {
        let mut u = Upstreams::default();
        let addrs: Vec<SocketAddr> = (0..n)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 5300 + i)))
            .collect();
        u.set(&addrs);
        u
    }

    #[test]
    fn fastest_healthy_server_is_preferred() {
        let mut u = ups(3);
        let now = Instant::now();
        u.on_answer(0, Duration::from_millis(90), now);
        u.on_answer(1, Duration::from_millis(5), now);
        u.on_answer(2, Duration::from_millis(50), now);
        let mut rng = Rng::new();
        let picks: Vec<_> = (0..200).map(|_| u.pick(&[], &mut rng).unwrap()).collect();
        let best = picks.iter().filter(|&&p| p == 1).count();
        assert!(best > 150 && best < 200, "best picked {best} of 200");
        // A failing server loses its place.
        for _ in 0..3 {
            u.on_timeout(1);
        }
        assert!(!u.list[1].is_up());
        assert_eq!(u.pick(&[], &mut rng).map(|p| p != 1), Some(true));
    }

    #[test]
    fn retries_go_to_untried_servers_then_round_again() {
        let u = ups(2);
        let mut rng = Rng::new();
        let first = u.pick(&[], &mut rng).unwrap();
        let second = u.pick(&[first], &mut rng).unwrap();
        assert_ne!(first, second);
        let third = u.pick(&[first, second], &mut rng).unwrap();
        assert!(third < 2);
        assert_eq!(ups(0).pick(&[], &mut rng), None);
    }

    #[test]
    fn set_keeps_known_servers() {
        let mut u = ups(2);
        u.list[1].srtt_ms = 7;
        let keep = u.list[1].addr;
        u.set(&[keep]);
        assert_eq!(u.list.len(), 1);
        assert_eq!(u.list[0].srtt_ms, 7);
    }
}
