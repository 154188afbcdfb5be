//! Link state and what changes with it: offline answers, serve-stale (RFC 8767),
//! automatic down-detection with bounded probes, and recovery when the link returns.

use std::time::{Duration, Instant};

use crate::answer::{self, ReplyOpts};
use crate::cache::{flag, Key};
use crate::query::ReplyTo;
use crate::server::Server;
use crate::wire::build::Ede;
use crate::wire::{ede, rtype, NameBuf, QueryView, CLASS_IN};

/// TTL of a stale answer (RFC 8767 4).
pub const STALE_TTL: u32 = 30;
/// Silence from every upstream for this long (with failures) makes the link suspect.
const AUTO_DOWN_AFTER: Duration = Duration::from_secs(3);
/// A suspect link is down if no upstream answered the check probe (or anything else)
/// within this long.
const CONFIRM_WITHIN: Duration = Duration::from_secs(2);
/// While down by itself, one probe per upstream this often.
const PROBE_EVERY: Duration = Duration::from_secs(5);
/// Stale entries refreshed after the link comes back, at most, and per second.
const REFRESH_MAX: usize = 64;
const REFRESH_PER_SECOND: usize = 8;

const EDE_STALE: Ede = Ede {
    code: ede::STALE_ANSWER,
    text: "stale answer",
};

#[derive(Default)]
pub struct Link {
    /// SIGUSR2 / `ctl link down` said so: no upstream traffic at all.
    pub told_down: bool,
    /// No upstream has answered for a while: only probes go out.
    pub auto_down: bool,
    /// When the link state last changed; None: unchanged since start.
    pub since: Option<Instant>,
    pub next_probe: Option<Instant>,
    /// Stale keys to refresh after link up, most used first.
    pub refresh: Vec<Key>,
    pub detector: Detector,
}

/// What the down-detector asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Nothing,
    /// Every server is failing and nothing answered for a while: send a probe.
    Probe,
    /// The probe went unanswered too: the link is down.
    Down,
}

/// Decides from upstream answers and timeouts whether the link is down. Time is an
/// input, so the decisions can be tested without waiting.
///
/// Timeouts alone are no proof: an upstream may drop one name silently (a broken
/// authority, a filter) while it answers everything else. So failing servers and a quiet
/// spell only make the link suspect; a probe then asks a question every working
/// upstream answers, and only its silence (with no other answer meanwhile) means down.
#[derive(Debug, Default)]
pub struct Detector {
    last_answer: Option<Instant>,
    suspect_since: Option<Instant>,
}

impl Detector {
    /// An upstream answered (anything: even SERVFAIL shows the path works).
    pub fn answered(&mut self, now: Instant) {
        self.last_answer = Some(now);
        self.suspect_since = None;
    }

    /// The link state was set from outside (link up or down): start afresh.
    pub fn reset(&mut self, now: Instant) {
        self.last_answer = Some(now);
        self.suspect_since = None;
    }

    /// After a timeout with every upstream failing; `start` is when the daemon started.
    pub fn all_failing(&mut self, now: Instant, start: Instant) -> Verdict {
        let quiet_since = self.last_answer.unwrap_or(start);
        if now.saturating_duration_since(quiet_since) < AUTO_DOWN_AFTER {
            return Verdict::Nothing;
        }
        match self.suspect_since {
            None => {
                self.suspect_since = Some(now);
                Verdict::Probe
            }
            Some(_) => self.tick(now),
        }
    }

    pub fn clear_suspicion(&mut self) {
        self.suspect_since = None;
    }

    /// Called now and then: a suspect link whose probe went unanswered is down.
    pub fn tick(&mut self, now: Instant) -> Verdict {
        match self.suspect_since {
            Some(t) if now.saturating_duration_since(t) >= CONFIRM_WITHIN => {
                self.suspect_since = None;
                Verdict::Down
            }
            _ => Verdict::Nothing,
        }
    }
}

impl Server {
    pub(crate) fn offline(&self) -> bool {
        self.link.told_down || self.link.auto_down
    }

    /// Is `name` (wire form) excluded from stale answers?
    fn stale_excluded(&self, name_wire: &[u8]) -> bool {
        if self.stale_exclude.is_empty() {
            return false;
        }
        match NameBuf::from_wire(name_wire) {
            Ok(n) => self.stale_exclude.iter().any(|z| n.is_subdomain_of(z)),
            Err(_) => true,
        }
    }

