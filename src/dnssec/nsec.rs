//! NSEC records (RFC 4034 §4) and the denials they prove (RFC 4035 §5.4, RFC 6840 §4).
//! The records handed in must already be validated; this only checks that they say
//! what the answer claims.

use super::canonical::name_end;
use super::names::{
    canonical_cmp, common_ancestor, is_at_or_below, labels, name_eq, suffix, wildcard_of,
};
use super::proof::{Denied, Proof, Question};
use super::Bogus;
use core::cmp::Ordering;

pub(crate) const T_NS: u16 = 2;
pub(crate) const T_SOA: u16 = 6;
pub(crate) const T_CNAME: u16 = 5;
pub(crate) const T_DS: u16 = 43;
pub(crate) const T_DNAME: u16 = 39;

/// An NSEC RDATA: the next owner name and the type bitmap.
#[derive(Debug, Clone, Copy)]
pub struct NsecView<'a> {
    pub next: &'a [u8],
    pub bitmap: &'a [u8],
}

impl<'a> NsecView<'a> {
    pub fn parse(rdata: &'a [u8]) -> Option<Self> {
        let end = name_end(rdata, 0).ok()?;
        let bitmap = &rdata[end..];
        bitmap_ok(bitmap).then_some(NsecView {
            next: &rdata[..end],
            bitmap,
        })
    }
}

/// The type bitmap is well formed (RFC 4034 §4.1.2): windows of 1 to 32 octets.
pub(crate) fn bitmap_ok(mut b: &[u8]) -> bool {
    while !b.is_empty() {
        let [_, len, rest @ ..] = b else { return false };
        let len = *len as usize;
        if len == 0 || len > 32 || rest.len() < len {
            return false;
        }
        b = &rest[len..];
    }
    true
}

/// Whether the (well formed) bitmap lists `t`.
pub(crate) fn has_type(mut b: &[u8], t: u16) -> bool {
    let (win, bit) = ((t >> 8) as u8, (t & 0xff) as usize);
    while let [w, len, rest @ ..] = b {
        let len = (*len as usize).min(rest.len());
        if *w == win {
            return rest[..len]
                .get(bit / 8)
                .is_some_and(|o| o & (0x80 >> (bit % 8)) != 0);
        }
        b = &rest[len..];
    }
    false
}

/// A record proving nothing of a name below it: the parent's side of a zone cut (NS
/// without SOA) or a DNAME (RFC 6840 §4.1).
pub(crate) fn is_cut(bitmap: &[u8]) -> bool {
    (has_type(bitmap, T_NS) && !has_type(bitmap, T_SOA)) || has_type(bitmap, T_DNAME)
}

/// What the NSEC at `owner` says of `name`: it covers it (name strictly between owner
/// and next, the last NSEC wrapping to the apex) and may be used for it.
fn covers(owner: &[u8], n: &NsecView, name: &[u8]) -> bool {
    let after_owner = canonical_cmp(owner, name) == Ordering::Less;
    let before_next = canonical_cmp(name, n.next) == Ordering::Less;
    let wraps = canonical_cmp(n.next, owner) != Ordering::Greater;
    let inside = if wraps {
        after_owner || before_next
    } else {
        after_owner && before_next
    };
    inside && !(is_cut(n.bitmap) && is_at_or_below(name, owner) && !name_eq(name, owner))
}

/// The validated NSEC records of one response: (owner, RDATA).
fn parsed<'a>(recs: &[(&'a [u8], &'a [u8])]) -> Option<Vec<(&'a [u8], NsecView<'a>)>> {
    recs.iter()
        .map(|(o, r)| NsecView::parse(r).map(|v| (*o, v)))
        .collect()
}

fn matching<'a, 'b>(set: &'b [(&'a [u8], NsecView<'a>)], name: &[u8]) -> Option<&'b NsecView<'a>> {
    set.iter().find(|(o, _)| name_eq(o, name)).map(|(_, v)| v)
}

fn covering<'a, 'b>(
    set: &'b [(&'a [u8], NsecView<'a>)],
    name: &[u8],
) -> Option<(&'a [u8], &'b NsecView<'a>)> {
    set.iter()
        .find(|(o, v)| covers(o, v, name))
        .map(|(o, v)| (*o, v))
}

