//! What an upstream answer may put in the cache: records on the question's CNAME/DNAME
//! chain (plus the zone's SOA/NS for negative answers), the DNSSEC proof of that answer
//! for clients that set DO, and no private addresses for public names (DNS rebinding
//! protection).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::message::{Record, Section};
use crate::wire::name::read_name;
use crate::wire::{read_u16, rtype, Header, NameBuf, Scan, HEADER_LEN, MAX_NAME_LEN};

/// Longest CNAME chain followed.
const MAX_CHAIN: usize = 16;

/// Buffers for filtering and rewriting one answer, kept by the caller from one answer
/// to the next: every miss would otherwise allocate (and touch fresh memory for) each of
/// them. Their contents are only meaningful during one call.
#[derive(Default)]
pub struct Scratch {
    /// The owner name of each record (None: unreadable).
    owners: Vec<Option<NameBuf>>,
    /// The question's chain ([`chain_names`]) and the names one round adds to it.
    chain: Vec<NameBuf>,
    found: Vec<NameBuf>,
    /// Which records [`chain_filter`] keeps.
    pub keep: Vec<bool>,
    /// The records of the message [`rebuild`] wrote.
    pub records: Vec<Record>,
    /// Buffers of an answer that went to the cache and its clients, for the next one's
    /// message and TTL offsets ([`Scratch::keep_buffers`]).
    pub msg: Vec<u8>,
    pub ttl_pos: Vec<u16>,
}

/// The largest message buffer kept for the next answer (a rare large one is freed).
const KEPT_MSG: usize = 4096;

impl Scratch {
    /// Keeps the buffers of an answer done with, emptied when taken.
    pub fn keep_buffers(&mut self, msg: Vec<u8>, ttl_pos: Vec<u16>) {
        if msg.capacity() <= KEPT_MSG {
            (self.msg, self.ttl_pos) = (msg, ttl_pos);
        }
    }
}

/// A compression pointer to the question's name, which starts right after the header:
/// how most answers name their records' owners.
const TO_QUESTION: [u8; 2] = [0xc0, HEADER_LEN as u8];

/// Reads the owner of every record of `scan` into `owners`, in place (a reused slot is
/// overwritten, not built anew and moved).
fn read_owners(msg: &[u8], scan: &Scan, owners: &mut Vec<Option<NameBuf>>) {
    owners.resize(scan.records.len(), None);
    for (r, o) in scan.records.iter().zip(owners.iter_mut()) {
        let n = o.get_or_insert_with(NameBuf::root);
        match &scan.question {
            // The question as the scan read it, without reading it again.
            Some(q) if msg.get(r.start..r.start + 2) == Some(&TO_QUESTION[..]) => {
                n.clone_from(&q.name)
            }
            _ => {
                if read_name(msg, r.start, Some(n)).is_err() {
                    *o = None;
                }
            }
        }
    }
}

/// `name` rewritten by a DNAME owned by `from` (a proper ancestor of `name`) pointing to
/// `to` (RFC 6672 2.2); None if the result would be too long.
fn substitute(name: &NameBuf, from: &NameBuf, to: &NameBuf) -> Option<NameBuf> {
    let keep = name.len().checked_sub(from.len())?;
    if keep == 0 || keep + to.len() > MAX_NAME_LEN {
        return None;
    }
    let mut wire = Vec::with_capacity(keep + to.len());
    wire.extend_from_slice(&name.as_bytes()[..keep]);
    wire.extend_from_slice(to.as_bytes());
    NameBuf::from_wire(&wire).ok()
}

