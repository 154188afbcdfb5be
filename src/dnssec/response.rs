//! A DNS response read for validation: the question, the answer and authority
//! records with their owner names lowercased and the names inside their RDATA
//! decompressed (RFC 3597 §4: only the well-known types may compress them), and the
//! grouping of those records into RRsets with the RRSIGs that cover them.

use crate::wire::message::{read_question, read_record, Section};
use crate::wire::name::{read_name, NameBuf};
use crate::wire::{rtype, Error, Header, Result, HEADER_LEN};

/// One resource record, uncompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rr {
    pub owner: Vec<u8>,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    pub rdata: Vec<u8>,
}

/// The parts of a response the validator reads (the additional section is not
/// trusted for anything and is skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub rcode: u8,
    pub qname: Vec<u8>,
    pub qtype: u16,
    pub answer: Vec<Rr>,
    pub authority: Vec<Rr>,
}

fn name_at(msg: &[u8], pos: usize, out: &mut Vec<u8>) -> Result<usize> {
    let mut n = NameBuf::root();
    let end = read_name(msg, pos, Some(&mut n))?;
    out.extend_from_slice(n.as_bytes());
    Ok(end)
}

/// The RDATA at `start..end` with compressed names expanded, for the types that may
/// carry compression pointers; every other type is copied as it is.
fn rdata(msg: &[u8], t: u16, start: usize, end: usize) -> Result<Vec<u8>> {
    let raw = &msg[start..end];
    let mut out = Vec::with_capacity(raw.len());
    let check = |p: usize| {
        if p == end {
            Ok(())
        } else {
            Err(Error::Truncated)
        }
    };
    match t {
        rtype::NS | rtype::CNAME | rtype::PTR | rtype::DNAME => {
            check(name_at(msg, start, &mut out)?)?;
        }
        rtype::MX => {
            out.extend_from_slice(raw.get(..2).ok_or(Error::Truncated)?);
            check(name_at(msg, start + 2, &mut out)?)?;
        }
        rtype::SOA => {
            let p = name_at(msg, start, &mut out)?;
            let p = name_at(msg, p, &mut out)?;
            out.extend_from_slice(msg.get(p..p + 20).ok_or(Error::Truncated)?);
            check(p + 20)?;
        }
        _ => out.extend_from_slice(raw),
    }
    Ok(out)
}

/// Reads a response; an error for anything malformed (the validator then calls the
/// answer bogus).
pub fn parse(msg: &[u8]) -> Result<Response> {
    let h = Header::new_checked(msg)?;
    if h.qdcount() != 1 {
        return Err(Error::Truncated);
    }
    let q = read_question(msg, HEADER_LEN)?;
    let mut qname = q.name.as_bytes().to_vec();
    qname.make_ascii_lowercase();
    let mut r = Response {
        rcode: h.rcode(),
        qname,
        qtype: q.qtype,
        answer: Vec::new(),
        authority: Vec::new(),
    };
    let mut pos = q.end;
    for (count, section) in [
        (h.ancount(), Section::Answer),
        (h.nscount(), Section::Authority),
    ] {
        for _ in 0..count {
            let rec = read_record(msg, pos, section)?;
            let mut owner = Vec::new();
            name_at(msg, rec.start, &mut owner)?;
            owner.make_ascii_lowercase();
            let rr = Rr {
                owner,
                rtype: rec.rtype,
                class: rec.class,
                ttl: rec.ttl,
                rdata: rdata(msg, rec.rtype, rec.rdata, rec.end)?,
            };
            pos = rec.end;
            match section {
                Section::Answer => r.answer.push(rr),
                _ => r.authority.push(rr),
            }
        }
    }
    Ok(r)
}

/// The records of one owner and type, with the RRSIGs at that owner covering it.
#[derive(Debug, Clone)]
pub struct Group<'a> {
    pub owner: &'a [u8],
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    pub rdatas: Vec<&'a [u8]>,
    pub sigs: Vec<&'a [u8]>,
}

impl Group<'_> {
    /// The signer name of the first RRSIG that can be read, if any.
    pub fn signer(&self) -> Option<Vec<u8>> {
        self.sigs.iter().find_map(|s| {
            super::RrsigView::parse(s).ok().map(|v| {
                let mut n = v.signer.to_vec();
                n.make_ascii_lowercase();
                n
            })
        })
    }
}

fn covered(rdata: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*rdata.first()?, *rdata.get(1)?]))
}

/// Groups `rrs` into RRsets in order of first appearance; RRSIGs join the set they
/// cover (an RRSIG covering nothing present is dropped).
pub fn group(rrs: &[Rr]) -> Vec<Group<'_>> {
    let mut out: Vec<Group> = Vec::new();
    for r in rrs.iter().filter(|r| r.rtype != rtype::RRSIG) {
        match out
            .iter_mut()
            .find(|g| g.rtype == r.rtype && g.owner == r.owner.as_slice())
        {
            Some(g) => {
                g.ttl = g.ttl.min(r.ttl);
                g.rdatas.push(&r.rdata);
            }
            None => out.push(Group {
                owner: &r.owner,
                rtype: r.rtype,
                class: r.class,
                ttl: r.ttl,
                rdatas: vec![&r.rdata],
                sigs: Vec::new(),
            }),
        }
    }
    for s in rrs.iter().filter(|r| r.rtype == rtype::RRSIG) {
        let t = covered(&s.rdata);
        if let Some(g) = out
            .iter_mut()
            .find(|g| Some(g.rtype) == t && g.owner == s.owner.as_slice())
        {
            g.sigs.push(&s.rdata);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_rdata_names_are_expanded() {
        // Question www.ex. A; answer: www.ex CNAME ptr->"ex" with a label "a".
        let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(b"\x03WWW\x02ex\0\0\x01\0\x01");
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 4]);
        m.extend_from_slice(&[1, b'a', 0xc0, 16]);
        let r = parse(&m).unwrap();
        assert_eq!(r.qname, b"\x03www\x02ex\0");
        assert_eq!(r.answer[0].owner, b"\x03www\x02ex\0");
        assert_eq!(r.answer[0].rdata, b"\x01a\x02ex\0");
        // A name running past its RDATA is an error, not a misread.
        let n = m.len();
        m[n - 5] = 3;
        assert!(parse(&m).is_err());
    }
}
