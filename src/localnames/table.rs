//! The merged, read-only lookup table built from the files' [`Parsed`] records.
//!
//! [`Table::build`] merges all files of a layer into a handful of flat
//! vectors — no allocation per name, and no per-record vector during the build:
//!
//! - names are not copied: the table shares the files' record bytes
//!   ([`Parsed::shared`]) and refers to each distinct name where it first
//!   occurs ([`Names`]);
//! - each name's addresses are laid out in id order, so one `u32` end per
//!   array and name ([`Ends`]) locates them (a span starts where the
//!   previous name's ends);
//! - an open-addressing index of entry ids (4 bytes a slot, no power-of-two
//!   rounding; seeded hash, so colliding host names cannot be precomputed);
//! - addresses in per-family arrays, each name's span sorted by expiry
//!   descending, so the still-valid addresses at any time are a prefix of
//!   the span; the expiry arrays stay empty when nothing in the layer
//!   expires (hosts files);
//! - with `domain`, `name.domain` is not stored for a dotless `name`: a
//!   lookup derives it (an explicit `name.domain` entry holds the records of
//!   `name` merged into its own);
//! - the PTR side: one `(address, name id)` pair per canonical record,
//!   sorted by address, each address's candidates in priority order; a
//!   candidate's expiry is its name's forward record for that address.
//!
//! The build walks the files twice: once to intern names and count their
//! records, once to put each record straight into its span of arrays
//! allocated at their exact size; only a name's own few addresses are sorted.
//!
//! All arithmetic is on fixed-width integers with explicit little-endian
//! word loads for hashing: identical behaviour on 32-bit and big-endian
//! targets.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use std::rc::Rc;

use super::parsed::{name_at, Parsed, Rec};

pub(crate) use super::parsed::NEVER;

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

// ---------------------------------------------------------------------------
// the index

/// Open-addressing (linear probing) index from a name to its dense id; the
/// names live in the files' bytes and are compared through a closure. A
/// slot holds `id + 1` in its low bits (`0` meaning empty) and, in the bits
/// the ids do not need, a tag from the hash that spares most name
/// comparisons (a miss then rarely touches a name). Sized once, for an upper
/// bound of the names, at most 3/4 full; the first slot is the hash's high
/// half scaled to the size, so the size needs no power-of-two rounding.
#[derive(Debug, Default)]
struct Index {
    seed: u64,
    slots: Vec<u32>,
    /// The bits of a slot that hold `id + 1`.
    id_mask: u32,
}

impl Index {
    fn with_capacity(n: usize) -> Self {
        let id_bits = usize::BITS - n.saturating_add(1).leading_zeros();
        Index {
            seed: random_seed(),
            // The `+ 8` keeps a free slot even for tiny tables.
            slots: vec![0; n.saturating_mul(4) / 3 + 8],
            id_mask: u32::MAX
                .checked_shr(32u32.saturating_sub(id_bits))
                .unwrap_or(0),
        }
    }

    /// The tag bits of hash `h` (its low half; the slot comes from the high half).
    fn tag(&self, h: u64) -> u32 {
        h as u32 & !self.id_mask
    }

    /// The slot value for `id` with hash `h` (`None` if the id does not fit).
    fn slot_value(&self, h: u64, id: u32) -> Option<u32> {
        let id1 = id.checked_add(1).filter(|&v| v <= self.id_mask)?;
        Some(self.tag(h) | id1)
    }

    /// The id whose key satisfies `eq`, or `Err(Some(free slot))` to insert
    /// a key with hash `h` (`Err(None)`: no free slot, never in practice).
    fn find(&self, h: u64, mut eq: impl FnMut(u32) -> bool) -> Result<u32, Option<usize>> {
        let size = self.slots.len();
        let tag = self.tag(h);
        let mut i = (((h >> 32) * size as u64) >> 32) as usize;
        for _ in 0..size {
            let Some(&v) = self.slots.get(i) else {
                return Err(None);
            };
            if v == 0 {
                return Err(Some(i));
            }
            let id1 = v & self.id_mask;
            if v & !self.id_mask == tag && id1 > 0 && eq(id1 - 1) {
                return Ok(id1 - 1);
            }
            i += 1;
            if i == size {
                i = 0;
            }
        }
        Err(None)
    }
}

