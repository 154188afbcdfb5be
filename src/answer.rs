//! Turning upstream answers into cacheable form, and cached answers into client replies.
//!
//! An upstream answer is stored without its OPT record (EDNS is hop-by-hop), with TTLs
//! clamped and the offsets of every TTL recorded. A reply is a copy of that with the
//! client's ID, flags and spelling of the name, TTLs counted down, a fresh OPT record
//! when the client sent one, and truncation to the client's UDP size.

use crate::sanitize::{Respell, Scratch};
use crate::wire::build::{push_opt, EdnsReply};
use crate::wire::message::Section;
use crate::wire::{self, rcode, rtype, Header, QueryView, Scan, HEADER_LEN};

/// TTL limits applied to answers before they are cached (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlPolicy {
    pub min_ttl: u32,
    pub max_ttl: u32,
    pub neg_ttl: u32,
}

impl Default for TtlPolicy {
    fn default() -> Self {
        TtlPolicy {
            min_ttl: 0,
            max_ttl: 86400,
            neg_ttl: 3600,
        }
    }
}

/// What kind of answer an upstream gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// NOERROR with data for the question.
    Positive,
    /// NXDOMAIN, or NOERROR without data for the question type (RFC 2308).
    Negative,
    /// SERVFAIL, REFUSED, NOTIMP and anything else unusual.
    Failure,
}

/// An upstream answer made ready for the cache and for replies.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The message without OPT, AA cleared, AD cleared unless trusted, TTLs clamped.
    pub msg: Vec<u8>,
    pub ttl_pos: Vec<u16>,
    /// How long it may be cached (0 = not at all).
    pub lifetime: u32,
    pub kind: Kind,
    pub rcode: u8,
}

/// RFC 2181 8: a TTL with the top bit set counts as zero.
fn sane_ttl(t: u32) -> u32 {
    if t & 0x8000_0000 != 0 {
        0
    } else {
        t
    }
}

/// Prepares an upstream answer. `scan` must be the walk of `raw`.
/// The caller has already matched the question against the query it sent.
///
/// Only the question's CNAME chain (and the zone's SOA/NS) is kept, with its DNSSEC proof
/// when `dnssec_ok` (the query dproxy sent, and so the cache key, had DO set): see
/// [`crate::sanitize::chain_filter`]. The message is rewritten uncompressed.
/// None if that rewrite fails (RDATA that does not hold what its type says).
///
/// With `respell` (a 0x20 question), names are rewritten so that the random case the
/// upstream echoed becomes the canonical spelling again. `scratch` holds the working
/// buffers from one answer to the next.
pub fn prepare(
    raw: &[u8],
    scan: &Scan,
    policy: &TtlPolicy,
    trust_ad: bool,
    dnssec_ok: bool,
    respell: Option<Respell>,
    scratch: &mut Scratch,
) -> Option<Prepared> {
    // Always rewritten: names are copied out of the upstream's compression into plain
    // form (only repeats of the question name become a pointer to it), and the names in
    // RDATA must end where RDLENGTH says. A name that leaned on bytes dproxy rewrites (TTLs,
    // the ID, the OPT record) cannot survive into the cache that way.
    crate::sanitize::chain_filter(raw, scan, dnssec_ok, scratch);
    // The rewrite keeps the header (rcode, TC) and the question's type; its records
    // come from the rewrite itself, not from walking the new message again.
    let (keep, records) = (&scratch.keep, &mut scratch.records);
    let out = std::mem::take(&mut scratch.msg);
    let mut msg = crate::sanitize::rebuild(raw, scan, keep, respell, records, out)?;
    let records = &scratch.records;
    let qtype = scan.question.as_ref().map(|q| q.qtype).unwrap_or(0);
    if let Ok(mut h) = Header::new_checked(&mut msg[..]) {
        h.set_aa(false);
        h.set_ra(true);
        if !trust_ad {
            h.set_ad(false);
        }
    }

    let has_data = records
        .iter()
        .any(|r| r.section == Section::Answer && (r.rtype == qtype || qtype == rtype::ANY));
    let kind = match scan.rcode {
        rcode::NOERROR if has_data => Kind::Positive,
        rcode::NOERROR | rcode::NXDOMAIN => Kind::Negative,
        _ => Kind::Failure,
    };

    let mut ttl_pos = std::mem::take(&mut scratch.ttl_pos);
    ttl_pos.clear();
    let mut lifetime: Option<u32> = None;
    let mut soa_seen = false;
    for r in records {
        let mut ttl = sane_ttl(r.ttl).clamp(policy.min_ttl, policy.max_ttl.max(policy.min_ttl));
        if kind == Kind::Negative && r.section == Section::Authority && r.rtype == rtype::SOA {
            // RFC 2308 5: the negative TTL is the smaller of the SOA's TTL and MINIMUM.
            let minimum = r
                .end
                .checked_sub(4)
                .and_then(|p| wire::read_u32(&msg, p).ok())
                .unwrap_or(0);
            ttl = sane_ttl(r.ttl).min(sane_ttl(minimum)).min(policy.neg_ttl);
            soa_seen = true;
        }
        wire::write_u32(&mut msg, r.ttl_pos, ttl);
        ttl_pos.push(r.ttl_pos as u16);
        lifetime = Some(lifetime.map_or(ttl, |l| l.min(ttl)));
    }
    let lifetime = match kind {
        Kind::Positive => lifetime.unwrap_or(0),
        Kind::Negative if soa_seen => lifetime.unwrap_or(0),
        // Without an SOA there is no negative TTL to go by (RFC 2308 5).
        Kind::Negative | Kind::Failure => 0,
    };
    Some(Prepared {
        msg,
        ttl_pos,
        lifetime: if scan.tc { 0 } else { lifetime },
        kind,
        rcode: scan.rcode,
    })
}

