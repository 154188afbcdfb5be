//! The answer cache: a byte budget, LRU eviction, O(1) lookup, insert and eviction.
//!
//! Each entry is one allocation holding the key, the answer in wire form and the
//! offsets of its TTL fields, plus a 40-byte slot with its LRU links. The index is an
//! open-addressing table (linear probing, backward-shift deletion) of 8-byte buckets,
//! each a slot number and the upper half of its key's hash, placed by a keyed hash with
//! a random seed per process (no hash flooding). Probes compare the bucket's hash, so a
//! lookup reads slots only for a likely match, whose own key is then compared: on a
//! router's miss path each slot read is a cache miss of its own.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use crate::wire::name::plain_name_end;

/// A keyed 64-bit hash over bytes: 64-bit multiplies with two secret 64-bit keys, folded
/// 8 bytes at a time. Cheap at opt-level z where SipHash is not, and keyed per process
/// so that nobody outside can aim many names at one bucket.
#[derive(Clone, Copy)]
pub struct KeyedHash {
    k0: u64,
    k1: u64,
}

impl KeyedHash {
    pub fn new() -> KeyedHash {
        let s = RandomState::new();
        KeyedHash {
            k0: s.hash_one(0x5151u64) | 1,
            k1: s.hash_one(0xa7a7u64),
        }
    }

    #[inline]
    fn mix(a: u64, b: u64) -> u64 {
        let m = (a as u128).wrapping_mul(b as u128);
        (m as u64) ^ ((m >> 64) as u64)
    }

    pub fn hash(&self, data: &[u8]) -> u64 {
        let mut h = self.k1 ^ (data.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            h = Self::mix(h ^ w, self.k0);
        }
        // The last 0 to 7 bytes, little-endian as above, a byte at a time: a copy into a
        // padded word was a call to memcpy on every hash.
        let tail = chunks
            .remainder()
            .iter()
            .rev()
            .fold(0u64, |t, &b| t << 8 | b as u64);
        h = Self::mix(h ^ tail, self.k0 ^ self.k1);
        Self::mix(h, self.k0.rotate_left(17))
    }
}

impl Default for KeyedHash {
    fn default() -> Self {
        KeyedHash::new()
    }
}

/// Per-entry bookkeeping counted against the budget on top of the entry's bytes
/// (slot, index bucket, allocator overhead).
pub const ENTRY_OVERHEAD: usize = 112;

/// Largest key: flags, type, class, and a 255-byte name.
pub const MAX_KEY_LEN: usize = 5 + crate::wire::MAX_NAME_LEN;

/// Entry flags.
pub mod flag {
    /// NXDOMAIN or NODATA.
    pub const NEGATIVE: u8 = 0x01;
    /// A resolution failure kept only briefly; never served stale.
    pub const FAILURE: u8 = 0x02;
    /// Learned while the link was down; dropped at link up.
    pub const OFFLINE: u8 = 0x04;
    /// Validated secure (DNSSEC): replies set AD for clients that ask for it.
    pub const SECURE: u8 = 0x08;
    /// Validated (DNSSEC), secure or insecure. While validation is on, an answer
    /// without it (fetched only for a walk, or cached before validation was turned on)
    /// is not given to clients that did not set CD: their question is asked anew.
    pub const VALIDATED: u8 = 0x10;
    /// With FAILURE: the DNSSEC Extended DNS Error the SERVFAIL carries (see
    /// `forward::validate`).
    pub const EDE: u8 = 0xe0;
}

/// A cache key: query flags, type, class and the lowercased name in wire form.
#[derive(Clone)]
pub struct Key {
    buf: [u8; MAX_KEY_LEN],
    len: usize,
}

/// Key flag bits: DNSSEC OK and checking disabled change what an upstream returns.
pub const KEY_DO: u8 = 0x01;
pub const KEY_CD: u8 = 0x02;

