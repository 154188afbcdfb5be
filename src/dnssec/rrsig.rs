//! RRSIG records and the check of one RRset against the DNSKEYs of its zone
//! (RFC 4034 §3, RFC 4035 §5.3).

use super::algo::{self, support, Support};
use super::canonical::{label_count, label_count_all, name_end, signed_data};
use super::keys::{match_ds, DnskeyView};
use super::{Bogus, Budget, Clock, Verdict, MAX_FAILURES_PER_RRSET};
use crate::wire::{Error, Result};

/// The DNSKEY type (RFC 4034 §2).
pub const DNSKEY: u16 = 48;

/// Fixed part of the RRSIG RDATA before the signer name.
const FIXED: usize = 18;

/// An RRSIG RDATA, read (uncompressed: the signer name must not be compressed,
/// RFC 4034 §3.1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RrsigView<'a> {
    pub type_covered: u16,
    pub algorithm: u8,
    pub labels: u8,
    pub original_ttl: u32,
    pub expiration: u32,
    pub inception: u32,
    pub key_tag: u16,
    pub signer: &'a [u8],
    pub signature: &'a [u8],
    /// The RDATA without the signature: the first part of the signed data.
    pub head: &'a [u8],
}

impl<'a> RrsigView<'a> {
    pub fn parse(rdata: &'a [u8]) -> Result<Self> {
        if rdata.len() < FIXED + 1 {
            return Err(Error::Truncated);
        }
        let end = name_end(rdata, FIXED)?;
        let (head, signature) = rdata.split_at(end);
        if signature.is_empty() {
            return Err(Error::Truncated);
        }
        let u32_at =
            |p: usize| u32::from_be_bytes([rdata[p], rdata[p + 1], rdata[p + 2], rdata[p + 3]]);
        Ok(RrsigView {
            type_covered: u16::from_be_bytes([rdata[0], rdata[1]]),
            algorithm: rdata[2],
            labels: rdata[3],
            original_ttl: u32_at(4),
            expiration: u32_at(8),
            inception: u32_at(12),
            key_tag: u16::from_be_bytes([rdata[16], rdata[17]]),
            signer: &rdata[FIXED..end],
            signature,
            head,
        })
    }
}

/// One RRset as the caller collected it: `rdatas` uncompressed, `ttl` as received.
#[derive(Debug, Clone, Copy)]
pub struct Rrset<'a> {
    pub owner: &'a [u8],
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    pub rdatas: &'a [&'a [u8]],
}

/// `a` is after `b` in serial-number arithmetic (RFC 1982, as RFC 4034 §3.1.5 asks).
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// `child` is `parent` or below it (both uncompressed wire names).
fn is_at_or_below(child: &[u8], parent: &[u8]) -> bool {
    let (Ok(nc), Ok(np)) = (label_count_all(child), label_count_all(parent)) else {
        return false;
    };
    if nc < np {
        return false;
    }
    let (nc, np) = (nc as usize, np as usize);
    let mut p = 0;
    for _ in 0..(nc - np) {
        p += 1 + child[p] as usize;
    }
    eq_ignore_case(&child[p..], parent)
}

/// Keeps the most telling reason seen so far: a signature that failed with its own
/// key says more than a date, a date more than a missing key, that more than junk.
fn note(best: &mut Option<Bogus>, b: Bogus) {
    let rank = |b: Bogus| match b {
        Bogus::BadSignature => 4,
        Bogus::SignatureExpired | Bogus::SignatureNotYetValid => 3,
        Bogus::DnskeyMissing => 2,
        _ => 1,
    };
    if best.map_or(true, |o| rank(b) > rank(o)) {
        *best = Some(b);
    }
}

