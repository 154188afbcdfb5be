//! What a denial of existence claims and what its check found: the types shared by
//! the NSEC and NSEC3 proofs (`nsec.rs`, `nsec3.rs`) and their caller (`denial.rs`).

use super::Bogus;

/// The claim to prove.
#[derive(Debug, Clone, Copy)]
pub enum Question<'a> {
    /// NOERROR without the type (also DS absence at a delegation: `qtype` 43).
    NoData { qname: &'a [u8], qtype: u16 },
    /// The name does not exist, nor a wildcard that could match it.
    NxDomain { qname: &'a [u8] },
    /// A positive answer synthesised from a wildcard whose RRSIG has `labels` labels:
    /// no closer name may exist (RFC 4035 §5.3.4).
    Wildcard { qname: &'a [u8], labels: u8 },
}

/// A denial that holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Proven by signed records.
    Proven,
    /// DS absence proven at a delegation (NS present): the child zone is unsigned.
    NoDsAtCut,
    /// Inside an NSEC3 opt-out span: an unsigned delegation may be there, so what
    /// lies below is insecure (RFC 5155 §6).
    OptOut,
}

/// Why a denial cannot be checked and the answer is insecure rather than bogus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insecure {
    /// NSEC3 iterations above [`super::nsec3::MAX_ITERATIONS`] (RFC 9276).
    Nsec3Iterations(u16),
    /// Only NSEC3 hash algorithms dproxy does not know (RFC 5155 §8.1).
    Nsec3HashAlgorithm(u8),
}

impl Insecure {
    /// The Extended DNS Error that fits: 27 Unsupported NSEC3 Iterations Value
    /// (RFC 9276 §3.2); 6 DNSSEC Bogus would be wrong, so 0 Other for the hash.
    pub fn ede(self) -> u16 {
        match self {
            Insecure::Nsec3Iterations(_) => 27,
            Insecure::Nsec3HashAlgorithm(_) => 0,
        }
    }
}

/// The outcome of a denial check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    Denied(Denied),
    Insecure(Insecure),
    Bogus(Bogus),
}