/// The closest encloser a covering NSEC implies for `qname`: the longer common
/// ancestor of qname with the NSEC's owner or its next name.
fn encloser<'a>(qname: &'a [u8], owner: &[u8], n: &NsecView) -> &'a [u8] {
    let a = common_ancestor(qname, owner);
    let b = common_ancestor(qname, n.next);
    if labels(a) >= labels(b) {
        a
    } else {
        b
    }
}

/// No data of `qtype` at a name whose NSEC is `n`: neither the type nor a CNAME, and
/// for DS the NSEC must be the parent's (no SOA); for other types not the parent's
/// side of a cut.
fn no_type(n: &NsecView, qtype: u16) -> bool {
    if has_type(n.bitmap, qtype) || has_type(n.bitmap, T_CNAME) {
        return false;
    }
    if qtype == T_DS {
        !has_type(n.bitmap, T_SOA)
    } else {
        !is_cut(n.bitmap)
    }
}

/// Checks that `recs` (validated NSEC records) prove `q`.
pub(crate) fn prove(q: &Question, recs: &[(&[u8], &[u8])]) -> Proof {
    let Some(set) = parsed(recs) else {
        return Proof::Bogus(Bogus::Malformed);
    };
    let missing = Proof::Bogus(Bogus::NsecMissing);
    match *q {
        Question::NoData { qname, qtype } => {
            if let Some(n) = matching(&set, qname) {
                if !no_type(n, qtype) {
                    return missing;
                }
                // A DS denial at a delegation without DS: the child is unsigned.
                if qtype == T_DS && has_type(n.bitmap, T_NS) {
                    return Proof::Denied(Denied::NoDsAtCut);
                }
                return Proof::Denied(Denied::Proven);
            }
            let Some((owner, c)) = covering(&set, qname) else {
                return missing;
            };
            // An empty non-terminal: the next name is below qname.
            if is_at_or_below(c.next, qname) && !name_eq(c.next, qname) {
                return Proof::Denied(Denied::Proven);
            }
            // Otherwise a wildcard NODATA: qname is covered, *.encloser has no qtype.
            let ce = encloser(qname, owner, c);
            match matching(&set, &wildcard_of(ce)) {
                Some(w) if no_type(w, qtype) => Proof::Denied(Denied::Proven),
                _ => missing,
            }
        }
        Question::NxDomain { qname } => {
            if matching(&set, qname).is_some() {
                return missing;
            }
            let Some((owner, c)) = covering(&set, qname) else {
                return missing;
            };
            if is_at_or_below(c.next, qname) {
                // qname is an empty non-terminal: it exists.
                return missing;
            }
            let ce = encloser(qname, owner, c);
            if covering(&set, &wildcard_of(ce)).is_some() {
                Proof::Denied(Denied::Proven)
            } else {
                missing
            }
        }
        Question::Wildcard { qname, labels: l } => {
            // The RRSIG labels say which wildcard matched; qname itself must not exist
            // and no name between it and the encloser either, which one NSEC covering
            // qname shows.
            if suffix(qname, l as usize).is_none() || matching(&set, qname).is_some() {
                return missing;
            }
            match covering(&set, qname) {
                Some(_) => Proof::Denied(Denied::Proven),
                None => missing,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_lookup() {
        // RFC 4034 §4.3: A MX RRSIG NSEC TYPE1234.
        let mut b = vec![0x00, 0x06, 0x40, 0x01, 0x00, 0x00, 0x00, 0x03, 0x04, 0x1b];
        b.extend([0; 26]);
        b.push(0x20);
        assert!(bitmap_ok(&b));
        for t in [1, 15, 46, 47, 1234] {
            assert!(has_type(&b, t), "{t}");
        }
        for t in [2, 5, 28, 43, 1235, 300] {
            assert!(!has_type(&b, t), "{t}");
        }
        assert!(!bitmap_ok(&[0, 0]));
        assert!(!bitmap_ok(&[0, 33]));
        assert!(!bitmap_ok(&[0, 2, 1]));
    }
}
