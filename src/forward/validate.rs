//! DNSSEC validation of forwarded answers (`option dnssec 1`, full build): each
//! upstream answer to a client question starts a chain-of-trust walk
//! ([`crate::dnssec::walk`]); its DS and DNSKEY sub-queries travel as ordinary
//! questions in flight (cached, merged, retried), a cached one feeds the walk at once,
//! and the question's clients stay attached until the verdict. Secure answers are
//! cached with [`flag::SECURE`] so a hit sets AD without crypto; bogus and
//! indeterminate ones become a short-lived SERVFAIL carrying the Extended DNS Error.

use std::net::SocketAddr;

use crate::answer::{self, Kind, Prepared, ReplyOpts};
use crate::cache::{flag, Key, KEY_CD, KEY_DO};
use crate::clock_trust::{CheckTime, BUILD_TIME};
use crate::core::validation::Validation;
use crate::dnssec::walk::{Outcome, Settings, Step, Walk};
use crate::dnssec::{Clock, DNSKEY};
use crate::server::Server;
use crate::transport::Proto;
use crate::wire::build::Ede;
use crate::wire::{rcode, rtype, scan_message, Header, NameBuf, QueryView, Question, HEADER_LEN};

/// Validations in progress at once; more are answered SERVFAIL (never unvalidated).
const MAX_VALIDATIONS: usize = 1024;
/// Zones whose validated DNSKEY sets are kept to seed new walks.
const MAX_ZONES: usize = 256;
/// How long a validated key set is kept when its DNSKEY answer is no longer cached.
const ZONE_KEYS_TTL: u32 = 300;

/// The Extended DNS Errors a DNSSEC failure is cached with, by their index in the
/// three [`flag::EDE`] bits (index + 1 is stored; 0 means none).
const EDE_CODES: [u16; 7] = [0, 6, 7, 8, 9, 10, 12];

/// The texts of those errors, for clients.
fn ede_text(code: u16) -> &'static str {
    match code {
        6 => "DNSSEC bogus",
        7 => "DNSSEC signature expired",
        8 => "DNSSEC signature not yet valid",
        9 => "DNSSEC DNSKEY missing",
        10 => "DNSSEC RRSIGs missing",
        12 => "DNSSEC NSEC missing",
        _ => "DNSSEC validation indeterminate: a DS or DNSKEY query failed",
    }
}

/// The cache flag bits that carry EDE `code` (None if it has no slot).
fn ede_flags(code: u16) -> u8 {
    match EDE_CODES.iter().position(|&c| c == code) {
        Some(i) => ((i as u8 + 1) << 5) & flag::EDE,
        None => ((1u8) << 5) & flag::EDE,
    }
}

/// The Extended DNS Error a cached DNSSEC failure carries.
pub(crate) fn cached_ede(flags: u8) -> Option<Ede> {
    let i = ((flags & flag::EDE) >> 5) as usize;
    let code = *EDE_CODES.get(i.checked_sub(1)?)?;
    Some(Ede {
        code,
        text: ede_text(code),
    })
}

/// Does a reply to a client with DO `do_bit` and AD `ad` carry AD=1 for an answer with
/// `flags` (RFC 6840 §5.8: only to clients that show they understand it)?
pub(crate) fn sets_ad(flags: u8, do_bit: bool, ad: bool) -> bool {
    flags & flag::SECURE != 0 && (do_bit || ad)
}

/// May an entry with `flags` under a key with `key_flags` answer a client? While
/// validating, only validated answers, failures, and answers to CD=1 questions.
pub(crate) fn servable(validating: bool, flags: u8, key_flags: u8) -> bool {
    !validating || flags & (flag::VALIDATED | flag::FAILURE) != 0 || key_flags & KEY_CD != 0
}

/// A message for `key` built from a cached entry in stored form (question put back).
fn full_message(stored: &[u8], pos: impl Iterator<Item = usize>, key: &Key) -> Option<Vec<u8>> {
    let name = NameBuf::from_wire(key.name_wire()).ok()?;
    let q = QueryView {
        id: 0,
        rd: true,
        cd: false,
        ad: false,
        question: Question {
            name,
            qtype: key.qtype(),
            qclass: key.qclass(),
            end: 0,
        },
        opt: None,
    };
    let mut out = Vec::new();
    answer::write_stored_reply(&mut out, stored, pos, &q, &ReplyOpts::default());
    (!out.is_empty()).then_some(out)
}

