//! A set of 64-bit fingerprints: sorted, with a bucket index on the top bits.
//!
//! Memory is 8 bytes per domain plus a 4-byte index entry per 4 domains (9 bytes in
//! all); a lookup reads one index pair and scans a bucket of 4 entries on average. The
//! fingerprints are uniformly distributed (keyed hash), so buckets stay small whatever
//! the names.

/// Fingerprints per index bucket, on average.
const PER_BUCKET: usize = 4;

/// A sorted, duplicate-free set of fingerprints.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FpSet {
    fps: Box<[u64]>,
    /// `index[b]..index[b + 1]` is the range of fingerprints whose top bits are `b`.
    index: Box<[u32]>,
    /// 64 minus the number of index bits (at least 1 bit, so the shift is below 64).
    shift: u32,
}

impl FpSet {
    /// Builds the set from fingerprints in any order, with duplicates.
    pub fn from_vec(mut v: Vec<u64>) -> FpSet {
        v.sort_unstable();
        v.dedup();
        // Fingerprints beyond u32 positions cannot be indexed; no list comes close.
        v.truncate(u32::MAX as usize);
        let fps = v.into_boxed_slice();
        let buckets = (fps.len() / PER_BUCKET).next_power_of_two().max(2);
        let bits = buckets.trailing_zeros();
        let shift = 64 - bits;
        let mut index = vec![0u32; buckets + 1];
        // index[b] = number of fingerprints in buckets below b.
        for &fp in fps.iter() {
            if let Some(c) = index.get_mut((fp >> shift) as usize + 1) {
                *c += 1;
            }
        }
        let mut sum = 0u32;
        for c in index.iter_mut() {
            sum += *c;
            *c = sum;
        }
        FpSet {
            fps,
            index: index.into_boxed_slice(),
            shift,
        }
    }

    /// True if `fp` is in the set.
    #[inline]
    pub fn contains(&self, fp: u64) -> bool {
        let b = (fp >> self.shift) as usize;
        match (self.index.get(b), self.index.get(b + 1)) {
            (Some(&lo), Some(&hi)) => self
                .fps
                .get(lo as usize..hi as usize)
                .is_some_and(|s| s.contains(&fp)),
            _ => false,
        }
    }

    /// Number of fingerprints.
    pub fn len(&self) -> usize {
        self.fps.len()
    }

    /// True if the set is empty.
    pub fn is_empty(&self) -> bool {
        self.fps.is_empty()
    }

    /// Bytes of heap the set holds.
    pub fn heap_bytes(&self) -> usize {
        self.fps.len() * 8 + self.index.len() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::FpSet;

    #[test]
    fn members_and_non_members() {
        // A cheap deterministic spread of values over the whole range.
        let vals: Vec<u64> = (1..5000u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        let mut with_dups = vals.clone();
        with_dups.extend_from_slice(&vals[..100]);
        let s = FpSet::from_vec(with_dups);
        assert_eq!(s.len(), vals.len());
        for &v in &vals {
            assert!(s.contains(v));
            assert!(!s.contains(v ^ 1));
        }
        assert!(s.contains(vals[0]) && !s.contains(0) && !s.contains(u64::MAX));
        assert!(s.heap_bytes() <= vals.len() * 8 + vals.len() * 2 + 16);
    }

    #[test]
    fn empty_and_extremes() {
        let e = FpSet::from_vec(Vec::new());
        assert!(e.is_empty() && !e.contains(0) && !e.contains(u64::MAX));
        let s = FpSet::from_vec(vec![0, u64::MAX]);
        assert!(s.contains(0) && s.contains(u64::MAX) && !s.contains(1));
    }
}