    /// An expired entry that may still be served stale: (seconds expired).
    pub(crate) fn stale_entry(&self, key: &Key) -> Option<u32> {
        if self.cfg.stale_max == 0 {
            return None;
        }
        let now = self.now_secs();
        let e = self.cache.peek(key.as_bytes())?;
        if e.flags & flag::FAILURE != 0 || e.expires > now {
            return None;
        }
        let age = now - e.expires;
        if age > self.cfg.stale_max || self.stale_excluded(key.name_wire()) {
            return None;
        }
        Some(age)
    }

    /// Replies from a stale entry (TTL 30, EDE 3); false if there is none.
    pub(crate) fn reply_stale(&mut self, q: &QueryView, key: &Key, to: ReplyTo) -> bool {
        if self.stale_entry(key).is_none() {
            return false;
        }
        let Some(e) = self.cache.get(key.as_bytes()) else {
            return false;
        };
        let opts = ReplyOpts {
            fixed_ttl: Some(STALE_TTL),
            ede: Some(EDE_STALE),
            udp: to.is_udp(),
            ..Default::default()
        };
        answer::write_stored_reply(&mut self.out, e.msg, e.ttl_positions(), q, &opts);
        self.stats.stale += 1;
        self.reply(to);
        self.probe_on_demand();
        true
    }

    /// While down by ourselves, a client's question is a reason to check at once whether
    /// the link is back (one such probe in flight at a time): the first answer ends
    /// offline mode, rather than the next timed probe seconds later. It asks "." SOA, so
    /// a timed probe still waiting for a dead link's answer does not hold it back.
    pub(crate) fn probe_on_demand(&mut self) {
        if self.link.auto_down && !self.link.told_down {
            self.send_probe(rtype::SOA);
        }
    }

    /// One small question about the root, not answered from the cache; any answer at
    /// all means an upstream is reachable.
    fn send_probe(&mut self, qtype: u16) {
        let key = Key::new(b"\x00", qtype, CLASS_IN, 0);
        self.cache.remove(key.as_bytes());
        self.probe(&key);
    }

    /// The link went down (signal, control socket).
    pub(crate) fn link_down(&mut self, why: &str) {
        if !self.link.told_down {
            log::warn!("link down ({why}): answering from cache only");
        }
        if !self.offline() {
            self.link.since = Some(self.now);
        }
        self.link.told_down = true;
        self.link.next_probe = None;
        self.link.detector.reset(self.now);
        self.link.refresh.clear();
        self.acl.refresh();
        self.offline_pending();
    }

    /// The link came up (signal, control socket), or upstreams answer again.
    pub(crate) fn link_up(&mut self, why: &str) {
        let was = self.offline();
        self.link.told_down = false;
        self.link.auto_down = false;
        if was {
            self.link.since = Some(self.now);
        }
        self.link.next_probe = None;
        self.link.detector.reset(self.now);
        // netifd rewrites the resolv file on every ifup, and addresses may have changed.
        self.load_servers();
        self.acl.refresh();
        self.upstreams.reset_health();
        // What was learned while down is not trusted past link up.
        self.cache.retain(|e| {
            e.flags & flag::OFFLINE == 0 || e.flags & (flag::NEGATIVE | flag::FAILURE) == 0
        });
        self.cache.retain(|e| e.flags & flag::FAILURE == 0);
        if was {
            log::info!("link up ({why})");
        }
        self.queue_refresh();
        self.release_held();
    }

    /// Picks the most used stale entries for a background refresh.
    fn queue_refresh(&mut self) {
        let now = self.now_secs();
        let mut cands: Vec<(u16, Key)> = Vec::new();
        let stale_max = self.cfg.stale_max;
        self.cache.for_each(|e| {
            if e.expires <= now && now - e.expires <= stale_max && e.flags & flag::FAILURE == 0 {
                if let Some(k) = Key::from_bytes(e.key) {
                    cands.push((e.hits, k));
                }
            }
        });
        cands.sort_by_key(|c| std::cmp::Reverse(c.0));
        cands.truncate(REFRESH_MAX);
        // Popped from the end: most used last.
        self.link.refresh = cands.into_iter().rev().map(|(_, k)| k).collect();
    }

    /// An upstream answered: the link is evidently there.
    pub(crate) fn upstream_answered(&mut self) {
        self.link.detector.answered(self.now);
        if self.link.auto_down && !self.link.told_down {
            self.link_up("an upstream answered again");
        }
    }

