//! Forwarding misses upstream (RFC 5452): a random ID and a fresh random-port socket per
//! attempt, strict matching of answers, merging of identical questions, retransmits with
//! backoff and failover, and a TCP retry when an answer comes back truncated.

use std::time::Duration;

use crate::answer::{self, Kind, Prepared, ReplyOpts};
use crate::cache::Key;
use crate::config::OfflinePolicy;
use crate::core::delivery::{self, Decision, GiveUp};
use crate::core::inflight::{check, ReplyTo, Verdict, Waiter};
use crate::core::retry::{self, OnReply, MAX_OPEN_ATTEMPTS};
use crate::core::timers::{self, OnMiss, OnTimer};
use crate::core::upstreams::UpstreamId;
use crate::server::{Attempt, Conn, Pending, PendingSlot, Server, Timer};
use crate::transport::{Event, Owner, Proto};
use crate::wire::build::{self, Ede};
use crate::wire::{ede, scan_message, NameBuf, QueryView};

#[cfg(feature = "dnssec")]
pub(crate) mod validate;

/// Clients waiting on one question.
const MAX_WAITERS: usize = 256;
/// Questions in flight at once.
pub(crate) const MAX_PENDING: usize = 4096;
/// Records of finished questions kept for new ones (a miss then allocates neither the
/// record nor its lists), and the largest lists worth keeping. Only in builds with
/// encrypted upstreams: the plain router binary has no room left for it in its size
/// budget.
#[cfg(feature = "tls")]
const SPARE_PENDING: usize = 32;
#[cfg(feature = "tls")]
const SPARE_WAITERS: usize = 4;
#[cfg(feature = "tls")]
const SPARE_ATTEMPTS: usize = 8;
/// [`Server::pending_gens`] of a free slot. A question may have this generation too
/// (once in 2^32): its dead timers then stay in the heap until due, and fire harmlessly.
#[cfg(feature = "tls")]
const NO_GEN: u32 = u32::MAX;

const EDE_NO_UPSTREAM: Ede = Ede {
    code: ede::NO_REACHABLE_AUTHORITY,
    text: "no upstream server answered",
};
const EDE_NONE_CONFIGURED: Ede = Ede {
    code: ede::NO_REACHABLE_AUTHORITY,
    text: "no upstream servers configured",
};
pub(crate) const EDE_NETWORK_DOWN: Ede = Ede {
    code: ede::NETWORK_ERROR,
    text: "link down",
};
const EDE_OVERLOAD: Ede = Ede {
    code: ede::OTHER,
    text: "too many queries in flight",
};

impl Server {
    /// Sends a miss upstream, or joins an identical question already in flight.
    pub(crate) fn forward(&mut self, q: &QueryView, key: &Key, to: ReplyTo) {
        let waiter = Waiter {
            to,
            id: q.id,
            rd: q.rd,
            cd: q.cd,
            #[cfg(feature = "dnssec")]
            ad: q.ad,
            opt: q.opt,
            name: q.question.name.clone(),
        };
        if let Some(pi) = self.inflight_slot(key) {
            if let Some(p) = self.pending.get_mut(pi) {
                if p.waiters.len() >= MAX_WAITERS {
                    self.stats.drop_overload += 1;
                    return;
                }
                // A client retrying with the same ID and address is already waiting.
                if !p.waiters.iter().any(|w| w.to == to && w.id == q.id) {
                    p.waiters.push(waiter);
                    self.client_outstanding(to, 1);
                }
                self.stats.merged += 1;
                return;
            }
        }
        // No server yet, but a DoH server's address may be being looked up.
        #[cfg(feature = "doh")]
        let servers_coming = self.upstreams.is_empty() && self.transports.https_resolving();
        #[cfg(not(feature = "doh"))]
        let servers_coming = false;
        let on_miss = timers::on_miss(
            self.offline(),
            self.cfg.offline_policy == OfflinePolicy::Hold,
            !self.upstreams.is_empty(),
            servers_coming,
        );
        self.probe_on_demand();
        match on_miss {
            OnMiss::LinkDown => return self.reply_servfail(q, to, EDE_NETWORK_DOWN),
            OnMiss::NoServers => return self.reply_servfail(q, to, EDE_NONE_CONFIGURED),
            OnMiss::Hold | OnMiss::Forward => {}
        }
        if self.pending.len() >= MAX_PENDING || self.inflight_over_limit() {
            self.stats.drop_overload += 1;
            self.reply_servfail(q, to, EDE_OVERLOAD);
            return;
        }
        let Some(pi) = self.new_pending(key, Some(waiter)) else {
            return;
        };
        self.client_outstanding(to, 1);
        if on_miss == OnMiss::Hold {
            self.hold(pi);
            return;
        }
        if self.stale_entry(key).is_some() {
            let after = Duration::from_millis(self.cfg.stale_timeout_ms as u64);
            if let Some(p) = self.pending.get_mut(pi) {
                let at = p.arm_stale_timer(self.now, after);
                let gen = p.gen;
                self.add_timer(at, Timer::Stale(pi, gen));
            }
        }
        if let Some(p) = self.pending.get(pi) {
            self.deferred_attempts.push((pi, p.gen));
        }
    }

