//! Whole messages: the question, resource records with their TTL offsets, and the OPT record.
//!
//! [`parse_query`] reads a client query without allocating (the hot path);
//! [`scan_message`] walks an upstream answer and records where every TTL lives,
//! so that a cached copy can be served later with its TTLs rewritten in place.

use super::name::{read_name, skip_name, NameBuf};
use super::{opcode, read_u16, read_u32, rtype, Error, Header, Result, HEADER_LEN};

/// The question of a message.
#[derive(Debug, Clone, Default)]
pub struct Question {
    /// The name as the sender spelled it.
    pub name: NameBuf,
    pub qtype: u16,
    pub qclass: u16,
    /// Offset just past the question.
    pub end: usize,
}

/// The EDNS0 OPT pseudo-record (RFC 6891).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Opt {
    /// Advertised UDP payload size (values below 512 count as 512).
    pub udp_size: u16,
    /// Upper 8 bits of the extended rcode.
    pub ext_rcode: u8,
    pub version: u8,
    /// DNSSEC OK.
    pub do_bit: bool,
    /// Offset of the record's first byte (its root name).
    pub start: usize,
    /// Offset just past the record.
    pub end: usize,
}

/// Which section a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Answer,
    Authority,
    Additional,
}

/// One resource record, located in its message.
#[derive(Debug, Clone, Copy)]
pub struct Record {
    pub section: Section,
    /// Offset of the owner name.
    pub start: usize,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    /// Offset of the 4-byte TTL field.
    pub ttl_pos: usize,
    /// Offset of the RDATA.
    pub rdata: usize,
    pub rdlen: u16,
    /// Offset just past the record.
    pub end: usize,
}

/// Reads the question at `pos`.
pub fn read_question(msg: &[u8], pos: usize) -> Result<Question> {
    let mut q = Question::default();
    read_question_into(msg, pos, &mut q)?;
    Ok(q)
}

/// Reads the question at `pos` into `q` (no new buffer: the hot path reuses one).
pub fn read_question_into(msg: &[u8], pos: usize, q: &mut Question) -> Result<()> {
    let p = read_name(msg, pos, Some(&mut q.name))?;
    q.qtype = read_u16(msg, p)?;
    q.qclass = read_u16(msg, p + 2)?;
    q.end = p + 4;
    Ok(())
}

/// Reads the record at `pos`, checking that its RDATA lies inside the message.
pub fn read_record(msg: &[u8], pos: usize, section: Section) -> Result<Record> {
    let p = skip_name(msg, pos)?;
    let rtype = read_u16(msg, p)?;
    let class = read_u16(msg, p + 2)?;
    let ttl = read_u32(msg, p + 4)?;
    let rdlen = read_u16(msg, p + 8)?;
    let rdata = p + 10;
    let end = rdata + rdlen as usize;
    if end > msg.len() {
        return Err(Error::Truncated);
    }
    Ok(Record {
        section,
        start: pos,
        rtype,
        class,
        ttl,
        ttl_pos: p + 4,
        rdata,
        rdlen,
        end,
    })
}

fn opt_from_record(msg: &[u8], r: &Record) -> Result<Opt> {
    // The OPT owner must be the root name.
    if msg.get(r.start) != Some(&0) {
        return Err(Error::BadOpt);
    }
    let ttl = r.ttl.to_be_bytes();
    Ok(Opt {
        udp_size: r.class.max(512),
        ext_rcode: ttl[0],
        version: ttl[1],
        do_bit: ttl[2] & 0x80 != 0,
        start: r.start,
        end: r.end,
    })
}

/// Why a client query gets no normal processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryError {
    /// Not worth an answer: shorter than a header, or a response (QR set).
    Ignore,
    /// Readable header but malformed body, or QDCOUNT ≠ 1.
    FormErr,
    /// An opcode other than QUERY.
    NotImp,
    /// An EDNS version we do not speak.
    BadVers,
}

/// A parsed client query.
#[derive(Debug, Clone, Default)]
pub struct QueryView {
    pub id: u16,
    pub rd: bool,
    pub cd: bool,
    pub ad: bool,
    pub question: Question,
    pub opt: Option<Opt>,
}

impl QueryView {
    /// The largest UDP answer this client gets: what it advertised, but never more than
    /// we advertise ourselves (large UDP answers fragment and amplify).
    pub fn udp_limit(&self) -> usize {
        match self.opt {
            Some(o) => o.udp_size.min(super::EDNS_UDP_SIZE) as usize,
            None => super::PLAIN_UDP_SIZE as usize,
        }
    }

    pub fn do_bit(&self) -> bool {
        self.opt.map(|o| o.do_bit).unwrap_or(false)
    }
}

/// Parses a client query.
pub fn parse_query(msg: &[u8]) -> core::result::Result<QueryView, QueryError> {
    let mut q = QueryView::default();
    parse_query_into(msg, &mut q)?;
    Ok(q)
}

