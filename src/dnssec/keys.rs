//! DNSKEY and DS records: key tags (RFC 4034 Appendix B) and DS digests (RFC 4034 §5.1.4,
//! RFC 4509 SHA-256, RFC 6605 SHA-384).

use super::algo::{support, Support};
use super::canonical::name_end;
use super::{Bogus, Budget, Verdict};
use crate::wire::{Error, Result};
use ring::digest;

/// The DNSKEY flag that marks a zone key (RFC 4034 §2.1.1); RRSIGs are only checked
/// against keys that carry it.
pub const FLAG_ZONE: u16 = 0x0100;

/// A DNSKEY RDATA, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnskeyView<'a> {
    pub flags: u16,
    pub protocol: u8,
    pub algorithm: u8,
    pub key: &'a [u8],
    /// The whole RDATA (what the key tag and the DS digest cover).
    pub rdata: &'a [u8],
}

impl<'a> DnskeyView<'a> {
    pub fn parse(rdata: &'a [u8]) -> Result<Self> {
        match rdata {
            [f1, f2, protocol, algorithm, key @ ..] if !key.is_empty() => Ok(DnskeyView {
                flags: u16::from_be_bytes([*f1, *f2]),
                protocol: *protocol,
                algorithm: *algorithm,
                key,
                rdata,
            }),
            _ => Err(Error::Truncated),
        }
    }

    /// A key that may sign zone data: zone flag set and protocol 3 (RFC 4034 §2.1.2).
    pub fn is_zone_key(&self) -> bool {
        self.flags & FLAG_ZONE != 0 && self.protocol == 3
    }

    pub fn tag(&self) -> u16 {
        key_tag(self.rdata)
    }
}

/// A DS RDATA, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DsView<'a> {
    pub key_tag: u16,
    pub algorithm: u8,
    pub digest_type: u8,
    pub digest: &'a [u8],
}

impl<'a> DsView<'a> {
    pub fn parse(rdata: &'a [u8]) -> Result<Self> {
        match rdata {
            [t1, t2, algorithm, digest_type, digest @ ..] if !digest.is_empty() => Ok(DsView {
                key_tag: u16::from_be_bytes([*t1, *t2]),
                algorithm: *algorithm,
                digest_type: *digest_type,
                digest,
            }),
            _ => Err(Error::Truncated),
        }
    }
}

/// The key tag of a DNSKEY RDATA (RFC 4034 Appendix B; algorithm 1 is not supported
/// and gets the same sum as the rest, which only means it never matches).
pub fn key_tag(rdata: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    for (i, b) in rdata.iter().enumerate() {
        acc += if i & 1 == 0 {
            (*b as u32) << 8
        } else {
            *b as u32
        };
    }
    acc += (acc >> 16) & 0xffff;
    (acc & 0xffff) as u16
}

fn digest_alg(t: u8) -> Option<&'static digest::Algorithm> {
    match t {
        1 => Some(&digest::SHA1_FOR_LEGACY_USE_ONLY),
        2 => Some(&digest::SHA256),
        4 => Some(&digest::SHA384),
        _ => None,
    }
}

/// The DS digest of type `digest_type` over `owner` (lowercased) and the DNSKEY RDATA;
/// None for a digest type dproxy does not implement (3 GOST, unassigned).
pub fn ds_digest(
    digest_type: u8,
    owner: &[u8],
    dnskey_rdata: &[u8],
) -> Option<Result<digest::Digest>> {
    let alg = digest_alg(digest_type)?;
    let end = match name_end(owner, 0) {
        Ok(e) => e,
        Err(e) => return Some(Err(e)),
    };
    let mut ctx = digest::Context::new(alg);
    let mut lower = [0u8; crate::wire::MAX_NAME_LEN];
    lower[..end].copy_from_slice(&owner[..end]);
    lower[..end].make_ascii_lowercase();
    // Lowercasing the length bytes too is harmless: they are all below 64.
    ctx.update(&lower[..end]);
    ctx.update(dnskey_rdata);
    Some(Ok(ctx.finish()))
}