/// How a reply is to be dressed.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplyOpts {
    /// Seconds to subtract from every TTL.
    pub elapsed: u32,
    /// Serve every TTL as this value instead (stale answers).
    pub fixed_ttl: Option<u32>,
    /// Extended error to attach for EDNS clients.
    pub ede: Option<wire::build::Ede>,
    /// Set AA (local data).
    pub authoritative: bool,
    /// The reply goes over UDP: apply the client's size limit.
    pub udp: bool,
}

/// The stored form of an answer: the header and everything after the question. The
/// question is the client's own and is put back by [`write_stored_reply`] at the same
/// offset and with the same length, so compression pointers into it stay valid. The
/// cache keeps answers in this form: the name is in the key already.
///
/// Returns the stored bytes and the TTL offsets moved to match; None if the message's
/// question is not a single uncompressed question.
pub fn to_stored(msg: &[u8], ttl_pos: &[u16]) -> Option<(Vec<u8>, Vec<u16>)> {
    let (mut stored, mut pos) = (Vec::new(), Vec::new());
    to_stored_into(msg, ttl_pos, &mut stored, &mut pos)?;
    Some((stored, pos))
}

/// [`to_stored`] into buffers the caller keeps (their old contents are replaced): a
/// miss then allocates nothing for this step.
pub fn to_stored_into(
    msg: &[u8],
    ttl_pos: &[u16],
    stored: &mut Vec<u8>,
    pos: &mut Vec<u16>,
) -> Option<()> {
    // The question must be one uncompressed name, its type and its class.
    let end = crate::wire::name::plain_name_end(msg, HEADER_LEN)? + 4;
    let (head, rest) = (msg.get(..HEADER_LEN)?, msg.get(end..)?);
    let qsec = end - HEADER_LEN;
    stored.clear();
    stored.extend_from_slice(head);
    stored.extend_from_slice(rest);
    pos.clear();
    for &p in ttl_pos {
        pos.push((p as usize).checked_sub(qsec)? as u16);
    }
    Some(())
}

/// Writes a reply for `q` from a whole answer message (question included).
/// Returns true if the reply had to be truncated.
pub fn write_reply(
    out: &mut Vec<u8>,
    msg: &[u8],
    ttl_pos: impl Iterator<Item = usize>,
    q: &QueryView,
    opts: &ReplyOpts,
) -> bool {
    let pos: Vec<u16> = ttl_pos.map(|p| p as u16).collect();
    match to_stored(msg, &pos) {
        Some((stored, spos)) => {
            write_stored_reply(out, &stored, spos.iter().map(|&p| p as usize), q, opts)
        }
        None => {
            out.clear();
            false
        }
    }
}