// ---------------------------------------------------------------------------
// the table

/// Name `i`: where its name is ([`Names::get`]) and where its addresses
/// end in each array; they start where name `i - 1`'s end (at 0 for the
/// first name). During the build, `v4` and `v6` first count records, then
/// serve as fill cursors.
#[derive(Clone, Copy, Debug, Default)]
struct Ends {
    name: u32,
    v4: u32,
    v6: u32,
}

/// The range of name `id` in the array whose ends `f` picks.
fn span(ends: &[Ends], id: usize, f: fn(&Ends) -> u32) -> Range<usize> {
    let start = id.checked_sub(1).and_then(|p| ends.get(p)).map_or(0, f) as usize;
    let end = ends.get(id).map_or(start, |e| f(e) as usize);
    start..end.max(start)
}

/// The record bytes of a layer's files, shared with their [`Parsed`], seen
/// as one byte string: a name is named by the offset of its length byte.
#[derive(Debug, Default)]
struct Names {
    files: Vec<Rc<Vec<u8>>>,
    /// Offset of each file's first byte.
    bases: Vec<u32>,
}

impl Names {
    fn new(files: &[&Parsed]) -> Names {
        let mut n = Names::default();
        let mut base = 0u32;
        for p in files {
            let data = p.shared();
            let Ok(len) = u32::try_from(data.len()) else {
                break;
            };
            n.bases.push(base);
            n.files.push(data);
            // Files past 4 GiB together are not referred to (never in practice).
            base = match base.checked_add(len) {
                Some(b) => b,
                None => break,
            };
        }
        n
    }

    /// The name whose length byte is at `at`.
    fn get(&self, at: u32) -> &[u8] {
        let Some(f) = self.bases.partition_point(|&b| b <= at).checked_sub(1) else {
            return &[];
        };
        match (self.files.get(f), self.bases.get(f)) {
            (Some(data), Some(&base)) => name_at(data, (at - base) as usize),
            _ => &[],
        }
    }
}

/// The merged lookup table (immutable once built).
#[derive(Debug)]
pub(crate) struct Table {
    names: Names,
    ends: Vec<Ends>,
    index: Index,
    v4: Vec<Ipv4Addr>,
    /// Expiry of each `v4` entry; empty when nothing in the table expires.
    v4_exp: Vec<u64>,
    v6: Vec<Ipv6Addr>,
    /// Expiry of each `v6` entry; empty when nothing in the table expires.
    v6_exp: Vec<u64>,
    /// `(address, name id)` of the canonical records, sorted by address,
    /// each address's candidates in priority order.
    rev4: Vec<(Ipv4Addr, u32)>,
    rev6: Vec<(Ipv6Addr, u32)>,
    /// Dotless names that answer as `name.domain` without an entry of their own.
    aliases: usize,
    /// Earliest finite expiry still in the table ([`NEVER`] if none).
    next_expiry: u64,
}

impl Default for Table {
    fn default() -> Self {
        Table {
            names: Names::default(),
            ends: Vec::new(),
            index: Index::default(),
            v4: Vec::new(),
            v4_exp: Vec::new(),
            v6: Vec::new(),
            v6_exp: Vec::new(),
            rev4: Vec::new(),
            rev6: Vec::new(),
            aliases: 0,
            next_expiry: NEVER,
        }
    }
}

/// The id of `name` in an index over `names`/`ends`, or the free slot for it.
fn find_in(index: &Index, names: &Names, ends: &[Ends], name: &[u8]) -> Result<u32, Option<usize>> {
    let h = hash_bytes(index.seed, name);
    index.find(h, |id| {
        ends.get(id as usize).map(|e| names.get(e.name)) == Some(name)
    })
}