    /// Sends the first attempts of the misses read since the last call. A miss costs
    /// several system calls (a fresh socket per attempt), so the replies already made
    /// (cache hits in the same batch) are sent first instead of waiting behind them.
    pub(crate) fn start_deferred_attempts(&mut self) {
        let mut list = Vec::new();
        // An attempt can answer a TCP client at once (SERVFAIL), which may read that
        // client's next queries and defer more misses: go on until none are left.
        while !self.deferred_attempts.is_empty() {
            self.flush_udp();
            std::mem::swap(&mut list, &mut self.deferred_attempts);
            for &(pi, gen) in &list {
                if self.pending.get(pi).is_some_and(|p| p.gen == gen) {
                    self.send_attempt(pi, None, Proto::Udp);
                }
            }
            list.clear();
        }
        // Keep the allocation for the next batch.
        if list.capacity() > self.deferred_attempts.capacity() {
            self.deferred_attempts = list;
        }
    }

    /// Creates a pending question for `key` (with no waiter for prefetches and probes).
    pub(crate) fn new_pending(&mut self, key: &Key, waiter: Option<Waiter>) -> Option<usize> {
        let mut name = NameBuf::from_wire(key.name_wire()).ok()?;
        name.make_lowercase();
        self.pending_gen = self.pending_gen.wrapping_add(1);
        #[cfg(feature = "tls")]
        let mut p = match self.miss.spare_pending.pop() {
            Some(mut p) => {
                p.reset(self.pending_gen, key, name, self.now);
                p
            }
            None => Box::new(Pending::new(self.pending_gen, key, name, None, self.now)),
        };
        #[cfg(not(feature = "tls"))]
        let mut p = Pending::new(self.pending_gen, key, name, None, self.now);
        if let Some(w) = waiter {
            p.waiters.push(w);
        }
        let pi = self.pending.insert(p);
        #[cfg(feature = "tls")]
        {
            if self.pending_gens.len() <= pi {
                self.pending_gens.resize(pi + 1, NO_GEN);
            }
            self.pending_gens[pi] = self.pending_gen;
        }
        let hash = self.inflight.hash(key.as_bytes());
        self.inflight.insert(hash, pi);
        Some(pi)
    }

    /// Bytes one question in flight holds, counted generously: its slab slot, a waiter,
    /// room for four attempts, its key in the in-flight index, and allocator overhead.
    pub(crate) const PENDING_COST: usize = std::mem::size_of::<Option<Pending>>()
        + std::mem::size_of::<Waiter>()
        + 4 * std::mem::size_of::<Attempt>()
        + crate::cache::MAX_KEY_LEN
        + 256;

    /// With `memory_limit`, questions in flight may hold at most a quarter of it.
    fn inflight_over_limit(&self) -> bool {
        let limit = self.cfg.memory_limit_kib as usize * 1024;
        limit > 0 && (self.pending.len() + 1) * Self::PENDING_COST > limit / 4
    }

    /// Sends one link probe: one attempt per server (at most 3), no retransmits, so a
    /// dead server does not hide a live one.
    pub(crate) fn probe(&mut self, key: &Key) {
        if self.inflight_slot(key).is_some() || self.upstreams.is_empty() {
            return;
        }
        let attempts = self.upstreams.list.len().min(3);
        if let Some(pi) = self.new_pending(key, None) {
            if let Some(p) = self.pending.get_mut(pi) {
                p.max_attempts = attempts;
            }
            self.send_attempt(pi, None, Proto::Udp);
        }
    }

