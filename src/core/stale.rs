//! Serve-stale (RFC 8767) and prefetch: when an expired entry may still be served (and
//! refreshed after link up), and when a hit should refresh its entry ahead of expiry
//! (the core: the cache clock is an input).

use crate::wire::NameBuf;

/// How long an entry expiring at `expires` has been expired at `now`, if it may still be
/// served stale: not a remembered failure, and expired for at most `stale_max` seconds
/// (0: never served stale).
#[inline]
pub fn stale_age(expires: u32, failure: bool, now: u32, stale_max: u32) -> Option<u32> {
    if stale_max == 0 || failure || expires > now {
        return None;
    }
    let age = now - expires;
    (age <= stale_max).then_some(age)
}

/// Is the name `name_wire` (wire form) in or under one of the `stale_exclude` zones?
/// A name that does not parse is excluded: never served stale on a guess.
pub fn excluded(name_wire: &[u8], zones: &[NameBuf]) -> bool {
    if zones.is_empty() {
        return false;
    }
    match NameBuf::from_wire(name_wire) {
        Ok(n) => zones.iter().any(|z| n.is_subdomain_of(z)),
        Err(_) => true,
    }
}

/// Whether a hit should refresh its entry in the background: asked at least twice (the
/// miss that filled it, and a hit since) and under 10 % of its lifetime left.
#[inline]
pub fn wants_prefetch(
    enabled: bool,
    failure: bool,
    hits: u16,
    remaining: u32,
    lifetime: u32,
) -> bool {
    enabled && !failure && hits >= 1 && u64::from(remaining) * 10 < u64::from(lifetime)
}
