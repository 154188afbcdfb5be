//! NSEC3 records (RFC 5155) and the denials they prove (§8), with opt-out, the
//! iteration limit of RFC 9276 and every hash charged to the query's budget (NSEC3
//! floods, CVE-2023-50868).

use super::canonical::name_end;
use super::names::{is_at_or_below, labels, name_eq, suffix, wildcard_of};
use super::nsec::{bitmap_ok, has_type, is_cut, T_CNAME, T_DS, T_NS, T_SOA};
use super::proof::{Denied, Insecure, Proof, Question};
use super::{Bogus, Budget};
use ring::digest;

/// Iterations above this make a zone insecure (RFC 9276 §3.2: validators may treat
/// them so; dnsmasq and unbound use 150).
pub const MAX_ITERATIONS: u16 = 150;
/// The opt-out flag (RFC 5155 §3.1.2.1).
const OPT_OUT: u8 = 1;

/// An NSEC3 RDATA.
#[derive(Debug, Clone, Copy)]
pub struct Nsec3View<'a> {
    pub hash_alg: u8,
    pub flags: u8,
    pub iterations: u16,
    pub salt: &'a [u8],
    pub next_hash: &'a [u8],
    pub bitmap: &'a [u8],
}

impl<'a> Nsec3View<'a> {
    pub fn parse(rdata: &'a [u8]) -> Option<Self> {
        let [hash_alg, flags, i1, i2, slen, rest @ ..] = rdata else {
            return None;
        };
        let salt = rest.get(..*slen as usize)?;
        let rest = &rest[*slen as usize..];
        let (hlen, rest) = rest.split_first()?;
        let next_hash = rest.get(..*hlen as usize)?;
        let bitmap = &rest[*hlen as usize..];
        (*hlen > 0 && bitmap_ok(bitmap)).then_some(Nsec3View {
            hash_alg: *hash_alg,
            flags: *flags,
            iterations: u16::from_be_bytes([*i1, *i2]),
            salt,
            next_hash,
            bitmap,
        })
    }

    fn opt_out(&self) -> bool {
        self.flags & OPT_OUT != 0
    }
}

/// The NSEC3 hash of `name` (RFC 5155 §5): SHA-1 over the lowercased name and the
/// salt, then `iterations` more times over the digest and the salt.
pub fn hash(name: &[u8], iterations: u16, salt: &[u8]) -> Option<[u8; 20]> {
    let end = name_end(name, 0).ok()?;
    let mut lower = name[..end].to_vec();
    lower.make_ascii_lowercase();
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(&lower);
    ctx.update(salt);
    let mut h = [0u8; 20];
    h.copy_from_slice(ctx.finish().as_ref());
    for _ in 0..iterations {
        let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
        ctx.update(&h);
        ctx.update(salt);
        h.copy_from_slice(ctx.finish().as_ref());
    }
    Some(h)
}

/// Decodes base32hex without padding (RFC 4648 §7), either case.
pub(crate) fn base32hex(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s {
        let v = match c.to_ascii_lowercase() {
            d @ b'0'..=b'9' => d - b'0',
            l @ b'a'..=b'v' => l - b'a' + 10,
            _ => return None,
        };
        acc = (acc << 5) | v as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // Leftover bits must be zero padding.
    (acc & ((1 << bits) - 1) == 0).then_some(out)
}

/// One usable NSEC3 record: the hash its owner name carries, and its RDATA.
struct Rec<'a> {
    owner_hash: Vec<u8>,
    v: Nsec3View<'a>,
}

/// The hashes of names checked so far (each costs the query's budget once).
struct Hasher<'a, 'b> {
    iterations: u16,
    salt: &'a [u8],
    budget: &'b mut Budget,
}

impl Hasher<'_, '_> {
    fn hash(&mut self, name: &[u8]) -> Result<[u8; 20], Bogus> {
        if !self.budget.take(super::cost::nsec3_hash(self.iterations)) {
            return Err(Bogus::WorkLimit);
        }
        hash(name, self.iterations, self.salt).ok_or(Bogus::Malformed)
    }
}

