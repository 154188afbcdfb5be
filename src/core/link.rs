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

/// What the once-a-second housekeeping tick asks of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Nothing to do: told down.
    Idle,
    /// Down by itself and a timed probe is due.
    Probe,
    /// Down by itself and no probe due yet.
    Wait,
    /// The suspect link's probe went unanswered: go offline by itself.
    Down,
    /// Up: refresh what [`Link::next_refresh`] gives.
    Refresh,
}

impl Link {
    /// No upstream traffic but probes: told so, or down by itself.
    #[inline]
    pub fn offline(&self) -> bool {
        self.told_down || self.auto_down
    }

    /// Down by itself (and not told so): probes go out, and any answer ends it.
    #[inline]
    pub fn probing(&self) -> bool {
        self.auto_down && !self.told_down
    }

    /// Told down at `now` (signal, control socket); true if it was not told so before.
    pub fn told_down(&mut self, now: Instant) -> bool {
        let newly = !self.told_down;
        if !self.offline() {
            self.since = Some(now);
        }
        self.told_down = true;
        self.next_probe = None;
        self.detector.reset(now);
        self.refresh.clear();
        newly
    }

    /// Up at `now` (told so, or an upstream answered again); true if it was offline.
    pub fn came_up(&mut self, now: Instant) -> bool {
        let was = self.offline();
        self.told_down = false;
        self.auto_down = false;
        if was {
            self.since = Some(now);
        }
        self.next_probe = None;
        self.detector.reset(now);
        was
    }

    /// An upstream answered at `now`; true if that ends an outage found by itself.
    pub fn answered(&mut self, now: Instant) -> bool {
        self.detector.answered(now);
        self.probing()
    }

    /// An attempt timed out at `now` (the daemon started at `start`): with servers
    /// configured and none of them up, the down-detector's verdict.
    pub fn after_timeout(
        &mut self,
        now: Instant,
        start: Instant,
        servers: bool,
        any_up: bool,
    ) -> Verdict {
        if self.offline() || !servers || any_up {
            return Verdict::Nothing;
        }
        self.detector.all_failing(now, start)
    }

    /// The housekeeping tick at `now`, `any_up` telling whether a server counts as up.
    pub fn tick(&mut self, now: Instant, any_up: bool) -> Tick {
        if self.probing() {
            return if self.probe_due(now) {
                Tick::Probe
            } else {
                Tick::Wait
            };
        }
        if self.told_down {
            return Tick::Idle;
        }
        if any_up {
            // A server was added or answered in between: nothing to confirm.
            self.detector.clear_suspicion();
        } else if self.detector.tick(now) == Verdict::Down {
            return Tick::Down;
        }
        Tick::Refresh
    }

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
