//! A set of 64-bit fingerprints: sorted, bucketed on the top bits, 6 bytes each.
//!
//! The index holds one 4-byte start per bucket (a power of two of them, 2 to 4
//! fingerprints per bucket on average); a fingerprint's top bits pick its bucket, so only
//! its low 48 bits are stored, packed back to back in 64-bit words. Memory is 6 bytes per
//! domain plus 1 to 2 for the index: 7.05 for 1,000,000 domains. With 2^16 buckets or
//! more (lists of over 131,072 domains) no bit of the 64 is lost; for smaller lists the
//! bucket bits and the 48 stored bits still keep a false match below 4·2^-48 per suffix
//! looked up. A lookup reads one index pair and scans its bucket. The fingerprints are
//! uniformly distributed (keyed hash), so buckets stay small whatever the names.

/// Fingerprints per index bucket, on average.
const PER_BUCKET: usize = 4;
/// Bits of each fingerprint stored.
const KEPT: u32 = 48;
const MASK: u64 = (1 << KEPT) - 1;

/// A sorted, duplicate-free set of fingerprints.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FpSet {
    /// The low 48 bits of each fingerprint, in order, packed into words.
    packed: Box<[u64]>,
    len: usize,
    /// `index[b]..index[b + 1]` is the range of fingerprints whose top bits are `b`.
    index: Box<[u32]>,
    /// 64 minus the number of index bits (at least 1 bit, so the shift is below 64).
    shift: u32,
}

/// The `i`-th 48-bit value packed in `words`.
#[inline]
fn get(words: &[u64], i: usize) -> u64 {
    let bit = i * KEPT as usize;
    let (w, sh) = (bit / 64, (bit % 64) as u32);
    let mut v = words.get(w).copied().unwrap_or(0) >> sh;
    if sh > 64 - KEPT {
        v |= words.get(w + 1).copied().unwrap_or(0) << (64 - sh);
    }
    v & MASK
}

/// Stores the 48-bit `v` as the `i`-th value of `words`.
fn put(words: &mut [u64], i: usize, v: u64) {
    let bit = i * KEPT as usize;
    let (w, sh) = (bit / 64, (bit % 64) as u32);
    if let Some(x) = words.get_mut(w) {
        *x = (*x & !(MASK << sh)) | (v << sh);
    }
    if sh > 64 - KEPT {
        if let Some(x) = words.get_mut(w + 1) {
            *x = (*x & !(MASK >> (64 - sh))) | (v >> (64 - sh));
        }
    }
}

impl FpSet {
    /// Builds the set from fingerprints in any order, with duplicates. The vector's own
    /// memory is reused for the packed form, so building needs 8 bytes per fingerprint
    /// at most.
    pub fn from_vec(mut v: Vec<u64>) -> FpSet {
        v.sort_unstable();
        v.dedup();
        // Fingerprints beyond u32 positions cannot be indexed; no list comes close.
        v.truncate(u32::MAX as usize);
        let len = v.len();
        let buckets = (len / PER_BUCKET).next_power_of_two().max(2);
        let shift = 64 - buckets.trailing_zeros();
        let mut index = vec![0u32; buckets + 1];
        // index[b + 1] counts bucket b; the running sum turns counts into starts.
        for &fp in &v {
            if let Some(c) = index.get_mut((fp >> shift) as usize + 1) {
                *c += 1;
            }
        }
        let mut sum = 0u32;
        for c in index.iter_mut() {
            sum += *c;
            *c = sum;
        }
        // Pack in place: value i ends in word (48i + 47) / 64 <= i, so it only
        // overwrites words already read.
        for i in 0..len {
            let fp = v.get(i).copied().unwrap_or(0);
            put(&mut v, i, fp & MASK);
        }
        v.truncate((len * KEPT as usize).div_ceil(64));
        FpSet {
            packed: v.into_boxed_slice(),
            len,
            index: index.into_boxed_slice(),
            shift,
        }
    }

    /// True if `fp` is in the set.
    #[inline]
    pub fn contains(&self, fp: u64) -> bool {
        let b = (fp >> self.shift) as usize;
        let (Some(&lo), Some(&hi)) = (self.index.get(b), self.index.get(b + 1)) else {
            return false;
        };
        let want = fp & MASK;
        (lo as usize..hi as usize).any(|i| get(&self.packed, i) == want)
    }

    /// Number of fingerprints.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of heap the set holds.
    pub fn heap_bytes(&self) -> usize {
        self.packed.len() * 8 + self.index.len() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::{get, put, FpSet};

    #[test]
    fn members_and_non_members() {
        for n in [1u64, 3, 5000, 300_000] {
            // A cheap deterministic spread of values over the whole range.
            let vals: Vec<u64> = (1..=n)
                .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .collect();
            let mut with_dups = vals.clone();
            with_dups.extend_from_slice(&vals[..vals.len().min(100)]);
            let s = FpSet::from_vec(with_dups);
            assert_eq!(s.len(), vals.len());
            for &v in &vals {
                assert!(s.contains(v), "{n}: {v:x}");
                assert!(!s.contains(v ^ 1) && !s.contains(v ^ (1 << 47)));
            }
            // 6 bytes per value and at most 2 for the index (buckets are a power of two).
            assert!(
                s.heap_bytes() <= vals.len() * 8 + 24,
                "{n}: {}",
                s.heap_bytes()
            );
        }
    }

    #[test]
    fn top_bits_are_kept_in_big_sets() {
        // 2^16 buckets or more: values differing only above bit 48 are told apart.
        let vals: Vec<u64> = (1..=300_000u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        let s = FpSet::from_vec(vals.clone());
        for &v in vals.iter().take(1000) {
            assert!(!s.contains(v ^ (1 << 50)));
            assert!(!s.contains(v ^ (1 << 63)));
        }
    }

    #[test]
    fn packing_round_trips() {
        let mut w = vec![u64::MAX; 7];
        let vals: Vec<u64> = (0..9u64)
            .map(|i| (i * 0x1234_5678_9abc) & super::MASK)
            .collect();
        for (i, &v) in vals.iter().enumerate() {
            put(&mut w, i, v);
        }
        for (i, &v) in vals.iter().enumerate() {
            assert_eq!(get(&w, i), v, "{i}");
        }
    }

    #[test]
    fn empty_and_extremes() {
        let e = FpSet::from_vec(Vec::new());
        assert!(e.is_empty() && !e.contains(0) && !e.contains(u64::MAX));
        let s = FpSet::from_vec(vec![0, u64::MAX]);
        assert!(s.contains(0) && s.contains(u64::MAX) && !s.contains(1));
    }
}
