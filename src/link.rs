//! Link state and what changes with it: offline answers, serve-stale (RFC 8767),
//! automatic down-detection with bounded probes, and recovery when the link returns.

use crate::answer::{self, ReplyOpts};
use crate::cache::{flag, Key};
use crate::core::inflight::ReplyTo;
use crate::core::link::{Tick, Verdict};
use crate::core::stale;
use crate::server::Server;
use crate::wire::build::Ede;
use crate::wire::{ede, rtype, QueryView, CLASS_IN};

/// TTL of a stale answer (RFC 8767 4).
pub const STALE_TTL: u32 = 30;

const EDE_STALE: Ede = Ede {
    code: ede::STALE_ANSWER,
    text: "stale answer",
};

impl Server {
    pub(crate) fn offline(&self) -> bool {
        self.link.offline()
    }

    /// An expired entry that may still be served stale: (seconds expired).
    pub(crate) fn stale_entry(&self, key: &Key) -> Option<u32> {
        if self.cfg.stale_max == 0 {
            return None;
        }
        let now = self.now_secs();
        let e = self.cache.peek(key.as_bytes())?;
        let failure = e.flags & flag::FAILURE != 0;
        let age = stale::stale_age(e.expires, failure, now, self.cfg.stale_max)?;
        if stale::excluded(key.name_wire(), &self.stale_exclude) {
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
        // Validating: an answer that was not validated is not served, stale or not.
        #[cfg(feature = "dnssec")]
        if !crate::forward::validate::servable(self.cfg.dnssec.enabled, e.flags, key.flags()) {
            return false;
        }
        let opts = ReplyOpts {
            fixed_ttl: Some(STALE_TTL),
            ede: Some(EDE_STALE),
            udp: to.is_udp(),
            ..Default::default()
        };
        answer::write_stored_reply(&mut self.out, e.msg, e.ttl_positions(), q, &opts);
        // A stale answer keeps the verdict it was cached with.
        #[cfg(feature = "dnssec")]
        if self.cfg.dnssec.enabled && crate::forward::validate::sets_ad(e.flags, q.do_bit(), q.ad) {
            if let Ok(mut h) = crate::wire::Header::new_checked(&mut self.out[..]) {
                h.set_ad(true);
            }
        }
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
        if self.link.probing() {
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
        if self.link.told_down(self.now) {
            log::warn!("link down ({why}): answering from cache only");
        }
        self.acl.refresh();
        self.offline_pending();
        #[cfg(feature = "tls")]
        self.transports.link_down(self.poll.registry());
    }

    /// The link came up (signal, control socket), or upstreams answer again.
    pub(crate) fn link_up(&mut self, why: &str) {
        let was = self.link.came_up(self.now);
        // netifd rewrites the resolv file on every ifup, and addresses may have changed.
        #[cfg(feature = "tls")]
        self.transports.link_up(self.poll.registry());
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
            let failure = e.flags & flag::FAILURE != 0;
            if stale::stale_age(e.expires, failure, now, stale_max).is_some() {
                if let Some(k) = Key::from_bytes(e.key) {
                    cands.push((e.hits, k));
                }
            }
        });
        self.link.queue_refresh(cands);
    }

    /// An upstream answered: the link is evidently there.
    pub(crate) fn upstream_answered(&mut self) {
        if self.link.answered(self.now) {
            self.link_up("an upstream answered again");
        }
    }

    /// After a timeout: are all upstreams failing for a while? Then check with a probe,
    /// and go offline by ourselves if that goes unanswered too.
    pub(crate) fn check_auto_down(&mut self) -> bool {
        let servers = !self.upstreams.is_empty();
        let any_up = self.upstreams.any_up();
        match self
            .link
            .after_timeout(self.now, self.start, servers, any_up)
        {
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
        self.link.went_auto_down(self.now);
        self.offline_pending();
    }

    /// Once a second: probes while down by ourselves, refreshes after link up.
    pub(crate) fn link_housekeeping(&mut self) {
        match self.link.tick(self.now, self.upstreams.any_up()) {
            Tick::Probe => return self.send_probe(rtype::NS),
            Tick::Down => return self.auto_down(),
            Tick::Idle | Tick::Wait => return,
            Tick::Refresh => {}
        }
        let mut done = 0;
        while let Some(k) = self.link.next_refresh(done) {
            done += 1;
            if self.stale_entry(&k).is_some() {
                self.background(&k);
            }
        }
    }
}
