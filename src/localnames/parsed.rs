//! What one hosts or lease file was parsed into: its records packed back to back in one byte vector.
//!
//! Every file's records are kept between reads (a changed file is re-read
//! alone and the layer's table rebuilt from what every file holds), so they
//! are stored as compactly as they can be read back: per record one flag
//! byte, the address (4 or 16 bytes), the expiry (8 bytes, only when there is
//! one), the name length and the lowercased name. A hosts line
//! `172.16.0.5 host5` costs 11 bytes instead of a 40-byte struct plus the name.
//! A record with the same address as the one before it (the other names of
//! a hosts line) leaves the address out.
//! Records are read back in file order by [`Parsed::iter`]; the rare
//! rewrites (odhcpd lease times, ISC blocks replaced later in the file)
//! re-encode the vector once at the end of the parse.
//!
//! The bytes are reference-counted: once a file is parsed, the layer's table
//! holds a second handle on them and refers to its names in place (the
//! names are stored once, not copied into the table).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::rc::Rc;

/// Expiry value meaning "never expires" (hosts files, infinite leases).
pub(crate) const NEVER: u64 = u64::MAX;

/// Flag bit: the address is IPv6 (16 bytes), else IPv4 (4 bytes).
const F_V6: u8 = 1;
/// Flag bit: the name is canonical for its address (may be a PTR answer).
const F_CANON: u8 = 2;
/// Flag bit: an 8-byte little-endian expiry follows the address (else [`NEVER`]).
const F_EXP: u8 = 4;
/// Flag bit: the address is the previous record's and is not stored again.
const F_SAME: u8 = 8;

/// One record read back from a [`Parsed`] (the name is handed out beside it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rec {
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
    /// Packed records, back to back (see the module documentation); only
    /// changed while the file is parsed (then nothing else holds them).
    data: Rc<Vec<u8>>,
    /// Number of records in `data`.
    count: u32,
    /// Malformed lines / entries skipped (already logged, capped).
    pub bad: u32,
    /// The address of the last record appended.
    last: Option<IpAddr>,
}

impl Parsed {
    /// Number of records.
    pub(crate) fn len(&self) -> usize {
        self.count as usize
    }

    /// True if the file gave no record.
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Validates `raw` and records it for `addr`. Returns false if the name is invalid.
    pub(crate) fn push(&mut self, raw: &[u8], addr: IpAddr, exp: u64, canonical: bool) -> bool {
        let name = raw.strip_suffix(b".").unwrap_or(raw);
        if !super::syntax::valid_name(name) {
            return false;
        }
        let Ok(count) = u32::try_from(self.len() + 1) else {
            return false;
        };
        let Some(data) = Rc::get_mut(&mut self.data) else {
            return false;
        };
        append(
            data,
            Rec {
                canonical,
                addr,
                exp,
            },
            name,
            true,
            self.last,
        );
        self.last = Some(addr);
        self.count = count;
        true
    }

    /// A second handle on the record bytes (for the table, which refers to
    /// names in them).
    pub(crate) fn shared(&self) -> Rc<Vec<u8>> {
        Rc::clone(&self.data)
    }

    /// The records in file order, each with its (lowercased) name.
    pub(crate) fn iter(&self) -> Iter<'_> {
        Iter::new(&self.data)
    }

    /// Keeps only the records for which `keep(index, record)` is true.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(usize, &Rec) -> bool) {
        self.rewrite(|i, r| keep(i, r).then_some(*r));
    }

    /// Sets each record's expiry to `exp_of(record)`.
    pub(crate) fn map_exp(&mut self, mut exp_of: impl FnMut(&Rec) -> u64) {
        self.rewrite(|_, r| {
            Some(Rec {
                exp: exp_of(r),
                ..*r
            })
        });
    }

    /// Re-encodes the records through `f` (`None` drops one).
    fn rewrite(&mut self, mut f: impl FnMut(usize, &Rec) -> Option<Rec>) {
        let old = std::mem::take(&mut self.data);
        let mut data = Vec::with_capacity(old.len());
        let mut count = 0u32;
        let mut last = None;
        for (i, (r, name)) in Iter::new(&old).enumerate() {
            if let Some(n) = f(i, &r) {
                append(&mut data, n, name, false, last);
                last = Some(n.addr);
                count = count.saturating_add(1);
            }
        }
        self.last = last;
        self.data = Rc::new(data);
        self.count = count;
    }

    /// Gives back the spare capacity of the vector (done once a file is parsed).
    pub(crate) fn shrink(&mut self) {
        if let Some(d) = Rc::get_mut(&mut self.data) {
            d.shrink_to_fit();
        }
    }
}