    /// Starts resolving `key` with nobody waiting (prefetch, refresh).
    pub(crate) fn background(&mut self, key: &Key) -> bool {
        if self.inflight_slot(key).is_some()
            || self.upstreams.is_empty()
            || self.pending.len() >= MAX_PENDING / 2
            || self.inflight_over_limit()
        {
            return false;
        }
        match self.new_pending(key, None) {
            Some(pi) => {
                self.send_attempt(pi, None, Proto::Udp);
                true
            }
            None => false,
        }
    }

    /// Parks a pending question until the link comes back or hold_timeout passes.
    fn hold(&mut self, pi: usize) {
        let wait = Duration::from_secs(self.cfg.hold_timeout as u64);
        let Some(p) = self.pending.get_mut(pi) else {
            return;
        };
        let (at, gen) = (p.hold(self.now, wait), p.gen);
        self.close_attempts(pi);
        self.add_timer(at, Timer::Pending(pi, gen));
    }

    /// Link up: held questions go upstream now.
    pub(crate) fn release_held(&mut self) {
        for pi in self.pending.keys() {
            let now = self.now;
            if self.pending.get_mut(pi).is_some_and(|p| p.release(now)) {
                self.send_attempt(pi, None, Proto::Udp);
            }
        }
    }

    /// Link down: in-flight questions are held, or answered from stale data or SERVFAIL.
    pub(crate) fn offline_pending(&mut self) {
        for pi in self.pending.keys() {
            if self.pending.get(pi).is_some_and(|p| p.held) {
                continue;
            }
            if self.cfg.offline_policy == OfflinePolicy::Hold {
                self.hold(pi);
            } else {
                self.give_up(pi, EDE_NETWORK_DOWN);
            }
        }
    }

    /// Adjusts a TCP client's count of unanswered queries.
    fn client_outstanding(&mut self, to: ReplyTo, delta: i32) {
        if let ReplyTo::Tcp { conn, serial } = to {
            if let Some(Conn::Client(c)) = self.conns.get_mut(conn) {
                if c.serial == serial {
                    c.outstanding = c.outstanding.saturating_add_signed(delta);
                }
            }
        }
    }