/// Which DNSKEYs of `owner` the DS set vouches for (RFC 4035 §5.2). Returns the indexes
/// of the matching keys (never empty), or why none matches. SHA-1 DS records are used
/// only when the set has no DS of a stronger supported digest (RFC 4509 §3). DS records
/// of unsupported algorithms or digests are skipped; if nothing else is left the zone
/// is insecure ([`Verdict::UnsupportedAlgorithm`] / [`Verdict::UnsupportedDigest`]).
/// Each digest computed spends one unit of `budget`.
pub fn match_ds(
    owner: &[u8],
    ds_set: &[&[u8]],
    dnskeys: &[&[u8]],
    budget: &mut Budget,
) -> core::result::Result<Vec<usize>, Verdict> {
    let mut parsed = Vec::with_capacity(ds_set.len());
    for d in ds_set {
        parsed.push(DsView::parse(d).map_err(|_| Verdict::Bogus(Bogus::Malformed))?);
    }
    let usable =
        |d: &DsView| support(d.algorithm) != Support::No && digest_alg(d.digest_type).is_some();
    let strong = parsed.iter().any(|d| usable(d) && d.digest_type != 1);
    let mut unsupported: Option<Verdict> = None;
    let mut matched = Vec::new();
    let mut any_usable = false;
    for ds in &parsed {
        if support(ds.algorithm) == Support::No {
            unsupported.get_or_insert(Verdict::UnsupportedAlgorithm(ds.algorithm));
            continue;
        }
        if digest_alg(ds.digest_type).is_none() {
            unsupported.get_or_insert(Verdict::UnsupportedDigest(ds.digest_type));
            continue;
        }
        if strong && ds.digest_type == 1 {
            continue;
        }
        any_usable = true;
        for (i, k) in dnskeys.iter().enumerate() {
            let Ok(key) = DnskeyView::parse(k) else {
                continue;
            };
            if key.algorithm != ds.algorithm || key.tag() != ds.key_tag || !key.is_zone_key() {
                continue;
            }
            if !budget.take(super::cost::DIGEST) {
                return Err(Verdict::Bogus(Bogus::WorkLimit));
            }
            let Some(Ok(d)) = ds_digest(ds.digest_type, owner, k) else {
                return Err(Verdict::Bogus(Bogus::Malformed));
            };
            if d.as_ref() == ds.digest && !matched.contains(&i) {
                matched.push(i);
            }
        }
    }
    if !matched.is_empty() {
        return Ok(matched);
    }
    if !any_usable {
        if let Some(v) = unsupported {
            return Err(v);
        }
    }
    Err(Verdict::Bogus(Bogus::DnskeyMissing))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4034 §5.4: the DNSKEY of dskey.example.com and its DS (tag 60485, SHA-1).
    const DSKEY: &str =
        "0100030501039e8a247418e318903b215a848acfd5f37f026bd4062db26c774c690968d5d56df8bf\
        da91e6f36d9a279888f41333357c5e6029990d10fdf5663062a512763326980a615ddbf17a05ddfc\
        ce7e5fb3abcca05a31b0957452d4521e83870789063115bf97f6c308ccf57cdc9ce7fe10f6ed1bd0\
        cc0660038c50dcdb0feb963c2f17";

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn rfc4034_key_tag_and_sha1_ds() {
        let key = hex(DSKEY);
        assert_eq!(key_tag(&key), 60485);
        let owner = b"\x05DSKEY\x07example\x03com\0";
        let d = ds_digest(1, owner, &key).unwrap().unwrap();
        assert_eq!(
            d.as_ref(),
            &hex("2BB183AF5F22588179A53B0A98631FAD1A292118")[..]
        );
        let mut ds = vec![0xec, 0x45, 5, 1];
        ds.extend_from_slice(d.as_ref());
        let mut b = Budget::new(10);
        assert_eq!(match_ds(owner, &[&ds], &[&key], &mut b), Ok(vec![0]));
        assert_eq!(b.spent, 1);
    }

    #[test]
    fn unsupported_ds_only_is_insecure_and_bad_digest_is_bogus() {
        let key = hex(DSKEY);
        let owner = b"\x05dskey\x07example\x03com\0";
        let mut b = Budget::new(10);
        let gost: &[u8] = &[0xec, 0x45, 5, 3, 1, 2, 3];
        assert_eq!(
            match_ds(owner, &[gost], &[&key], &mut b),
            Err(Verdict::UnsupportedDigest(3))
        );
        let ed448: &[u8] = &[0xec, 0x45, 16, 2, 1, 2, 3];
        assert_eq!(
            match_ds(owner, &[ed448], &[&key], &mut b),
            Err(Verdict::UnsupportedAlgorithm(16))
        );
        let wrong: &[u8] = &[0xec, 0x45, 5, 2, 1, 2, 3];
        assert_eq!(
            match_ds(owner, &[wrong, gost], &[&key], &mut b),
            Err(Verdict::Bogus(Bogus::DnskeyMissing))
        );
        assert_eq!(
            match_ds(owner, &[&[1, 2]], &[&key], &mut b),
            Err(Verdict::Bogus(Bogus::Malformed))
        );
    }
}