/// Name interning and record counting during the build.
struct Builder {
    names: Names,
    /// Name id of each PTR candidate, in file order.
    rev_ids: Vec<u32>,
    ends: Vec<Ends>,
    index: Index,
    used: usize,
}

impl Builder {
    fn find(&self, name: &[u8]) -> Option<u32> {
        find_in(&self.index, &self.names, &self.ends, name).ok()
    }

    /// The id of `name` (its length byte at `at`), entered if new.
    fn intern(&mut self, name: &[u8], at: u32) -> Option<u32> {
        let slot = match find_in(&self.index, &self.names, &self.ends, name) {
            Ok(id) => return Some(id),
            Err(slot) => slot?,
        };
        // One slot always stays free, so a probe always ends.
        if self.used + 1 >= self.index.slots.len() {
            return None;
        }
        let id = u32::try_from(self.ends.len()).ok()?;
        let v = self
            .index
            .slot_value(hash_bytes(self.index.seed, name), id)?;
        *self.index.slots.get_mut(slot)? = v;
        self.used += 1;
        self.ends.push(Ends {
            name: at,
            v4: 0,
            v6: 0,
        });
        Some(id)
    }

    /// One walk over the records: interns names and counts their records
    /// (`fill` false), or puts every record in place, also under its
    /// explicit `name.domain`, and collects the PTR candidates (`fill` true,
    /// after [`Builder::layout`]).
    fn walk(
        &mut self,
        t: &mut Table,
        files: &[&Parsed],
        domain: Option<&[u8]>,
        now: u64,
        fill: bool,
    ) {
        let mut scratch: Vec<u8> = Vec::with_capacity(256);
        for (fi, p) in files.iter().enumerate() {
            // Files past the shared bytes' reach (never in practice) are skipped.
            let Some(base) = self.names.bases.get(fi).copied() else {
                break;
            };
            let mut it = p.iter();
            while let Some((r, name, at)) = it.next_at() {
                if r.exp <= now {
                    continue;
                }
                let found = if fill {
                    self.find(name)
                } else {
                    u32::try_from(at)
                        .ok()
                        .and_then(|a| a.checked_add(base))
                        .and_then(|at| self.intern(name, at))
                };
                let Some(id) = found else {
                    continue;
                };
                self.place(t, id, &r, fill);
                if !fill {
                    continue;
                }
                if let Some(qid) = qualified(name, domain, &mut scratch).and_then(|q| self.find(q))
                {
                    self.place(t, qid, &r, true);
                }
                if r.canonical {
                    // The candidate's number for now (see `settle_rev`).
                    let seq = u32::try_from(self.rev_ids.len()).unwrap_or(u32::MAX);
                    self.rev_ids.push(id);
                    match r.addr {
                        IpAddr::V4(a) => t.rev4.push((a, seq)),
                        IpAddr::V6(a) => t.rev6.push((a, seq)),
                    }
                }
            }
        }
    }

    /// Counts or places one forward record of name `id`.
    fn place(&mut self, t: &mut Table, id: u32, r: &Rec, fill: bool) {
        let Some(e) = self.ends.get_mut(id as usize) else {
            return;
        };
        match r.addr {
            IpAddr::V4(a) => {
                if fill {
                    put(&mut t.v4, &mut t.v4_exp, e.v4, a, r.exp);
                }
                e.v4 = e.v4.saturating_add(1);
            }
            IpAddr::V6(a) => {
                if fill {
                    put(&mut t.v6, &mut t.v6_exp, e.v6, a, r.exp);
                }
                e.v6 = e.v6.saturating_add(1);
            }
        }
    }

    /// After the counting walk: a dotless name's records also count for its
    /// explicit `name.domain`; returns how many dotless names have none
    /// (they answer as `name.domain` through a derived lookup).
    fn merge_counts(&mut self, domain: Option<&[u8]>) -> usize {
        let mut aliases = 0;
        let mut scratch = Vec::new();
        for id in 0..self.ends.len() {
            let name = self
                .ends
                .get(id)
                .map_or(&[][..], |e| self.names.get(e.name));
            let Some(q) = qualified(name, domain, &mut scratch) else {
                continue;
            };
            match (self.find(q), self.ends.get(id).copied()) {
                (Some(qid), Some(c)) => {
                    if let Some(e) = self.ends.get_mut(qid as usize) {
                        e.v4 = e.v4.saturating_add(c.v4);
                        e.v6 = e.v6.saturating_add(c.v6);
                    }
                }
                _ => aliases += 1,
            }
        }
        aliases
    }