fn find_match<'a, 'b>(recs: &'b [Rec<'a>], h: &[u8]) -> Option<&'b Nsec3View<'a>> {
    recs.iter().find(|r| r.owner_hash == h).map(|r| &r.v)
}

/// The record whose hash interval holds `h` strictly (the last one wrapping around).
fn find_cover<'a, 'b>(recs: &'b [Rec<'a>], h: &[u8]) -> Option<&'b Nsec3View<'a>> {
    recs.iter()
        .find(|r| {
            let (o, n) = (r.owner_hash.as_slice(), r.v.next_hash);
            if o < n {
                o < h && h < n
            } else {
                h > o || h < n
            }
        })
        .map(|r| &r.v)
}

/// The closest encloser proof (RFC 5155 §8.3): the longest ancestor of `qname` (at or
/// below the zone) with a matching NSEC3, and the NSEC3 covering the next closer name.
/// Returns (closest encloser, the covering record).
fn closest_encloser<'a, 'b, 'q>(
    recs: &'b [Rec<'a>],
    qname: &'q [u8],
    zone: &[u8],
    hasher: &mut Hasher,
) -> Result<Option<(&'q [u8], &'b Nsec3View<'a>)>, Bogus> {
    let (nq, nz) = (labels(qname), labels(zone));
    for n in (nz..nq).rev() {
        let Some(ce) = suffix(qname, n) else { break };
        let Some(m) = find_match(recs, &hasher.hash(ce)?) else {
            continue;
        };
        // A cut or a DNAME at the encloser proves nothing below it.
        if is_cut(m.bitmap) {
            return Ok(None);
        }
        let next = suffix(qname, n + 1).ok_or(Bogus::Malformed)?;
        return Ok(find_cover(recs, &hasher.hash(next)?).map(|c| (ce, c)));
    }
    Ok(None)
}

/// Checks that `recs` (validated NSEC3 records of `zone`, (owner, RDATA)) prove `q`.
pub(crate) fn prove(
    q: &Question,
    zone: &[u8],
    recs: &[(&[u8], &[u8])],
    budget: &mut Budget,
) -> Proof {
    // Keep the records of the one supported hash with the parameters of the first;
    // unknown hash algorithms are skipped (RFC 5155 §8.1), and with none left the
    // answer cannot be checked: insecure.
    let mut usable = Vec::new();
    let mut unknown = None;
    let mut params: Option<(u16, &[u8])> = None;
    for (owner, rdata) in recs {
        let Some(v) = Nsec3View::parse(rdata) else {
            return Proof::Bogus(Bogus::Malformed);
        };
        if v.hash_alg != 1 {
            unknown.get_or_insert(v.hash_alg);
            continue;
        }
        let Some(&first) = owner.first() else {
            return Proof::Bogus(Bogus::Malformed);
        };
        // The owner is one base32hex label right below the zone apex.
        let Some(rest) = owner.get(1 + first as usize..) else {
            return Proof::Bogus(Bogus::Malformed);
        };
        if !name_eq(rest, zone) {
            continue;
        }
        let Some(h) = base32hex(&owner[1..1 + first as usize]) else {
            return Proof::Bogus(Bogus::Malformed);
        };
        if h.len() != 20 || v.next_hash.len() != 20 {
            return Proof::Bogus(Bogus::Malformed);
        }
        match params {
            None => params = Some((v.iterations, v.salt)),
            Some((i, s)) if i != v.iterations || s != v.salt => continue,
            Some(_) => {}
        }
        usable.push(Rec { owner_hash: h, v });
    }
    let Some((iterations, salt)) = params else {
        return match unknown {
            Some(a) => Proof::Insecure(Insecure::Nsec3HashAlgorithm(a)),
            None => Proof::Bogus(Bogus::NsecMissing),
        };
    };
    if iterations > MAX_ITERATIONS {
        return Proof::Insecure(Insecure::Nsec3Iterations(iterations));
    }
    let mut hasher = Hasher {
        iterations,
        salt,
        budget,
    };
    match prove_with(q, zone, &usable, &mut hasher) {
        Ok(p) => p,
        Err(b) => Proof::Bogus(b),
    }
}

