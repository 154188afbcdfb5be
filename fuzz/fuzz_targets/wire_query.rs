//! The client query path: `parse_query` on arbitrary bytes, and for every query it
//! accepts, the locally made error answers (`write_error`, `error_reply`) must be
//! well-formed messages that echo the client's ID and question exactly.
#![no_main]

use dproxy::answer::write_error;
use dproxy::wire::build::{error_reply, Ede, EdnsReply};
use dproxy::wire::{parse_query, rcode, scan_message, EDNS_UDP_SIZE};
use libfuzzer_sys::fuzz_target;

const EDE: Ede = Ede {
    code: 23,
    text: "fuzz",
};

fuzz_target!(|data: &[u8]| {
    // Whatever the bytes, the locally made FORMERR never panics and, when made, scans.
    let mut out = Vec::new();
    error_reply(&mut out, data, rcode::FORMERR, None);
    if data.len() >= 12 {
        let s = scan_message(&out).expect("error_reply output must scan");
        assert_eq!(s.id, u16::from_be_bytes([data[0], data[1]]));
        assert!(s.records.is_empty() && s.opt.is_none());
    } else {
        assert!(out.is_empty());
    }

    let Ok(q) = parse_query(data) else { return };
    // The question lies inside the message and is at most 255 bytes of name.
    assert!(q.question.end <= data.len());
    assert!(q.question.name.len() <= 255);
    assert!(q.udp_limit() >= 512);

    for (rc, ede) in [(rcode::SERVFAIL, None), (rcode::REFUSED, Some(EDE))] {
        write_error(&mut out, &q, rc, ede);
        let s = scan_message(&out).expect("write_error output must scan");
        assert_eq!(s.id, q.id);
        assert_eq!(s.rcode, rc);
        let sq = s.question.expect("write_error echoes the question");
        assert_eq!(sq.name.as_bytes(), q.question.name.as_bytes());
        assert_eq!((sq.qtype, sq.qclass), (q.question.qtype, q.question.qclass));
        assert!(s.records.is_empty());
        assert_eq!(s.opt.is_some(), q.opt.is_some());
        if let Some(o) = s.opt {
            assert_eq!(o.udp_size, EDNS_UDP_SIZE);
            assert_eq!(o.do_bit, q.do_bit());
        }
        // The answer is never larger than what a plain client accepts.
        assert!(out.len() <= 512);
    }

    // error_reply from the raw bytes agrees with write_error on the question.
    let edns = q.opt.map(|o| EdnsReply {
        do_bit: o.do_bit,
        ext_rcode: 0,
        ede: None,
    });
    error_reply(&mut out, data, rcode::NOTIMP, edns);
    let s = scan_message(&out).expect("error_reply output must scan");
    let sq = s.question.expect("error_reply echoes a readable question");
    assert_eq!(sq.name.as_bytes(), q.question.name.as_bytes());
    assert_eq!(s.opt.is_some(), q.opt.is_some());
});