/// A SERVFAIL with `prepared`'s question and nothing else, to cache briefly.
fn servfail(prepared: &Prepared) -> Option<Prepared> {
    let q = crate::wire::message::read_question(&prepared.msg, HEADER_LEN).ok()?;
    let mut msg = prepared.msg.get(..q.end)?.to_vec();
    let mut h = Header::new_checked(&mut msg[..]).ok()?;
    h.set_rcode(rcode::SERVFAIL);
    h.set_ad(false);
    h.set_ancount(0);
    h.set_nscount(0);
    h.set_arcount(0);
    Some(Prepared {
        msg,
        ttl_pos: Vec::new(),
        lifetime: 0,
        kind: Kind::Failure,
        rcode: rcode::SERVFAIL,
    })
}

impl Server {
    /// Is validation on?
    pub(crate) fn validating(&self) -> bool {
        self.cfg.dnssec.enabled
    }

    /// The time signatures are checked against: the clock policy in force.
    fn dnssec_settings(&self) -> Settings {
        let clock = match self.clock.verify_time(self.wall_secs(), BUILD_TIME) {
            CheckTime::Full(now) => Clock {
                now,
                check_inception: true,
            },
            CheckTime::EndOnly(now) => Clock {
                now,
                check_inception: false,
            },
        };
        Settings {
            clock,
            sha1: self.cfg.dnssec.sha1,
            check_unsigned: self.cfg.dnssec.check_unsigned,
        }
    }

    /// Notes a DNSKEY answer for a trust anchor's zone (the root) asked with DO=1 that
    /// has the keys but no RRSIG: that zone is signed for certain, so the upstream
    /// strips signatures, and every signed answer through it will be bogus. (Below the
    /// anchor a missing RRSIG may be the zone's own fault: that is the walk's verdict.)
    pub(crate) fn check_stripping(&mut self, msg: &[u8], qtype: u16, upstream: SocketAddr) {
        if qtype != DNSKEY {
            return;
        }
        let Ok(scan) = scan_message(msg) else {
            return;
        };
        let anchored = scan.question.as_ref().is_some_and(|q| {
            let name = q.name.as_bytes();
            self.cfg
                .dnssec
                .anchors
                .iter()
                .any(|a| a.owner.eq_ignore_ascii_case(name))
        });
        if !anchored {
            return;
        }
        let answer = |t: u16| {
            scan.records
                .iter()
                .any(|r| r.section == crate::wire::message::Section::Answer && r.rtype == t)
        };
        if !answer(qtype) || answer(rtype::RRSIG) {
            return;
        }
        let st = &mut self.dnssec;
        st.counters.stripped += 1;
        if st.stripping.len() < 16 && !st.stripping.contains(&upstream) {
            st.stripping.push(upstream);
            log::warn!(
                "upstream {upstream} answers DNSSEC queries without signatures (RRSIG stripped): \
                 signed answers through it fail validation; forward to a resolver that passes DNSSEC records"
            );
        }
    }

    /// An upstream answer for pending `pi` (asked with DO=1) after the retry handling:
    /// feeds the walks waiting for it, then validates it for its own clients, or
    /// delivers it as it is (CD=1, or fetched only for walks).
    pub(crate) fn validate_answer(&mut self, pi: usize, prepared: Prepared) {
        let Some(p) = self.pending.get(pi) else {
            return;
        };
        let (gen, cd, has_clients) = (p.gen, p.cd, !p.waiters.is_empty());
        let for_walks = self.feed_walks(pi, gen, Some(&prepared.msg));
        if cd {
            // Checking disabled: the client validates; the answer passes as it came.
            let prepared = self.for_key(pi, prepared);
            return self.deliver_flags(pi, prepared, 0);
        }
        if for_walks && !has_clients {
            // A sub-query: the walk that asked checks it; cached without VALIDATED, so
            // kept for walks only.
            return self.deliver_flags(pi, prepared, 0);
        }
        if prepared.kind == Kind::Failure {
            return self.deliver_flags(pi, prepared, 0);
        }
        if self.dnssec.walks.len() >= MAX_VALIDATIONS {
            self.dnssec.counters.overload += 1;
            return self.validation_failed(pi, prepared, Outcome::Indeterminate);
        }
        let mut walk = Walk::new(
            &prepared.msg,
            self.cfg.dnssec.anchors.clone(),
            self.dnssec_settings(),
        );
        self.seed(&mut walk, &prepared.msg);
        // The question waits for the verdict: no more attempts, its timers ignored.
        self.close_attempts(pi);
        if let Some(p) = self.pending.get_mut(pi) {
            p.next_timeout = self.now + std::time::Duration::from_secs(86400);
        }
        let vid = self.dnssec.walks.insert(Validation {
            walk,
            pi,
            gen,
            prepared,
            sub: None,
        });
        self.drive(vid);
    }