/// The names of the question's chain: the question, then every CNAME target and every
/// name a DNAME above a chain name rewrites it to (in case the upstream left out the
/// synthesized CNAME). Records may come in any order: grows until it stops growing.
fn chain_names(
    msg: &[u8],
    scan: &Scan,
    owners: &[Option<NameBuf>],
    q: &NameBuf,
    chain: &mut Vec<NameBuf>,
    found: &mut Vec<NameBuf>,
) {
    chain.clear();
    chain.push(q.clone());
    for _ in 0..MAX_CHAIN {
        found.clear();
        for (r, o) in scan.records.iter().zip(owners) {
            if r.section != Section::Answer || !matches!(r.rtype, rtype::CNAME | rtype::DNAME) {
                continue;
            }
            let Some(o) = o else { continue };
            let mut target = NameBuf::root();
            if read_name(msg, r.rdata, Some(&mut target)).is_err() {
                continue;
            }
            if r.rtype == rtype::CNAME {
                if chain.iter().any(|c| c.eq_ignore_case(o)) {
                    found.push(target);
                }
            } else {
                found.extend(
                    chain
                        .iter()
                        .filter(|c| c.is_subdomain_of(o))
                        .filter_map(|c| substitute(c, o, &target)),
                );
            }
        }
        let mut grew = false;
        for t in found.iter() {
            if !chain.iter().any(|c| c.eq_ignore_case(t)) && chain.len() < MAX_CHAIN {
                chain.push(t.clone());
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
}

/// Types that carry DNSSEC proofs rather than data.
fn is_proof(t: u16) -> bool {
    matches!(t, rtype::RRSIG | rtype::NSEC | rtype::NSEC3)
}

/// Which records of `scan` to keep.
///
/// Answer section: records on the chain starting at the question name (CNAME targets and
/// DNAME rewrites), and the DNAMEs above chain names (RFC 6672). Authority section of a
/// negative answer or referral: the SOA/NS of a zone above the chain (RFC 2308 needs the
/// SOA). Positive answers are kept minimal: their authority NS records cost cache memory
/// and no client needs them. The additional section is dropped.
///
/// `dnssec_ok` (the client set DO, and so did dproxy's query): the proof the upstream sent
/// is kept whole, as a validator behind dproxy needs it (RFC 4035 3.1): the RRSIGs of
/// every kept RRset, the authority NSEC/NSEC3 records (denial of existence, wildcard
/// expansion) and their RRSIGs, and the DS of a referral. Without DO, RRSIG, NSEC and
/// NSEC3 records appear only when the question asks for that type (RFC 4035 3.2.1).
///
/// The result is in `s.keep`, one flag per record of `scan`.
pub fn chain_filter(msg: &[u8], scan: &Scan, dnssec_ok: bool, s: &mut Scratch) {
    let keep = &mut s.keep;
    keep.clear();
    let Some(q) = &scan.question else {
        keep.resize(scan.records.len(), false);
        return;
    };
    read_owners(msg, scan, &mut s.owners);
    let owners = &s.owners[..];
    chain_names(msg, scan, owners, &q.name, &mut s.chain, &mut s.found);
    let chain = &s.chain[..];
    let on_chain = |o: &NameBuf| chain.iter().any(|c| c.eq_ignore_case(o));
    // A zone cut or DNAME at or above some chain name.
    let above_chain = |o: &NameBuf| chain.iter().any(|c| c.is_subdomain_of(o));
    let asked = |t: u16| t == q.qtype || q.qtype == rtype::ANY;
    let positive = scan.records.iter().zip(owners).any(|(r, o)| {
        r.section == Section::Answer && asked(r.rtype) && o.as_ref().is_some_and(on_chain)
    });
    keep.extend(scan.records.iter().zip(owners).map(|(r, o)| {
        let Some(o) = o else { return false };
        match r.section {
            // RRSIGs of kept RRsets are added below.
            Section::Answer if is_proof(r.rtype) => on_chain(o) && asked(r.rtype),
            Section::Answer => {
                on_chain(o) || (r.rtype == rtype::DNAME && above_chain(o) && !on_chain(o))
            }
            Section::Authority => match r.rtype {
                rtype::SOA | rtype::NS => !positive && above_chain(o),
                rtype::DS => dnssec_ok && !positive && above_chain(o),
                rtype::NSEC | rtype::NSEC3 => dnssec_ok,
                _ => false,
            },
            Section::Additional => false,
        }
    }));
    if dnssec_ok {
        // An RRSIG goes with the RRset it covers: same section, owner and type.
        let sigs: Vec<usize> = (0..scan.records.len())
            .filter(|&i| scan.records[i].rtype == rtype::RRSIG && !keep[i])
            .collect();
        for i in sigs {
            let (r, Some(o)) = (&scan.records[i], &owners[i]) else {
                continue;
            };
            let Ok(covered) = read_u16(msg, r.rdata) else {
                continue;
            };
            let signs_kept =
                scan.records
                    .iter()
                    .zip(owners)
                    .zip(keep.iter())
                    .any(|((k, ko), &kept)| {
                        kept && k.section == r.section
                            && k.rtype == covered
                            && ko.as_ref().is_some_and(|ko| ko.eq_ignore_case(o))
                    });
            keep[i] = signs_kept;
        }
    }
}

/// A spelling to put back: the labels a name shares (at its end, in any case) with
/// `from` are written as in `to`. Undoes the random case of a 0x20 question wherever
/// the upstream echoed it, also in names that merely share the question's parent zone.
#[derive(Clone, Copy)]
pub struct Respell<'a> {
    pub from: &'a NameBuf,
    pub to: &'a NameBuf,
}

/// Labels a name can have, the root label included (one byte each at most, 255 in all).
const MAX_LABELS: usize = MAX_NAME_LEN / 2 + 1;

/// Offsets of the length bytes of each label (the root label included), in `out`;
/// returns how many. A fixed array: this runs for every name of a 0x20 answer.
/// (Offsets fit a byte: names are at most 255 bytes long.)
fn label_starts(wire: &[u8], out: &mut [u8; MAX_LABELS]) -> usize {
    let mut n = 0;
    let mut p = 0;
    while let (Some(&l), Some(slot)) = (wire.get(p), out.get_mut(n)) {
        *slot = p as u8;
        n += 1;
        if l == 0 {
            break;
        }
        p += 1 + l as usize;
    }
    n
}

/// Bytes at the end of `name` that match the end of `from`, on label boundaries.
fn common_suffix(name: &[u8], from: &[u8]) -> usize {
    let (mut a, mut b) = ([0; MAX_LABELS], [0; MAX_LABELS]);
    let (na, nb) = (label_starts(name, &mut a), label_starts(from, &mut b));
    let mut best = 0;
    for (&pa, &pb) in a[..na].iter().rev().zip(b[..nb].iter().rev()) {
        let (pa, pb) = (pa as usize, pb as usize);
        if name.len() - pa != from.len() - pb || !name[pa..].eq_ignore_ascii_case(&from[pb..]) {
            break;
        }
        best = name.len() - pa;
    }
    best
}

/// How names are written by [`rebuild`].
#[derive(Clone, Copy)]
struct Names<'a> {
    fix: Option<Respell<'a>>,
    /// The question name: a name equal to it is written as a pointer to offset 12.
    question: Option<&'a NameBuf>,
}

/// Copies a name from `msg` at `pos` into `out`, uncompressed except that a repeat of the
/// question becomes a pointer to it; returns the position after the name in `msg`.
fn copy_name(msg: &[u8], pos: usize, out: &mut Vec<u8>, w: Names) -> Option<usize> {
    // A pointer to the question (offset 12 here and in `out`) stays one, unread.
    if w.question.is_some() && msg.get(pos..pos + 2) == Some(&TO_QUESTION[..]) {
        out.extend_from_slice(&TO_QUESTION);
        return Some(pos + 2);
    }
    let mut n = NameBuf::root();
    let end = read_name(msg, pos, Some(&mut n)).ok()?;
    if w.question.is_some_and(|q| q.eq_ignore_case(&n)) {
        out.extend_from_slice(&TO_QUESTION);
        return Some(end);
    }
    out.extend_from_slice(n.as_bytes());
    if let Some(f) = w.fix {
        if f.from.len() == f.to.len() {
            let k = common_suffix(n.as_bytes(), f.from.as_bytes());
            let (o, t) = (out.len(), f.to.as_bytes());
            out[o - k..].copy_from_slice(&t[t.len() - k..]);
        }
    }
    Some(end)
}

/// RDATA with names in it (RFC 1035, RFC 2782 and RFC 6672); other types are copied as they are,
/// which is safe because newer types must not use compression (RFC 3597 4).
fn copy_rdata(msg: &[u8], r: &Record, out: &mut Vec<u8>, w: Names) -> Option<()> {
    let start = out.len();
    out.extend_from_slice(&[0, 0]);
    let end = r.end;
    let mut p = r.rdata;
    let fixed = |out: &mut Vec<u8>, from: usize, n: usize| -> Option<usize> {
        out.extend_from_slice(msg.get(from..from + n)?);
        Some(from + n)
    };
    match r.rtype {
        rtype::CNAME | rtype::NS | rtype::PTR => p = copy_name(msg, p, out, w)?,
        // Read even if compressed, always written out in full (RFC 6672 2.5).
        rtype::DNAME => {
            let plain = Names {
                question: None,
                ..w
            };
            p = copy_name(msg, p, out, plain)?;
        }
        rtype::MX => {
            p = fixed(out, p, 2)?;
            p = copy_name(msg, p, out, w)?;
        }
        rtype::SRV => {
            p = fixed(out, p, 6)?;
            p = copy_name(msg, p, out, w)?;
        }
        rtype::SOA => {
            p = copy_name(msg, p, out, w)?;
            p = copy_name(msg, p, out, w)?;
            p = fixed(out, p, 20)?;
        }
        _ => p = fixed(out, p, r.rdlen as usize)?,
    }
    if p != end {
        return None;
    }
    let len = u16::try_from(out.len() - start - 2).ok()?;
    out[start..start + 2].copy_from_slice(&len.to_be_bytes());
    Some(())
}

/// Rewrites the message with only the kept records and no OPT; every name is written out
/// in full, except repeats of the question name, which point to it. `records` is
/// replaced by the records of the result, as [`crate::wire::scan_message`] would find
/// them: the caller need not walk the message it was just given.
/// `out` is the buffer to write into (emptied first).
pub fn rebuild(
    msg: &[u8],
    scan: &Scan,
    keep: &[bool],
    fix: Option<Respell>,
    records: &mut Vec<Record>,
    mut out: Vec<u8>,
) -> Option<Vec<u8>> {
    records.clear();
    out.clear();
    out.reserve(msg.len() + 64);
    out.extend_from_slice(msg.get(..HEADER_LEN)?);
    // The scan read the question: `msg` is what it scanned.
    let q = scan.question.as_ref()?;
    let plain = Names {
        fix,
        question: None,
    };
    copy_name(msg, HEADER_LEN, &mut out, plain)?;
    // The question as written (respelled): what later repeats point to. Without a
    // respelling it is the question as read.
    let respelled;
    let qname = match fix {
        Some(_) => {
            let mut n = NameBuf::root();
            read_name(&out, HEADER_LEN, Some(&mut n)).ok()?;
            respelled = n;
            &respelled
        }
        None => &q.name,
    };
    let w = Names {
        fix,
        question: Some(qname),
    };
    out.extend_from_slice(&q.qtype.to_be_bytes());
    out.extend_from_slice(&q.qclass.to_be_bytes());
    let mut counts = [0u16; 3];
    for (r, _) in scan.records.iter().zip(keep).filter(|(_, k)| **k) {
        let start = out.len();
        let p = copy_name(msg, r.start, &mut out, w)?;
        // type, class, TTL: 8 bytes, then RDATA with its new length.
        let ttl_pos = out.len() + 4;
        out.extend_from_slice(msg.get(p..p + 8)?);
        copy_rdata(msg, r, &mut out, w)?;
        let rdata = ttl_pos + 6;
        records.push(Record {
            start,
            ttl_pos,
            rdata,
            rdlen: u16::try_from(out.len() - rdata).ok()?,
            end: out.len(),
            ..*r
        });
        let i = match r.section {
            Section::Answer => 0,
            Section::Authority => 1,
            Section::Additional => 2,
        };
        counts[i] += 1;
    }
    if out.len() > u16::MAX as usize {
        return None;
    }
    let mut h = Header::new_checked(&mut out[..]).ok()?;
    h.set_qdcount(1);
    h.set_ancount(counts[0]);
    h.set_nscount(counts[1]);
    h.set_arcount(counts[2]);
    Some(out)
}

/// Addresses that must not appear in public names' answers.
pub fn is_private(ip: IpAddr, allow_localhost: bool) -> bool {
    match ip {
        IpAddr::V4(a) => private_v4(a, allow_localhost),
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return private_v4(v4, allow_localhost);
            }
            let s = a.segments();
            (a.is_loopback() && !allow_localhost)
                || a.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00 // ULA fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
        }
    }
}