    /// Turns the counts into fill cursors (prefix sums) and allocates the
    /// arrays at their exact size (the expiries only if any record expires).
    fn layout(&mut self, t: &mut Table, has_exp: bool, canon: (usize, usize)) {
        let (mut n4, mut n6) = (0u32, 0u32);
        for e in self.ends.iter_mut() {
            let (c4, c6) = (e.v4, e.v6);
            e.v4 = n4;
            e.v6 = n6;
            n4 = n4.saturating_add(c4);
            n6 = n6.saturating_add(c6);
        }
        t.v4 = vec![Ipv4Addr::UNSPECIFIED; n4 as usize];
        t.v6 = vec![Ipv6Addr::UNSPECIFIED; n6 as usize];
        if has_exp {
            t.v4_exp = vec![0; n4 as usize];
            t.v6_exp = vec![0; n6 as usize];
        }
        t.rev4 = Vec::with_capacity(canon.0);
        t.rev6 = Vec::with_capacity(canon.1);
        self.rev_ids = Vec::with_capacity(canon.0.saturating_add(canon.1));
    }
}

/// Puts one address (and its expiry, if expiries are kept) at `at`.
fn put<T>(addrs: &mut [T], exps: &mut [u64], at: u32, a: T, exp: u64) {
    if let Some(s) = addrs.get_mut(at as usize) {
        *s = a;
    }
    if let Some(x) = exps.get_mut(at as usize) {
        *x = exp;
    }
}

impl Table {
    /// Merges `files` (in priority order: earlier files win the PTR) into a
    /// table, dropping records already expired at `now`. With `domain`, every
    /// name without a dot also answers as `name.domain`, and its PTR answer
    /// is the qualified form.
    ///
    /// No per-record vector is built: a first walk over the files interns the
    /// names and counts each one's records, the address arrays are then
    /// allocated at their exact size and a second walk puts every record in
    /// its place (file order within each name), and a final sweep dedupes
    /// and orders each name's records in place.
    pub(crate) fn build<'a, I>(files: I, domain: Option<&[u8]>, now: u64) -> Table
    where
        I: IntoIterator<Item = &'a Parsed>,
    {
        let files: Vec<&Parsed> = files.into_iter().collect();
        // Upper bounds: reserved, not touched beyond what is used, then given back.
        let (mut names, mut c4, mut c6, mut has_exp) = (0usize, 0, 0, false);
        for (r, _) in files.iter().flat_map(|p| p.iter()) {
            if r.exp <= now {
                continue;
            }
            names += 1;
            has_exp |= r.exp != NEVER;
            if r.canonical {
                if r.addr.is_ipv4() {
                    c4 += 1;
                } else {
                    c6 += 1;
                }
            }
        }
        let mut b = Builder {
            names: Names::new(&files),
            rev_ids: Vec::new(),
            ends: Vec::with_capacity(names),
            index: Index::with_capacity(names),
            used: 0,
        };
        let mut t = Table::default();
        b.walk(&mut t, &files, domain, now, false);
        t.aliases = b.merge_counts(domain);
        b.layout(&mut t, has_exp, (c4, c6));
        b.walk(&mut t, &files, domain, now, true);
        drop(files);
        t.settle_forward(&mut b.ends);
        b.ends.shrink_to_fit();
        t.names = b.names;
        t.ends = b.ends;
        t.index = b.index;

        // PTR candidates: nothing after a never-expiring one can answer.
        let ids = std::mem::take(&mut b.rev_ids);
        let mut rev4 = std::mem::take(&mut t.rev4);
        settle_rev(&mut rev4, &ids, |a, id| {
            t.exp_of(id, &IpAddr::V4(a)) == NEVER
        });
        let mut rev6 = std::mem::take(&mut t.rev6);
        settle_rev(&mut rev6, &ids, |a, id| {
            t.exp_of(id, &IpAddr::V6(a)) == NEVER
        });
        t.rev4 = rev4;
        t.rev6 = rev6;
        t
    }