/// Appends one record (`name` valid; lowercased here if `lower`) after a
/// record for address `prev`.
fn append(data: &mut Vec<u8>, r: Rec, name: &[u8], lower: bool, prev: Option<IpAddr>) {
    let same = prev == Some(r.addr);
    let mut flags = 0u8;
    if r.addr.is_ipv6() {
        flags |= F_V6;
    }
    if r.canonical {
        flags |= F_CANON;
    }
    if r.exp != NEVER {
        flags |= F_EXP;
    }
    if same {
        flags |= F_SAME;
    }
    data.push(flags);
    match r.addr {
        _ if same => {}
        IpAddr::V4(a) => data.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => data.extend_from_slice(&a.octets()),
    }
    if r.exp != NEVER {
        data.extend_from_slice(&r.exp.to_le_bytes());
    }
    // Valid names are at most 253 bytes.
    data.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
    if lower {
        data.extend(name.iter().map(|b| b.to_ascii_lowercase()));
    } else {
        data.extend_from_slice(name);
    }
}

/// The first `N` bytes of `b` as an array, and the rest.
fn take<const N: usize>(b: &[u8]) -> Option<([u8; N], &[u8])> {
    let head = <[u8; N]>::try_from(b.get(..N)?).ok()?;
    Some((head, b.get(N..)?))
}

/// Reads [`Parsed`] records back in order.
pub(crate) struct Iter<'a> {
    rest: &'a [u8],
    /// Offset of `rest` in the whole record bytes.
    at: usize,
    /// The previous record's address.
    prev: Option<IpAddr>,
}

impl<'a> Iter<'a> {
    fn new(data: &'a [u8]) -> Self {
        Iter {
            rest: data,
            at: 0,
            prev: None,
        }
    }

    /// The next record, its name, and the offset of the name's length byte
    /// (for [`name_at`]).
    pub(crate) fn next_at(&mut self) -> Option<(Rec, &'a [u8], usize)> {
        let before = self.rest.len();
        let (r, name) = self.next()?;
        let len_at = self.at + (before - self.rest.len()) - name.len() - 1;
        self.at += before - self.rest.len();
        Some((r, name, len_at))
    }
}

/// The name whose length byte is at `at` in a [`Parsed`]'s bytes (empty if
/// `at` is not one).
pub(crate) fn name_at(data: &[u8], at: usize) -> &[u8] {
    let Some(&len) = data.get(at) else {
        return &[];
    };
    data.get(at + 1..at + 1 + usize::from(len)).unwrap_or(&[])
}

impl<'a> Iterator for Iter<'a> {
    type Item = (Rec, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (&flags, rest) = self.rest.split_first()?;
        let (addr, rest) = if flags & F_SAME != 0 {
            (self.prev?, rest)
        } else if flags & F_V6 != 0 {
            let (a, rest) = take::<16>(rest)?;
            (IpAddr::V6(Ipv6Addr::from(a)), rest)
        } else {
            let (a, rest) = take::<4>(rest)?;
            (IpAddr::V4(Ipv4Addr::from(a)), rest)
        };
        let (exp, rest) = if flags & F_EXP != 0 {
            let (e, rest) = take::<8>(rest)?;
            (u64::from_le_bytes(e), rest)
        } else {
            (NEVER, rest)
        };
        let (&len, rest) = rest.split_first()?;
        let name = rest.get(..usize::from(len))?;
        self.rest = rest.get(usize::from(len)..).unwrap_or(&[]);
        self.prev = Some(addr);
        Some((
            Rec {
                canonical: flags & F_CANON != 0,
                addr,
                exp,
            },
            name,
        ))
    }
}
