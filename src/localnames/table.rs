//! Parsed per-file records and the merged, read-only lookup table built from them.
//!
//! Parsers produce a [`Parsed`] per file: one byte arena holding every
//! (lowercased) name and a flat vector of [`Rec`]ords pointing into it, so
//! parsing allocates per file, not per line. [`Table::build`] merges all
//! files into a handful of flat vectors — no allocation per name:
//!
//! - every distinct name once in a byte arena, found through an
//!   open-addressing index of `(hash tag, entry id)` pairs (seeded hash, so
//!   colliding host names cannot be precomputed);
//! - addresses in per-family arenas, each name owning a contiguous span
//!   sorted by expiry descending, so the still-valid addresses at any time
//!   are a prefix of the span (one binary search, borrowed slices out);
//! - the PTR side the same way: an index from address to a group owning a
//!   span of candidate names in priority order.
//!
//! Grouping uses counting sorts on the dense ids (ids are assigned in file
//! order, so the sort is stable and linear); only a name's own few
//! addresses are sorted.
//!
//! All arithmetic is on fixed-width integers with explicit little-endian
//! word loads for hashing: identical behaviour on 32-bit and big-endian
//! targets.

use std::cmp::{Ordering, Reverse};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Expiry value meaning "never expires" (hosts files, infinite leases).
pub(crate) const NEVER: u64 = u64::MAX;

/// One (name, address) pair read from a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rec {
    /// Offset of the name in [`Parsed::names`].
    pub off: u32,
    /// Length of the name (validated: 1..=253).
    pub len: u8,
    /// True for the name a PTR query for `addr` may return (first name of a
    /// hosts line, the host name of a lease).
    pub canonical: bool,
    pub addr: IpAddr,
    /// UNIX time after which the record is gone; [`NEVER`] for none.
    pub exp: u64,
}

/// The result of parsing one file.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Parsed {
    /// Lowercased names, back to back.
    pub names: Vec<u8>,
    pub recs: Vec<Rec>,
    /// Malformed lines / entries skipped (already logged, capped).
    pub bad: u32,
}

fn arena_get(arena: &[u8], off: u32, len: u8) -> &[u8] {
    let start = off as usize;
    arena
        .get(start..start.saturating_add(usize::from(len)))
        .unwrap_or(&[])
}

impl Parsed {
    pub(crate) fn name(&self, r: &Rec) -> &[u8] {
        arena_get(&self.names, r.off, r.len)
    }

    /// Validates `raw` and records it for `addr`. Returns false if the name is invalid.
    pub(crate) fn push(&mut self, raw: &[u8], addr: IpAddr, exp: u64, canonical: bool) -> bool {
        match super::syntax::push_name(&mut self.names, raw) {
            Some((off, len)) => {
                self.recs.push(Rec {
                    off,
                    len,
                    canonical,
                    addr,
                    exp,
                });
                true
            }
            None => false,
        }
    }
}

// ---------------------------------------------------------------------------
// hashing

/// A random per-table seed from the standard library's `RandomState`.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(0x646e_7370);
    h.finish() | 1
}

const FX_K: u64 = 0x517c_c1b7_2722_0a95;

/// Little-endian `u64` from exactly 8 bytes (0 otherwise; never happens).
#[inline]
fn le64(b: &[u8]) -> u64 {
    <[u8; 8]>::try_from(b).map_or(0, u64::from_le_bytes)
}

/// Little-endian `u32` from exactly 4 bytes (0 otherwise; never happens).
#[inline]
fn le32(b: &[u8]) -> u32 {
    <[u8; 4]>::try_from(b).map_or(0, u32::from_le_bytes)
}