    /// Forward side: per name (records in file order), dedupe addresses
    /// keeping the latest expiry and the earliest position, then order by
    /// expiry descending, file order; spans are packed down as they shrink.
    fn settle_forward(&mut self, ends: &mut [Ends]) {
        let mut g = Vec::new();
        let (mut w4, mut w6, mut p4, mut p6) = (0usize, 0usize, 0usize, 0usize);
        let v4: Conv<Ipv4Addr> = (|a| u128::from(u32::from(a)), |x| Ipv4Addr::from(x as u32));
        let v6: Conv<Ipv6Addr> = (u128::from, Ipv6Addr::from);
        for e in ends.iter_mut() {
            // After the fill, each cursor is its name's end.
            let (o4, o6) = (e.v4 as usize, e.v6 as usize);
            e.v4 = settle_span(&mut self.v4, &mut self.v4_exp, p4..o4, &mut w4, &mut g, v4);
            e.v6 = settle_span(&mut self.v6, &mut self.v6_exp, p6..o6, &mut w6, &mut g, v6);
            (p4, p6) = (o4, o6);
        }
        self.v4.truncate(w4);
        self.v4_exp.truncate(w4);
        self.v6.truncate(w6);
        self.v6_exp.truncate(w6);
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

    fn span(&self, id: usize, f: fn(&Ends) -> u32) -> Range<usize> {
        span(&self.ends, id, f)
    }

    fn name(&self, id: u32) -> &[u8] {
        self.ends
            .get(id as usize)
            .map_or(&[], |e| self.names.get(e.name))
    }

    fn find(&self, name: &[u8]) -> Option<u32> {
        if self.ends.is_empty() {
            return None;
        }
        find_in(&self.index, &self.names, &self.ends, name).ok()
    }

    /// The expiry of name `id`'s record for `addr` (0 if it has none).
    fn exp_of(&self, id: u32, addr: &IpAddr) -> u64 {
        let id = id as usize;
        match addr {
            IpAddr::V4(a) => exp_in(&self.v4, &self.v4_exp, self.span(id, |e| e.v4), a),
            IpAddr::V6(a) => exp_in(&self.v6, &self.v6_exp, self.span(id, |e| e.v6), a),
        }
    }

    /// Addresses of `name` still valid at `now`, or `None` if the name is
    /// unknown or all its addresses have expired. With `domain`,
    /// `name.domain` without an entry of its own answers for dotless `name`.
    pub(crate) fn lookup_name(
        &self,
        name: &[u8],
        domain: Option<&[u8]>,
        now: u64,
    ) -> Option<(&[Ipv4Addr], &[Ipv6Addr])> {
        let id = self
            .find(name)
            .or_else(|| self.find(unqualified(name, domain)?))? as usize;
        let v4 = live(&self.v4, &self.v4_exp, self.span(id, |e| e.v4), now);
        let v6 = live(&self.v6, &self.v6_exp, self.span(id, |e| e.v6), now);
        if v4.is_empty() && v6.is_empty() {
            None
        } else {
            Some((v4, v6))
        }
    }

    /// The PTR target for `addr` valid at `now` (qualified with `domain`
    /// when the name has no dot).
    pub(crate) fn lookup_addr(
        &self,
        addr: &IpAddr,
        domain: Option<&[u8]>,
        now: u64,
    ) -> Option<Cow<'_, [u8]>> {
        let live = |id: u32| self.exp_of(id, addr) > now;
        let id = match addr {
            IpAddr::V4(a) => first_live(&self.rev4, *a, live),
            IpAddr::V6(a) => first_live(&self.rev6, *a, live),
        }?;
        let name = self.name(id);
        let mut q = Vec::new();
        Some(match qualified(name, domain, &mut q) {
            Some(_) => Cow::Owned(q),
            None => Cow::Borrowed(name),
        })
    }