fn no_type(m: &Nsec3View, qtype: u16) -> bool {
    !has_type(m.bitmap, qtype) && !has_type(m.bitmap, T_CNAME)
}

fn prove_with(q: &Question, zone: &[u8], recs: &[Rec], h: &mut Hasher) -> Result<Proof, Bogus> {
    let missing = Ok(Proof::Bogus(Bogus::NsecMissing));
    let proven = Ok(Proof::Denied(Denied::Proven));
    match *q {
        Question::NoData { qname, qtype } => {
            if !is_at_or_below(qname, zone) {
                return missing;
            }
            if let Some(m) = find_match(recs, &h.hash(qname)?) {
                if !no_type(m, qtype) {
                    return missing;
                }
                if qtype == T_DS {
                    // The parent's side only (§8.6).
                    if has_type(m.bitmap, T_SOA) {
                        return missing;
                    }
                    if has_type(m.bitmap, T_NS) {
                        return Ok(Proof::Denied(Denied::NoDsAtCut));
                    }
                    return proven;
                }
                return if is_cut(m.bitmap) { missing } else { proven };
            }
            let Some((ce, cover)) = closest_encloser(recs, qname, zone, h)? else {
                return missing;
            };
            // §8.6: a DS question under an opt-out span: an unsigned delegation may be there.
            if qtype == T_DS && cover.opt_out() && labels(qname) == labels(ce) + 1 {
                return Ok(Proof::Denied(Denied::OptOut));
            }
            // §8.7: wildcard NODATA.
            match find_match(recs, &h.hash(&wildcard_of(ce))?) {
                Some(w) if no_type(w, qtype) => proven,
                _ => missing,
            }
        }
        Question::NxDomain { qname } => {
            if !is_at_or_below(qname, zone) {
                return missing;
            }
            let Some((ce, cover)) = closest_encloser(recs, qname, zone, h)? else {
                return missing;
            };
            if find_cover(recs, &h.hash(&wildcard_of(ce))?).is_none() {
                return missing;
            }
            // An opt-out span may hide an unsigned delegation at the next closer name:
            // the denial holds but is not secure (§9.2).
            if cover.opt_out() {
                Ok(Proof::Denied(Denied::OptOut))
            } else {
                proven
            }
        }
        Question::Wildcard { qname, labels: l } => {
            // §8.8: the next closer name of the encloser the RRSIG labels name is covered.
            let n = l as usize;
            if n >= labels(qname) || !is_at_or_below(qname, zone) {
                return missing;
            }
            let next = suffix(qname, n + 1).ok_or(Bogus::Malformed)?;
            match find_cover(recs, &h.hash(next)?) {
                Some(c) if c.opt_out() => Ok(Proof::Denied(Denied::OptOut)),
                Some(_) => proven,
                None => missing,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5155_appendix_a_hashes() {
        // RFC 5155 Appendix A: salt aabbccdd, 12 iterations.
        let salt = [0xaa, 0xbb, 0xcc, 0xdd];
        for (name, want) in [
            (
                &b"\x07example\0"[..],
                &b"0p9mhaveqvm6t7vbl5lop2u3t2rp3tom"[..],
            ),
            (b"\x01a\x07example\0", b"35mthgpgcu1qg68fab165klnsnk3dpvl"),
            (b"\x03ns1\x07example\0", b"2t7b4g4vsa5smi47k61mv5bv1a22bojr"),
            (
                b"\x01*\x01w\x07EXAMPLE\0",
                b"r53bq7cc2uvmubfu5ocmm6pers9tk9en",
            ),
        ] {
            let h = hash(name, 12, &salt).unwrap();
            assert_eq!(base32hex(want).unwrap(), h.to_vec());
        }
        assert!(base32hex(b"w0").is_none());
        assert!(hash(b"\x07exam", 0, &[]).is_none());
    }
}
