//! Questions in flight: the clients waiting on each, the attempts sent upstream for it,
//! and whether an upstream message answers an attempt. The event loop's `forward` drives
//! them, `server` owns the table, and both name them from here so neither has to import
//! the other. The core knows no transport: an attempt carries the shell's tag of how it
//! travels (`P`), and a question keeps the shell's prepared failure answer (`F`) as is.

use std::net::SocketAddr;
use std::time::Instant;

use crate::cache::{Key, KeyedHash};
use crate::core::upstreams::UpstreamId;
use crate::wire::message::read_question;
use crate::wire::{Header, NameBuf, Opt, QueryView, Question, HEADER_LEN};

/// Where a reply goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyTo {
    Udp { listener: usize, peer: SocketAddr },
    Tcp { conn: usize, serial: u32 },
}

impl ReplyTo {
    pub fn is_udp(&self) -> bool {
        matches!(self, ReplyTo::Udp { .. })
    }
}

/// A client waiting for an answer.
pub struct Waiter {
    pub to: ReplyTo,
    pub id: u16,
    pub rd: bool,
    pub cd: bool,
    /// The client set AD (RFC 6840 §5.8: it understands AD in the reply).
    #[cfg(feature = "dnssec")]
    pub ad: bool,
    pub opt: Option<Opt>,
    /// The client's spelling of the name.
    pub name: NameBuf,
}

impl Waiter {
    pub(crate) fn query_view(&self, qtype: u16, qclass: u16) -> QueryView {
        QueryView {
            id: self.id,
            rd: self.rd,
            cd: self.cd,
            #[cfg(feature = "dnssec")]
            ad: self.ad,
            #[cfg(not(feature = "dnssec"))]
            ad: false,
            question: Question {
                name: self.name.clone(),
                qtype,
                qclass,
                end: 0,
            },
            opt: self.opt,
        }
    }
}

/// One query sent to one upstream: its transaction id and the server, not a socket (the
/// transport keeps that); `P` says how it travels (UDP, TCP, ...).
pub struct Attempt<P> {
    /// The server's id: positions change when the list is rebuilt.
    pub upstream: UpstreamId,
    pub addr: std::net::SocketAddr,
    pub id: u16,
    /// The name as sent: with 0x20 its random case must come back exactly.
    pub name: NameBuf,
    pub exact_case: bool,
    /// Sent with an OPT record.
    pub edns: bool,
    /// Still listening for an answer.
    pub open: bool,
    pub sent_at: Instant,
    pub proto: P,
}

/// A question in flight, its attempts travelling by `P`, keeping a failure answer `F`.
pub struct Pending<P, F> {
    pub gen: u32,
    pub key: Key,
    /// The name as sent upstream.
    pub name: NameBuf,
    pub qtype: u16,
    pub qclass: u16,
    pub do_bit: bool,
    pub cd: bool,
    pub waiters: Vec<Waiter>,
    pub attempts: Vec<Attempt<P>>,
    pub next_timeout: Instant,
    pub deadline: Instant,
    /// The last useless answer (SERVFAIL, REFUSED), given to clients if nothing better comes.
    pub last_failure: Option<F>,
    /// Waiting for the link to come back (offline_policy hold); nothing sent yet.
    pub held: bool,
    /// Attempts allowed (a link probe gets one: no retransmits).
    pub max_attempts: usize,
    /// A stale answer exists: waiters get it if the upstream is slower than this (RFC 8767).
    pub stale_at: Option<Instant>,
    /// An upstream that echoes case once answered this question in another case:
    /// asked again without 0x20 (the server keeps its own detection).
    pub no_0x20: bool,
}

impl<P, F> Pending<P, F> {
    pub(crate) fn tried(&self) -> Vec<UpstreamId> {
        self.attempts.iter().map(|a| a.upstream).collect()
    }
}

/// How an upstream message relates to the attempt it arrived for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Match,
    /// Right ID and question, but the case of the name was not echoed (0x20).
    CaseChanged,
    Mismatch,
}

/// Does `msg` answer the attempt's query (RFC 5452: ID, question, and with 0x20 the
/// case of the name)? Source address and port are the transport's to check.
#[inline]
pub fn check<P, F>(msg: &[u8], a: &Attempt<P>, p: &Pending<P, F>) -> Verdict {
    let Ok(h) = Header::new_checked(msg) else {
        return Verdict::Mismatch;
    };
    if !h.qr() || h.id() != a.id || h.qdcount() != 1 {
        return Verdict::Mismatch;
    }
    // The usual case, and all 0x20 needs: the question as sent, byte for byte, read in
    // place. A question name is never compressed (nothing comes before it to point to).
    let rest = msg
        .get(HEADER_LEN..)
        .and_then(|m| m.strip_prefix(a.name.as_bytes()));
    if let Some(&[t0, t1, c0, c1, ..]) = rest {
        if u16::from_be_bytes([t0, t1]) == p.qtype && u16::from_be_bytes([c0, c1]) == p.qclass {
            return Verdict::Match;
        }
    }
    match read_question(msg, HEADER_LEN) {
        Ok(q) if q.qtype != p.qtype || q.qclass != p.qclass => Verdict::Mismatch,
        Ok(q) if q.name == a.name => Verdict::Match,
        Ok(q) if q.name.eq_ignore_case(&a.name) => match a.exact_case {
            true => Verdict::CaseChanged,
            false => Verdict::Match,
        },
        _ => Verdict::Mismatch,
    }
}

/// The questions in flight by cache key, for merging identical ones: the key's keyed
/// hash (the cache's: keys are LAN-chosen) → the question's slot. The key itself is not
/// kept here (a copy and an allocation per miss): the slot's record has it, and a
/// lookup confirms it there. Two keys with one hash (by chance, once in 2^64) share an
/// entry: the later one takes it, and the earlier question is merged no more.
#[derive(Default)]
pub struct InflightIndex {
    slots: std::collections::HashMap<u64, usize, std::hash::BuildHasherDefault<Spread>>,
    keys: KeyedHash,
}

/// A hasher for keys that are hashes already (keyed, well mixed): passes them on.
#[derive(Default)]
pub struct Spread(u64);

impl std::hash::Hasher for Spread {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, h: u64) {
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl InflightIndex {
    /// The hash a key is filed under.
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.keys.hash(key)
    }

    /// The slot filed under `hash`, if `is(slot)` confirms it holds the key.
    pub fn get(&self, hash: u64, is: impl FnOnce(usize) -> bool) -> Option<usize> {
        self.slots.get(&hash).copied().filter(|&slot| is(slot))
    }

    /// Files `slot` under `hash`, in place of what was there.
    pub fn insert(&mut self, hash: u64, slot: usize) {
        self.slots.insert(hash, slot);
    }

    /// Unfiles `slot` from `hash`, unless another slot took the entry since.
    pub fn remove(&mut self, hash: u64, slot: usize) {
        if self.slots.get(&hash) == Some(&slot) {
            self.slots.remove(&hash);
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}