fn private_v4(a: Ipv4Addr, allow_localhost: bool) -> bool {
    let o = a.octets();
    o[0] == 0
        || o[0] == 10
        || (o[0] == 127 && !allow_localhost)
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // CGNAT 100.64/10
        || (o[0] == 169 && o[1] == 254)
        || (o[0] == 172 && (o[1] & 0xf0) == 16)
        || (o[0] == 192 && o[1] == 168)
        || a.is_broadcast()
}

/// The first private address in the answer section, if any.
pub fn rebinding_address(msg: &[u8], scan: &Scan, allow_localhost: bool) -> Option<IpAddr> {
    for r in scan.records.iter().filter(|r| r.section == Section::Answer) {
        let ip = match (r.rtype, r.rdlen) {
            (rtype::A, 4) => {
                let b = msg.get(r.rdata..r.rdata + 4)?;
                IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            }
            (rtype::AAAA, 16) => {
                let mut b = [0u8; 16];
                b.copy_from_slice(msg.get(r.rdata..r.rdata + 16)?);
                IpAddr::V6(Ipv6Addr::from(b))
            }
            _ => continue,
        };
        if is_private(ip, allow_localhost) {
            return Some(ip);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{build, read_u16, scan_message};

    /// [`super::chain_filter`] with buffers of its own.
    fn chain_filter(msg: &[u8], scan: &Scan, dnssec_ok: bool) -> Vec<bool> {
        let mut s = Scratch::default();
        super::chain_filter(msg, scan, dnssec_ok, &mut s);
        s.keep
    }

    /// [`rebuild`], checking that the records it reports are those a walk of its
    /// result finds (the caller relies on them instead of walking the message again).
    fn rebuilt(m: &[u8], s: &Scan, keep: &[bool], fix: Option<Respell>) -> Vec<u8> {
        let mut records = vec![s.records[0]];
        let out = rebuild(m, s, keep, fix, &mut records, vec![0xee; 9]).unwrap();
        let walked = scan_message(&out).unwrap().records;
        assert_eq!(format!("{records:?}"), format!("{walked:?}"));
        out
    }

    fn mx_preference(msg: &[u8], r: &Record) -> Option<u16> {
        read_u16(msg, r.rdata).ok()
    }

    fn rr(m: &mut Vec<u8>, owner: &[u8], t: u16, ttl: u32, rdata: &[u8]) {
        m.extend_from_slice(owner);
        m.extend_from_slice(&t.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(&ttl.to_be_bytes());
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(rdata);
    }

    /// www.test CNAME web.test; web.test A 10.1.1.1; evil.test A 6.6.6.6; additional junk.
    fn chained() -> Vec<u8> {
        let mut m = Vec::new();
        build::query(
            &mut m,
            1,
            &NameBuf::from_dotted("www.test").unwrap(),
            1,
            1,
            true,
            false,
        );
        m[2] |= 0x80;
        // Owner www.test via pointer to the question (offset 12); target web.test sharing ".test".
        rr(&mut m, b"\xc0\x0c", rtype::CNAME, 300, b"\x03web\xc0\x10");
        let web = m.len() - 6;
        rr(
            &mut m,
            &[0xc0 | (web >> 8) as u8, web as u8],
            rtype::A,
            60,
            &[10, 1, 1, 1],
        );
        rr(&mut m, b"\x04evil\xc0\x10", rtype::A, 60, &[6, 6, 6, 6]);
        rr(
            &mut m,
            b"\x04evil\xc0\x10",
            rtype::MX,
            60,
            b"\x00\x0a\xc0\x0c",
        );
        rr(&mut m, b"\x04glue\xc0\x10", rtype::A, 60, &[7, 7, 7, 7]);
        m[7] = 4;
        m[11] = 1;
        m
    }

    #[test]
    fn only_the_chain_is_kept() {
        let m = chained();
        let s = scan_message(&m).unwrap();
        assert_eq!(
            chain_filter(&m, &s, false),
            vec![true, true, false, false, false]
        );
        let keep = chain_filter(&m, &s, true);
        let out = rebuilt(&m, &s, &keep, None);
        let s2 = scan_message(&out).unwrap();
        assert_eq!(s2.records.len(), 2);
        let mut n = NameBuf::root();
        read_name(&out, s2.records[0].rdata, Some(&mut n)).unwrap();
        assert_eq!(n.to_dotted(), "web.test");
        read_name(&out, s2.records[1].start, Some(&mut n)).unwrap();
        assert_eq!(n.to_dotted(), "web.test");
        assert_eq!(&out[s2.records[1].rdata..s2.records[1].end], &[10, 1, 1, 1]);
    }

    /// An answer for `qname` A with `rcode`, records given as (section, owner, type,
    /// RDATA); RRSIG RDATA is built from the covered type alone.
    fn message(qname: &str, rcode: u8, recs: &[(u8, &str, u16, Vec<u8>)]) -> Vec<u8> {
        let mut m = Vec::new();
        build::query(
            &mut m,
            1,
            &NameBuf::from_dotted(qname).unwrap(),
            1,
            1,
            true,
            false,
        );
        m[2] |= 0x80;
        m[3] |= rcode;
        let mut counts = [0u16; 3];
        let mut sorted: Vec<_> = recs.iter().collect();
        sorted.sort_by_key(|r| r.0);
        for (section, owner, t, rdata) in sorted {
            let o = NameBuf::from_dotted(owner).unwrap();
            rr(&mut m, o.as_bytes(), *t, 300, rdata);
            counts[*section as usize] += 1;
        }
        for (i, c) in counts.iter().enumerate() {
            m[6 + 2 * i..8 + 2 * i].copy_from_slice(&c.to_be_bytes());
        }
        m
    }

    fn sig(covered: u16) -> Vec<u8> {
        let mut r = covered.to_be_bytes().to_vec();
        r.extend_from_slice(&[13, 2, 0, 0, 1, 44, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
        r.extend_from_slice(b"\x04test\x00\xaa\xbb");
        r
    }

    fn name(s: &str) -> Vec<u8> {
        NameBuf::from_dotted(s).unwrap().as_bytes().to_vec()
    }

    fn soa() -> Vec<u8> {
        let mut r = name("ns.test");
        r.extend(name("admin.test"));
        r.extend_from_slice(&[0; 20]);
        r
    }

    fn nsec() -> Vec<u8> {
        let mut r = name("z.test");
        r.extend_from_slice(&[0, 1, 0x40]);
        r
    }

    fn kept(
        qname: &str,
        rcode: u8,
        recs: &[(u8, &str, u16, Vec<u8>)],
        dnssec_ok: bool,
    ) -> Vec<bool> {
        let m = message(qname, rcode, recs);
        let s = scan_message(&m).unwrap();
        let keep = chain_filter(&m, &s, dnssec_ok);
        // Whatever is kept must survive the rewrite.
        let out = rebuilt(&m, &s, &keep, None);
        let n = keep.iter().filter(|k| **k).count();
        assert_eq!(scan_message(&out).unwrap().records.len(), n);
        keep
    }

    #[test]
    fn denial_proof_is_kept_only_with_do() {
        let recs = [
            (1, "test", rtype::SOA, soa()),
            (1, "test", rtype::RRSIG, sig(rtype::SOA)),
            (1, "a.test", rtype::NSEC, nsec()),
            (1, "a.test", rtype::RRSIG, sig(rtype::NSEC)),
            (1, "k2v.test", rtype::NSEC3, vec![1, 0, 0, 0, 0]),
            (1, "k2v.test", rtype::RRSIG, sig(rtype::NSEC3)),
            // Signs nothing that is kept: dropped.
            (1, "test", rtype::RRSIG, sig(rtype::NS)),
            (2, "a.test", rtype::A, vec![192, 0, 2, 1]),
        ];
        let with = [true, true, true, true, true, true, false, false];
        assert_eq!(kept("nx.test", 3, &recs, true), with);
        let without = [true, false, false, false, false, false, false, false];
        assert_eq!(kept("nx.test", 3, &recs, false), without);
        // NODATA the same way.
        assert_eq!(kept("nx.test", 0, &recs, true), with);
    }

    #[test]
    fn wildcard_proof_is_kept_with_do() {
        let recs = [
            (0, "h.wild.test", rtype::A, vec![192, 0, 2, 7]),
            (0, "h.wild.test", rtype::RRSIG, sig(rtype::A)),
            (0, "h.wild.test", rtype::RRSIG, sig(rtype::AAAA)),
            (1, "test", rtype::NS, name("ns.test")),
            (1, "g.wild.test", rtype::NSEC, nsec()),
            (1, "g.wild.test", rtype::RRSIG, sig(rtype::NSEC)),
        ];
        assert_eq!(
            kept("h.wild.test", 0, &recs, true),
            [true, true, false, false, true, true]
        );
        assert_eq!(
            kept("h.wild.test", 0, &recs, false),
            [true, false, false, false, false, false]
        );
    }

    #[test]
    fn rrsig_asked_for_is_kept_without_do() {
        let m = {
            let mut m = message(
                "www.test",
                0,
                &[(0, "www.test", rtype::RRSIG, sig(rtype::A))],
            );
            // The question asks for RRSIG.
            let at = HEADER_LEN + name("www.test").len();
            m[at..at + 2].copy_from_slice(&rtype::RRSIG.to_be_bytes());
            m
        };
        let s = scan_message(&m).unwrap();
        assert_eq!(chain_filter(&m, &s, false), [true]);
        assert_eq!(chain_filter(&m, &s, true), [true]);
    }

    #[test]
    fn referral_keeps_ds_with_do() {
        let recs = [
            (1, "child.test", rtype::NS, name("ns.child.test")),
            (1, "child.test", rtype::DS, vec![1, 2, 13, 2, 0xaa]),
            (1, "child.test", rtype::RRSIG, sig(rtype::DS)),
            (1, "other.test", rtype::DS, vec![1, 2, 13, 2, 0xaa]),
            (2, "ns.child.test", rtype::A, vec![192, 0, 2, 53]),
        ];
        assert_eq!(
            kept("www.child.test", 0, &recs, true),
            [true, true, true, false, false]
        );
        assert_eq!(
            kept("www.child.test", 0, &recs, false),
            [true, false, false, false, false]
        );
    }

    #[test]
    fn dname_is_kept_and_followed() {
        let recs = [
            (0, "dn.test", rtype::DNAME, name("target.test")),
            (0, "dn.test", rtype::RRSIG, sig(rtype::DNAME)),
            // No synthesized CNAME: the chain follows the DNAME itself.
            (0, "h1.target.test", rtype::A, vec![192, 0, 2, 88]),
            (0, "h1.target.test", rtype::RRSIG, sig(rtype::A)),
            // A DNAME that is not above the question, and one at the question itself
            // (it does not rewrite the name it sits on).
            (0, "other.test", rtype::DNAME, name("target.test")),
            (0, "h2.target.test", rtype::A, vec![192, 0, 2, 89]),
        ];
        assert_eq!(
            kept("h1.dn.test", 0, &recs, true),
            [true, true, true, true, false, false]
        );
        assert_eq!(
            kept("h1.dn.test", 0, &recs, false),
            [true, false, true, false, false, false]
        );
        assert_eq!(
            substitute(
                &NameBuf::from_dotted("a.b.dn.test").unwrap(),
                &NameBuf::from_dotted("dn.test").unwrap(),
                &NameBuf::from_dotted("x.example").unwrap()
            )
            .map(|n| n.to_dotted()),
            Some("a.b.x.example".to_string())
        );
        // A rewrite longer than 255 bytes is no name (RFC 6672 2.2: YXDOMAIN).
        let long = format!("{}.dn.test", vec!["a".repeat(63); 3].join("."));
        let target = format!("{}.example", vec!["b".repeat(63); 2].join("."));
        assert!(substitute(
            &NameBuf::from_dotted(&long).unwrap(),
            &NameBuf::from_dotted("dn.test").unwrap(),
            &NameBuf::from_dotted(&target).unwrap()
        )
        .is_none());
    }

    #[test]
    fn compressed_dname_target_is_written_out() {
        // dn.test (a pointer into the question) DNAME target.test, its "test" compressed.
        let mut m = message("h1.dn.test", 0, &[]);
        rr(
            &mut m,
            b"\xc0\x0f",
            rtype::DNAME,
            300,
            b"\x06target\xc0\x12",
        );
        m[7] = 1;
        let s = scan_message(&m).unwrap();
        let keep = chain_filter(&m, &s, false);
        assert_eq!(keep, [true]);
        let out = rebuilt(&m, &s, &keep, None);
        let s2 = scan_message(&out).unwrap();
        let r = s2.records[0];
        assert_eq!(&out[r.rdata..r.end], b"\x06target\x04test\x00");
    }

    #[test]
    fn rebuild_decompresses_mx_and_soa() {
        let m = chained();
        let s = scan_message(&m).unwrap();
        let keep = vec![true, true, true, true, true];
        let out = rebuilt(&m, &s, &keep, None);
        let s2 = scan_message(&out).unwrap();
        assert_eq!(s2.records.len(), 5);
        let mx = s2.records[3];
        assert_eq!(mx_preference(&out, &mx), Some(10));
        let mut n = NameBuf::root();
        read_name(&out, mx.rdata + 2, Some(&mut n)).unwrap();
        assert_eq!(n.to_dotted(), "www.test");
        // The only pointers left point to the question.
        assert!(out[12..].windows(2).all(|w| w[0] != 0xc0 || w[1] == 0x0c));
    }

    #[test]
    fn random_case_is_undone() {
        let m = chained();
        let s = scan_message(&m).unwrap();
        let from = NameBuf::from_dotted("wWw.TeSt").unwrap();
        let to = NameBuf::from_dotted("www.test").unwrap();
        let keep = vec![true; 5];
        let fix = Respell {
            from: &from,
            to: &to,
        };
        let mut m2 = m.clone();
        // The upstream echoed "TeSt" in the question.
        m2[17..21].copy_from_slice(b"TeSt");
        let out = rebuilt(&m2, &s, &keep, Some(fix));
        assert!(!out.windows(4).any(|w| w == b"TeSt"));
        assert_eq!(
            common_suffix(b"\x03web\x04TEST\x00", b"\x03wWw\x04test\x00"),
            6
        );
        assert_eq!(
            common_suffix(b"\x03www\x04test\x00", b"\x03WWW\x04test\x00"),
            10
        );
        assert_eq!(
            common_suffix(b"\x02ww\x04test\x00", b"\x03www\x04test\x00"),
            6
        );
        assert_eq!(common_suffix(b"\x00", b"\x03www\x00"), 1);
    }

    #[test]
    fn private_addresses() {
        for a in [
            "10.0.0.1",
            "192.168.1.1",
            "172.16.0.1",
            "172.31.255.255",
            "100.64.0.1",
            "169.254.1.1",
            "127.0.0.1",
            "0.0.0.0",
            "fd00::1",
            "fe80::1",
            "::1",
            "::ffff:192.168.0.1",
            "::",
        ] {
            assert!(is_private(a.parse().unwrap(), false), "{a}");
        }
        for a in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2001:db8::1",
            "192.0.2.1",
        ] {
            assert!(!is_private(a.parse().unwrap(), false), "{a}");
        }
        assert!(!is_private("127.0.0.2".parse().unwrap(), true));
        let m = chained();
        let s = scan_message(&m).unwrap();
        assert_eq!(
            rebinding_address(&m, &s, false),
            Some("10.1.1.1".parse().unwrap())
        );
    }
}