/// Checks `set` against its RRSIGs (`rrsigs`: RRSIG RDATAs, any type covered; the
/// others are ignored) with the DNSKEY RDATAs `dnskeys` of `zone`. Stops at the first
/// signature that verifies. At most [`MAX_FAILURES_PER_RRSET`] signature checks may
/// fail, and each check spends a unit of `budget`; past either the RRset is bogus
/// ([`Bogus::WorkLimit`]).
///
/// [`Verdict::UnsupportedAlgorithm`] means no RRSIG of a supported algorithm was
/// there: the RRset is insecure only if the zone's DS set has no supported algorithm
/// either (RFC 4035 §5.2), which the chain walk decides.
pub fn verify_rrset(
    set: &Rrset,
    rrsigs: &[&[u8]],
    zone: &[u8],
    dnskeys: &[&[u8]],
    clock: Clock,
    budget: &mut Budget,
) -> Verdict {
    let Ok(owner_labels) = label_count(set.owner) else {
        return Verdict::Bogus(Bogus::Malformed);
    };
    let now = clock.now as u32;
    let mut best: Option<Bogus> = None;
    let mut unsupported: Option<u8> = None;
    let mut failures = 0;
    let mut covering = false;
    for rd in rrsigs {
        let Ok(sig) = RrsigView::parse(rd) else {
            note(&mut best, Bogus::Malformed);
            continue;
        };
        if sig.type_covered != set.rtype {
            continue;
        }
        covering = true;
        if !eq_ignore_case(sig.signer, zone) {
            note(&mut best, Bogus::DnskeyMissing);
            continue;
        }
        if sig.labels > owner_labels
            || !is_at_or_below(set.owner, sig.signer)
            || after(sig.inception, sig.expiration)
        {
            note(&mut best, Bogus::Malformed);
            continue;
        }
        let sha1 = match support(sig.algorithm) {
            Support::Yes => false,
            Support::Sha1 => true,
            Support::No => {
                unsupported.get_or_insert(sig.algorithm);
                continue;
            }
        };
        if after(now, sig.expiration) {
            note(&mut best, Bogus::SignatureExpired);
            continue;
        }
        if clock.check_inception && after(sig.inception, now) {
            note(&mut best, Bogus::SignatureNotYetValid);
            continue;
        }
        let mut data: Option<Vec<u8>> = None;
        let mut keyed = false;
        for k in dnskeys {
            let Ok(key) = DnskeyView::parse(k) else {
                continue;
            };
            if key.algorithm != sig.algorithm || !key.is_zone_key() || key.tag() != sig.key_tag {
                continue;
            }
            keyed = true;
            if data.is_none() {
                match signed_data(
                    sig.head,
                    set.owner,
                    sig.labels,
                    set.rtype,
                    set.class,
                    sig.original_ttl,
                    set.rdatas,
                ) {
                    Ok(d) => data = Some(d),
                    Err(_) => return Verdict::Bogus(Bogus::Malformed),
                }
            }
            let Some(d) = data.as_deref() else { break };
            if failures >= MAX_FAILURES_PER_RRSET
                || !budget.take(super::cost::verify(sig.algorithm, key.key.len()))
            {
                return Verdict::Bogus(Bogus::WorkLimit);
            }
            if algo::verify(sig.algorithm, key.key, d, sig.signature) {
                let left = sig.expiration.wrapping_sub(now);
                return Verdict::Secure {
                    ttl: set.ttl.min(sig.original_ttl).min(left),
                    wildcard: sig.labels < owner_labels,
                    sha1,
                };
            }
            failures += 1;
            note(&mut best, Bogus::BadSignature);
        }
        if !keyed {
            note(&mut best, Bogus::DnskeyMissing);
        }
    }
    match (best, unsupported) {
        (Some(b), _) => Verdict::Bogus(b),
        (None, Some(alg)) => Verdict::UnsupportedAlgorithm(alg),
        (None, None) if !covering => Verdict::Bogus(Bogus::RrsigsMissing),
        (None, None) => Verdict::Bogus(Bogus::DnskeyMissing),
    }
}

/// Checks a zone's DNSKEY RRset (`set`, owner = the zone) against the DS set its parent
/// holds for it: some DNSKEY must match a DS and sign the DNSKEY RRset (RFC 4035 §5.2).
/// On [`Verdict::Secure`] every zone key of the set may be used for [`verify_rrset`].
pub fn verify_dnskey_rrset(
    set: &Rrset,
    rrsigs: &[&[u8]],
    ds_set: &[&[u8]],
    clock: Clock,
    budget: &mut Budget,
) -> Verdict {
    if set.rtype != DNSKEY {
        return Verdict::Bogus(Bogus::Malformed);
    }
    let trusted: Vec<&[u8]> = match match_ds(set.owner, ds_set, set.rdatas, budget) {
        Ok(idx) => idx
            .iter()
            .filter_map(|i| set.rdatas.get(*i).copied())
            .collect(),
        Err(v) => return v,
    };
    verify_rrset(set, rrsigs, set.owner, &trusted, clock, budget)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_arithmetic_wraps() {
        assert!(after(1, 0));
        assert!(!after(0, 1));
        assert!(after(5, u32::MAX - 5));
        assert!(!after(u32::MAX - 5, 5));
    }

    #[test]
    fn subdomain_ignores_case() {
        assert!(is_at_or_below(
            b"\x03www\x02EX\x04test\0",
            b"\x02ex\x04TEST\0"
        ));
        assert!(is_at_or_below(b"\x02ex\x04test\0", b"\x02ex\x04test\0"));
        assert!(!is_at_or_below(
            b"\x03www\x02ey\x04test\0",
            b"\x02ex\x04test\0"
        ));
        assert!(!is_at_or_below(b"\x04test\0", b"\x02ex\x04test\0"));
    }

    #[test]
    fn short_rrsig_is_an_error() {
        assert!(RrsigView::parse(&[0; 18]).is_err());
        let mut r = vec![0; 18];
        r.push(0);
        assert!(RrsigView::parse(&r).is_err(), "no signature");
        r.push(7);
        assert_eq!(RrsigView::parse(&r).map(|v| v.signature.len()), Ok(1));
    }
}