    /// Number of distinct names (domain-qualified aliases included).
    pub(crate) fn len(&self) -> usize {
        self.ends.len() + self.aliases
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

/// The dotless `name` of a query `name.domain`, the inverse of [`qualified`].
fn unqualified<'q>(q: &'q [u8], domain: Option<&[u8]>) -> Option<&'q [u8]> {
    let name = q.strip_suffix(domain?)?.strip_suffix(b".")?;
    (!name.is_empty() && !name.contains(&b'.')).then_some(name)
}

/// The expiry of `a` in `addrs[r]` ([`NEVER`] if expiries are not kept, 0 if absent).
fn exp_in<T: PartialEq>(addrs: &[T], exps: &[u64], r: Range<usize>, a: &T) -> u64 {
    let start = r.start;
    match addrs.get(r).and_then(|s| s.iter().position(|x| x == a)) {
        None => 0,
        Some(_) if exps.is_empty() => NEVER,
        Some(i) => exps.get(start + i).copied().unwrap_or(0),
    }
}

/// The first candidate name for `a` that is `live`.
fn first_live<A: Ord + Copy>(rev: &[(A, u32)], a: A, live: impl Fn(u32) -> bool) -> Option<u32> {
    let from = rev.partition_point(|x| x.0 < a);
    rev.get(from..)?
        .iter()
        .take_while(|x| x.0 == a)
        .map(|x| x.1)
        .find(|&id| live(id))
}

/// Sorts PTR candidates, `(address, candidate number)` on entry, by address
/// then number (priority order), turns numbers into name ids (`ids`), and
/// drops a candidate repeating the one before it and everything after a
/// candidate that `never` expires. The numbers make the in-place unstable
/// sort keep file order; a stable sort would need a buffer as large.
fn settle_rev<A: Ord + Copy>(rev: &mut Vec<(A, u32)>, ids: &[u32], never: impl Fn(A, u32) -> bool) {
    sort_by(rev, |x, y| x < y);
    for x in rev.iter_mut() {
        x.1 = ids.get(x.1 as usize).copied().unwrap_or(u32::MAX);
    }
    let (mut w, mut closed) = (0usize, false);
    for i in 0..rev.len() {
        let Some(&(a, id)) = rev.get(i) else { break };
        if let Some(&(pa, pid)) = w.checked_sub(1).and_then(|p| rev.get(p)) {
            if pa == a && (closed || pid == id) {
                continue;
            }
        }
        if let Some(s) = rev.get_mut(w) {
            *s = (a, id);
        }
        w += 1;
        closed = never(a, id);
    }
    rev.truncate(w);
    rev.shrink_to_fit();
}

/// Dedupes and orders one name's addresses of one family (`r` of
/// `addrs`/`exps`, in file order): per address the latest expiry and the
/// earliest position, ordered by expiry descending, then position. The
/// result is moved down to `*w` (which never passes `r.start`) and the new
/// end returned. `exps` is empty when no expiry is kept. Addresses go
/// through `u128` (`to`, `from`) so the sorting is compiled once for both
/// families.
fn settle_span<T: Copy>(
    addrs: &mut [T],
    exps: &mut [u64],
    r: Range<usize>,
    w: &mut usize,
    group: &mut Vec<(u128, u64, u32)>,
    (to, from): Conv<T>,
) -> u32 {
    let Some(a) = addrs.get_mut(r.clone()) else {
        return u32::try_from(*w).unwrap_or(u32::MAX);
    };
    let mut n = a.len();
    if n > 1 {
        group.clear();
        group.extend(a.iter().enumerate().map(|(i, &x)| {
            (
                to(x),
                exps.get(r.start + i).copied().unwrap_or(NEVER),
                i as u32,
            )
        }));
        order_group(group);
        for (k, &(x, y, _)) in group.iter().enumerate() {
            if let Some(s) = a.get_mut(k) {
                *s = from(x);
            }
            if let Some(s) = exps.get_mut(r.start + k) {
                *s = y;
            }
        }
        n = group.len();
    }
    addrs.copy_within(r.start..r.start + n, *w);
    if !exps.is_empty() {
        exps.copy_within(r.start..r.start + n, *w);
    }
    *w += n;
    u32::try_from(*w).unwrap_or(u32::MAX)
}