    /// Starts a new attempt for pending `pi`: to `upstream` if given, else the best untried.
    pub(crate) fn send_attempt(&mut self, pi: usize, upstream: Option<UpstreamId>, proto: Proto) {
        loop {
            let Some(p) = self.pending.get(pi) else {
                return;
            };
            if p.exhausted(self.now) {
                self.give_up(pi, EDE_NO_UPSTREAM);
                return;
            }
            let tried = p.tried();
            let Some(ui) = upstream.or_else(|| self.upstreams.pick(&tried, &mut self.rng)) else {
                self.give_up(pi, EDE_NONE_CONFIGURED);
                return;
            };
            let Some(u) = self.upstreams.get(ui) else {
                // Removed from the list since (a retry to the same server): any other.
                if upstream.is_some() {
                    return self.send_attempt(pi, None, proto);
                }
                self.give_up(pi, EDE_NONE_CONFIGURED);
                return;
            };
            let (addr, rto, u_no_0x20, edns) = (u.addr, u.rto(), u.no_0x20, u.edns(self.now));
            let id = self.rng.u16();
            let (gen, mut name, qtype, qclass, cd, do_bit) =
                (p.gen, p.name.clone(), p.qtype, p.qclass, p.cd, p.do_bit);
            // A validating dproxy asks every question with DO=1: the signatures are its
            // to check, whatever the client asked.
            #[cfg(feature = "dnssec")]
            let do_bit = do_bit || self.validating();
            let exact_case = self.cfg.case_randomization && !u_no_0x20 && !p.no_0x20;
            // A TLS server gets every attempt over TLS, where 0x20 adds nothing.
            #[cfg(feature = "tls")]
            let proto = self.transports.proto_for(addr, proto);
            #[cfg(feature = "tls")]
            let exact_case = exact_case && proto != Proto::Tls;
            if exact_case {
                let mut bits = 0u32;
                let mut left = 0;
                let rng = &mut self.rng;
                name.randomize_case(|| {
                    if left == 0 {
                        bits = rng.u32();
                        left = 32;
                    }
                    left -= 1;
                    let b = bits & 1 == 1;
                    bits >>= 1;
                    b
                });
            }
            build::query(&mut self.qbuf, id, &name, qtype, qclass, true, cd);
            if edns {
                build::push_opt(&mut self.qbuf, crate::wire::EDNS_UDP_SIZE, 0, do_bit, None);
            }
            let owner = Owner {
                pending: pi,
                gen,
                attempt: p.attempts.len(),
            };
            let sent =
                self.transports
                    .send(self.poll.registry(), proto, addr, owner, id, &self.qbuf);
            if let Some(u) = self.upstreams.get_mut(ui) {
                u.queries += 1;
            }
            self.stats.upstream_queries += 1;
            let now = self.now;
            let Some(p) = self.pending.get_mut(pi) else {
                return;
            };
            p.attempts.push(Attempt {
                upstream: ui,
                addr,
                id,
                name,
                exact_case,
                edns,
                open: sent.is_ok(),
                sent_at: now,
                proto,
            });
            match sent {
                Ok(_) => {
                    p.next_timeout = retry::next_timeout(now, rto, p.attempts.len(), p.deadline);
                    #[cfg(feature = "tls")]
                    if proto == Proto::Tls {
                        p.next_timeout = retry::next_encrypted_timeout(now, rto, p.deadline);
                    }
                    let (at, gen) = (p.next_timeout, p.gen);
                    self.add_timer(at, Timer::Pending(pi, gen));
                    self.limit_open_attempts(pi);
                    return;
                }
                Err(e) => {
                    log::debug!("query to {addr}: {e}");
                    self.upstreams.on_failure(ui);
                    // Try the next server at once.
                    if upstream.is_some() {
                        return self.send_attempt(pi, None, Proto::Udp);
                    }
                }
            }
        }
    }

    /// Keeps only the newest few attempts listening.
    fn limit_open_attempts(&mut self, pi: usize) {
        let Some(p) = self.pending.get(pi) else {
            return;
        };
        if p.attempts.iter().filter(|a| a.open).count() <= MAX_OPEN_ATTEMPTS {
            return;
        }
        if let Some(ai) = p.attempts.iter().position(|a| a.open) {
            self.close_attempt(pi, ai);
        }
    }

    /// Stops listening for attempt `ai`'s answer.
    fn close_attempt(&mut self, pi: usize, ai: usize) {
        let Some(p) = self.pending.get_mut(pi) else {
            return;
        };
        let gen = p.gen;
        let Some(a) = p.attempts.get_mut(ai) else {
            return;
        };
        if std::mem::take(&mut a.open) {
            let owner = Owner {
                pending: pi,
                gen,
                attempt: ai,
            };
            self.transports.close(self.poll.registry(), owner);
        }
    }

    /// Stops listening for every attempt of pending `pi`.
    pub(crate) fn close_attempts(&mut self, pi: usize) {
        let n = self.pending.get(pi).map_or(0, |p| p.attempts.len());
        for ai in 0..n {
            self.close_attempt(pi, ai);
        }
    }

    /// The attempt `owner` names, if its question is still in flight and it still listens.
    fn current(&self, owner: Owner) -> Option<(usize, usize)> {
        let p = self.pending.get(owner.pending)?;
        (p.gen == owner.gen && p.attempts.get(owner.attempt)?.open)
            .then_some((owner.pending, owner.attempt))
    }