impl Default for Key {
    fn default() -> Self {
        Key {
            buf: [0u8; MAX_KEY_LEN],
            len: 5,
        }
    }
}

impl Key {
    pub fn new(name_wire: &[u8], qtype: u16, qclass: u16, flags: u8) -> Key {
        let mut k = Key::default();
        k.fill(name_wire, qtype, qclass, flags);
        k
    }

    /// Overwrites this key in place (the hot path reuses one key buffer).
    pub fn fill(&mut self, name_wire: &[u8], qtype: u16, qclass: u16, flags: u8) {
        let buf = &mut self.buf;
        buf[0] = flags;
        buf[1..3].copy_from_slice(&qtype.to_be_bytes());
        buf[3..5].copy_from_slice(&qclass.to_be_bytes());
        let n = name_wire.len().min(crate::wire::MAX_NAME_LEN);
        for (d, s) in buf[5..5 + n].iter_mut().zip(name_wire) {
            *d = s.to_ascii_lowercase();
        }
        self.len = 5 + n;
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn qtype(&self) -> u16 {
        u16::from_be_bytes([self.buf[1], self.buf[2]])
    }

    pub fn qclass(&self) -> u16 {
        u16::from_be_bytes([self.buf[3], self.buf[4]])
    }

    pub fn flags(&self) -> u8 {
        self.buf[0]
    }

    /// The lowercased name in wire form.
    pub fn name_wire(&self) -> &[u8] {
        &self.buf[5..self.len]
    }

    /// Rebuilds a key from its bytes (as stored in the persist file).
    pub fn from_bytes(b: &[u8]) -> Option<Key> {
        if b.len() < 6 || b.len() > MAX_KEY_LEN {
            return None;
        }
        let mut buf = [0u8; MAX_KEY_LEN];
        buf[..b.len()].copy_from_slice(b);
        Some(Key { buf, len: b.len() })
    }
}

const NIL: u32 = u32::MAX;

/// An empty index bucket.
const EMPTY: u64 = u64::MAX;

/// An index bucket: the key's hash (upper half of the keyed hash) above the slot number.
fn bucket(slot: u32, hash: u32) -> u64 {
    (hash as u64) << 32 | slot as u64
}

fn bucket_slot(b: u64) -> u32 {
    b as u32
}

fn bucket_hash(b: u64) -> u32 {
    (b >> 32) as u32
}

/// 40 bytes: the key's length is not stored, its name's labels tell it.
struct Entry {
    /// key ++ message ++ TTL offsets (u16, big-endian).
    buf: Box<[u8]>,
    /// Upper half of the key's hash: where removal finds the entry's bucket (lookups
    /// compare the copy in the bucket, without reading the slot).
    hash: u32,
    /// Seconds on the cache clock.
    inserted: u32,
    expires: u32,
    prev: u32,
    next: u32,
    msg_len: u16,
    hits: u8,
    flags: u8,
}

impl Entry {
    fn key_len(&self) -> usize {
        // Checked at insert, so the fallback is never taken.
        plain_name_end(&self.buf, 5).unwrap_or(5)
    }

    fn key(&self) -> &[u8] {
        &self.buf[..self.key_len()]
    }
    fn cost(&self) -> usize {
        self.buf.len() + ENTRY_OVERHEAD
    }
}

/// A read-only view of a cached answer.
pub struct Cached<'a> {
    pub key: &'a [u8],
    /// The answer as stored: TTL fields hold the TTLs at insertion.
    pub msg: &'a [u8],
    ttl_pos: &'a [u8],
    pub inserted: u32,
    pub expires: u32,
    /// Gets since insertion, saturating at 255 (used to rank entries, not to count).
    pub hits: u16,
    pub flags: u8,
}