/// An address type's conversions to and from `u128`.
type Conv<T> = (fn(T) -> u128, fn(u128) -> T);

/// The ordering of [`settle_span`] on `(address, expiry, position)` triples.
fn order_group(group: &mut Vec<(u128, u64, u32)>) {
    sort_by(group, |x, y| (x.0, Reverse(x.1)) < (y.0, Reverse(y.1)));
    group.dedup_by(|later, first| {
        if later.0 == first.0 {
            first.2 = first.2.min(later.2);
            true
        } else {
            false
        }
    });
    sort_by(group, |x, y| (Reverse(x.1), x.2) < (Reverse(y.1), y.2));
}

/// Sorts `v` (unstably) by `lt`. The build sorts arrays of several types;
/// they share one heapsort ([`heap_sort`]) rather than compiling the
/// standard library's sort once per type and ordering, which the binary's
/// size budget cannot afford. Only table builds sort, never a lookup.
pub(crate) fn sort_by<T>(v: &mut [T], lt: fn(&T, &T) -> bool) {
    heap_sort(v.len(), &mut |i, j, swap| {
        if swap {
            if i < v.len() && j < v.len() {
                v.swap(i, j);
            }
            false
        } else {
            matches!((v.get(i), v.get(j)), (Some(a), Some(b)) if lt(a, b))
        }
    });
}

/// Heapsort of `n` items seen through `op(i, j, swap)`: with `swap` false,
/// whether item `i` sorts before item `j`; with `swap` true, exchanges them.
#[inline(never)]
fn heap_sort(n: usize, op: &mut dyn FnMut(usize, usize, bool) -> bool) {
    for i in (0..n / 2).rev() {
        sift_down(op, i, n);
    }
    for end in (1..n).rev() {
        op(0, end, true);
        sift_down(op, 0, end);
    }
}

/// Moves item `root` down the max-heap formed by items `..end`.
fn sift_down(op: &mut dyn FnMut(usize, usize, bool) -> bool, mut root: usize, end: usize) {
    loop {
        let child = 2 * root + 1;
        if child >= end {
            break;
        }
        let child = if child + 1 < end && op(child, child + 1, false) {
            child + 1
        } else {
            child
        };
        if !op(root, child, false) {
            break;
        }
        op(root, child, true);
        root = child;
    }
}

/// The prefix of `addrs[r]` whose expiry is after `now` (expiries are
/// sorted descending within a span; none kept means none expires).
fn live<'a, T>(addrs: &'a [T], exps: &[u64], r: Range<usize>, now: u64) -> &'a [T] {
    let Some(a) = addrs.get(r.clone()) else {
        return &[];
    };
    if exps.is_empty() {
        return a;
    }
    let n = exps.get(r).map_or(0, |e| e.partition_point(|&x| x > now));
    a.get(..n).unwrap_or(&[])
}

#[cfg(test)]
mod sort_tests {
    use super::sort_by;

    /// The shared heapsort orders like the standard library's sort, for
    /// every length up to a few heap levels, with and without repeats.
    #[test]
    fn sort_by_matches_the_standard_sort() {
        let mut x = 0x2545_f491_u32;
        for len in 0..70usize {
            for modulus in [3u32, 1000] {
                let v: Vec<(u32, u32)> = (0..len)
                    .map(|i| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        (x % modulus, i as u32)
                    })
                    .collect();
                let mut want = v.clone();
                want.sort_unstable();
                let mut got = v;
                sort_by(&mut got, |a, b| a < b);
                assert_eq!(got, want, "len {len}");
            }
        }
    }
}