/// Parses a client query into `q`, overwriting it. Allocates and copies nothing beyond
/// the question name, so a caller that keeps one `QueryView` pays no per-query setup.
pub fn parse_query_into(msg: &[u8], q: &mut QueryView) -> core::result::Result<(), QueryError> {
    let h = Header::new_checked(msg).map_err(|_| QueryError::Ignore)?;
    if h.qr() {
        return Err(QueryError::Ignore);
    }
    if h.opcode() != opcode::QUERY {
        return Err(QueryError::NotImp);
    }
    if h.qdcount() != 1 {
        return Err(QueryError::FormErr);
    }
    read_question_into(msg, HEADER_LEN, &mut q.question).map_err(|_| QueryError::FormErr)?;
    let mut pos = q.question.end;
    let mut opt = None;
    let sections = [
        (h.ancount(), Section::Answer),
        (h.nscount(), Section::Authority),
        (h.arcount(), Section::Additional),
    ];
    for (count, section) in sections {
        for _ in 0..count {
            let r = read_record(msg, pos, section).map_err(|_| QueryError::FormErr)?;
            if r.rtype == rtype::OPT {
                if section != Section::Additional || opt.is_some() {
                    return Err(QueryError::FormErr);
                }
                opt = Some(opt_from_record(msg, &r).map_err(|_| QueryError::FormErr)?);
            }
            pos = r.end;
        }
    }
    q.id = h.id();
    q.rd = h.rd();
    q.cd = h.cd();
    q.ad = h.ad();
    q.opt = opt;
    if matches!(q.opt, Some(o) if o.version > 0) {
        return Err(QueryError::BadVers);
    }
    Ok(())
}

/// The OPT record of a whole message, found by the same checks as [`scan_message`]
/// (every name and length valid, OPT only once and only in the additional section, no
/// bytes after the last record) but without keeping the question or the records: for a
/// caller that wants only the OPT, nothing is allocated or copied.
pub fn find_opt(msg: &[u8]) -> Result<Option<Opt>> {
    let h = Header::new_checked(msg)?;
    let mut pos = HEADER_LEN;
    for _ in 0..h.qdcount() {
        pos = skip_name(msg, pos)? + 4;
    }
    let before = h.ancount() as usize + h.nscount() as usize;
    let mut opt = None;
    for i in 0..before + h.arcount() as usize {
        let r = read_record(msg, pos, Section::Additional)?;
        if r.rtype == rtype::OPT {
            if i < before || opt.is_some() {
                return Err(Error::BadOpt);
            }
            opt = Some(opt_from_record(msg, &r)?);
        }
        pos = r.end;
    }
    if pos != msg.len() {
        return Err(Error::TrailingData);
    }
    Ok(opt)
}

/// The walk of a whole message: question, records and OPT.
#[derive(Debug, Clone)]
pub struct Scan {
    pub id: u16,
    pub rcode: u8,
    pub tc: bool,
    pub aa: bool,
    pub ad: bool,
    pub question: Option<Question>,
    /// Every record except OPT, in message order.
    pub records: Vec<Record>,
    pub opt: Option<Opt>,
    /// Offset just past the last record.
    pub end: usize,
}

/// Walks a whole message (typically an upstream answer), validating every name and length.
/// Bytes after the last announced record are an error.
pub fn scan_message(msg: &[u8]) -> Result<Scan> {
    let h = Header::new_checked(msg)?;
    let mut pos = HEADER_LEN;
    let mut question = None;
    for i in 0..h.qdcount() {
        let q = read_question(msg, pos)?;
        pos = q.end;
        if i == 0 {
            question = Some(q);
        }
    }
    let total = h.ancount() as usize + h.nscount() as usize + h.arcount() as usize;
    // Each record takes at least 11 bytes: a cheap bound before allocating.
    if total * 11 > msg.len() {
        return Err(Error::Truncated);
    }
    let mut records = Vec::with_capacity(total);
    let mut opt = None;
    let sections = [
        (h.ancount(), Section::Answer),
        (h.nscount(), Section::Authority),
        (h.arcount(), Section::Additional),
    ];
    for (count, section) in sections {
        for _ in 0..count {
            let r = read_record(msg, pos, section)?;
            if r.rtype == rtype::OPT {
                if section != Section::Additional || opt.is_some() {
                    return Err(Error::BadOpt);
                }
                opt = Some(opt_from_record(msg, &r)?);
            } else {
                records.push(r);
            }
            pos = r.end;
        }
    }
    if pos != msg.len() {
        return Err(Error::TrailingData);
    }
    Ok(Scan {
        id: h.id(),
        rcode: h.rcode(),
        tc: h.tc(),
        aa: h.aa(),
        ad: h.ad(),
        question,
        records,
        opt,
        end: pos,
    })
}
