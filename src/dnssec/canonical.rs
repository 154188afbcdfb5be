//! Canonical form and order of an RRset for signing (RFC 4034 §6, RFC 6840 §5.1).
//!
//! RDATA is taken uncompressed (as RFC 3597 passes it). Names inside the RDATA of the
//! types RFC 4034 §6.2 lists are lowercased; NSEC's next name is not (RFC 6840 §5.1).
//! A6 is left as it is (obsolete, RFC 6563).

use crate::wire::{rtype, Error, Result};

/// The end of the uncompressed name at `pos` in `buf`; pointers are not allowed here.
pub(crate) fn name_end(buf: &[u8], mut pos: usize) -> Result<usize> {
    let start = pos;
    loop {
        let l = *buf.get(pos).ok_or(Error::Truncated)? as usize;
        if l > 63 {
            return Err(Error::BadLabel);
        }
        pos += 1 + l;
        if pos - start > crate::wire::MAX_NAME_LEN {
            return Err(Error::NameTooLong);
        }
        if l == 0 {
            return if pos <= buf.len() {
                Ok(pos)
            } else {
                Err(Error::Truncated)
            };
        }
    }
}

/// Lowercases the uncompressed name at `pos` in place; returns its end.
fn lower_name(buf: &mut [u8], pos: usize) -> Result<usize> {
    let end = name_end(buf, pos)?;
    let mut p = pos;
    while p < end {
        let l = buf[p] as usize;
        buf[p + 1..p + 1 + l].make_ascii_lowercase();
        p += 1 + l;
    }
    Ok(end)
}

/// Labels of a wire-form name, the root and a leading `*` label not counted
/// (the RRSIG labels field, RFC 4034 §3.1.3).
pub fn label_count(name: &[u8]) -> Result<u8> {
    let end = name_end(name, 0)?;
    let mut n = 0u8;
    let mut p = 0;
    while p + 1 < end {
        let l = name[p] as usize;
        if !(p == 0 && l == 1 && name.get(1) == Some(&b'*')) {
            n += 1;
        }
        p += 1 + l;
    }
    Ok(n)
}

/// Every label but the root, a leading `*` included.
pub(crate) fn label_count_all(name: &[u8]) -> Result<u8> {
    let end = name_end(name, 0)?;
    let mut n = 0u8;
    let mut p = 0;
    while p + 1 < end {
        n += 1;
        p += 1 + name[p] as usize;
    }
    Ok(n)
}

/// Skips `n` character strings from `pos`.
fn skip_strings(buf: &[u8], mut pos: usize, n: usize) -> Result<usize> {
    for _ in 0..n {
        pos += 1 + *buf.get(pos).ok_or(Error::Truncated)? as usize;
    }
    Ok(pos)
}

/// Lowercases the names embedded in `rdata` of type `rt` (RFC 4034 §6.2 item 3).
fn canonical_rdata(rt: u16, rdata: &mut [u8]) -> Result<()> {
    // (fixed bytes before the first name, number of consecutive names)
    let (skip, names) = match rt {
        rtype::NS | 3 | 4 | rtype::CNAME | 7 | 8 | 9 | rtype::PTR | rtype::DNAME => (0, 1),
        rtype::SOA | 14 | 17 => (0, 2),     // SOA, MINFO, RP
        rtype::MX | 18 | 21 | 36 => (2, 1), // MX, AFSDB, RT, KX
        26 => (2, 2),                       // PX
        rtype::SRV => (6, 1),
        24 | rtype::RRSIG => (18, 1), // SIG, RRSIG: the signer name
        30 => (0, 1),                 // NXT
        35 => {
            // NAPTR: order, preference, flags, services, regexp, then the replacement.
            let p = skip_strings(rdata, 4, 3)?;
            lower_name(rdata, p)?;
            return Ok(());
        }
        _ => return Ok(()),
    };
    let mut p = skip;
    for _ in 0..names {
        p = lower_name(rdata, p)?;
    }
    Ok(())
}

