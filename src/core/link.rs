//! Link state and the down-detector (the core: time is an input, so the decisions are
//! tested on a virtual clock).

use std::time::{Duration, Instant};

use crate::cache::Key;

/// Silence from every upstream for this long (with failures) makes the link suspect.
const AUTO_DOWN_AFTER: Duration = Duration::from_secs(3);
/// A suspect link is down if no upstream answered the check probe (or anything else)
/// within this long.
const CONFIRM_WITHIN: Duration = Duration::from_secs(2);
/// While down by itself, one probe per upstream this often.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);
/// Stale entries refreshed after the link comes back, at most, and per housekeeping tick
/// (once a second).
pub const REFRESH_MAX: usize = 64;
pub const REFRESH_PER_TICK: usize = 8;

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

impl Link {
    /// Gone offline by itself at `now`: the first probe is due one interval later.
    pub fn went_auto_down(&mut self, now: Instant) {
        self.auto_down = true;
        self.since = Some(now);
        self.next_probe = Some(now + PROBE_EVERY);
    }

    /// Whether a timed probe is due at `now` (down by itself only); if so, the next one
    /// is scheduled an interval later.
    pub fn probe_due(&mut self, now: Instant) -> bool {
        if !self.auto_down || self.told_down {
            return false;
        }
        match self.next_probe {
            Some(at) if now >= at => {
                self.next_probe = Some(now + PROBE_EVERY);
                true
            }
            _ => false,
        }
    }

    /// Queues stale entries (with their hit counts) for a refresh after link up: the
    /// most used first, at most [`REFRESH_MAX`].
    pub fn queue_refresh(&mut self, mut cands: Vec<(u16, Key)>) {
        cands.sort_by_key(|c| std::cmp::Reverse(c.0));
        cands.truncate(REFRESH_MAX);
        // Popped from the end: most used last.
        self.refresh = cands.into_iter().rev().map(|(_, k)| k).collect();
    }

    /// The next entry to refresh in this housekeeping tick, `done` having gone out in it
    /// already: at most [`REFRESH_PER_TICK`] a tick.
    pub fn next_refresh(&mut self, done: usize) -> Option<Key> {
        if done >= REFRESH_PER_TICK {
            return None;
        }
        self.refresh.pop()
    }
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
