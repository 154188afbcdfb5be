//! Reverse-lookup names: `in-addr.arpa` / `ip6.arpa` parsing, building, and the private-range test.
//!
//! All functions take presentation-form names as bytes; one trailing dot is
//! tolerated and letters compare ASCII-case-insensitively (callers normally
//! pass lowercased names anyway).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const V4_SUFFIX: &[u8] = b".in-addr.arpa";
const V6_SUFFIX: &[u8] = b".ip6.arpa";

fn strip_dot(q: &[u8]) -> &[u8] {
    q.strip_suffix(b".").unwrap_or(q)
}

/// `q` without `suffix` (ASCII-case-insensitive), if it ends with it and something precedes it.
fn strip_suffix_ci<'a>(q: &'a [u8], suffix: &[u8]) -> Option<&'a [u8]> {
    let cut = q.len().checked_sub(suffix.len())?;
    let (head, tail) = (q.get(..cut)?, q.get(cut..)?);
    if cut > 0 && tail.eq_ignore_ascii_case(suffix) {
        Some(head)
    } else {
        None
    }
}

/// A decimal octet label, strictly: `0`..`255`, no leading zeros, no sign.
fn octet(l: &[u8]) -> Option<u8> {
    if l.is_empty() || l.len() > 3 || (l.len() > 1 && l.first() == Some(&b'0')) {
        return None;
    }
    let mut v: u16 = 0;
    for &b in l {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u16::from(b - b'0');
    }
    u8::try_from(v).ok()
}

/// A one-character hex label.
fn nibble(l: &[u8]) -> Option<u8> {
    match l {
        [c] => (*c as char).to_digit(16).and_then(|d| u8::try_from(d).ok()),
        _ => None,
    }
}

/// The address a PTR query name stands for: exactly four octet labels under
/// `in-addr.arpa` or exactly 32 nibble labels under `ip6.arpa`; anything else
/// (partial zones, extra labels, leading zeros, multi-character nibbles) is
/// `None`.
pub fn parse_ptr_name(qname_lower: &[u8]) -> Option<IpAddr> {
    let q = strip_dot(qname_lower);
    if let Some(pre) = strip_suffix_ci(q, V4_SUFFIX) {
        let mut o = [0u8; 4];
        let mut n = 0usize;
        for l in pre.split(|&b| b == b'.') {
            // Labels are least significant first.
            let slot = o.get_mut(3usize.checked_sub(n)?)?;
            *slot = octet(l)?;
            n += 1;
        }
        return (n == 4).then(|| IpAddr::V4(Ipv4Addr::from(o)));
    }
    if let Some(pre) = strip_suffix_ci(q, V6_SUFFIX) {
        let mut v: u128 = 0;
        let mut n = 0u32;
        for l in pre.split(|&b| b == b'.') {
            if n >= 32 {
                return None;
            }
            v |= u128::from(nibble(l)?) << (4 * n);
            n += 1;
        }
        return (n == 32).then(|| IpAddr::V6(Ipv6Addr::from(v)));
    }
    None
}

/// The reverse name of an address, without trailing dot
/// (`4.3.2.1.in-addr.arpa`, 32-nibble `….ip6.arpa`).
#[allow(dead_code)] // optional helper; the tests use it
pub fn reverse_name(ip: IpAddr) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(73);
    match ip {
        IpAddr::V4(a) => {
            let [a, b, c, d] = a.octets();
            let _ = write!(s, "{d}.{c}.{b}.{a}.in-addr.arpa");
        }
        IpAddr::V6(a) => {
            let v = u128::from(a);
            for i in 0..32 {
                let _ = write!(s, "{:x}.", (v >> (4 * i)) & 0xf);
            }
            s.push_str("ip6.arpa");
        }
    }
    s
}

/// True if `qname_lower` is at or below a reverse zone that must never be
/// forwarded when `bogus_priv` is on. Zones (RFC 6303 §4, RFC 6761 §6.1,
/// RFC 7793):
///
/// - IPv4: `10`, `16`–`31.172`, `168.192` (RFC 1918); `0`, `127`, `254.169`;
///   `64`–`127.100` (100.64/10, shared address space); `2.0.192`,
///   `100.51.198`, `113.0.203` (documentation); `255.255.255.255`.
/// - IPv6: `::` and `::1` (the full 32-nibble names); `c.f`/`d.f`
///   (fc00::/7, ULA, which includes fd00::/8); `8`–`b.e.f` (fe80::/10,
///   link-local); `8.b.d.0.1.0.0.2` (2001:db8::/32, documentation).
///
/// A name counts if it equals such a zone (`168.192.in-addr.arpa`) or lies
/// under it, whatever its further labels are (`x.10.in-addr.arpa` is still
/// inside the locally served zone). Names above the zones
/// (`192.in-addr.arpa`, `in-addr.arpa`, `f.ip6.arpa`) are not private.
pub fn is_private_reverse(qname_lower: &[u8]) -> bool {
    let q = strip_dot(qname_lower);
    if let Some(pre) = strip_suffix_ci(q, V4_SUFFIX) {
        // Octets from the most significant one, as far as they parse.
        let mut o: [Option<u8>; 4] = [None; 4];
        for (slot, l) in o.iter_mut().zip(pre.rsplit(|&b| b == b'.')) {
            *slot = octet(l);
            if slot.is_none() {
                break;
            }
        }
        return matches!(
            o,
            [Some(10 | 0 | 127), ..]
                | [Some(172), Some(16..=31), ..]
                | [Some(192), Some(168), ..]
                | [Some(169), Some(254), ..]
                | [Some(100), Some(64..=127), ..]
                | [Some(192), Some(0), Some(2), _]
                | [Some(198), Some(51), Some(100), _]
                | [Some(203), Some(0), Some(113), _]
                | [Some(255), Some(255), Some(255), Some(255)]
        );
    }
    if let Some(pre) = strip_suffix_ci(q, V6_SUFFIX) {
        // Nibbles from the most significant one, as far as they parse.
        let mut nib = [0u8; 32];
        let mut n = 0usize;
        for (slot, l) in nib.iter_mut().zip(pre.rsplit(|&b| b == b'.')) {
            match nibble(l) {
                Some(v) => *slot = v,
                None => break,
            }
            n += 1;
        }
        let p = nib.get(..n).unwrap_or(&[]);
        return match p {
            [0xf, 0xc | 0xd, ..] => true,
            [0xf, 0xe, 0x8..=0xb, ..] => true,
            [2, 0, 0, 1, 0, 0xd, 0xb, 8, ..] => true,
            _ => {
                n == 32
                    && nib.iter().take(31).all(|&x| x == 0)
                    && nib.get(31).is_some_and(|&x| x <= 1)
            }
        };
    }
    false
}