/// Writes a reply for `q` from an answer in stored form (see [`to_stored`]): the client's
/// ID, flags and question, TTLs counted down, OPT for EDNS clients, truncation for UDP.
/// Returns true if the reply had to be truncated.
pub fn write_stored_reply(
    out: &mut Vec<u8>,
    stored: &[u8],
    ttl_pos: impl Iterator<Item = usize>,
    q: &QueryView,
    opts: &ReplyOpts,
) -> bool {
    let Some(head) = stored.get(..HEADER_LEN) else {
        out.clear();
        return false;
    };
    let qname = q.question.name.as_bytes();
    let qsec = qname.len() + 4;
    copy_reply_parts(
        out,
        head,
        qname,
        q.question.qtype,
        q.question.qclass,
        stored.get(HEADER_LEN..).unwrap_or_default(),
    );
    for p in ttl_pos {
        let t = match opts.fixed_ttl {
            Some(t) => t,
            None => wire::read_u32(stored, p)
                .unwrap_or(0)
                .saturating_sub(opts.elapsed),
        };
        wire::write_u32(out, p + qsec, t);
    }
    if let Ok(mut h) = Header::new_checked(&mut out[..]) {
        h.set_id(q.id);
        h.set_qr(true);
        h.set_rd(q.rd);
        h.set_cd(q.cd);
        h.set_ra(true);
        h.set_aa(opts.authoritative);
    }
    let edns = q.opt.map(|o| EdnsReply {
        do_bit: o.do_bit,
        ext_rcode: 0,
        ede: opts.ede,
    });
    let opt_len = match edns.and_then(|e| e.ede) {
        Some(e) => 11 + 6 + e.text.len(),
        None if edns.is_some() => 11,
        None => 0,
    };
    let mut truncated = false;
    if opts.udp && out.len() + opt_len > q.udp_limit() {
        // Keep header and question only; the client retries over TCP (RFC 7766).
        let qend = HEADER_LEN + qname.len() + 4;
        out.truncate(qend.min(out.len()));
        if let Ok(mut h) = Header::new_checked(&mut out[..]) {
            h.set_tc(true);
            h.set_ancount(0);
            h.set_nscount(0);
            h.set_arcount(0);
        }
        truncated = true;
    }
    if let Some(e) = edns {
        push_opt(out, wire::EDNS_UDP_SIZE, e.ext_rcode, e.do_bit, e.ede);
    }
    truncated
}

/// Replaces what `out` holds with header, question and body: sized once, then plain
/// slice copies. Appending piece by piece was fast only while LTO inlined
/// `Vec::extend_from_slice` here; with TLS linked in it stopped doing so, and five
/// out-of-line calls (each with its own capacity check and `memcpy` call, even for two
/// bytes) cost about 200 instructions per cached answer. `out` is not cleared first:
/// every byte is overwritten, so only growth beyond the last reply is zero-filled.
/// Always inlined: its one caller then knows the header's length, and no call is paid.
#[inline(always)]
fn copy_reply_parts(
    out: &mut Vec<u8>,
    head: &[u8],
    qname: &[u8],
    qtype: u16,
    qclass: u16,
    body: &[u8],
) {
    let q_end = head.len() + qname.len() + 4;
    out.resize(q_end + body.len(), 0);
    let (h, rest) = out.split_at_mut(head.len());
    h.copy_from_slice(head);
    let (n, rest) = rest.split_at_mut(qname.len());
    n.copy_from_slice(qname);
    let (tc, b) = rest.split_at_mut(4);
    tc[..2].copy_from_slice(&qtype.to_be_bytes());
    tc[2..].copy_from_slice(&qclass.to_be_bytes());
    b.copy_from_slice(body);
}

