//! Authenticated denial of existence: what a negative or wildcard answer claims, and
//! the check of that claim against the NSEC or NSEC3 records of the response (RFC 4035
//! §5.4, RFC 5155 §8). The records must already carry verified signatures.

use super::{Bogus, Budget};

pub use super::proof::{Denied, Insecure, Proof, Question};

/// Checks `q` for the zone `zone` with the response's validated NSEC records `nsec`
/// and NSEC3 records `nsec3`, each (owner, RDATA). NSEC is used when present (a zone
/// signs with one or the other); NSEC3 hashes spend `budget`.
pub fn prove(
    q: &Question,
    zone: &[u8],
    nsec: &[(&[u8], &[u8])],
    nsec3: &[(&[u8], &[u8])],
    budget: &mut Budget,
) -> Proof {
    if !nsec.is_empty() {
        super::nsec::prove(q, nsec)
    } else if !nsec3.is_empty() {
        super::nsec3::prove(q, zone, nsec3, budget)
    } else {
        Proof::Bogus(Bogus::NsecMissing)
    }
}
