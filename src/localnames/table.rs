//! The merged, read-only lookup table built from the files' [`Parsed`] records.
//!
//! [`Table::build`] merges all files of a layer into a handful of flat
//! vectors — no allocation per name, and no per-record vector during the build:
//!
//! - every distinct name once in a byte arena, found through an
//!   open-addressing index of `(hash tag, entry id)` pairs (seeded hash, so
//!   colliding host names cannot be precomputed);
//! - addresses in per-family arrays, each name owning a contiguous span
//!   sorted by expiry descending, so the still-valid addresses at any time
//!   are a prefix of the span (one binary search, borrowed slices out);
//! - the PTR side the same way: an index from address to a group owning a
//!   span of candidate names in priority order.
//!
//! The build walks the files twice: once to intern names and addresses and
//! count their records, once to put each record straight into its span of
//! arrays allocated at their exact size (ids are assigned in file order, so
//! each span is in file order); only a name's own few addresses are sorted.
//!
//! All arithmetic is on fixed-width integers with explicit little-endian
//! word loads for hashing: identical behaviour on 32-bit and big-endian
//! targets.

use std::cmp::Reverse;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::parsed::Parsed;

pub(crate) use super::parsed::NEVER;

fn arena_get(arena: &[u8], off: u32, len: u8) -> &[u8] {
    let start = off as usize;
    arena
        .get(start..start.saturating_add(usize::from(len)))
        .unwrap_or(&[])
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
/// Slots hold `(hash tag, id + 1)`, `0` meaning empty; load stays below 3/4
/// (the 32-bit tag spares most name comparisons on the longer probes).
#[derive(Debug, Default)]
struct Index {
    seed: u64,
    slots: Vec<(u32, u32)>,
    used: usize,
}

impl Index {
    fn with_capacity(n: usize) -> Self {
        // Room for `n` below the 3/4 growth point.
        let size = (n.saturating_mul(4) / 3 + 1)
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
    /// table when 3/4 full (`hash_of` recomputes the hash of an id).
    fn insert_at(&mut self, slot: usize, h: u64, id: u32, mut hash_of: impl FnMut(u32) -> u64) {
        if let Some(s) = self.slots.get_mut(slot) {
            *s = ((h >> 32) as u32, id.saturating_add(1));
            self.used += 1;
        }
        if self.used.saturating_mul(4) < self.slots.len().saturating_mul(3) {
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
    /// One walk over the records: interns names and addresses; counts each
    /// one's records (`fill` false) or puts them in place (`fill` true, after
    /// [`Table::layout`]; the same ids come back, as nothing new is interned).
    fn walk(
        &mut self,
        t: &mut Table,
        files: &[&Parsed],
        domain: Option<&[u8]>,
        now: u64,
        fill: bool,
    ) {
        let mut scratch: Vec<u8> = Vec::with_capacity(256);
        for (r, name) in files.iter().flat_map(|p| p.iter()) {
            if r.exp <= now {
                continue;
            }
            let Some(id) = self.intern_name(name) else {
                continue;
            };
            self.place(t, id, r.addr, r.exp, fill);
            let mut ptr_id = id;
            if let Some(q) = qualified(name, domain, &mut scratch) {
                if let Some(qid) = self.intern_name(q) {
                    self.place(t, qid, r.addr, r.exp, fill);
                    ptr_id = qid;
                }
            }
            if r.canonical {
                if let Some(g) = self
                    .intern_addr(&r.addr)
                    .and_then(|gid| self.rev.get_mut(gid as usize))
                {
                    if fill {
                        let at = g.names.start.saturating_add(g.names.len) as usize;
                        if let Some(slot) = t.rev_names.get_mut(at) {
                            *slot = (ptr_id, r.exp);
                        }
                    }
                    g.names.len = g.names.len.saturating_add(1);
                }
            }
        }
    }

    /// Counts or places one forward record of name `id`.
    fn place(&mut self, t: &mut Table, id: u32, addr: IpAddr, exp: u64, fill: bool) {
        let Some(e) = self.entries.get_mut(id as usize) else {
            return;
        };
        match addr {
            IpAddr::V4(a) => {
                if fill {
                    let at = e.v4.start.saturating_add(e.v4.len) as usize;
                    if let (Some(s), Some(x)) = (t.v4.get_mut(at), t.v4_exp.get_mut(at)) {
                        (*s, *x) = (a, exp);
                    }
                }
                e.v4.len = e.v4.len.saturating_add(1);
            }
            IpAddr::V6(a) => {
                if fill {
                    let at = e.v6.start.saturating_add(e.v6.len) as usize;
                    if let (Some(s), Some(x)) = (t.v6.get_mut(at), t.v6_exp.get_mut(at)) {
                        (*s, *x) = (a, exp);
                    }
                }
                e.v6.len = e.v6.len.saturating_add(1);
            }
        }
    }
}

impl Table {
    /// Merges `files` (in priority order: earlier files win the PTR) into a
    /// table, dropping records already expired at `now`. With `domain`, every
    /// name without a dot is also entered as `name.domain`, and its PTR
    /// answer is the qualified form.
    ///
    /// No per-record vector is built: a first walk over the files interns the
    /// names and addresses and counts each one's records, the address arrays
    /// are then allocated at their exact size and a second walk puts every
    /// record in its place (file order within each name), and a final sweep
    /// dedupes and orders each name's records in place.
    pub(crate) fn build<'a, I>(files: I, domain: Option<&[u8]>, now: u64) -> Table
    where
        I: IntoIterator<Item = &'a Parsed>,
    {
        let files: Vec<&Parsed> = files.into_iter().collect();
        // Upper bounds: reserved, not touched, beyond what is used, then given back.
        let (mut names, mut bytes, mut canon) = (0usize, 0usize, 0usize);
        let mut scratch: Vec<u8> = Vec::with_capacity(256);
        for (r, name) in files.iter().flat_map(|p| p.iter()) {
            if r.exp <= now {
                continue;
            }
            names += 1;
            bytes += name.len();
            if let Some(q) = qualified(name, domain, &mut scratch) {
                names += 1;
                bytes += q.len();
            }
            canon += usize::from(r.canonical);
        }
        let mut b = Builder {
            arena: Vec::with_capacity(bytes),
            entries: Vec::with_capacity(names),
            index: Index::with_capacity(names),
            rev: Vec::with_capacity(canon),
            rev_index: Index::with_capacity(canon),
        };
        let mut t = Table::default();
        b.walk(&mut t, &files, domain, now, false);
        t.layout(&mut b.entries, &mut b.rev);
        b.walk(&mut t, &files, domain, now, true);
        drop(files);
        t.settle_forward(&mut b.entries);
        t.settle_reverse(&mut b.rev);

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

    /// Turns the record counts of the first walk into spans (prefix sums,
    /// lengths reset to 0 as fill cursors) and allocates the arrays at their
    /// exact size.
    fn layout(&mut self, entries: &mut [Entry], groups: &mut [RevGroup]) {
        let (mut n4, mut n6, mut nr) = (0u32, 0u32, 0u32);
        for e in entries.iter_mut() {
            let (c4, c6) = (e.v4.len, e.v6.len);
            e.v4 = Span { start: n4, len: 0 };
            e.v6 = Span { start: n6, len: 0 };
            n4 = n4.saturating_add(c4);
            n6 = n6.saturating_add(c6);
        }
        for g in groups.iter_mut() {
            let len = g.names.len;
            g.names = Span { start: nr, len: 0 };
            nr = nr.saturating_add(len);
        }
        self.v4 = vec![Ipv4Addr::UNSPECIFIED; n4 as usize];
        self.v4_exp = vec![0; n4 as usize];
        self.v6 = vec![Ipv6Addr::UNSPECIFIED; n6 as usize];
        self.v6_exp = vec![0; n6 as usize];
        self.rev_names = vec![(0, 0); nr as usize];
    }

    /// Forward side: per name (records in file order), dedupe addresses
    /// keeping the latest expiry and the earliest position, then order by
    /// expiry descending, file order; spans are packed down as they shrink.
    fn settle_forward(&mut self, entries: &mut [Entry]) {
        let mut g = Vec::new();
        let (mut w4, mut w6) = (0usize, 0usize);
        let v4: Conv<Ipv4Addr> = (|a| u128::from(u32::from(a)), |x| Ipv4Addr::from(x as u32));
        let v6: Conv<Ipv6Addr> = (u128::from, Ipv6Addr::from);
        for e in entries.iter_mut() {
            e.v4 = settle_span(&mut self.v4, &mut self.v4_exp, e.v4, &mut w4, &mut g, v4);
            e.v6 = settle_span(&mut self.v6, &mut self.v6_exp, e.v6, &mut w6, &mut g, v6);
        }
        self.v4.truncate(w4);
        self.v4_exp.truncate(w4);
        self.v6_exp.truncate(w6);
        self.v6.truncate(w6);
        self.next_expiry = self
            .v4_exp
            .iter()
            .chain(&self.v6_exp)
            .copied()
            .filter(|&e| e != NEVER)
            .min()
            .unwrap_or(NEVER);
        self.v4.shrink_to_fit();
        self.v4_exp.shrink_to_fit();
        self.v6.shrink_to_fit();
        self.v6_exp.shrink_to_fit();
    }

    /// Reverse side: per address, candidate names in file order; a lookup
    /// takes the first one not expired, so nothing after a never-expiring
    /// one is kept; a repeated name keeps its longest life.
    fn settle_reverse(&mut self, groups: &mut [RevGroup]) {
        let mut w = 0usize;
        for g in groups.iter_mut() {
            let r = g.names.range();
            let Some(c) = self.rev_names.get_mut(r.clone()) else {
                g.names = Span::default();
                continue;
            };
            let mut k = 0usize;
            for i in 0..c.len() {
                let Some(&(id, exp)) = c.get(i) else { break };
                let kept = c.get_mut(..k).unwrap_or(&mut []);
                if let Some(prev) = kept.iter_mut().find(|(p, _)| *p == id) {
                    prev.1 = prev.1.max(exp);
                } else if let Some(slot) = c.get_mut(k) {
                    *slot = (id, exp);
                    k += 1;
                }
                if exp == NEVER {
                    break;
                }
            }
            // `w` never passes the span's start: spans were laid out in order.
            self.rev_names.copy_within(r.start..r.start + k, w);
            g.names = Span {
                start: u32::try_from(w).unwrap_or(u32::MAX),
                len: u32::try_from(k).unwrap_or(u32::MAX),
            };
            w += k;
        }
        self.rev_names.truncate(w);
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

/// `name.domain` in `scratch` if `name` has no dot and the result is short enough.
fn qualified<'s>(name: &[u8], domain: Option<&[u8]>, scratch: &'s mut Vec<u8>) -> Option<&'s [u8]> {
    let dom = domain?;
    if name.contains(&b'.') || name.len() + 1 + dom.len() > super::syntax::MAX_NAME {
        return None;
    }
    scratch.clear();
    scratch.extend_from_slice(name);
    scratch.push(b'.');
    scratch.extend_from_slice(dom);
    Some(scratch)
}

/// Dedupes and orders one name's addresses of one family (`span` of
/// `addrs`/`exps`, in file order): per address the latest expiry and the
/// earliest position, ordered by expiry descending, then position. The
/// result is moved down to `*w` (which never passes the span's start) and
/// its span returned. Addresses go through `u128` (`to`, `from`) so the
/// sorting is compiled once for both families.
fn settle_span<T: Copy>(
    addrs: &mut [T],
    exps: &mut [u64],
    span: Span,
    w: &mut usize,
    group: &mut Vec<(u128, u64, u32)>,
    (to, from): Conv<T>,
) -> Span {
    let r = span.range();
    let (Some(a), Some(e)) = (addrs.get_mut(r.clone()), exps.get_mut(r.clone())) else {
        return Span::default();
    };
    let mut n = a.len();
    if n > 1 {
        group.clear();
        group.extend(
            a.iter()
                .zip(e.iter())
                .enumerate()
                .map(|(i, (&x, &y))| (to(x), y, i as u32)),
        );
        order_group(group);
        for ((sa, se), &(x, y, _)) in a.iter_mut().zip(e.iter_mut()).zip(group.iter()) {
            *sa = from(x);
            *se = y;
        }
        n = group.len();
    }
    addrs.copy_within(r.start..r.start + n, *w);
    exps.copy_within(r.start..r.start + n, *w);
    let out = Span {
        start: u32::try_from(*w).unwrap_or(u32::MAX),
        len: u32::try_from(n).unwrap_or(u32::MAX),
    };
    *w += n;
    out
}

/// An address type's conversions to and from `u128`.
type Conv<T> = (fn(T) -> u128, fn(u128) -> T);

/// The ordering of [`settle_span`] on `(address, expiry, position)` triples.
fn order_group(group: &mut Vec<(u128, u64, u32)>) {
    group.sort_unstable_by(|x, y| x.0.cmp(&y.0).then(y.1.cmp(&x.1)));
    group.dedup_by(|later, first| {
        if later.0 == first.0 {
            first.2 = first.2.min(later.2);
            true
        } else {
            false
        }
    });
    group.sort_unstable_by_key(|g| (Reverse(g.1), g.2));
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
