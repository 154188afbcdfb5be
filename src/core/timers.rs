//! The life of a question in flight on the clock (the core: the time is an input): what a
//! miss gets while the link is down (`offline_policy`), holding it until the link comes
//! back or `hold_timeout` passes, the client-response timer of serve-stale (RFC 8767),
//! and what its retransmission timer asks for when it fires.

use std::time::{Duration, Instant};

use super::inflight::{Pending, Waiter};
use super::retry::{MAX_ATTEMPTS, QUERY_DEADLINE};
use crate::cache::{Key, KEY_CD, KEY_DO};
use crate::wire::NameBuf;

/// What becomes of a miss that no question in flight can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMiss {
    /// Sent upstream.
    Forward,
    /// Parked until the link comes back or `hold_timeout` passes.
    Hold,
    /// SERVFAIL at once: the link is down.
    LinkDown,
    /// SERVFAIL at once: there is no server to ask.
    NoServers,
}

/// The offline policy: while the link is down a miss is held (`hold`) or failed at once;
/// with no servers configured it fails at once, unless held for the link to bring some,
/// or `servers_coming`: a server's address is being looked up (a DoH server's first
/// bootstrap lookup), so the miss waits for it as it would for the link.
#[inline]
pub fn on_miss(
    offline: bool,
    hold_policy: bool,
    have_servers: bool,
    servers_coming: bool,
) -> OnMiss {
    let hold = offline && hold_policy;
    if offline && !hold {
        OnMiss::LinkDown
    } else if hold || (!have_servers && servers_coming) {
        OnMiss::Hold
    } else if !have_servers {
        OnMiss::NoServers
    } else {
        OnMiss::Forward
    }
}

/// What a question's retransmission timer asks for when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnTimer {
    /// Not this question's timer any more (a newer one, or the question was re-armed).
    Ignore,
    /// Held until the link came back, and `hold_timeout` passed first: give up.
    HoldExpired,
    /// The last attempt went unanswered: count the timeout, then retransmit or fail over.
    Retransmit,
}

impl<P, F> Pending<P, F> {
    /// A new question for `key` at `now`; `name` as sent upstream (lower case).
    pub fn new(gen: u32, key: &Key, name: NameBuf, waiter: Option<Waiter>, now: Instant) -> Self {
        Pending {
            gen,
            key: key.clone(),
            name,
            qtype: key.qtype(),
            qclass: key.qclass(),
            do_bit: key.flags() & KEY_DO != 0,
            cd: key.flags() & KEY_CD != 0,
            waiters: waiter.into_iter().collect(),
            attempts: Vec::new(),
            next_timeout: now,
            deadline: now + QUERY_DEADLINE,
            last_failure: None,
            held: false,
            max_attempts: MAX_ATTEMPTS,
            stale_at: None,
            no_0x20: false,
        }
    }

    /// Makes a finished question's record a new one, as [`Pending::new`] without a
    /// waiter would, in place: its lists keep their capacity, and the record (700
    /// bytes) is not built elsewhere and moved in.
    pub fn reset(&mut self, gen: u32, key: &Key, name: NameBuf, now: Instant) {
        // Every field, named: a field added later must be reset here too.
        let Pending {
            gen: g,
            key: k,
            name: n,
            qtype,
            qclass,
            do_bit,
            cd,
            waiters,
            attempts,
            next_timeout,
            deadline,
            last_failure,
            held,
            max_attempts,
            stale_at,
            no_0x20,
        } = self;
        *g = gen;
        k.clone_from(key);
        *n = name;
        *qtype = key.qtype();
        *qclass = key.qclass();
        *do_bit = key.flags() & KEY_DO != 0;
        *cd = key.flags() & KEY_CD != 0;
        waiters.clear();
        attempts.clear();
        *next_timeout = now;
        *deadline = now + QUERY_DEADLINE;
        *last_failure = None;
        *held = false;
        *max_attempts = MAX_ATTEMPTS;
        *stale_at = None;
        *no_0x20 = false;
    }

    /// Parks the question at `now` for `hold_timeout`; returns when its timer fires.
    pub fn hold(&mut self, now: Instant, hold_timeout: Duration) -> Instant {
        self.held = true;
        self.deadline = now + hold_timeout;
        self.next_timeout = self.deadline;
        self.deadline
    }

    /// The link is back at `now`: a held question goes upstream with a fresh deadline.
    /// False if it was not held.
    pub fn release(&mut self, now: Instant) -> bool {
        if !self.held {
            return false;
        }
        self.held = false;
        self.deadline = now + QUERY_DEADLINE;
        true
    }

    /// Arms the client-response timer (a stale answer exists): returns when it fires.
    pub fn arm_stale_timer(&mut self, now: Instant, stale_timeout: Duration) -> Instant {
        let at = now + stale_timeout;
        self.stale_at = Some(at);
        at
    }

    /// The client-response timer of generation `gen` fired: the waiters to answer from
    /// the stale entry (once; the resolution goes on for the cache), or None.
    pub fn stale_timer_fired(&mut self, gen: u32) -> Option<Vec<Waiter>> {
        if self.gen != gen || self.stale_at.take().is_none() {
            return None;
        }
        Some(std::mem::take(&mut self.waiters))
    }

    /// Whether no more attempts may go out at `now`: all spent, or past the deadline.
    #[inline]
    pub fn exhausted(&self, now: Instant) -> bool {
        self.attempts.len() >= self.max_attempts || now >= self.deadline
    }

    /// The retransmission timer of generation `gen` fired at `now`.
    pub fn timer_fired(&self, gen: u32, now: Instant) -> OnTimer {
        if self.gen != gen || now < self.next_timeout {
            OnTimer::Ignore
        } else if self.held {
            OnTimer::HoldExpired
        } else {
            OnTimer::Retransmit
        }
    }
}

/// Pops the timers at the head of `heap` that `dead` says can only be ignored (their
/// question was answered), so that the next wait lasts until a timer with work to do.
/// A DoT or DoH attempt's timer is a second or more away when it is armed and its
/// answer comes in tens of milliseconds: at a few thousand queries a second the head of
/// the heap would otherwise be a dead timer expiring every fraction of a millisecond,
/// and each would cost a wake-up that finds nothing to do. A live timer at the head
/// stops the scan; dead ones behind it go when they reach the head.
#[cfg(feature = "tls")]
pub fn drop_dead_heads<T: Ord>(
    heap: &mut std::collections::BinaryHeap<std::cmp::Reverse<(Instant, T)>>,
    dead: impl Fn(&T) -> bool,
) {
    while heap.peek().is_some_and(|std::cmp::Reverse((_, t))| dead(t)) {
        heap.pop();
    }
}
