//! Delivery policy: what an upstream answer that ends a question becomes. A stale entry
//! beats a failure (RFC 8767), a private address for a public name is refused
//! (rebinding protection), and everything else is replied and cached with the lifetime
//! and flags decided here; a question given up gets the failure answer kept from an
//! earlier server, or stale data, or SERVFAIL. The shell executes the decision (cache
//! insert, replies, counters, logs).

use std::net::IpAddr;

use crate::answer::Kind;
use crate::cache::flag;
use crate::wire::build::Ede;
use crate::wire::{ede, scan_message, NameBuf};

/// How long an upstream SERVFAIL or REFUSED is remembered.
pub const FAILURE_TTL: u32 = 2;

/// The refusal of a rebinding answer (with NXDOMAIN).
pub const EDE_REBIND: Ede = Ede {
    code: ede::BLOCKED,
    text: "private address for a public name",
};

/// The rebinding settings: `rebind_protection`, `rebind_localhost`, and the zones
/// exempt from it (`rebind_domain` and the local domain).
#[derive(Clone, Copy)]
pub struct Rebind<'a> {
    pub protection: bool,
    pub localhost: bool,
    pub exempt: &'a [NameBuf],
}

/// What the shell knows of the answer that ends a question.
pub struct Answer<'a> {
    pub kind: Kind,
    /// The prepared answer's lifetime (seconds; 0: not to be cached).
    pub lifetime: u32,
    /// The prepared message, as it goes to the cache.
    pub msg: &'a [u8],
    /// The question's name.
    pub name: &'a NameBuf,
    /// The validation's cache flags (`flag::SECURE`, ...), 0 without validation.
    pub verdict: u8,
    /// The link is down (told so, or by itself): what is learned now is marked so.
    pub offline: bool,
}

/// How a delivered answer is cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Store {
    pub flags: u8,
    /// Seconds; 0: not cached.
    pub lifetime: u32,
}

impl Store {
    /// Whether it goes into the cache: a lifetime, and a name on no block list (asked
    /// of the shell only then: a block list lookup costs).
    #[inline]
    pub fn cached(&self, blocked: impl FnOnce() -> bool) -> bool {
        self.lifetime > 0 && !blocked()
    }
}

/// What becomes of an answer that ends a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A failure while stale data can be served: the question is given up, and the
    /// waiters get the stale answer.
    ServeStale,
    /// A private address for a public name: NXDOMAIN with [`EDE_REBIND`] to every
    /// waiter, nothing cached. The address found (None: the answer did not scan, and
    /// is refused rather than let by).
    Refuse(Option<IpAddr>),
    /// The answer goes to every waiter and is cached as [`Store`] says.
    Deliver(Store),
}

/// Decides what `a` becomes. `stale` says whether a stale entry could be served for the
/// question (asked only of failures: it is a cache lookup).
pub fn decide(a: &Answer, rebind: Rebind, stale: impl FnOnce() -> bool) -> Decision {
    match a.kind {
        // RFC 8767: a stale answer beats a failure.
        Kind::Failure if stale() => return Decision::ServeStale,
        Kind::Positive => {
            if let Some(ip) = rebinding(a.msg, a.name, rebind) {
                return Decision::Refuse(ip);
            }
        }
        Kind::Failure | Kind::Negative => {}
    }
    let mut flags = a.verdict;
    if a.offline {
        flags |= flag::OFFLINE;
    }
    let lifetime = match a.kind {
        Kind::Positive => a.lifetime,
        Kind::Negative => {
            flags |= flag::NEGATIVE;
            a.lifetime
        }
        Kind::Failure => {
            flags |= flag::FAILURE;
            FAILURE_TTL
        }
    };
    Decision::Deliver(Store { flags, lifetime })
}

/// Whether a positive answer for `name` puts a private address on a public name:
/// Some(the address), or Some(None) if the message does not scan (never let by).
fn rebinding(msg: &[u8], name: &NameBuf, rebind: Rebind) -> Option<Option<IpAddr>> {
    if !rebind.protection || rebind.exempt.iter().any(|z| name.is_subdomain_of(z)) {
        return None;
    }
    // prepare() output always scans; if it ever did not, refuse rather than let it by.
    let Ok(scan) = scan_message(msg) else {
        return Some(None);
    };
    crate::sanitize::rebinding_address(msg, &scan, rebind.localhost).map(Some)
}

/// What a question given up (no server answered usefully in time, or the link went
/// down) becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// The failure answer kept from a server is delivered (and remembered briefly).
    LastFailure,
    /// Each waiter gets the stale answer if there is one, else SERVFAIL with the reason.
    StaleOrServfail,
}

/// `stale`: a stale entry could be served; `kept`: a failure answer was kept from an
/// earlier server. Stale data beats a failure.
#[inline]
pub fn give_up(stale: bool, kept: bool) -> GiveUp {
    if !stale && kept {
        GiveUp::LastFailure
    } else {
        GiveUp::StaleOrServfail
    }
}