/// FxHash-style word mixing with a SplitMix64 finalizer over `bytes`. The
/// tail is read with (overlapping) word loads rather than byte by byte.
pub(crate) fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let len = bytes.len();
    let mut h = seed ^ (len as u64);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        h = (h.rotate_left(5) ^ le64(c)).wrapping_mul(FX_K);
    }
    let n = chunks.remainder().len();
    if n > 0 {
        let w = if len >= 8 {
            // The last 8 bytes; keep the `n` not hashed yet.
            le64(bytes.get(len - 8..).unwrap_or(&[])) >> (8 * (8 - n))
        } else if n >= 4 {
            let lo = le32(bytes.get(..4).unwrap_or(&[]));
            let hi = le32(bytes.get(n - 4..n).unwrap_or(&[]));
            u64::from(lo) | (u64::from(hi) << 32)
        } else {
            let b = |i: usize| u64::from(bytes.get(i).copied().unwrap_or(0));
            b(0) | (b(n / 2) << 8) | (b(n - 1) << 16)
        };
        h = (h.rotate_left(5) ^ w).wrapping_mul(FX_K);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Hash of an address (family-tagged by length: 4 or 16 bytes).
fn hash_addr(seed: u64, a: &IpAddr) -> u64 {
    match a {
        IpAddr::V4(v4) => hash_bytes(seed, &v4.octets()),
        IpAddr::V6(v6) => hash_bytes(seed, &v6.octets()),
    }
}

/// Open-addressing (linear probing) index from a key to a dense id; the
/// keys themselves live elsewhere and are compared through a closure.
/// Slots hold `(hash tag, id + 1)`, `0` meaning empty; load stays below 1/2.
#[derive(Debug, Default)]
struct Index {
    seed: u64,
    slots: Vec<(u32, u32)>,
    used: usize,
}

impl Index {
    fn with_capacity(n: usize) -> Self {
        let size = n
            .saturating_mul(2)
            .max(16)
            .checked_next_power_of_two()
            .unwrap_or(1 << 30);
        Index {
            seed: random_seed(),
            slots: vec![(0, 0); size],
            used: 0,
        }
    }

    /// The id whose key satisfies `eq`, or `Err(Some(free slot))` to insert
    /// a key with hash `h` (`Err(None)`: table unusable, never in practice).
    fn find(&self, h: u64, mut eq: impl FnMut(u32) -> bool) -> Result<u32, Option<usize>> {
        let tag = (h >> 32) as u32;
        let mask = self.slots.len().wrapping_sub(1);
        let mut i = (h as usize) & mask;
        for _ in 0..self.slots.len() {
            let Some(&(t, id1)) = self.slots.get(i) else {
                return Err(None);
            };
            if id1 == 0 {
                return Err(Some(i));
            }
            if t == tag && eq(id1 - 1) {
                return Ok(id1 - 1);
            }
            i = (i + 1) & mask;
        }
        Err(None)
    }

    /// Fills the free `slot` returned by [`find`](Self::find); doubles the
    /// table when half full (`hash_of` recomputes the hash of an id).
    fn insert_at(&mut self, slot: usize, h: u64, id: u32, mut hash_of: impl FnMut(u32) -> u64) {
        if let Some(s) = self.slots.get_mut(slot) {
            *s = ((h >> 32) as u32, id.saturating_add(1));
            self.used += 1;
        }
        if self.used.saturating_mul(2) < self.slots.len() {
            return;
        }
        let size = self.slots.len().saturating_mul(2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![(0, 0); size]);
        let mask = size - 1;
        for (tag, id1) in old {
            if id1 == 0 {
                continue;
            }
            let h = hash_of(id1 - 1);
            let mut i = (h as usize) & mask;
            for _ in 0..size {
                match self.slots.get_mut(i) {
                    Some(s) if s.1 == 0 => {
                        *s = (tag, id1);
                        break;
                    }
                    Some(_) => i = (i + 1) & mask,
                    None => break,
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// the table

/// `start..start+len` into one of the table's arenas.
#[derive(Clone, Copy, Debug, Default)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn range(self) -> std::ops::Range<usize> {
        let s = self.start as usize;
        s..s.saturating_add(self.len as usize)
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    off: u32,
    len: u8,
    v4: Span,
    v6: Span,
}

#[derive(Clone, Copy, Debug)]
struct RevGroup {
    addr: IpAddr,
    names: Span,
}

/// The merged lookup table (immutable once built).
#[derive(Debug)]
pub(crate) struct Table {
    arena: Vec<u8>,
    entries: Vec<Entry>,
    index: Index,
    v4: Vec<Ipv4Addr>,
    v4_exp: Vec<u64>,
    v6: Vec<Ipv6Addr>,
    v6_exp: Vec<u64>,
    rev: Vec<RevGroup>,
    rev_index: Index,
    /// (entry id, expiry), grouped per address in priority order.
    rev_names: Vec<(u32, u64)>,
    /// Earliest finite expiry still in the table ([`NEVER`] if none).
    next_expiry: u64,
}

impl Default for Table {
    fn default() -> Self {
        Table {
            arena: Vec::new(),
            entries: Vec::new(),
            index: Index::default(),
            v4: Vec::new(),
            v4_exp: Vec::new(),
            v6: Vec::new(),
            v6_exp: Vec::new(),
            rev: Vec::new(),
            rev_index: Index::default(),
            rev_names: Vec::new(),
            next_expiry: NEVER,
        }
    }
}

/// Address order within a name: IPv4 before IPv6, then numerically.
fn addr_cmp(a: &IpAddr, b: &IpAddr) -> Ordering {
    match (a, b) {
        (IpAddr::V4(x), IpAddr::V4(y)) => x.cmp(y),
        (IpAddr::V6(x), IpAddr::V6(y)) => x.cmp(y),
        (IpAddr::V4(_), IpAddr::V6(_)) => Ordering::Less,
        (IpAddr::V6(_), IpAddr::V4(_)) => Ordering::Greater,
    }
}

/// A flattened record during the build (`key` is a name or address-group id).
#[derive(Clone, Copy)]
struct Flat {
    key: u32,
    id: u32,
    exp: u64,
    addr: IpAddr,
}

/// Stable counting sort of `items` by `key` (< `nkeys`): returns the
/// positions of the items in sorted order and the start of each key's run
/// (`nkeys + 1` entries). Positions rather than a sorted copy: 4 bytes per
/// item instead of 40 at the build's peak.
fn bucket(items: &[Flat], nkeys: usize) -> (Vec<u32>, Vec<u32>) {
    let mut starts = vec![0u32; nkeys + 1];
    for f in items {
        if let Some(c) = starts.get_mut(f.key as usize + 1) {
            *c = c.saturating_add(1);
        }
    }
    let mut acc = 0u32;
    for c in &mut starts {
        acc = acc.saturating_add(*c);
        *c = acc;
    }
    let mut pos = starts.clone();
    let mut out = vec![0u32; items.len()];
    for (i, f) in items.iter().enumerate() {
        if let Some(p) = pos.get_mut(f.key as usize) {
            if let Some(slot) = out.get_mut(*p as usize) {
                *slot = i as u32;
            }
            *p = p.saturating_add(1);
        }
    }
    (out, starts)
}

/// Name and address interning during the build.
struct Builder {
    arena: Vec<u8>,
    entries: Vec<Entry>,
    index: Index,
    rev: Vec<RevGroup>,
    rev_index: Index,
}

impl Builder {
    fn intern_name(&mut self, name: &[u8]) -> Option<u32> {
        let Builder {
            arena,
            entries,
            index,
            ..
        } = self;
        let h = hash_bytes(index.seed, name);
        let found = index.find(h, |id| {
            entries
                .get(id as usize)
                .is_some_and(|e| arena_get(arena, e.off, e.len) == name)
        });
        match found {
            Ok(id) => Some(id),
            Err(slot) => {
                let slot = slot?;
                let id = u32::try_from(entries.len()).ok()?;
                let off = u32::try_from(arena.len()).ok()?;
                let len = u8::try_from(name.len()).ok()?;
                arena.extend_from_slice(name);
                entries.push(Entry {
                    off,
                    len,
                    v4: Span::default(),
                    v6: Span::default(),
                });
                let seed = index.seed;
                index.insert_at(slot, h, id, |i| {
                    let e = entries.get(i as usize);
                    hash_bytes(seed, e.map_or(&[][..], |e| arena_get(arena, e.off, e.len)))
                });
                Some(id)
            }
        }
    }

    fn intern_addr(&mut self, addr: &IpAddr) -> Option<u32> {
        let Builder { rev, rev_index, .. } = self;
        let h = hash_addr(rev_index.seed, addr);
        match rev_index.find(h, |id| {
            rev.get(id as usize).is_some_and(|g| g.addr == *addr)
        }) {
            Ok(id) => Some(id),
            Err(slot) => {
                let slot = slot?;
                let id = u32::try_from(rev.len()).ok()?;
                rev.push(RevGroup {
                    addr: *addr,
                    names: Span::default(),
                });
                let seed = rev_index.seed;
                rev_index.insert_at(slot, h, id, |i| {
                    rev.get(i as usize).map_or(0, |g| hash_addr(seed, &g.addr))
                });
                Some(id)
            }
        }
    }
}

impl Table {
    /// Merges `files` (in priority order: earlier files win the PTR) into a
    /// table, dropping records already expired at `now`. With `domain`, every
    /// name without a dot is also entered as `name.domain`, and its PTR
    /// answer is the qualified form.
    pub(crate) fn build<'a, I>(files: I, domain: Option<&[u8]>, now: u64) -> Table
    where
        I: IntoIterator<Item = &'a Parsed>,
    {
        let files: Vec<&Parsed> = files.into_iter().collect();
        let total: usize = files.iter().map(|p| p.recs.len()).sum();
        let bytes: usize = files.iter().map(|p| p.names.len()).sum();
        let mut b = Builder {
            arena: Vec::with_capacity(bytes),
            entries: Vec::with_capacity(total),
            index: Index::with_capacity(total),
            rev: Vec::new(),
            rev_index: Index::with_capacity(total / 2),
        };
        // Forward records (key = name id) and PTR candidates (key = address
        // group, id = name id), both in file order.
        let mut fwd: Vec<Flat> = Vec::with_capacity(total);
        let mut rev: Vec<Flat> = Vec::new();
        let mut scratch: Vec<u8> = Vec::with_capacity(256);

        for p in &files {
            for r in &p.recs {
                if r.exp <= now {
                    continue;
                }
                let name = p.name(r);
                let Some(id) = b.intern_name(name) else {
                    continue;
                };
                let rec = Flat {
                    key: id,
                    id,
                    exp: r.exp,
                    addr: r.addr,
                };
                fwd.push(rec);
                let mut ptr_id = id;
                if let Some(dom) = domain {
                    if !name.contains(&b'.')
                        && name.len() + 1 + dom.len() <= super::syntax::MAX_NAME
                    {
                        scratch.clear();
                        scratch.extend_from_slice(name);
                        scratch.push(b'.');
                        scratch.extend_from_slice(dom);
                        if let Some(qid) = b.intern_name(&scratch) {
                            fwd.push(Flat {
                                key: qid,
                                id: qid,
                                ..rec
                            });
                            ptr_id = qid;
                        }
                    }
                }
                if r.canonical {
                    if let Some(gid) = b.intern_addr(&r.addr) {
                        rev.push(Flat {
                            key: gid,
                            id: ptr_id,
                            ..rec
                        });
                    }
                }
            }
        }
        drop(files);

        let mut t = Table::default();
        t.fill_forward(&fwd, &mut b.entries);
        drop(fwd);
        t.fill_reverse(&rev, &mut b.rev);
        drop(rev);

        b.arena.shrink_to_fit();
        b.entries.shrink_to_fit();
        b.rev.shrink_to_fit();
        t.arena = b.arena;
        t.entries = b.entries;
        t.index = b.index;
        t.rev = b.rev;
        t.rev_index = b.rev_index;
        t
    }

    /// Forward side: per name (records already in file order), dedupe
    /// addresses keeping the latest expiry and the earliest position, then
    /// order by family, expiry descending, file order.
    fn fill_forward(&mut self, fwd: &[Flat], entries: &mut [Entry]) {
        let (sorted, starts) = bucket(fwd, entries.len());
        let v4n = fwd.iter().filter(|f| f.addr.is_ipv4()).count();
        self.v4.reserve_exact(v4n);
        self.v4_exp.reserve_exact(v4n);
        self.v6.reserve_exact(fwd.len() - v4n);
        self.v6_exp.reserve_exact(fwd.len() - v4n);
        // (address, expiry, position) for names with several records.
        let mut group: Vec<(IpAddr, u64, u32)> = Vec::new();
        for (id, e) in entries.iter_mut().enumerate() {
            let (Some(&s), Some(&end)) = (starts.get(id), starts.get(id + 1)) else {
                continue;
            };
            let Some(recs) = sorted.get(s as usize..end as usize) else {
                continue;
            };
            group.clear();
            group.extend(
                recs.iter()
                    .filter_map(|&i| fwd.get(i as usize))
                    .enumerate()
                    .map(|(i, f)| (f.addr, f.exp, i as u32)),
            );
            if group.len() > 1 {
                group.sort_unstable_by(|a, b| addr_cmp(&a.0, &b.0).then(b.1.cmp(&a.1)));
                group.dedup_by(|later, first| {
                    if later.0 == first.0 {
                        first.2 = first.2.min(later.2);
                        true
                    } else {
                        false
                    }
                });
                group.sort_unstable_by_key(|g| (g.0.is_ipv6(), Reverse(g.1), g.2));
            }
            for &(addr, exp, _) in &group {
                if exp != NEVER {
                    self.next_expiry = self.next_expiry.min(exp);
                }
                match addr {
                    IpAddr::V4(a) => {
                        if e.v4.len == 0 {
                            e.v4.start = u32::try_from(self.v4.len()).unwrap_or(u32::MAX);
                        }
                        e.v4.len = e.v4.len.saturating_add(1);
                        self.v4.push(a);
                        self.v4_exp.push(exp);
                    }
                    IpAddr::V6(a) => {
                        if e.v6.len == 0 {
                            e.v6.start = u32::try_from(self.v6.len()).unwrap_or(u32::MAX);
                        }
                        e.v6.len = e.v6.len.saturating_add(1);
                        self.v6.push(a);
                        self.v6_exp.push(exp);
                    }
                }
            }
        }
    }

    /// Reverse side: per address, candidate names in file order; a lookup
    /// takes the first one not expired, so nothing after a never-expiring
    /// one is kept; a repeated name keeps its longest life.
    fn fill_reverse(&mut self, rev: &[Flat], groups: &mut [RevGroup]) {
        let (sorted, starts) = bucket(rev, groups.len());
        self.rev_names.reserve_exact(groups.len());
        for (gid, g) in groups.iter_mut().enumerate() {
            let (Some(&s), Some(&end)) = (starts.get(gid), starts.get(gid + 1)) else {
                continue;
            };
            let Some(cands) = sorted.get(s as usize..end as usize) else {
                continue;
            };
            let start = u32::try_from(self.rev_names.len()).unwrap_or(u32::MAX);
            let mut len = 0u32;
            for f in cands.iter().filter_map(|&i| rev.get(i as usize)) {
                let span = Span { start, len };
                if let Some(prev) = self
                    .rev_names
                    .get_mut(span.range())
                    .and_then(|s| s.iter_mut().find(|(id, _)| *id == f.id))
                {
                    prev.1 = prev.1.max(f.exp);
                } else {
                    self.rev_names.push((f.id, f.exp));
                    len = len.saturating_add(1);
                }
                if f.exp == NEVER {
                    break;
                }
            }
            g.names = Span { start, len };
        }
        self.rev_names.shrink_to_fit();
    }

    /// Addresses of `name` still valid at `now`, or `None` if the name is
    /// unknown or all its addresses have expired.
    pub(crate) fn lookup_name(&self, name: &[u8], now: u64) -> Option<(&[Ipv4Addr], &[Ipv6Addr])> {
        if self.entries.is_empty() {
            return None;
        }
        let h = hash_bytes(self.index.seed, name);
        let id = self
            .index
            .find(h, |id| {
                self.entries
                    .get(id as usize)
                    .is_some_and(|e| arena_get(&self.arena, e.off, e.len) == name)
            })
            .ok()?;
        let e = self.entries.get(id as usize)?;
        let v4 = live(&self.v4, &self.v4_exp, e.v4, now);
        let v6 = live(&self.v6, &self.v6_exp, e.v6, now);
        if v4.is_empty() && v6.is_empty() {
            None
        } else {
            Some((v4, v6))
        }
    }

    /// The PTR target for `addr` valid at `now`.
    pub(crate) fn lookup_addr(&self, addr: &IpAddr, now: u64) -> Option<&[u8]> {
        if self.rev.is_empty() {
            return None;
        }
        let h = hash_addr(self.rev_index.seed, addr);
        let gid = self
            .rev_index
            .find(h, |id| {
                self.rev.get(id as usize).is_some_and(|g| g.addr == *addr)
            })
            .ok()?;
        let g = self.rev.get(gid as usize)?;
        let cands = self.rev_names.get(g.names.range())?;
        let (id, _) = cands.iter().find(|(_, exp)| *exp > now)?;
        let e = self.entries.get(*id as usize)?;
        Some(arena_get(&self.arena, e.off, e.len))
    }

    /// Number of distinct names (domain-qualified aliases included).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Earliest finite expiry among the table's records, [`NEVER`] if none.
    pub(crate) fn next_expiry(&self) -> u64 {
        self.next_expiry
    }
}

/// The prefix of `addrs[span]` whose expiry is after `now` (expiries are
/// sorted descending within a span).
fn live<'a, T>(addrs: &'a [T], exps: &[u64], span: Span, now: u64) -> &'a [T] {
    let (Some(a), Some(e)) = (addrs.get(span.range()), exps.get(span.range())) else {
        return &[];
    };
    let n = e.partition_point(|&x| x > now);
    a.get(..n).unwrap_or(&[])
}