impl<'a> Cached<'a> {
    /// Offsets of the TTL fields in `msg`.
    pub fn ttl_positions(&self) -> impl Iterator<Item = usize> + 'a {
        self.ttl_pos
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]) as usize)
    }

    /// Seconds of lifetime left at `now` (0 once expired).
    pub fn remaining(&self, now: u32) -> u32 {
        self.expires.saturating_sub(now)
    }

    pub fn lifetime(&self) -> u32 {
        self.expires.saturating_sub(self.inserted)
    }
}

/// The cache itself.
pub struct Cache {
    /// Buckets (see [`bucket`]; EMPTY = none); the length is a power of two, at most
    /// 3/4 full.
    index: Vec<u64>,
    count: usize,
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    /// Most recently used.
    head: u32,
    /// Least recently used.
    tail: u32,
    bytes: usize,
    budget: usize,
    seed: KeyedHash,
    /// Entries stored since start (dnsmasq's `dns_cache_inserted`).
    pub inserted: u64,
    /// Entries evicted for room before they expired (dnsmasq's `dns_cache_live_freed`).
    pub live_freed: u64,
}

impl Cache {
    /// A cache that holds at most `budget` bytes (entries plus their bookkeeping).
    pub fn new(budget: usize) -> Cache {
        Cache {
            index: Vec::new(),
            count: 0,
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            bytes: 0,
            budget,
            seed: KeyedHash::new(),
            inserted: 0,
            live_freed: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes held, bookkeeping included.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Changes the budget, evicting least recently used entries to fit.
    pub fn set_budget(&mut self, budget: usize) {
        self.budget = budget;
        self.evict_to(budget, None);
    }

    fn hash(&self, key: &[u8]) -> u32 {
        (self.seed.hash(key) >> 32) as u32
    }

    fn mask(&self) -> usize {
        self.index.len().wrapping_sub(1)
    }

    /// Puts slot `i` (whose hash is `h`) into the index, growing it when 3/4 full.
    fn index_insert(&mut self, i: u32, h: u32) {
        if (self.count + 1) * 4 > self.index.len() * 3 {
            let cap = (self.index.len() * 2).max(64);
            let old = std::mem::replace(&mut self.index, vec![EMPTY; cap]);
            for b in old.into_iter().filter(|&b| b != EMPTY) {
                self.place(b);
            }
        }
        self.place(bucket(i, h));
        self.count += 1;
    }

    fn place(&mut self, b: u64) {
        let mask = self.mask();
        let mut p = bucket_hash(b) as usize & mask;
        while self.index[p] != EMPTY {
            p = (p + 1) & mask;
        }
        self.index[p] = b;
    }

    /// Takes slot `i` out of the index (backward-shift deletion keeps probes short).
    fn index_remove(&mut self, i: u32) {
        let Some(h) = self.slot(i).map(|e| e.hash) else {
            return;
        };
        let mask = self.mask();
        let mut p = h as usize & mask;
        loop {
            match self.index.get(p) {
                Some(&b) if b == bucket(i, h) => break,
                Some(&EMPTY) | None => return,
                Some(_) => p = (p + 1) & mask,
            }
        }
        let mut j = p;
        loop {
            j = (j + 1) & mask;
            let b = self.index[j];
            if b == EMPTY {
                break;
            }
            let home = bucket_hash(b) as usize & mask;
            // Move b back into the hole unless its home lies cyclically in (p, j].
            let in_between = if p <= j {
                p < home && home <= j
            } else {
                p < home || home <= j
            };
            if !in_between {
                self.index[p] = b;
                p = j;
            }
        }
        self.index[p] = EMPTY;
        self.count -= 1;
    }

    fn slot(&self, i: u32) -> Option<&Entry> {
        self.slots.get(i as usize).and_then(|s| s.as_ref())
    }

    fn slot_mut(&mut self, i: u32) -> Option<&mut Entry> {
        self.slots.get_mut(i as usize).and_then(|s| s.as_mut())
    }

    fn find(&self, key: &[u8]) -> Option<u32> {
        if self.count == 0 {
            return None;
        }
        let h = self.hash(key);
        let mask = self.mask();
        let mut p = h as usize & mask;
        loop {
            let b = *self.index.get(p)?;
            if b == EMPTY {
                return None;
            }
            if bucket_hash(b) == h {
                let s = bucket_slot(b);
                if self.slot(s).is_some_and(|e| e.key() == key) {
                    return Some(s);
                }
            }
            p = (p + 1) & mask;
        }
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = match self.slot(i) {
            Some(e) => (e.prev, e.next),
            None => return,
        };
        match self.slot_mut(prev) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.slot_mut(next) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        if let Some(e) = self.slot_mut(i) {
            e.prev = NIL;
            e.next = old;
        }
        match self.slot_mut(old) {
            Some(o) => o.prev = i,
            None => self.tail = i,
        }
        self.head = i;
    }

    /// Looks a key up and marks it most recently used; expired entries are returned too
    /// (the caller decides about serving stale).
    pub fn get(&mut self, key: &[u8]) -> Option<Cached<'_>> {
        let i = self.find(key)?;
        if self.head != i {
            self.unlink(i);
            self.push_front(i);
        }
        let e = self.slot_mut(i)?;
        e.hits = e.hits.saturating_add(1);
        Some(view(self.slot(i)?))
    }

    /// Looks a key up without touching recency or hit counts.
    pub fn peek(&self, key: &[u8]) -> Option<Cached<'_>> {
        self.find(key).and_then(|i| self.slot(i)).map(view)
    }