/// Writes an answer with `rcode` and no records for a parsed query.
pub fn write_error(out: &mut Vec<u8>, q: &QueryView, rc: u8, ede: Option<wire::build::Ede>) {
    wire::build::query(
        out,
        q.id,
        &q.question.name,
        q.question.qtype,
        q.question.qclass,
        q.rd,
        q.cd,
    );
    if let Ok(mut h) = Header::new_checked(&mut out[..]) {
        h.set_qr(true);
        h.set_ra(true);
        h.set_rcode(rc);
    }
    if let Some(o) = q.opt {
        push_opt(out, wire::EDNS_UDP_SIZE, 0, o.do_bit, ede);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`super::prepare`] with buffers of its own.
    fn prepare(
        raw: &[u8],
        scan: &Scan,
        policy: &TtlPolicy,
        trust_ad: bool,
        dnssec_ok: bool,
        respell: Option<Respell>,
    ) -> Option<Prepared> {
        let s = &mut Scratch::default();
        super::prepare(raw, scan, policy, trust_ad, dnssec_ok, respell, s)
    }
    use crate::wire::build;
    use crate::wire::{parse_query, scan_message, NameBuf};

    /// An answer for `name` A with `n` records of TTL `ttl`, plus an OPT record.
    fn upstream_answer(name: &str, n: usize, ttl: u32) -> Vec<u8> {
        let mut m = Vec::new();
        build::query(
            &mut m,
            7,
            &NameBuf::from_dotted(name).unwrap(),
            1,
            1,
            true,
            false,
        );
        m[2] |= 0x84; // QR, AA
        m[3] |= 0x20; // AD
        for i in 0..n {
            m.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01");
            m.extend_from_slice(&ttl.to_be_bytes());
            m.extend_from_slice(&[0, 4, 10, 0, 0, i as u8]);
        }
        m[7] = n as u8;
        build::push_opt(&mut m, 4096, 0, false, None);
        m
    }

    fn negative(rc: u8, soa_ttl: u32, minimum: u32) -> Vec<u8> {
        let mut m = Vec::new();
        build::query(
            &mut m,
            7,
            &NameBuf::from_dotted("nx.test").unwrap(),
            1,
            1,
            true,
            false,
        );
        m[2] |= 0x80;
        m[3] |= rc;
        m.extend_from_slice(b"\x04test\x00\x00\x06\x00\x01");
        m.extend_from_slice(&soa_ttl.to_be_bytes());
        let mut rdata = b"\x02ns\xc0\x14\x05admin\xc0\x14".to_vec();
        for v in [1u32, 2, 3, 4, minimum] {
            rdata.extend_from_slice(&v.to_be_bytes());
        }
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(&rdata);
        m[9] = 1;
        m
    }

    fn client(name: &str, edns: Option<u16>) -> (Vec<u8>, QueryView) {
        let mut q = Vec::new();
        build::query(
            &mut q,
            0xabcd,
            &NameBuf::from_dotted(name).unwrap(),
            1,
            1,
            true,
            false,
        );
        if let Some(s) = edns {
            build::push_opt(&mut q, s, 0, true, None);
        }
        let v = parse_query(&q).unwrap();
        (q, v)
    }

    #[test]
    fn positive_answer_is_prepared_and_replied() {
        let raw = upstream_answer("www.test", 2, 300);
        let p = prepare(
            &raw,
            &scan_message(&raw).unwrap(),
            &TtlPolicy::default(),
            false,
            false,
            None,
        )
        .unwrap();
        assert_eq!(
            (p.kind, p.lifetime, p.ttl_pos.len()),
            (Kind::Positive, 300, 2)
        );
        let s = scan_message(&p.msg).unwrap();
        assert!(s.opt.is_none() && !s.aa && !s.ad);

        let (_, q) = client("WWW.Test", Some(1232));
        let mut out = Vec::new();
        let opts = ReplyOpts {
            elapsed: 100,
            udp: true,
            ..Default::default()
        };
        assert!(!write_reply(
            &mut out,
            &p.msg,
            p.ttl_pos.iter().map(|&x| x as usize),
            &q,
            &opts
        ));
        let s = scan_message(&out).unwrap();
        assert_eq!(s.id, 0xabcd);
        assert_eq!(s.question.unwrap().name.to_dotted(), "WWW.Test");
        assert!(s.records.iter().all(|r| r.ttl == 200));
        let o = s.opt.unwrap();
        assert!(o.do_bit);
        assert_eq!(o.udp_size, 1232);
    }

    #[test]
    fn reply_written_over_a_longer_one_is_the_same_as_into_an_empty_buffer() {
        // The reply buffer is reused without clearing: nothing of the earlier, longer
        // reply may survive in the new one.
        let stored = |name: &str, n: usize| {
            let raw = upstream_answer(name, n, 300);
            let policy = TtlPolicy::default();
            prepare(
                &raw,
                &scan_message(&raw).unwrap(),
                &policy,
                false,
                false,
                None,
            )
            .unwrap()
        };
        let long = stored("a-much-longer-name.example.test", 6);
        let short = stored("s.test", 1);
        let opts = ReplyOpts::default();
        let (_, ql) = client("a-much-longer-name.example.test", None);
        let (_, qs) = client("S.test", Some(1232));
        let reply = |out: &mut Vec<u8>, p: &Prepared, q: &QueryView| {
            write_reply(out, &p.msg, p.ttl_pos.iter().map(|&x| x as usize), q, &opts)
        };
        let mut fresh = Vec::new();
        reply(&mut fresh, &short, &qs);
        let mut reused = Vec::new();
        reply(&mut reused, &long, &ql);
        assert!(reused.len() > fresh.len());
        reply(&mut reused, &short, &qs);
        assert_eq!(reused, fresh);
        let s = scan_message(&reused).unwrap();
        assert_eq!(s.question.unwrap().name.to_dotted(), "S.test");
        assert_eq!(s.records.len(), 1);
    }

    #[test]
    fn ttls_are_clamped() {
        let raw = upstream_answer("www.test", 1, 5);
        let pol = TtlPolicy {
            min_ttl: 60,
            max_ttl: 120,
            neg_ttl: 10,
        };
        let p = prepare(&raw, &scan_message(&raw).unwrap(), &pol, false, false, None).unwrap();
        assert_eq!(p.lifetime, 60);
        let raw = upstream_answer("www.test", 1, 100_000);
        let p = prepare(&raw, &scan_message(&raw).unwrap(), &pol, false, false, None).unwrap();
        assert_eq!(p.lifetime, 120);
        let raw = upstream_answer("www.test", 1, 0x8000_0001);
        let p = prepare(
            &raw,
            &scan_message(&raw).unwrap(),
            &TtlPolicy::default(),
            false,
            false,
            None,
        )
        .unwrap();
        assert_eq!(p.lifetime, 0);
    }

    #[test]
    fn negative_ttl_follows_rfc2308() {
        let pol = TtlPolicy::default();
        let raw = negative(rcode::NXDOMAIN, 900, 300);
        let p = prepare(&raw, &scan_message(&raw).unwrap(), &pol, false, false, None).unwrap();
        assert_eq!((p.kind, p.lifetime), (Kind::Negative, 300));
        let raw = negative(rcode::NOERROR, 60, 300);
        let p = prepare(&raw, &scan_message(&raw).unwrap(), &pol, false, false, None).unwrap();
        assert_eq!((p.kind, p.lifetime), (Kind::Negative, 60));
        let capped = TtlPolicy { neg_ttl: 30, ..pol };
        let raw = negative(rcode::NXDOMAIN, 900, 300);
        let p = prepare(
            &raw,
            &scan_message(&raw).unwrap(),
            &capped,
            false,
            false,
            None,
        )
        .unwrap();
        assert_eq!(p.lifetime, 30);
        let raw = negative(rcode::SERVFAIL, 900, 300);
        let p = prepare(&raw, &scan_message(&raw).unwrap(), &pol, false, false, None).unwrap();
        assert_eq!((p.kind, p.lifetime), (Kind::Failure, 0));
    }

    #[test]
    fn truncated_upstream_answer_is_not_cacheable() {
        let mut raw = upstream_answer("www.test", 1, 300);
        raw[2] |= 0x02;
        let p = prepare(
            &raw,
            &scan_message(&raw).unwrap(),
            &TtlPolicy::default(),
            false,
            false,
            None,
        )
        .unwrap();
        assert_eq!(p.lifetime, 0);
    }

    #[test]
    fn large_answer_is_truncated_for_small_udp_clients() {
        let raw = upstream_answer("www.test", 40, 300);
        let p = prepare(
            &raw,
            &scan_message(&raw).unwrap(),
            &TtlPolicy::default(),
            true,
            false,
            None,
        )
        .unwrap();
        assert!(p.msg.len() > 512);
        let pos = || p.ttl_pos.iter().map(|&x| x as usize);
        let (_, q) = client("www.test", None);
        let mut out = Vec::new();
        let udp = ReplyOpts {
            udp: true,
            ..Default::default()
        };
        assert!(write_reply(&mut out, &p.msg, pos(), &q, &udp));
        let s = scan_message(&out).unwrap();
        assert!(s.tc && s.records.is_empty() && s.opt.is_none());
        // Over TCP the whole answer goes.
        assert!(!write_reply(
            &mut out,
            &p.msg,
            pos(),
            &q,
            &ReplyOpts::default()
        ));
        assert_eq!(scan_message(&out).unwrap().records.len(), 40);
        // An EDNS client with room gets it all over UDP.
        let (_, q) = client("www.test", Some(1232));
        assert!(!write_reply(&mut out, &p.msg, pos(), &q, &udp));
        assert!(out.len() <= 1232);
    }
}