    /// An upstream socket (token `TOKEN_BASE + slot`) is ready: handles what it says.
    pub(crate) fn upstream_ready(&mut self, slot: usize) {
        let mut buf = std::mem::take(&mut self.rbuf);
        // Read until the socket is empty: epoll reports it only once, and a flood of
        // forged answers must not bury the real one. The socket buffer bounds the loop.
        while let Some(ev) =
            self.transports
                .next_event(self.poll.registry(), slot, &mut buf, self.now)
        {
            match ev {
                Event::Message(owner, n) => {
                    let Some((pi, ai)) = self.current(owner) else {
                        // For an attempt closed after its answer was read (its question
                        // was answered through another attempt): dropped, and the
                        // answers read with it on the same connection are delivered
                        // now. Epoll reports the socket once: the next wake-up may be
                        // far. Only DoT and DoH connections hold answers read ahead;
                        // without them (a UDP attempt's socket goes with the attempt, a
                        // TCP stream forgets a closed attempt's ID) nothing follows, and
                        // the plain build keeps the smaller `break`.
                        self.transports.close(self.poll.registry(), owner);
                        #[cfg(feature = "tls")]
                        continue;
                        #[cfg(not(feature = "tls"))]
                        break;
                    };
                    let verdict = match self.pending.get(pi) {
                        Some(p) => check(&buf[..n], &p.attempts[ai], p),
                        None => Verdict::Mismatch,
                    };
                    let udp =
                        self.pending.get(pi).map(|p| p.attempts[ai].proto) == Some(Proto::Udp);
                    match verdict {
                        Verdict::Match => {
                            self.on_answer(pi, ai, &buf[..n]);
                            if udp {
                                break;
                            }
                        }
                        Verdict::CaseChanged => {
                            self.case_changed(pi, ai);
                            if udp {
                                break;
                            }
                        }
                        // Wrong ID or question: a spoofing attempt or a stale answer.
                        Verdict::Mismatch if udp => self.stats.drop_mismatch += 1,
                        // On a stream the id was right: the question is wrong.
                        Verdict::Mismatch => {
                            self.stats.drop_mismatch += 1;
                            self.attempt_failed(pi, ai);
                        }
                    }
                }
                Event::Stray => self.stats.drop_mismatch += 1,
                Event::Failed(owner) => {
                    let Some((pi, ai)) = self.current(owner) else {
                        self.transports.close(self.poll.registry(), owner);
                        continue;
                    };
                    let udp =
                        self.pending.get(pi).map(|p| p.attempts[ai].proto) == Some(Proto::Udp);
                    self.attempt_failed(pi, ai);
                    if udp {
                        break;
                    }
                }
            }
        }
        self.rbuf = buf;
    }

    /// The upstream changed the case of our 0x20 question. Either it does not echo case
    /// (then, after a few, it is asked in lowercase) or someone forged the answer.
    fn case_changed(&mut self, pi: usize, ai: usize) {
        self.stats.drop_case += 1;
        let Some(p) = self.pending.get_mut(pi) else {
            return;
        };
        let Some(a) = p.attempts.get_mut(ai) else {
            return;
        };
        let ui = a.upstream;
        // This question is asked again without 0x20 (a server that echoes case for other
        // names may still fold it for some, e.g. names it synthesizes); still matched
        // by address, port, ID and question.
        p.no_0x20 = true;
        self.close_attempt(pi, ai);
        if let Some(u) = self.upstreams.get_mut(ui) {
            u.case_misses += 1;
            if u.case_misses >= crate::core::upstreams::CASE_MISSES_TO_EXEMPT
                && u.case_hits == 0
                && !u.no_0x20
            {
                u.no_0x20 = true;
                log::warn!(
                    "upstream {} does not echo the case of questions; 0x20 is off for it",
                    u.addr
                );
            }
        }
        self.send_attempt(pi, Some(ui), Proto::Udp);
    }

    /// An attempt's socket failed: close it and, if nothing else is listening, move on now.
    fn attempt_failed(&mut self, pi: usize, ai: usize) {
        let Some(p) = self.pending.get_mut(pi) else {
            return;
        };
        let Some(a) = p.attempts.get_mut(ai) else {
            return;
        };
        let ui = a.upstream;
        self.close_attempt(pi, ai);
        let others_open = self
            .pending
            .get(pi)
            .is_some_and(|p| p.attempts.iter().any(|a| a.open));
        self.upstreams.on_failure(ui);
        if !others_open {
            self.send_attempt(pi, None, Proto::Udp);
        }
    }

