//! Round trips between the emit side (`build`) and the parse side (`message`): queries
//! written by one are read back by the other. Kept apart from both so neither imports
//! the other for its tests.

use super::build;
use super::message::*;
use super::name::NameBuf;
use super::{read_u32, rtype, Error};

fn query(name: &str, qtype: u16, edns: Option<(u16, bool)>) -> Vec<u8> {
    let mut out = Vec::new();
    let n = NameBuf::from_dotted(name).unwrap();
    build::query(&mut out, 0x1234, &n, qtype, 1, true, false);
    if let Some((size, d)) = edns {
        build::push_opt(&mut out, size, 0, d, None);
    }
    out
}

#[test]
fn query_round_trip() {
    let q = query("Example.test", rtype::AAAA, Some((4096, true)));
    let v = parse_query(&q).unwrap();
    assert_eq!(v.id, 0x1234);
    assert!(v.rd && !v.cd);
    assert_eq!(v.question.name.to_dotted(), "Example.test");
    assert_eq!((v.question.qtype, v.question.qclass), (rtype::AAAA, 1));
    assert_eq!(v.opt.map(|o| (o.udp_size, o.do_bit)), Some((4096, true)));
    assert_eq!(v.udp_limit(), 1232);
    let v = parse_query(&query("a.test", 1, None)).unwrap();
    assert!(v.opt.is_none());
    assert_eq!(v.udp_limit(), 512);
}

#[test]
fn tiny_edns_size_counts_as_512() {
    let v = parse_query(&query("a.test", 1, Some((100, false)))).unwrap();
    assert_eq!(v.udp_limit(), 512);
}

#[test]
fn malformed_queries() {
    assert_eq!(parse_query(&[0u8; 5]).err(), Some(QueryError::Ignore));
    let mut q = query("a.test", 1, None);
    // Response bit set: ignored.
    q[2] |= 0x80;
    assert_eq!(parse_query(&q).err(), Some(QueryError::Ignore));
    // Opcode NOTIFY.
    let mut q = query("a.test", 1, None);
    q[2] |= 4 << 3;
    assert_eq!(parse_query(&q).err(), Some(QueryError::NotImp));
    // QDCOUNT 0 and 2.
    let mut q = query("a.test", 1, None);
    q[5] = 0;
    assert_eq!(parse_query(&q).err(), Some(QueryError::FormErr));
    q[5] = 2;
    assert_eq!(parse_query(&q).err(), Some(QueryError::FormErr));
    // Truncated question.
    let q = query("a.test", 1, None);
    assert_eq!(
        parse_query(&q[..q.len() - 1]).err(),
        Some(QueryError::FormErr)
    );
    // Pointer loop in the question.
    let mut q = q[..12].to_vec();
    q.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01");
    assert_eq!(parse_query(&q).err(), Some(QueryError::FormErr));
    // ARCOUNT announces a record that is not there.
    let mut q = query("a.test", 1, None);
    q[11] = 1;
    assert_eq!(parse_query(&q).err(), Some(QueryError::FormErr));
    // Two OPT records.
    let mut q = query("a.test", 1, Some((1232, false)));
    build::push_opt(&mut q, 1232, 0, false, None);
    assert_eq!(parse_query(&q).err(), Some(QueryError::FormErr));
    // EDNS version 1.
    let mut q = query("a.test", 1, Some((1232, false)));
    let n = q.len();
    q[n - 5] = 1;
    assert_eq!(parse_query(&q).err(), Some(QueryError::BadVers));
}

#[test]
fn scan_finds_ttls_and_opt() {
    let mut m = query("a.test", 1, None);
    m[2] |= 0x80;
    // Answer: a.test A 1.2.3.4 TTL 300, compressed owner.
    m.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\x01\x02\x03\x04");
    m[7] = 1;
    build::push_opt(&mut m, 1232, 0, true, None);
    let s = scan_message(&m).unwrap();
    assert_eq!(s.records.len(), 1);
    let r = s.records[0];
    assert_eq!((r.rtype, r.ttl, r.rdlen), (rtype::A, 300, 4));
    assert_eq!(read_u32(&m, r.ttl_pos), Ok(300));
    assert_eq!(s.opt.map(|o| (o.udp_size, o.do_bit)), Some((1232, true)));
    // Trailing garbage is an error, as is a record running past the end.
    let mut t = m.clone();
    t.push(0);
    assert_eq!(scan_message(&t).err(), Some(Error::TrailingData));
    assert!(scan_message(&m[..m.len() - 12]).is_err());
    // A huge announced count is refused before allocating.
    let mut t = m.clone();
    t[6] = 0xff;
    assert_eq!(scan_message(&t).err(), Some(Error::Truncated));
}

#[test]
fn find_opt_agrees_with_the_full_scan() {
    let mut m = query("a.test", 1, None);
    m[2] |= 0x80;
    m.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\x01\x02\x03\x04");
    m[7] = 1;
    let plain = m.clone();
    build::push_opt(&mut m, 1232, 0, true, None);
    let mut trailing = m.clone();
    trailing.push(0);
    // The OPT counted as an answer record instead of an additional one.
    let mut in_answer = m.clone();
    in_answer[7] = 2;
    in_answer[11] = 0;
    let mut twice = m.clone();
    build::push_opt(&mut twice, 512, 0, false, None);
    let cut = m[..m.len() - 3].to_vec();
    let mut huge = m.clone();
    huge[6] = 0xff;
    for (what, msg) in [
        ("with OPT", &m),
        ("without OPT", &plain),
        ("trailing data", &trailing),
        ("OPT in the answer section", &in_answer),
        ("two OPTs", &twice),
        ("cut short", &cut),
        ("huge count", &huge),
    ] {
        let full = scan_message(msg).map(|s| s.opt);
        assert_eq!(find_opt(msg).ok(), full.ok(), "{what}");
        assert_eq!(find_opt(msg).is_err(), full.is_err(), "{what}");
    }
    assert!(find_opt(&m)
        .unwrap()
        .is_some_and(|o| o.do_bit && o.udp_size == 1232));
    assert_eq!(find_opt(&twice).err(), Some(Error::BadOpt));
}
