//! DNSSEC crypto core (RFC 4033-4035): RRSIG verification over canonical RRsets, key
//! tags, DNSKEY/DS matching, and the NSEC/NSEC3 denial proofs ([`prove_denial`]). A
//! leaf: no I/O and no clock; the caller passes the time and a work budget, and gets
//! back a [`Verdict`] or a [`Proof`] that names the reason.
//!
//! [`walk`] builds the chain of trust on top of it: a sans-IO state machine that
//! reads a response ([`response`]), asks for the DS and DNSKEY sub-queries it needs
//! and gives the verdict on the whole answer. Fetching those sub-queries and caching
//! their results across queries is the caller's part.

mod algo;
pub mod anchors;
mod canonical;
pub mod cost;
pub mod denial;
mod keys;
mod names;
mod nsec;
pub mod nsec3;
pub mod options;
mod proof;
pub mod response;
#[cfg(test)]
mod rfc_vectors;
mod rrsig;
pub mod walk;

pub use algo::{support, Support};
pub use canonical::{label_count, signed_data};
pub use denial::{prove as prove_denial, Denied, Insecure, Proof, Question};
pub use keys::{ds_digest, key_tag, match_ds, DnskeyView, DsView};
pub use rrsig::{verify_dnskey_rrset, verify_rrset, Rrset, RrsigView, DNSKEY};

/// Why an RRset is bogus. Each maps to one Extended DNS Error (RFC 8914) by [`Bogus::ede`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bogus {
    /// A signature was checked with a matching key and did not verify.
    BadSignature,
    /// Every usable RRSIG has expired.
    SignatureExpired,
    /// Every usable RRSIG has an inception in the future.
    SignatureNotYetValid,
    /// No DNSKEY matches the signer, algorithm and key tag of any RRSIG, or no DNSKEY
    /// matches the DS set.
    DnskeyMissing,
    /// The RRset has no RRSIG that covers it.
    RrsigsMissing,
    /// An RRSIG, DNSKEY or DS record cannot be read, or an RRSIG contradicts its RRset
    /// (labels field too large, owner outside the signer's zone, expiry before inception).
    Malformed,
    /// The work cap was reached before any signature verified (KeyTrap, CVE-2023-50387).
    WorkLimit,
    /// A negative or wildcard answer without the NSEC/NSEC3 records that prove it.
    NsecMissing,
}

impl Bogus {
    /// The Extended DNS Error info code a SERVFAIL for this reason carries.
    pub fn ede(self) -> u16 {
        match self {
            Bogus::BadSignature | Bogus::Malformed | Bogus::WorkLimit => 6,
            Bogus::SignatureExpired => 7,
            Bogus::SignatureNotYetValid => 8,
            Bogus::DnskeyMissing => 9,
            Bogus::RrsigsMissing => 10,
            Bogus::NsecMissing => 12,
        }
    }
}

/// The result of checking one RRset (or a DNSKEY RRset against its DS set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A signature verified. `ttl` is the longest the RRset may be kept (RFC 4035
    /// §5.3.3: the original TTL, the RRSIG's TTL and the time to expiry, whichever is
    /// least); `wildcard` says the RRset was synthesised from a wildcard, which the
    /// caller must still prove with NSEC/NSEC3 (RFC 4035 §5.3.4); `sha1` says the only
    /// verified signature used RSASHA1 (5 or 7), which RFC 9905 treats as insecure
    /// unless the operator opts in.
    Secure {
        ttl: u32,
        wildcard: bool,
        sha1: bool,
    },
    /// Only algorithms dproxy does not implement (12, 16, unknown): insecure per RFC 4035
    /// §5.2 (EDE 1, Unsupported DNSKEY Algorithm).
    UnsupportedAlgorithm(u8),
    /// Only DS digest types dproxy does not implement (EDE 2, Unsupported DS Digest Type).
    UnsupportedDigest(u8),
    /// Bogus: answer SERVFAIL with [`Bogus::ede`].
    Bogus(Bogus),
}

impl Verdict {
    /// The Extended DNS Error info code that fits, if the verdict is not secure.
    pub fn ede(self) -> Option<u16> {
        match self {
            Verdict::Secure { .. } => None,
            Verdict::UnsupportedAlgorithm(_) => Some(1),
            Verdict::UnsupportedDigest(_) => Some(2),
            Verdict::Bogus(b) => Some(b.ede()),
        }
    }
}

/// The time the checks use, in seconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub now: u64,
    /// False until the clock is known good (NTP): then only expiry is checked, so a
    /// router that booted in 1970 or at its build date can still validate.
    pub check_inception: bool,
}

/// Failed signature checks allowed per RRset (as dnsmasq 2.90: 20 failures).
pub const MAX_FAILURES_PER_RRSET: u32 = 20;
/// Signature verifications, DS digests and NSEC3 hashes allowed per client query
/// (dnsmasq 2.90: 200).
pub const MAX_CRYPTO_PER_QUERY: u32 = 200;

/// The work left for one client query, counted twice: operations (at most
/// [`MAX_CRYPTO_PER_QUERY`], as dnsmasq) and their weighted cost (at most
/// [`cost::PER_QUERY`]), since one P-384 verification costs as much as a hundred
/// RSA-2048 ones. So a zone with colliding key tags, piles of RRSIGs (KeyTrap) or
/// NSEC3 hash floods takes a bounded amount of CPU however it is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Operations left.
    pub left: u32,
    /// Operations done so far (for stats and tests).
    pub spent: u32,
    /// Cost units left.
    pub cost_left: u32,
    /// Cost units spent so far.
    pub cost: u32,
}

impl Budget {
    /// `ops` operations, the cost cap of a query.
    pub fn new(ops: u32) -> Self {
        Budget::with_cost(ops, cost::PER_QUERY)
    }

    pub fn with_cost(ops: u32, cost: u32) -> Self {
        Budget {
            left: ops,
            spent: 0,
            cost_left: cost,
            cost: 0,
        }
    }

    /// The budget of one client query.
    pub fn per_query() -> Self {
        Budget::new(MAX_CRYPTO_PER_QUERY)
    }

    /// Takes one operation of `cost` units; false (and nothing taken) when either
    /// cap would be passed.
    pub fn take(&mut self, cost: u32) -> bool {
        if self.left == 0 || self.cost_left < cost {
            return false;
        }
        self.left -= 1;
        self.spent += 1;
        self.cost_left -= cost;
        self.cost += cost;
        true
    }
}