    fn on_answer(&mut self, pi: usize, ai: usize, msg: &[u8]) {
        let Some(p) = self.pending.get_mut(pi) else {
            return;
        };
        let Some(a) = p.attempts.get_mut(ai) else {
            return;
        };
        let (ui, rtt, proto, exact_case, edns, addr) = (
            a.upstream,
            self.now.saturating_duration_since(a.sent_at),
            a.proto,
            a.exact_case,
            a.edns,
            a.addr,
        );
        self.close_attempt(pi, ai);
        if exact_case {
            // It echoed our random case: it is a 0x20-capable server.
            if let Some(u) = self.upstreams.get_mut(ui) {
                u.case_hits += 1;
                u.case_misses = 0;
            }
        }
        self.stats.upstream_answers += 1;
        let scan = match scan_message(msg) {
            Ok(s) => s,
            Err(e) => {
                log::debug!("malformed answer from upstream: {e}");
                self.stats.drop_upstream_malformed += 1;
                self.upstreams.on_failure(ui);
                self.send_attempt(pi, None, Proto::Udp);
                return;
            }
        };
        self.upstreams.on_answer(ui, rtt, self.now);
        self.upstream_answered();
        match retry::on_reply(scan.rcode, scan.tc, edns, proto == Proto::Udp) {
            OnReply::RetryWithoutEdns => {
                // A server that does not know EDNS may answer FORMERR: asked without,
                // and so for a while.
                if let Some(u) = self.upstreams.get_mut(ui) {
                    if u.edns(self.now) {
                        log::info!("upstream {addr} rejects EDNS (FORMERR); asking it without");
                    }
                    u.no_edns_until = Some(self.now + crate::core::upstreams::NO_EDNS_FOR);
                }
                return self.send_attempt(pi, Some(ui), proto);
            }
            OnReply::RetryOverTcp => return self.send_attempt(pi, Some(ui), Proto::Tcp),
            OnReply::Use => {}
        }
        let respell = self.pending.get(pi).and_then(|p| {
            let a = p.attempts.get(ai)?;
            a.exact_case.then(|| (a.name.clone(), p.name.clone()))
        });
        let fix = respell
            .as_ref()
            .map(|(from, to)| crate::sanitize::Respell { from, to });
        let do_bit = self.pending.get(pi).is_some_and(|p| p.do_bit);
        let trust_ad = self.cfg.trust_ad;
        // Validating: the walk needs the signatures, and AD comes only from the walk.
        #[cfg(feature = "dnssec")]
        let (do_bit, trust_ad) = match self.validating() {
            true => (true, false),
            false => (do_bit, trust_ad),
        };
        let scratch = &mut self.miss.scratch;
        let prepared = answer::prepare(msg, &scan, &self.cfg.ttl, trust_ad, do_bit, fix, scratch);
        let Some(prepared) = prepared else {
            log::debug!("unusable answer from upstream {addr}");
            self.stats.drop_upstream_malformed += 1;
            self.upstreams.on_failure(ui);
            self.send_attempt(pi, None, Proto::Udp);
            return;
        };
        if prepared.kind == Kind::Failure {
            self.upstreams.on_failure(ui);
            let untried = self
                .pending
                .get(pi)
                .map(|p| self.upstreams.any_untried(&p.tried()))
                .unwrap_or(false);
            if untried {
                if let Some(p) = self.pending.get_mut(pi) {
                    p.last_failure = Some(prepared);
                }
                self.send_attempt(pi, None, Proto::Udp);
                return;
            }
        }
        #[cfg(feature = "dnssec")]
        if self.validating() {
            if let Some(qtype) = self.pending.get(pi).map(|p| p.qtype) {
                self.check_stripping(&prepared.msg, qtype, addr);
            }
            return self.validate_answer(pi, prepared);
        }
        self.deliver(pi, prepared);
    }

    /// Ends a pending question: caches the answer and replies to every waiter.
    fn deliver(&mut self, pi: usize, prepared: Prepared) {
        self.deliver_flags(pi, prepared, 0);
    }

