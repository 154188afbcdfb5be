//! Writing messages: upstream queries, OPT records, and locally made error answers.

use super::message::read_question;
use super::name::NameBuf;
use super::{rtype, Header, EDNS_UDP_SIZE, HEADER_LEN};

/// Writes a query (header + one question) into `out`, replacing its contents.
pub fn query(
    out: &mut Vec<u8>,
    id: u16,
    name: &NameBuf,
    qtype: u16,
    qclass: u16,
    rd: bool,
    cd: bool,
) {
    // Whole pieces, not a field at a time: each copy is a call on the miss path.
    let [i0, i1] = id.to_be_bytes();
    let (rd, cd) = (if rd { 0x01 } else { 0 }, if cd { 0x10 } else { 0 });
    let [t0, t1] = qtype.to_be_bytes();
    let [c0, c1] = qclass.to_be_bytes();
    out.clear();
    out.extend_from_slice(&[i0, i1, rd, cd, 0, 1, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&[t0, t1, c0, c1]);
}

/// An Extended DNS Error to attach to an answer (RFC 8914).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ede {
    pub code: u16,
    pub text: &'static str,
}

/// Appends an OPT record to the message in `out` and bumps its ARCOUNT.
pub fn push_opt(out: &mut Vec<u8>, udp_size: u16, ext_rcode: u8, do_bit: bool, ede: Option<Ede>) {
    // Root owner, type, UDP size (the class), extended RCODE, version, flags (the TTL).
    let [o0, o1] = rtype::OPT.to_be_bytes();
    let [u0, u1] = udp_size.to_be_bytes();
    let flags = if do_bit { 0x80 } else { 0 };
    out.extend_from_slice(&[0, o0, o1, u0, u1, ext_rcode, 0, flags, 0]);
    match ede {
        Some(e) => {
            let text = e.text.as_bytes();
            let optlen = 2 + text.len();
            out.extend_from_slice(&((4 + optlen) as u16).to_be_bytes());
            out.extend_from_slice(&super::ede::OPTION_CODE.to_be_bytes());
            out.extend_from_slice(&(optlen as u16).to_be_bytes());
            out.extend_from_slice(&e.code.to_be_bytes());
            out.extend_from_slice(text);
        }
        None => out.extend_from_slice(&[0, 0]),
    }
    if let Ok(mut h) = Header::new_checked(&mut out[..]) {
        let n = h.arcount().saturating_add(1);
        h.set_arcount(n);
    }
}

/// What an answer to an EDNS client carries in its OPT record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EdnsReply {
    pub do_bit: bool,
    pub ext_rcode: u8,
    pub ede: Option<Ede>,
}

/// Writes an answer with `rcode` and no records for the query in `query_msg` into `out`.
///
/// The question is echoed when it can be read; the header keeps the query's ID, opcode,
/// RD and CD. `edns` adds an OPT record (only for clients that sent one).
pub fn error_reply(out: &mut Vec<u8>, query_msg: &[u8], rcode: u8, edns: Option<EdnsReply>) {
    out.clear();
    let Ok(qh) = Header::new_checked(query_msg) else {
        return;
    };
    out.extend_from_slice(&query_msg[..HEADER_LEN]);
    let mut qdcount = 0;
    if qh.qdcount() == 1 {
        if let Ok(q) = read_question(query_msg, HEADER_LEN) {
            out.extend_from_slice(q.name.as_bytes());
            out.extend_from_slice(&q.qtype.to_be_bytes());
            out.extend_from_slice(&q.qclass.to_be_bytes());
            qdcount = 1;
        }
    }
    if let Ok(mut h) = Header::new_checked(&mut out[..]) {
        h.set_qr(true);
        h.set_aa(false);
        h.set_tc(false);
        h.set_ra(true);
        h.set_ad(false);
        h.set_rcode(rcode);
        h.set_qdcount(qdcount);
        h.set_ancount(0);
        h.set_nscount(0);
        h.set_arcount(0);
    }
    if let Some(e) = edns {
        push_opt(out, EDNS_UDP_SIZE, e.ext_rcode, e.do_bit, e.ede);
    }
}

#[cfg(test)]
mod tests {
    use super::super::message::{parse_query, scan_message};
    use super::super::rcode;
    use super::*;

    #[test]
    fn error_reply_echoes_question_and_opt() {
        let mut q = Vec::new();
        build_query(&mut q);
        let mut out = Vec::new();
        let ede = Ede {
            code: 23,
            text: "network down",
        };
        error_reply(
            &mut out,
            &q,
            rcode::SERVFAIL,
            Some(EdnsReply {
                do_bit: true,
                ext_rcode: 0,
                ede: Some(ede),
            }),
        );
        let s = scan_message(&out).unwrap();
        assert_eq!(s.id, 0x4242);
        assert_eq!(s.rcode, rcode::SERVFAIL);
        assert_eq!(s.question.unwrap().name.to_dotted(), "x.test");
        let opt = s.opt.unwrap();
        assert!(opt.do_bit);
        assert_eq!(opt.udp_size, EDNS_UDP_SIZE);
        // The option itself: code 15, len 2+12, info code 23.
        let rdata = &out[opt.end - 18..opt.end];
        assert_eq!(&rdata[..6], &[0, 15, 0, 14, 0, 23]);
        assert_eq!(&rdata[6..], b"network down");
    }

    #[test]
    fn error_reply_without_readable_question() {
        let mut q = Vec::new();
        build_query(&mut q);
        q.truncate(14);
        let mut out = Vec::new();
        error_reply(&mut out, &q, rcode::FORMERR, None);
        assert_eq!(out.len(), HEADER_LEN);
        let h = Header::new_checked(&out[..]).unwrap();
        assert_eq!((h.qdcount(), h.rcode(), h.qr()), (0, rcode::FORMERR, true));
        error_reply(&mut out, &q[..5], rcode::FORMERR, None);
        assert!(out.is_empty());
    }

    fn build_query(q: &mut Vec<u8>) {
        query(
            q,
            0x4242,
            &NameBuf::from_dotted("x.test").unwrap(),
            1,
            1,
            true,
            true,
        );
        let v = parse_query(q).unwrap();
        assert!(v.rd && v.cd);
    }
}