    /// After a timeout: are all upstreams failing for a while? Then check with a probe,
    /// and go offline by ourselves if that goes unanswered too.
    pub(crate) fn check_auto_down(&mut self) -> bool {
        if self.offline() || self.upstreams.is_empty() || self.upstreams.any_up() {
            return false;
        }
        match self.link.detector.all_failing(self.now, self.start) {
            Verdict::Nothing => false,
            Verdict::Probe => {
                log::debug!("every upstream is failing: checking the link with a probe");
                self.send_probe(rtype::NS);
                false
            }
            Verdict::Down => {
                self.auto_down();
                true
            }
        }
    }

    /// Goes offline by ourselves: answers from the cache, probes now and then.
    fn auto_down(&mut self) {
        log::warn!("no upstream server answers: answering from cache only, probing");
        self.link.auto_down = true;
        self.link.since = Some(self.now);
        self.link.next_probe = Some(self.now + PROBE_EVERY);
        self.offline_pending();
    }

    /// Once a second: probes while down by ourselves, refreshes after link up.
    pub(crate) fn link_housekeeping(&mut self) {
        if self.link.auto_down && !self.link.told_down {
            if let Some(at) = self.link.next_probe {
                if self.now >= at {
                    self.link.next_probe = Some(self.now + PROBE_EVERY);
                    self.send_probe(rtype::NS);
                }
            }
            return;
        }
        if !self.offline() {
            if self.upstreams.any_up() {
                // A server was added or answered in between: nothing to confirm.
                self.link.detector.clear_suspicion();
            } else if self.link.detector.tick(self.now) == Verdict::Down {
                self.auto_down();
                return;
            }
        }
        if self.offline() {
            return;
        }
        for _ in 0..REFRESH_PER_SECOND {
            let Some(k) = self.link.refresh.pop() else {
                break;
            };
            if self.stale_entry(&k).is_some() {
                self.background(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(t0: Instant, s: f64) -> Instant {
        t0 + Duration::from_secs_f64(s)
    }

    #[test]
    fn one_silent_name_is_not_a_dead_link() {
        let t0 = Instant::now();
        let mut d = Detector::default();
        d.answered(t0);
        // Quiet LAN: the next question comes 60 s later and its name is dropped; its
        // timeouts make every server look down, which only makes the link suspect.
        assert_eq!(d.all_failing(secs(t0, 62.1), t0), Verdict::Probe);
        assert_eq!(d.tick(secs(t0, 63.0)), Verdict::Nothing);
        // The probe is answered: nothing to confirm any more.
        d.answered(secs(t0, 62.2));
        assert_eq!(d.tick(secs(t0, 70.0)), Verdict::Nothing);
        assert_eq!(d.all_failing(secs(t0, 64.0), t0), Verdict::Nothing);
    }

    #[test]
    fn a_dead_link_goes_down_when_the_probe_is_silent_too() {
        let t0 = Instant::now();
        let mut d = Detector::default();
        // Just started, nothing answered yet: not before AUTO_DOWN_AFTER.
        assert_eq!(d.all_failing(secs(t0, 2.0), t0), Verdict::Nothing);
        assert_eq!(d.all_failing(secs(t0, 3.0), t0), Verdict::Probe);
        assert_eq!(d.all_failing(secs(t0, 4.0), t0), Verdict::Nothing);
        assert_eq!(d.tick(secs(t0, 4.9)), Verdict::Nothing);
        assert_eq!(d.tick(secs(t0, 5.0)), Verdict::Down);
        // Decided once.
        assert_eq!(d.tick(secs(t0, 6.0)), Verdict::Nothing);
        // The timeout path decides as well as the clock.
        let mut d = Detector::default();
        d.answered(t0);
        assert_eq!(d.all_failing(secs(t0, 10.0), t0), Verdict::Probe);
        assert_eq!(d.all_failing(secs(t0, 12.5), t0), Verdict::Down);
    }

    #[test]
    fn reset_and_clear_forget_a_suspicion() {
        let t0 = Instant::now();
        let mut d = Detector::default();
        assert_eq!(d.all_failing(secs(t0, 5.0), t0), Verdict::Probe);
        d.clear_suspicion();
        assert_eq!(d.tick(secs(t0, 9.0)), Verdict::Nothing);
        assert_eq!(d.all_failing(secs(t0, 9.0), t0), Verdict::Probe);
        d.reset(secs(t0, 9.5));
        assert_eq!(d.tick(secs(t0, 20.0)), Verdict::Nothing);
        // Quiet counts from the reset.
        assert_eq!(d.all_failing(secs(t0, 11.0), t0), Verdict::Nothing);
    }
}