    /// [`Self::deliver`] with cache flags of the validation (`flag::SECURE`, ...). The
    /// core decides what the answer becomes (`core::delivery`); this carries it out.
    pub(crate) fn deliver_flags(&mut self, pi: usize, prepared: Prepared, verdict: u8) {
        let Some(p) = self.pending.get(pi) else {
            return;
        };
        let answer = delivery::Answer {
            kind: prepared.kind,
            lifetime: prepared.lifetime,
            msg: &prepared.msg,
            name: &p.name,
            verdict,
            offline: self.offline(),
        };
        let rebind = delivery::Rebind {
            protection: self.cfg.rebind_protection,
            localhost: self.cfg.rebind_localhost,
            exempt: &self.rebind_exempt,
        };
        let store = match delivery::decide(&answer, rebind, || self.stale_entry(&p.key).is_some()) {
            Decision::ServeStale => return self.give_up(pi, EDE_NO_UPSTREAM),
            Decision::Refuse(ip) => {
                if let Some(ip) = ip {
                    self.log_rebinding(pi, ip);
                }
                return self.refuse_rebinding(pi);
            }
            Decision::Deliver(store) => store,
        };
        // prepare() guarantees a single uncompressed question, so this cannot fail; if it
        // did, the clients get SERVFAIL rather than a malformed answer.
        // Taken out for the replies below (which need `self`), put back at the end.
        let (mut stored, mut stored_pos) = (
            std::mem::take(&mut self.miss.stored),
            std::mem::take(&mut self.miss.stored_pos),
        );
        let msg = &prepared.msg;
        if answer::to_stored_into(msg, &prepared.ttl_pos, &mut stored, &mut stored_pos).is_none() {
            self.give_up(pi, EDE_NO_UPSTREAM);
            return;
        }
        let Some(p) = self.finish(pi) else { return };
        let now = self.now_secs();
        let flags = store.flags;
        if store.cached(|| self.key_blocked(&p.key)) {
            self.cache.insert(
                p.key.as_bytes(),
                &stored,
                &stored_pos,
                now,
                store.lifetime,
                flags,
            );
        }
        for w in &p.waiters {
            let q = w.query_view(p.qtype, p.qclass);
            let opts = ReplyOpts {
                udp: w.to.is_udp(),
                #[cfg(feature = "dnssec")]
                ede: validate::cached_ede(flags),
                ..Default::default()
            };
            let pos = stored_pos.iter().map(|&x| x as usize);
            if answer::write_stored_reply(&mut self.out, &stored, pos, &q, &opts) {
                self.stats.truncated += 1;
            }
            #[cfg(feature = "dnssec")]
            if validate::sets_ad(flags, q.do_bit(), w.ad) {
                if let Ok(mut h) = crate::wire::Header::new_checked(&mut self.out[..]) {
                    h.set_ad(true);
                }
            }
            if prepared.kind == Kind::Failure {
                self.stats.servfail += 1;
            }
            self.client_outstanding(w.to, -1);
            self.reply(w.to);
        }
        (self.miss.stored, self.miss.stored_pos) = (stored, stored_pos);
        #[cfg(feature = "dnssec")]
        self.feed_walks(pi, p.gen, Some(&prepared.msg));
        self.recycle(p);
        let scratch = &mut self.miss.scratch;
        scratch.keep_buffers(prepared.msg, prepared.ttl_pos);
    }

    /// Counts a refused rebinding answer and logs it: a warning the first time, and the
    /// name (debug) once per name.
    fn log_rebinding(&mut self, pi: usize, ip: std::net::IpAddr) {
        self.stats.drop_rebind += 1;
        let Some(p) = self.pending.get(pi) else {
            return;
        };
        let name = p.name.to_dotted();
        // Once per name, and a bounded memory of names. Names are the LAN's history: they
        // go to debug only; the warning says that it happens, not for what.
        // A list scanned, not a hash set: it fills only on refused answers (rare), and
        // the set's hashing code would cost the router binary kilobytes.
        if self.rebind_logged.len() < 1024 && !self.rebind_logged.contains(&name) {
            self.rebind_logged.push(name.clone());
            if self.rebind_logged.len() == 1 {
                log::warn!("rebinding protection refused a private address for a public name (drop_rebind counts them; log_level debug names them)");
            }
            log::debug!("rebinding protection: {name} answered with {ip}; refused");
        }
    }

    /// Answers NXDOMAIN (EDE 15, Blocked) to everyone waiting on a rebinding answer.
    fn refuse_rebinding(&mut self, pi: usize) {
        let Some(p) = self.finish(pi) else { return };
        for w in &p.waiters {
            let q = w.query_view(p.qtype, p.qclass);
            self.client_outstanding(w.to, -1);
            answer::write_error(
                &mut self.out,
                &q,
                crate::wire::rcode::NXDOMAIN,
                Some(delivery::EDE_REBIND),
            );
            self.reply(w.to);
        }
        #[cfg(feature = "dnssec")]
        self.feed_walks(pi, p.gen, None);
        self.recycle(p);
    }