/// The data an RRSIG signs (RFC 4034 §3.1.8.1): the RRSIG RDATA without its signature
/// (`rrsig_head`), then every RR of the set in canonical form and order, duplicates
/// removed. `owner` is the name as it appeared (any case); when the RRSIG's labels
/// field is smaller than the owner's label count the owner is the wildcard
/// `*.<last labels>` (RFC 4035 §5.3.2).
pub fn signed_data(
    rrsig_head: &[u8],
    owner: &[u8],
    labels: u8,
    rt: u16,
    class: u16,
    original_ttl: u32,
    rdatas: &[&[u8]],
) -> Result<Vec<u8>> {
    let mut name = [0u8; crate::wire::MAX_NAME_LEN];
    let owner_len = name_end(owner, 0)?;
    let mut name_len = owner_len;
    name[..owner_len].copy_from_slice(&owner[..owner_len]);
    lower_name(&mut name[..owner_len], 0)?;
    let have = label_count(owner)?;
    if labels < have {
        // Drop leading labels (a leading "*" among them) until `labels` remain, then
        // put "*" in front.
        let all = have as usize + usize::from(have != label_count_all(owner)?);
        let mut p = 0;
        for _ in 0..(all - labels as usize) {
            p += 1 + name[p] as usize;
        }
        let rest = owner_len - p;
        name.copy_within(p..owner_len, 2);
        name[0] = 1;
        name[1] = b'*';
        name_len = rest + 2;
    }
    let name = &name[..name_len];

    let mut canon: Vec<Vec<u8>> = Vec::with_capacity(rdatas.len());
    for r in rdatas {
        if r.len() > u16::MAX as usize {
            return Err(Error::Truncated);
        }
        let mut c = r.to_vec();
        canonical_rdata(rt, &mut c)?;
        canon.push(c);
    }
    canon.sort_unstable();
    canon.dedup();

    let per_rr = name.len() + 10;
    let total = rrsig_head.len() + canon.iter().map(|c| per_rr + c.len()).sum::<usize>();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(rrsig_head);
    for c in &canon {
        out.extend_from_slice(name);
        out.extend_from_slice(&rt.to_be_bytes());
        out.extend_from_slice(&class.to_be_bytes());
        out.extend_from_slice(&original_ttl.to_be_bytes());
        out.extend_from_slice(&(c.len() as u16).to_be_bytes());
        out.extend_from_slice(c);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_skip_root_and_leading_star() {
        assert_eq!(label_count(b"\0"), Ok(0));
        assert_eq!(label_count(b"\x03www\x07example\x03com\0"), Ok(3));
        assert_eq!(label_count(b"\x01*\x07example\x03com\0"), Ok(2));
        assert_eq!(label_count(b"\x03www"), Err(Error::Truncated));
    }

    #[test]
    fn wildcard_owner_and_case_and_order() {
        let head = [0u8; 2];
        let a: &[u8] = &[192, 0, 2, 2];
        let b: &[u8] = &[192, 0, 2, 1];
        let d = signed_data(
            &head,
            b"\x01A\x01B\x03cOm\0",
            2,
            rtype::A,
            1,
            300,
            &[a, b, a],
        )
        .unwrap();
        let rr = |ip: &[u8]| {
            let mut v = b"\x01*\x01b\x03com\0".to_vec();
            v.extend_from_slice(&[0, 1, 0, 1, 0, 0, 1, 44, 0, 4]);
            v.extend_from_slice(ip);
            v
        };
        let mut want = head.to_vec();
        want.extend(rr(b));
        want.extend(rr(a));
        assert_eq!(d, want);
        // A wildcard owner synthesised from a shorter wildcard keeps one "*".
        let d = signed_data(&head, b"\x01*\x01b\x03com\0", 1, rtype::A, 1, 300, &[a]).unwrap();
        assert!(d.starts_with(b"\0\0\x01*\x03com\0"), "{d:?}");
    }

    #[test]
    fn names_in_rdata_lowercased_except_nsec() {
        let mx: &[u8] = b"\x00\x0a\x02MX\x01X\0";
        let d = signed_data(&[], b"\x01x\0", 1, rtype::MX, 1, 0, &[mx]).unwrap();
        assert!(d.ends_with(b"\x00\x0a\x02mx\x01x\0"));
        let nsec: &[u8] = b"\x01B\x01X\0\x00\x01\x40";
        let d = signed_data(&[], b"\x01a\x01x\0", 2, rtype::NSEC, 1, 0, &[nsec]).unwrap();
        assert!(d.ends_with(nsec));
    }

    #[test]
    fn malformed_rdata_is_an_error() {
        let bad: &[u8] = b"\x00\x0a\x05mx";
        assert!(signed_data(&[], b"\x01x\0", 1, rtype::MX, 1, 0, &[bad]).is_err());
    }
}