    /// Seeds a walk with the validated key sets of the zones above the answer's name.
    fn seed(&mut self, walk: &mut Walk, msg: &[u8]) {
        let Ok(q) = crate::wire::message::read_question(msg, HEADER_LEN) else {
            return;
        };
        let now = self.now_secs();
        let mut name = q.name.as_bytes();
        loop {
            let lower = name.to_ascii_lowercase();
            if let Some((keys, exp)) = self.dnssec.zones.get(&lower) {
                if *exp > now {
                    walk.seed(&lower, keys.clone());
                }
            }
            match name.first() {
                Some(&n) if n > 0 => name = name.get(1 + n as usize..).unwrap_or(&[0]),
                _ => break,
            }
        }
    }

    /// Gives the answer of pending `pi` to every walk waiting on it; true if any was.
    pub(crate) fn feed_walks(&mut self, pi: usize, gen: u32, msg: Option<&[u8]>) -> bool {
        if self.dnssec.walks.is_empty() {
            return false;
        }
        let waiting: Vec<usize> = self
            .dnssec
            .walks
            .iter()
            .filter(|(_, v)| v.sub == Some((pi, gen)))
            .map(|(i, _)| i)
            .collect();
        for &vid in &waiting {
            if let Some(v) = self.dnssec.walks.get_mut(vid) {
                v.sub = None;
                v.walk.answer(msg);
            }
            self.drive(vid);
        }
        !waiting.is_empty()
    }

    /// The answer a walk's sub-query `key` has without I/O: from the cache, or from a
    /// question whose answer is already being validated. Some(None) for a cached failure.
    fn known_answer(&mut self, key: &Key) -> Option<Option<Vec<u8>>> {
        let now = self.now_secs();
        if let Some(hit) = self.cache.get(key.as_bytes()) {
            if hit.expires > now {
                if hit.flags & flag::FAILURE != 0 {
                    return Some(None);
                }
                return Some(full_message(hit.msg, hit.ttl_positions(), key));
            }
        }
        let spi = self.inflight_slot(key)?;
        let gen = self.pending.get(spi)?.gen;
        self.dnssec
            .walks
            .iter()
            .find(|(_, v)| v.pi == spi && v.gen == gen)
            .map(|(_, v)| Some(v.prepared.msg.clone()))
    }

    /// Runs walk `vid` until it needs an answer that is not at hand, or is done.
    fn drive(&mut self, vid: usize) {
        loop {
            let step = match self.dnssec.walks.get_mut(vid) {
                Some(v) if v.sub.is_none() => v.walk.step(),
                _ => return,
            };
            let (name, qtype) = match step {
                Step::Done(o) => return self.walk_done(vid, o),
                Step::Query { name, qtype } => (name, qtype),
            };
            let key = Key::new(&name, qtype, 1, KEY_DO);
            if let Some(known) = self.known_answer(&key) {
                if let Some(v) = self.dnssec.walks.get_mut(vid) {
                    v.walk.answer(known.as_deref());
                }
                continue;
            }
            self.dnssec.counters.subqueries += 1;
            if let Some(spi) = self.inflight_slot(&key) {
                let gen = self.pending.get(spi).map(|p| p.gen);
                if let (Some(gen), Some(v)) = (gen, self.dnssec.walks.get_mut(vid)) {
                    v.sub = Some((spi, gen));
                    return;
                }
            }
            let spi = if self.offline() || self.pending.len() >= super::MAX_PENDING {
                None
            } else {
                self.new_pending(&key, None)
            };
            let Some(spi) = spi else {
                if let Some(v) = self.dnssec.walks.get_mut(vid) {
                    v.walk.answer(None);
                }
                continue;
            };
            let gen = self.pending.get(spi).map(|p| p.gen).unwrap_or(0);
            if let Some(v) = self.dnssec.walks.get_mut(vid) {
                v.sub = Some((spi, gen));
            }
            // May answer at once (no server): then feed_walks drives this walk on.
            self.send_attempt(spi, None, Proto::Udp);
            return;
        }
    }

