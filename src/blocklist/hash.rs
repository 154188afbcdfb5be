//! Keyed 64-bit fingerprints of domain names, computed label by label from the right, so
//! one pass over a query name gives the fingerprint of each of its suffixes.
//!
//! The key comes from the kernel's CSPRNG once per process: fingerprints are never stored
//! on disk, and nobody outside can pick names whose fingerprints collide with a listed one.
//! With n listed domains, a name of k labels is wrongly taken as listed with probability
//! at most k·n/2^64 (about 3·10^-13 for k = 5 and n = 1,000,000).

use std::sync::OnceLock;

static KEY: OnceLock<[u64; 3]> = OnceLock::new();

fn key() -> &'static [u64; 3] {
    KEY.get_or_init(|| {
        // The daemon checks for randomness at start; without it, stop rather than use a
        // predictable key (as the query IDs do).
        let mut r = crate::rand::Rng::new().unwrap_or_else(|e| {
            log::error!("cannot read random numbers from the kernel ({e}); exiting");
            std::process::exit(1)
        });
        [0; 3].map(|_: u64| u64::from_le_bytes(r.bytes::<8>()))
    })
}

/// The high and low halves of the 128-bit product, folded (as in foldhash and wyhash).
#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Up to 8 bytes as a little-endian word (missing bytes are zero).
#[inline]
fn word(b: &[u8]) -> u64 {
    match b.get(..8) {
        Some(w) => u64::from_le_bytes(w.try_into().unwrap_or_default()),
        None => b
            .iter()
            .enumerate()
            .fold(0, |w, (i, &x)| w | u64::from(x) << (8 * i)),
    }
}

/// Mixes one label into the state: its length, then its bytes 16 at a time.
#[inline]
fn step(h: u64, label: &[u8], k: &[u64; 3]) -> u64 {
    let mut h = h ^ label.len() as u64;
    let mut rest = label;
    while let (Some(head), Some(tail)) = (rest.get(..16), rest.get(16..)) {
        if tail.is_empty() {
            break;
        }
        h = fold(
            word(head) ^ k[0] ^ h,
            word(head.get(8..).unwrap_or_default()) ^ k[1],
        );
        rest = tail;
    }
    let (a, b) = (word(rest), word(rest.get(8..).unwrap_or_default()));
    h = fold(a ^ k[0] ^ h, b ^ k[1]);
    fold(h ^ k[2], 0x9e37_79b9_7f4a_7c15)
}

/// Calls `f(fingerprint, start)` for each suffix of `name` (lowercase, dotted, no final
/// dot), shortest first: `com`, `example.com`, `www.example.com`; `start` is where the
/// suffix begins in `name`. Stops and returns true as soon as `f` does.
#[inline]
pub(crate) fn any_suffix(name: &[u8], mut f: impl FnMut(u64, usize) -> bool) -> bool {
    if name.is_empty() {
        return false;
    }
    let k = key();
    let mut h = k[0].rotate_left(29);
    let mut end = name.len();
    loop {
        let head = name.get(..end).unwrap_or_default();
        let start = head.iter().rposition(|&b| b == b'.').map_or(0, |p| p + 1);
        h = step(h, head.get(start..).unwrap_or_default(), k);
        if f(h, start) {
            return true;
        }
        if start == 0 {
            return false;
        }
        end = start - 1;
    }
}

/// The fingerprint of the whole of `name` (lowercase, dotted, no final dot).
pub(crate) fn fingerprint(name: &[u8]) -> u64 {
    let mut last = 0;
    any_suffix(name, |h, _| {
        last = h;
        false
    });
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_match_whole_names() {
        let mut seen = Vec::new();
        any_suffix(b"www.example.com", |h, start| {
            seen.push((h, start));
            false
        });
        assert_eq!(
            seen,
            vec![
                (fingerprint(b"com"), 12),
                (fingerprint(b"example.com"), 4),
                (fingerprint(b"www.example.com"), 0)
            ]
        );
    }

    #[test]
    fn label_boundaries_count() {
        // Same bytes, different labels: different fingerprints.
        assert_ne!(fingerprint(b"ab.c"), fingerprint(b"a.bc"));
        assert_ne!(fingerprint(b"abc"), fingerprint(b"a.bc"));
        // Labels longer than one 16-byte block and of every length up to it.
        let long = b"abcdefghijklmnopqrstuvwxyz0123456789.example";
        for cut in 1..36 {
            assert_ne!(fingerprint(&long[..cut]), fingerprint(&long[..cut + 1]));
        }
        assert!(!any_suffix(b"", |_, _| true));
    }
}