    /// Nothing useful came back in time: a stale answer, the last failure answer, or SERVFAIL.
    pub(crate) fn give_up(&mut self, pi: usize, why: Ede) {
        let Some(key) = self.pending.get(pi).map(|p| p.key.clone()) else {
            return;
        };
        let stale = self.stale_entry(&key).is_some();
        let kept = self
            .pending
            .get(pi)
            .is_some_and(|p| p.last_failure.is_some());
        if delivery::give_up(stale, kept) == GiveUp::LastFailure {
            if let Some(f) = self.pending.get_mut(pi).and_then(|p| p.last_failure.take()) {
                self.deliver(pi, f);
                return;
            }
        }
        let Some(p) = self.finish(pi) else { return };
        for w in &p.waiters {
            let q = w.query_view(p.qtype, p.qclass);
            self.client_outstanding(w.to, -1);
            if !self.reply_stale(&q, &p.key, w.to) {
                self.reply_servfail(&q, w.to, why);
            }
        }
        #[cfg(feature = "dnssec")]
        self.feed_walks(pi, p.gen, None);
        self.recycle(p);
    }

    /// The client-response timer (RFC 8767): waiters get the stale answer, resolution goes on.
    pub(crate) fn stale_timer(&mut self, pi: usize, gen: u32) {
        let Some(p) = self.pending.get_mut(pi) else {
            return;
        };
        let Some(waiters) = p.stale_timer_fired(gen) else {
            return;
        };
        let (key, qtype, qclass) = (p.key.clone(), p.qtype, p.qclass);
        for w in waiters {
            let q = w.query_view(qtype, qclass);
            self.client_outstanding(w.to, -1);
            if !self.reply_stale(&q, &key, w.to) {
                self.reply_servfail(&q, w.to, EDE_NO_UPSTREAM);
            }
        }
    }

    /// Keeps a finished question's record for [`Self::new_pending`], which resets it in
    /// place (a record whose lists grew large goes, lists and all).
    #[cfg(feature = "tls")]
    fn recycle(&mut self, p: PendingSlot) {
        let spare = &mut self.miss.spare_pending;
        if spare.len() < SPARE_PENDING
            && p.waiters.capacity() <= SPARE_WAITERS
            && p.attempts.capacity() <= SPARE_ATTEMPTS
        {
            spare.push(p);
        }
    }

    #[cfg(not(feature = "tls"))]
    fn recycle(&mut self, _: PendingSlot) {}

    /// The question in flight for `key`, if any.
    pub(crate) fn inflight_slot(&self, key: &Key) -> Option<usize> {
        let hash = self.inflight.hash(key.as_bytes());
        self.inflight.get(hash, |pi| {
            self.pending
                .get(pi)
                .is_some_and(|p| p.key.as_bytes() == key.as_bytes())
        })
    }

    /// Removes a pending question and closes its sockets.
    fn finish(&mut self, pi: usize) -> Option<PendingSlot> {
        self.close_attempts(pi);
        let p = self.pending.remove(pi)?;
        #[cfg(feature = "tls")]
        if let Some(g) = self.pending_gens.get_mut(pi) {
            *g = NO_GEN;
        }
        let hash = self.inflight.hash(p.key.as_bytes());
        self.inflight.remove(hash, pi);
        Some(p)
    }

    pub(crate) fn pending_timer(&mut self, pi: usize, gen: u32) {
        let Some(p) = self.pending.get(pi) else {
            return;
        };
        match p.timer_fired(gen, self.now) {
            OnTimer::Ignore => return,
            // Online, a question is held only for a DoH server's first address lookup.
            #[cfg(feature = "doh")]
            OnTimer::HoldExpired if !self.offline() => {
                return self.give_up(pi, crate::doh_upstreams::EDE_LOOKUP_PENDING)
            }
            OnTimer::HoldExpired => return self.give_up(pi, EDE_NETWORK_DOWN),
            OnTimer::Retransmit => {}
        }
        if let Some(a) = p.attempts.last() {
            let ui = a.upstream;
            self.upstreams.on_timeout(ui);
        }
        if self.check_auto_down() {
            return;
        }
        self.send_attempt(pi, None, Proto::Udp);
    }
}
