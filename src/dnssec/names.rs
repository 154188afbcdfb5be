//! Name arithmetic the denial proofs need on uncompressed wire names: canonical order
//! (RFC 4034 §6.1), ancestors, and the wildcard name of an encloser.

use super::canonical::name_end;
use core::cmp::Ordering;

/// Start offsets of the labels of `name` (the root not included); None if malformed.
pub(crate) fn label_starts(name: &[u8]) -> Option<Vec<usize>> {
    let end = name_end(name, 0).ok()?;
    let mut out = Vec::new();
    let mut p = 0;
    while p + 1 < end {
        out.push(p);
        p += 1 + name[p] as usize;
    }
    Some(out)
}

fn label(name: &[u8], start: usize) -> &[u8] {
    let l = name[start] as usize;
    &name[start + 1..start + 1 + l]
}

/// Canonical DNS name order (RFC 4034 §6.1): labels compared from the root down,
/// each as lowercase octets, a missing label sorting first. Malformed names sort
/// before everything (the callers reject them before comparing).
pub(crate) fn canonical_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let (Some(la), Some(lb)) = (label_starts(a), label_starts(b)) else {
        return Ordering::Equal;
    };
    for (x, y) in la.iter().rev().zip(lb.iter().rev()) {
        let (x, y) = (label(a, *x), label(b, *y));
        let o = x
            .iter()
            .map(u8::to_ascii_lowercase)
            .cmp(y.iter().map(u8::to_ascii_lowercase));
        if o != Ordering::Equal {
            return o;
        }
    }
    la.len().cmp(&lb.len())
}

pub(crate) fn name_eq(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// `child` is `parent` or below it.
pub(crate) fn is_at_or_below(child: &[u8], parent: &[u8]) -> bool {
    let Some(lp) = label_starts(parent) else {
        return false;
    };
    suffix(child, lp.len()).is_some_and(|s| name_eq(s, parent))
}

/// The suffix of `name` with its last `n` labels (n ≤ its label count), as a slice.
pub(crate) fn suffix(name: &[u8], n: usize) -> Option<&[u8]> {
    let ls = label_starts(name)?;
    if n > ls.len() {
        return None;
    }
    if n == 0 {
        let end = name_end(name, 0).ok()?;
        return name.get(end - 1..end);
    }
    name.get(*ls.get(ls.len() - n)?..)
}

/// Labels of `name` (root not counted); 0 for a malformed name.
pub(crate) fn labels(name: &[u8]) -> usize {
    label_starts(name).map_or(0, |l| l.len())
}

/// `*.` + `name`.
pub(crate) fn wildcard_of(name: &[u8]) -> Vec<u8> {
    let mut w = vec![1, b'*'];
    w.extend_from_slice(name);
    w
}

/// The longest common ancestor of `a` and `b`.
pub(crate) fn common_ancestor<'a>(a: &'a [u8], b: &[u8]) -> &'a [u8] {
    let (na, nb) = (labels(a), labels(b));
    let mut n = na.min(nb);
    while n > 0 {
        if let (Some(x), Some(y)) = (suffix(a, n), suffix(b, n)) {
            if name_eq(x, y) {
                return x;
            }
        }
        n -= 1;
    }
    suffix(a, 0).unwrap_or(&[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4034_canonical_order() {
        // The example list of RFC 4034 §6.1, in order.
        let names: [&[u8]; 9] = [
            b"\x07example\0",
            b"\x01a\x07example\0",
            b"\x08yljkjljk\x01a\x07example\0",
            b"\x01Z\x01a\x07example\0",
            b"\x04zABC\x01a\x07EXAMPLE\0",
            b"\x01z\x07example\0",
            b"\x01\x01\x01z\x07example\0",
            b"\x01*\x01z\x07example\0",
            b"\x01\xc8\x01z\x07example\0",
        ];
        for w in names.windows(2) {
            assert_eq!(canonical_cmp(w[0], w[1]), Ordering::Less, "{w:?}");
            assert_eq!(canonical_cmp(w[1], w[0]), Ordering::Greater);
        }
        assert_eq!(
            canonical_cmp(b"\x01A\x07example\0", b"\x01a\x07EXAMPLE\0"),
            Ordering::Equal
        );
    }

    #[test]
    fn suffixes_and_ancestors() {
        let n = b"\x01a\x01b\x04test\0";
        assert_eq!(suffix(n, 3), Some(&n[..]));
        assert_eq!(suffix(n, 1), Some(&b"\x04test\0"[..]));
        assert_eq!(suffix(n, 0), Some(&b"\0"[..]));
        assert_eq!(suffix(n, 4), None);
        assert_eq!(
            common_ancestor(n, b"\x01c\x01B\x04test\0"),
            &b"\x01b\x04test\0"[..]
        );
        assert_eq!(common_ancestor(n, b"\x02zz\0"), &b"\0"[..]);
        assert!(is_at_or_below(n, b"\0"));
        assert!(is_at_or_below(n, b"\x01B\x04test\0"));
        assert!(!is_at_or_below(b"\x04test\0", n));
    }
}
