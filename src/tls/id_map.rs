//! A hash map for keys that dproxy chooses itself (connection tokens, the DNS IDs drawn
//! for a connection, configured server addresses): a multiply-and-rotate hash instead of
//! the standard SipHash, which costs a few hundred instructions per lookup and guards
//! against keys an attacker picks, which these are not. A server can only look up an ID
//! it sends back, in a table of at most a connection's queries in flight.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` keyed by values dproxy chose (see the module documentation).
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// An empty [`IdMap`].
pub fn id_map<K, V>() -> IdMap<K, V> {
    HashMap::with_hasher(BuildHasherDefault::default())
}

/// Odd, with bits spread over the word: multiplying by it maps consecutive keys to
/// distinct low bits (the bucket) and mixes them into the high bits (hashbrown's tag).
const K: u64 = 0x9e37_79b9_7f4a_7c15;

#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl IdHasher {
    #[inline]
    fn add(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(K);
    }
}

impl Hasher for IdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u8(&mut self, x: u8) {
        self.add(u64::from(x));
    }

    #[inline]
    fn write_u16(&mut self, x: u16) {
        self.add(u64::from(x));
    }

    #[inline]
    fn write_u32(&mut self, x: u32) {
        self.add(u64::from(x));
    }

    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.add(x);
    }

    #[inline]
    fn write_usize(&mut self, x: usize) {
        self.add(x as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn keys_of_every_kind_used_stay_apart() {
        let mut tokens = id_map();
        for t in 0u64..5000 {
            tokens.insert(t, t * 3);
        }
        assert!((0u64..5000).all(|t| tokens.get(&t) == Some(&(t * 3))));
        assert_eq!(tokens.get(&5000), None);
        let mut ids = id_map();
        for id in (0u16..=u16::MAX).step_by(7) {
            ids.insert(id, id);
        }
        assert_eq!(ids.len(), 65536 / 7 + 1);
        assert_eq!(ids.remove(&7), Some(7));
        assert_eq!(ids.get(&8), None);
        // Addresses differing only in the port, or only in the family, are different keys.
        let mut addrs = id_map();
        let a: SocketAddr = "192.0.2.1:853".parse().unwrap();
        let b: SocketAddr = "192.0.2.1:854".parse().unwrap();
        let c: SocketAddr = "[::ffff:192.0.2.1]:853".parse().unwrap();
        addrs.insert(a, 1);
        addrs.insert(b, 2);
        addrs.insert(c, 3);
        assert_eq!((addrs[&a], addrs[&b], addrs[&c]), (1, 2, 3));
    }

    #[test]
    fn consecutive_tokens_fill_distinct_buckets() {
        // The low bits pick the bucket: 128 consecutive tokens (a connection's in-flight
        // bound) land in 128 different buckets of a 128-bucket table.
        let mut low = std::collections::HashSet::new();
        for t in 1000u64..1128 {
            let mut h = IdHasher::default();
            h.write_u64(t);
            low.insert(h.finish() & 127);
        }
        assert_eq!(low.len(), 128);
    }
}