    /// Keeps the key sets a walk validated, bounded, with the TTL of their answer.
    fn remember_keys(&mut self, walk: &Walk) {
        let now = self.now_secs();
        self.dnssec.zones.retain(|_, (_, exp)| *exp > now);
        let learned: Vec<(Vec<u8>, Vec<Vec<u8>>)> = walk
            .learned()
            .map(|(z, k)| (z.to_vec(), k.to_vec()))
            .collect();
        for (zone, keys) in learned {
            if self.dnssec.zones.len() >= MAX_ZONES && !self.dnssec.zones.contains_key(&zone) {
                break;
            }
            let key = Key::new(&zone, DNSKEY, 1, KEY_DO);
            let exp = match self.cache.get(key.as_bytes()) {
                Some(hit) if hit.expires > now => hit.expires,
                _ => now + ZONE_KEYS_TTL,
            };
            self.dnssec.zones.insert(zone, (keys, exp));
        }
    }

    /// A walk's verdict: the answer goes to its clients, or a SERVFAIL does.
    fn walk_done(&mut self, vid: usize, outcome: Outcome) {
        let Some(v) = self.dnssec.walks.remove(vid) else {
            return;
        };
        self.remember_keys(&v.walk);
        let budget = v.walk.budget();
        if budget.left == 0
            || budget.cost_left == 0
            || outcome == Outcome::Bogus(crate::dnssec::Bogus::WorkLimit)
        {
            self.dnssec.counters.limit_hits += 1;
        }
        // The question may have been answered meanwhile (stale answer, link down).
        if !self.pending.get(v.pi).is_some_and(|p| p.gen == v.gen) {
            return;
        }
        match outcome {
            Outcome::Secure => {
                self.dnssec.counters.secure += 1;
                let prepared = self.for_key(v.pi, v.prepared);
                self.deliver_flags(v.pi, prepared, flag::SECURE | flag::VALIDATED);
            }
            Outcome::Insecure(_) => {
                self.dnssec.counters.insecure += 1;
                let prepared = self.for_key(v.pi, v.prepared);
                self.deliver_flags(v.pi, prepared, flag::VALIDATED);
            }
            Outcome::Bogus(_) | Outcome::Indeterminate => {
                self.validation_failed(v.pi, v.prepared, outcome)
            }
        }
    }

    /// Bogus or indeterminate: SERVFAIL with the Extended DNS Error, cached briefly.
    fn validation_failed(&mut self, pi: usize, prepared: Prepared, outcome: Outcome) {
        let code = outcome.ede().unwrap_or(0);
        match outcome {
            Outcome::Bogus(_) => {
                self.dnssec.counters.bogus += 1;
                if let Some(i) = EDE_CODES.iter().position(|&c| c == code) {
                    self.dnssec.counters.bogus_by_ede[i] += 1;
                }
            }
            _ => self.dnssec.counters.indeterminate += 1,
        }
        match servfail(&prepared) {
            Some(fail) => self.deliver_flags(pi, fail, ede_flags(code)),
            None => self.give_up(
                pi,
                Ede {
                    code,
                    text: ede_text(code),
                },
            ),
        }
    }

    /// The answer as the question's key stores it: without the DNSSEC records when
    /// the client did not set DO (the upstream was asked with DO=1 all the same).
    fn for_key(&self, pi: usize, prepared: Prepared) -> Prepared {
        if !self.pending.get(pi).is_some_and(|p| !p.do_bit) {
            return prepared;
        }
        let Ok(scan) = scan_message(&prepared.msg) else {
            return prepared;
        };
        let scratch = &mut Default::default();
        match answer::prepare(
            &prepared.msg,
            &scan,
            &self.cfg.ttl,
            false,
            false,
            None,
            scratch,
        ) {
            Some(mut p) => {
                p.lifetime = p.lifetime.min(prepared.lifetime);
                p
            }
            None => prepared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ede_survives_the_cache_flags() {
        for code in EDE_CODES {
            let f = ede_flags(code) | flag::FAILURE;
            assert_eq!(cached_ede(f).map(|e| e.code), Some(code));
            assert_eq!(f & !flag::EDE, flag::FAILURE);
        }
        assert!(cached_ede(flag::FAILURE).is_none());
    }

    #[test]
    fn ad_only_for_secure_answers_to_clients_that_ask() {
        assert!(sets_ad(flag::SECURE, true, false));
        assert!(sets_ad(flag::SECURE, false, true));
        assert!(!sets_ad(flag::SECURE, false, false));
        assert!(!sets_ad(0, true, true));
    }

    #[test]
    fn only_validated_answers_serve_clients_while_validating() {
        assert!(servable(false, 0, 0));
        assert!(!servable(true, 0, KEY_DO));
        assert!(servable(true, flag::VALIDATED, KEY_DO));
        assert!(servable(true, flag::FAILURE, 0));
        assert!(servable(true, 0, KEY_CD | KEY_DO));
    }
}