    /// Stores an answer. `ttl_pos` are offsets into `msg`. Replaces an entry with the same key.
    /// Returns false if the entry could not be stored (too large for the budget).
    pub fn insert(
        &mut self,
        key: &[u8],
        msg: &[u8],
        ttl_pos: &[u16],
        now: u32,
        lifetime: u32,
        flags: u8,
    ) -> bool {
        self.remove(key);
        let size = key.len() + msg.len() + 2 * ttl_pos.len();
        if key.len() > MAX_KEY_LEN
            || plain_name_end(key, 5) != Some(key.len())
            || msg.len() > u16::MAX as usize
            || size + ENTRY_OVERHEAD > self.budget
        {
            return false;
        }
        self.evict_to(self.budget - size - ENTRY_OVERHEAD, Some(now));
        let mut buf = Vec::with_capacity(size);
        buf.extend_from_slice(key);
        buf.extend_from_slice(msg);
        for p in ttl_pos {
            buf.extend_from_slice(&p.to_be_bytes());
        }
        let hash = self.hash(key);
        let entry = Entry {
            buf: buf.into_boxed_slice(),
            msg_len: msg.len() as u16,
            hash,
            inserted: now,
            expires: now.saturating_add(lifetime),
            hits: 0,
            flags,
            prev: NIL,
            next: NIL,
        };
        self.bytes += entry.cost();
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(entry);
                i
            }
            None => {
                self.slots.push(Some(entry));
                (self.slots.len() - 1) as u32
            }
        };
        self.index_insert(i, hash);
        self.push_front(i);
        self.inserted += 1;
        true
    }

    fn drop_slot(&mut self, i: u32) {
        self.index_remove(i);
        self.unlink(i);
        if let Some(e) = self.slots.get_mut(i as usize).and_then(|s| s.take()) {
            self.bytes -= e.cost();
            self.free.push(i);
        }
    }

    /// Removes a key; true if it was there.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        match self.find(key) {
            Some(i) => {
                self.drop_slot(i);
                true
            }
            None => false,
        }
    }

    /// Evicts least recently used entries; with `now`, counts those not yet expired.
    fn evict_to(&mut self, target: usize, now: Option<u32>) {
        while self.bytes > target && self.tail != NIL {
            let t = self.tail;
            if let (Some(now), Some(Some(e))) = (now, self.slots.get(t as usize)) {
                if e.expires > now {
                    self.live_freed += 1;
                }
            }
            self.drop_slot(t);
        }
    }

    /// Empties the cache.
    pub fn clear(&mut self) {
        self.index.clear();
        self.count = 0;
        self.slots.clear();
        self.free.clear();
        self.head = NIL;
        self.tail = NIL;
        self.bytes = 0;
    }

    /// Removes every entry for which `drop` says true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Cached<'_>) -> bool) {
        let doomed: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|&i| matches!(self.slot(i), Some(e) if !keep(&view(e))))
            .collect();
        for i in doomed {
            self.drop_slot(i);
        }
    }

    /// Visits entries from most to least recently used.
    pub fn for_each(&self, mut f: impl FnMut(&Cached<'_>)) {
        let mut i = self.head;
        while let Some(e) = self.slot(i) {
            f(&view(e));
            i = e.next;
        }
    }
}

fn view(e: &Entry) -> Cached<'_> {
    let k = e.key_len();
    let m = k + e.msg_len as usize;
    Cached {
        key: &e.buf[..k],
        msg: &e.buf[k..m],
        ttl_pos: &e.buf[m..],
        inserted: e.inserted,
        expires: e.expires,
        hits: e.hits as u16,
        flags: e.flags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> Vec<u8> {
        Key::new(
            format!("\x04h{:03}\x04test\x00", n % 1000).as_bytes(),
            1,
            1,
            0,
        )
        .as_bytes()
        .to_vec()
    }

    #[test]
    fn keys_ignore_case_and_keep_flags() {
        let a = Key::new(b"\x03WWW\x04Test\x00", 28, 1, KEY_DO);
        let b = Key::new(b"\x03www\x04test\x00", 28, 1, KEY_DO);
        let c = Key::new(b"\x03www\x04test\x00", 28, 1, 0);
        assert_eq!(a.as_bytes(), b.as_bytes());
        assert_ne!(a.as_bytes(), c.as_bytes());
        assert_eq!((a.qtype(), a.qclass(), a.flags()), (28, 1, KEY_DO));
        assert_eq!(a.name_wire(), b"\x03www\x04test\x00");
        assert_eq!(
            Key::from_bytes(a.as_bytes()).unwrap().as_bytes(),
            a.as_bytes()
        );
    }

    #[test]
    fn keyed_hash_spreads_and_depends_on_the_key() {
        let (a, b) = (KeyedHash::new(), KeyedHash::new());
        let names: Vec<Vec<u8>> = (0..2000u32)
            .map(|i| format!("h{i}.test").into_bytes())
            .collect();
        let ha: std::collections::HashSet<u64> = names.iter().map(|n| a.hash(n)).collect();
        assert_eq!(ha.len(), names.len());
        // Low bits (what a hash table uses) spread over 256 buckets.
        let mut buckets = [0u32; 256];
        for n in &names {
            buckets[(a.hash(n) & 255) as usize] += 1;
        }
        assert!(buckets.iter().all(|&c| c < 30), "{buckets:?}");
        assert_ne!(a.hash(b"x.test"), b.hash(b"x.test"));
        assert_ne!(a.hash(b""), a.hash(b"\0"));
    }

    #[test]
    fn index_survives_random_inserts_and_removals() {
        // A model check: the open-addressing index must agree with a HashMap after any
        // mix of inserts, removals and evictions.
        let mut c = Cache::new(1 << 30);
        let mut model = std::collections::HashMap::new();
        let mut x: u32 = 12345;
        for step in 0..20000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let k = key(x % 700);
            if x % 3 == 0 {
                assert_eq!(c.remove(&k), model.remove(&k).is_some(), "step {step}");
            } else {
                c.insert(&k, &step.to_be_bytes(), &[], 0, 60, 0);
                model.insert(k, step);
            }
        }
        assert_eq!(c.len(), model.len());
        for (k, v) in &model {
            assert_eq!(
                c.peek(k).map(|e| e.msg.to_vec()),
                Some(v.to_be_bytes().to_vec())
            );
        }
    }

    #[test]
    fn index_holds_keys_whose_hashes_collide() {
        // Zero keys make every key hash to 0: every bucket then carries the same hash, so
        // lookups must tell keys apart by the slot's own key, and removal must keep the
        // rest findable (one long probe run).
        let mut c = Cache::new(1 << 20);
        c.seed = KeyedHash { k0: 0, k1: 0 };
        assert_eq!(c.hash(&key(1)), c.hash(&key(2)));
        for n in 0..40 {
            assert!(c.insert(&key(n), &n.to_be_bytes(), &[], 0, 60, 0));
        }
        for n in (0..40).step_by(3) {
            assert!(c.remove(&key(n)));
        }
        for n in 0..40 {
            let got = c.peek(&key(n)).map(|e| e.msg.to_vec());
            let want = (n % 3 != 0).then(|| n.to_be_bytes().to_vec());
            assert_eq!(got, want, "key {n}");
        }
        assert!(c.get(&key(99)).is_none());
    }

    #[test]
    fn insert_get_remove() {
        let mut c = Cache::new(1 << 20);
        assert!(c.insert(&key(1), b"hello", &[1, 3], 10, 60, 0));
        let e = c.get(&key(1)).unwrap();
        assert_eq!(e.msg, b"hello");
        assert_eq!(e.ttl_positions().collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!((e.inserted, e.expires, e.hits), (10, 70, 1));
        assert_eq!(e.remaining(65), 5);
        assert_eq!(e.remaining(80), 0);
        assert!(c.get(&key(2)).is_none());
        assert!(c.insert(&key(1), b"again", &[], 20, 5, flag::NEGATIVE));
        assert_eq!(c.len(), 1);
        assert_eq!(c.peek(&key(1)).unwrap().flags, flag::NEGATIVE);
        assert!(c.remove(&key(1)));
        assert!(!c.remove(&key(1)));
        assert_eq!((c.len(), c.bytes()), (0, 0));
    }

    #[test]
    fn byte_budget_evicts_least_recently_used() {
        let one = key(0).len() + 100 + ENTRY_OVERHEAD;
        let mut c = Cache::new(one * 3);
        for n in 0..3 {
            assert!(c.insert(&key(n), &[0u8; 100], &[], 0, 60, 0));
        }
        // Touch 0 so that 1 is now the oldest.
        assert!(c.get(&key(0)).is_some());
        assert!(c.insert(&key(3), &[0u8; 100], &[], 0, 60, 0));
        assert!(c.bytes() <= c.budget());
        assert!(c.peek(&key(1)).is_none());
        for n in [0, 2, 3] {
            assert!(c.peek(&key(n)).is_some(), "entry {n} should survive");
        }
        // An entry larger than the whole budget is refused and evicts nothing.
        assert!(!c.insert(&key(9), &[0u8; 1000], &[], 0, 60, 0));
        assert_eq!(c.len(), 3);
        c.set_budget(one);
        assert_eq!(c.len(), 1);
        assert!(c.peek(&key(3)).is_some());
    }

    #[test]
    fn many_entries_stay_within_budget() {
        let mut c = Cache::new(64 * 1024);
        for n in 0..5000u32 {
            let k = Key::new(format!("\x05n{:04}\x04test\x00", n).as_bytes(), 1, 1, 0);
            c.insert(k.as_bytes(), &[1u8; 60], &[12], n, 60, 0);
            assert!(c.bytes() <= c.budget());
        }
        let mut seen = 0;
        c.for_each(|_| seen += 1);
        assert_eq!(seen, c.len());
        c.retain(|e| e.inserted % 2 == 0);
        let mut odd = 0;
        c.for_each(|e| odd += e.inserted % 2);
        assert_eq!(odd, 0);
        c.clear();
        assert!(c.is_empty());
    }
}
