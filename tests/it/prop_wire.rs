//! Property tests for the wire format and the answer path (stable Rust, part of `cargo test`).
//!
//! The same functions as the fuzz targets in fuzz/ (wire_query, wire_answer, tcp_frame),
//! with generated inputs: arbitrary bytes never panic; names, queries and error answers
//! round-trip; and for well-formed upstream answers (built here the way real servers
//! build them, compression included) the reply path keeps every promise to the client.
//! Case counts are kept small enough for the whole suite to run in seconds in debug.

use dproxy::answer::{
    to_stored, write_error, write_reply, write_stored_reply, Kind, Prepared, ReplyOpts, TtlPolicy,
};
use dproxy::sanitize::{Respell, Scratch};
use dproxy::wire::build::{self, Ede, EdnsReply};
use dproxy::wire::message::Section;
use dproxy::wire::name::read_name;
use dproxy::wire::{
    parse_query, rcode, read_u32, rtype, scan_message, NameBuf, QueryView, Scan, HEADER_LEN,
};
use proptest::prelude::*;

use crate::common;
use common::config;

/// [`dproxy::answer::prepare`] as the daemon calls it, with working buffers kept from
/// the answer before (another case of the same property), and checked against a run
/// with fresh buffers: nothing left over from an earlier answer may change the result.
fn prepare(
    msg: &[u8],
    s: &Scan,
    pol: &TtlPolicy,
    trust_ad: bool,
    dnssec_ok: bool,
    fix: Option<Respell>,
) -> Option<Prepared> {
    thread_local! {
        static KEPT: std::cell::RefCell<Scratch> = Default::default();
    }
    let prep = |scratch: &mut Scratch| {
        dproxy::answer::prepare(msg, s, pol, trust_ad, dnssec_ok, fix, scratch)
    };
    let reused = KEPT.with(|k| prep(&mut k.borrow_mut()));
    let fresh = prep(&mut Scratch::default());
    let parts = |p: &Option<Prepared>| {
        p.as_ref().map(|p| {
            (
                p.msg.clone(),
                p.ttl_pos.clone(),
                p.lifetime,
                p.kind,
                p.rcode,
            )
        })
    };
    assert_eq!(
        parts(&reused),
        parts(&fresh),
        "kept buffers changed the result"
    );
    // The daemon hands a delivered answer's buffers to the next one: so does this,
    // with their contents left in.
    if let Some(p) = &reused {
        KEPT.with(|k| {
            k.borrow_mut()
                .keep_buffers(p.msg.clone(), p.ttl_pos.clone())
        });
    }
    reused
}

// ------------------------------------------------------------------ generators

/// A label as people write them (letters of both cases, digits, '-' and '_').
fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-zA-Z0-9_-]{1,12}",
        1 => "[a-z]{40,63}",
    ]
}

/// A dotted name that fits in 255 bytes of wire form.
fn dotted() -> impl Strategy<Value = String> {
    prop::collection::vec(label(), 0..6).prop_map(|labels| {
        let mut out = Vec::new();
        let mut len = 1;
        for l in labels {
            if len + l.len() + 1 > 255 {
                break;
            }
            len += l.len() + 1;
            out.push(l);
        }
        out.join(".")
    })
}

/// Arbitrary binary labels (any byte value), as a wire-form name.
fn binary_name() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 1..64), 0..5).prop_map(|labels| {
        let mut w = Vec::new();
        for l in labels {
            if w.len() + l.len() + 2 > 255 {
                break;
            }
            w.push(l.len() as u8);
            w.extend_from_slice(&l);
        }
        w.push(0);
        w
    })
}

fn flip_case(name: &NameBuf, pattern: u64) -> NameBuf {
    let mut w = name.as_bytes().to_vec();
    let mut pos = 0;
    let mut i = 0;
    while w[pos] != 0 {
        let l = w[pos] as usize;
        for c in &mut w[pos + 1..pos + 1 + l] {
            if c.is_ascii_alphabetic() && pattern & (1 << (i % 64)) != 0 {
                *c ^= 0x20;
            }
            i += 1;
        }
        pos += 1 + l;
    }
    NameBuf::from_wire(&w).unwrap()
}

/// One record of a generated upstream answer.
#[derive(Debug, Clone)]
struct RecSpec {
    section: u8,
    /// 0: the question name, 1..: another name (below or beside the question name).
    owner: u8,
    kind: u8,
    ttl: u32,
    data: Vec<u8>,
}

/// A generated upstream answer.
#[derive(Debug, Clone)]
struct AnswerSpec {
    id: u16,
    qname: String,
    qtype: u16,
    rcode: u8,
    tc: bool,
    records: Vec<RecSpec>,
    opt: Option<(u16, bool)>,
    compress: bool,
}

fn ttl() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => 0u32..100_000,
        1 => any::<u32>(),
        1 => Just(0x8000_0000u32),
    ]
}

fn rec_spec() -> impl Strategy<Value = RecSpec> {
    (
        prop_oneof![6 => Just(0u8), 2 => Just(1u8), 2 => Just(2u8)],
        prop_oneof![3 => Just(0u8), 1 => 1u8..4],
        0u8..12,
        ttl(),
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(section, owner, kind, ttl, data)| RecSpec {
            section,
            owner,
            kind,
            ttl,
            data,
        })
}

fn answer_spec() -> impl Strategy<Value = AnswerSpec> {
    (
        any::<u16>(),
        dotted(),
        prop_oneof![Just(rtype::A), Just(rtype::AAAA), Just(rtype::TXT), Just(rtype::MX), Just(rtype::ANY), Just(65280u16)],
        prop_oneof![4 => Just(rcode::NOERROR), 2 => Just(rcode::NXDOMAIN), 1 => Just(rcode::SERVFAIL)],
        prop::bool::weighted(0.1),
        prop::collection::vec(rec_spec(), 0..12),
        prop::option::of((any::<u16>(), any::<bool>())),
        any::<bool>(),
    )
        .prop_map(|(id, qname, qtype, rcode, tc, records, opt, compress)| AnswerSpec {
            id,
            qname,
            qtype,
            rcode,
            tc,
            records,
            opt,
            compress,
        })
}

/// Writes names like a real server: optionally compressed, pointers only to the start
/// of a suffix written earlier.
struct Writer {
    out: Vec<u8>,
    compress: bool,
    suffixes: Vec<(Vec<u8>, usize)>,
}

impl Writer {
    fn name(&mut self, wire: &[u8]) {
        let mut pos = 0;
        while wire[pos] != 0 {
            let suffix = &wire[pos..];
            if self.compress {
                if let Some((_, at)) = self
                    .suffixes
                    .iter()
                    .find(|(s, _)| s.eq_ignore_ascii_case(suffix))
                {
                    let p = 0xc000 | *at as u16;
                    self.out.extend_from_slice(&p.to_be_bytes());
                    return;
                }
            }
            if self.out.len() < 0x3fff {
                self.suffixes.push((suffix.to_vec(), self.out.len()));
            }
            let l = wire[pos] as usize;
            self.out.extend_from_slice(&wire[pos..pos + 1 + l]);
            pos += 1 + l;
        }
        self.out.push(0);
    }

    fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }
}

fn owner_name(q: &NameBuf, owner: u8) -> NameBuf {
    match owner {
        0 => q.clone(),
        1 => NameBuf::from_dotted("alias.cdn.example").unwrap(),
        2 => {
            // A name below the question name, when it fits.
            let mut w = b"\x03sub".to_vec();
            w.extend_from_slice(q.as_bytes());
            NameBuf::from_wire(&w).unwrap_or_else(|_| q.clone())
        }
        _ => NameBuf::from_dotted("other.example").unwrap(),
    }
}

/// The name one label up (the root stays the root).
fn parent(n: &NameBuf) -> NameBuf {
    let w = n.as_bytes();
    match w[0] {
        0 => n.clone(),
        l => NameBuf::from_wire(&w[1 + l as usize..]).unwrap(),
    }
}

/// Encodes a generated answer; returns the message and, per record, (type, TTL).
fn encode_answer(spec: &AnswerSpec) -> (Vec<u8>, Vec<(u16, u32)>) {
    let q = NameBuf::from_dotted(&spec.qname).unwrap();
    let mut w = Writer {
        out: Vec::new(),
        compress: spec.compress,
        suffixes: Vec::new(),
    };
    w.u16(spec.id);
    w.out
        .push(0x80 | 0x04 | if spec.tc { 0x02 } else { 0 } | 0x01);
    w.out.push(0x80 | 0x20 | spec.rcode);
    w.out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    w.name(q.as_bytes());
    w.u16(spec.qtype);
    w.u16(1);
    let mut counts = [0u16; 3];
    let mut recs = Vec::new();
    let mut sorted = spec.records.clone();
    sorted.sort_by_key(|r| r.section);
    for r in &sorted {
        let owner = owner_name(&q, r.owner);
        let t = match (r.section, r.kind) {
            (1, k) if k < 4 => rtype::SOA,
            // The proof a signed zone adds (RFC 4035 3.1.3), and a referral's DS.
            (1, 8) => rtype::NSEC,
            (1, 9) => rtype::NSEC3,
            (1, 10) => rtype::RRSIG,
            (1, 11) => rtype::DS,
            (1, _) => rtype::NS,
            (_, 0 | 1) if spec.qtype == rtype::ANY => rtype::A,
            (_, 0 | 1) if spec.qtype == 65280 => rtype::AAAA,
            (_, 0 | 1) => spec.qtype,
            (_, 2) => rtype::CNAME,
            (_, 3) => rtype::MX,
            (_, 4) => rtype::TXT,
            (_, 5) => rtype::AAAA,
            (_, 8 | 9) => rtype::RRSIG,
            (_, 10) => rtype::DNAME,
            (_, 11) => rtype::NSEC,
            _ => 65280,
        };
        let target = match t {
            rtype::CNAME => owner_name(&q, r.owner.wrapping_add(1) % 4),
            rtype::NS => NameBuf::from_dotted("ns1.example").unwrap(),
            _ => NameBuf::from_dotted("mail.example").unwrap(),
        };
        let owner = match (r.section, t) {
            // NSEC3 owners are hashes below the zone; the other proof records sit at or
            // above the question name.
            (1, rtype::NSEC3) => {
                NameBuf::from_dotted("0p9mhaveqvm6t7vbl5lop2u3t2rp3tom.example").unwrap()
            }
            (1, _) => q.clone(),
            (_, rtype::DNAME) => parent(&q),
            _ => owner,
        };
        w.name(owner.as_bytes());
        w.u16(t);
        w.u16(1);
        w.out.extend_from_slice(&r.ttl.to_be_bytes());
        let len_at = w.out.len();
        w.u16(0);
        match t {
            rtype::A => w
                .out
                .extend_from_slice(&[192, 0, 2, r.data.first().copied().unwrap_or(1)]),
            rtype::AAAA => w
                .out
                .extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            rtype::CNAME | rtype::NS => w.name(target.as_bytes()),
            rtype::MX => {
                w.u16(10);
                w.name(target.as_bytes());
            }
            rtype::SOA => {
                w.name(NameBuf::from_dotted("ns1.example").unwrap().as_bytes());
                w.name(
                    NameBuf::from_dotted("hostmaster.example")
                        .unwrap()
                        .as_bytes(),
                );
                for v in [1u32, 7200, 3600, 1_209_600, r.data.len() as u32 * 30] {
                    w.out.extend_from_slice(&v.to_be_bytes());
                }
            }
            rtype::TXT => {
                w.out.push(r.data.len() as u8);
                w.out.extend_from_slice(&r.data);
            }
            // Read even when compressed, though servers must not compress it (RFC 6672).
            rtype::DNAME => w.name(target.as_bytes()),
            rtype::RRSIG => {
                // Type covered, then the fixed fields, the signer (never compressed,
                // RFC 4034 3.1.7) and the signature.
                let covered = [spec.qtype, rtype::CNAME, rtype::SOA, rtype::NSEC, rtype::NS]
                    [r.data.first().copied().unwrap_or(0) as usize % 5];
                w.u16(covered);
                w.out
                    .extend_from_slice(&[13, 2, 0, 0, 1, 44, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
                w.out.extend_from_slice(b"\x07example\x00");
                w.out.extend_from_slice(&r.data);
            }
            rtype::NSEC => {
                w.out.extend_from_slice(b"\x01z\x07example\x00");
                w.out.extend_from_slice(&[0, 1, 0x40]);
            }
            _ => w.out.extend_from_slice(&r.data),
        }
        let rdlen = (w.out.len() - len_at - 2) as u16;
        w.out[len_at..len_at + 2].copy_from_slice(&rdlen.to_be_bytes());
        counts[r.section as usize] += 1;
        recs.push((t, r.ttl));
    }
    if let Some((size, do_bit)) = spec.opt {
        w.out.push(0);
        w.u16(rtype::OPT);
        w.u16(size);
        w.out
            .extend_from_slice(&[0, 0, if do_bit { 0x80 } else { 0 }, 0, 0, 0]);
        counts[2] += 1;
    }
    for (i, c) in counts.iter().enumerate() {
        w.out[6 + 2 * i..8 + 2 * i].copy_from_slice(&c.to_be_bytes());
    }
    (w.out, recs)
}

fn client(id: u16, name: &NameBuf, qtype: u16, edns: Option<(u16, bool)>) -> QueryView {
    let mut raw = Vec::new();
    build::query(&mut raw, id, name, qtype, 1, true, false);
    if let Some((size, d)) = edns {
        build::push_opt(&mut raw, size, 0, d, None);
    }
    parse_query(&raw).expect("a built query parses")
}

/// What a client must get: a message that scans, with its ID and its spelling of the
/// name, TTLs counted down (never up), and within its UDP limit.
fn check_reply(stored: &[u8], ttl_pos: &[u16], q: &QueryView, opts: &ReplyOpts) -> Scan {
    let st = scan_message(stored).expect("stored answers scan");
    let mut out = Vec::new();
    let truncated = write_reply(
        &mut out,
        stored,
        ttl_pos.iter().map(|&p| p as usize),
        q,
        opts,
    );
    let s = scan_message(&out).expect("a reply always scans");
    assert_eq!(s.id, q.id);
    let sq = s.question.as_ref().expect("a reply keeps the question");
    assert_eq!(
        sq.name.as_bytes(),
        q.question.name.as_bytes(),
        "client's spelling"
    );
    if opts.udp {
        assert!(
            out.len() <= q.udp_limit(),
            "{} > {}",
            out.len(),
            q.udp_limit()
        );
    }
    assert_eq!(s.opt.is_some(), q.opt.is_some());
    if truncated {
        assert!(s.tc && s.records.is_empty());
    } else {
        assert_eq!(s.records.len(), st.records.len());
        for (a, b) in s.records.iter().zip(&st.records) {
            assert_eq!(a.rtype, b.rtype);
            assert!(a.ttl <= b.ttl, "TTL went up");
            assert_eq!(a.ttl, b.ttl.saturating_sub(opts.elapsed));
        }
    }
    s
}

// ------------------------------------------------------------------ properties

proptest! {
    #![proptest_config(config(2000))]

    /// No reader panics on any bytes, and error answers are made for anything with a header.
    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..300), off in 0usize..300) {
        let _ = parse_query(&data);
        if let Ok(s) = scan_message(&data) {
            prop_assert_eq!(s.end, data.len());
        }
        let mut n = NameBuf::root();
        let _ = read_name(&data, off, Some(&mut n));
        let _ = NameBuf::from_wire(&data);
        let _ = NameBuf::from_dotted(&String::from_utf8_lossy(&data));
        let mut out = Vec::new();
        build::error_reply(&mut out, &data, rcode::FORMERR, None);
        if data.len() >= HEADER_LEN {
            prop_assert!(scan_message(&out).is_ok());
        } else {
            prop_assert!(out.is_empty());
        }
        let _ = dproxy::tcp::split_frame(&data);
    }

    /// Same, for messages that start with a plausible header (so the body gets read).
    #[test]
    fn plausible_headers_never_panic(
        id in any::<u16>(), flags in any::<u16>(), counts in prop::array::uniform4(0u16..4),
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&flags.to_be_bytes());
        for c in counts {
            m.extend_from_slice(&c.to_be_bytes());
        }
        m.extend_from_slice(&body);
        let _ = scan_message(&m);
        if let Ok(q) = parse_query(&m) {
            let mut out = Vec::new();
            write_error(&mut out, &q, rcode::SERVFAIL, None);
            prop_assert!(scan_message(&out).is_ok());
        }
    }
}

proptest! {
    #![proptest_config(config(1000))]

    /// from_dotted → wire → read_name gives the same name back, and to_dotted inverts it.
    #[test]
    fn names_round_trip(s in dotted()) {
        let n = NameBuf::from_dotted(&s).unwrap();
        prop_assert!(n.len() <= 255);
        let mut msg = vec![0u8; HEADER_LEN];
        msg.extend_from_slice(n.as_bytes());
        let mut back = NameBuf::root();
        prop_assert_eq!(read_name(&msg, HEADER_LEN, Some(&mut back)), Ok(msg.len()));
        prop_assert_eq!(back.as_bytes(), n.as_bytes());
        prop_assert_eq!(NameBuf::from_wire(n.as_bytes()).unwrap(), n.clone());
        let dotted = n.to_dotted();
        if s.is_empty() {
            prop_assert_eq!(dotted.as_str(), ".");
        } else {
            prop_assert_eq!(&dotted, &s);
            prop_assert_eq!(NameBuf::from_dotted(&dotted).unwrap(), n.clone());
        }
        prop_assert_eq!(n.label_count(), if s.is_empty() { 0 } else { s.split('.').count() });
        prop_assert!(n.is_subdomain_of(&NameBuf::root()));
        prop_assert!(n.eq_ignore_case(&flip_case(&n, 0x5555_5555_5555_5555)));
    }

    /// Binary labels survive a trip through a message with a compression pointer.
    #[test]
    fn compressed_names_read_back(suffix in binary_name(), prefix in binary_name()) {
        let mut msg = vec![0u8; HEADER_LEN];
        msg.extend_from_slice(&suffix);
        let second = msg.len();
        msg.extend_from_slice(&prefix[..prefix.len() - 1]);
        msg.extend_from_slice(&(0xc000u16 | HEADER_LEN as u16).to_be_bytes());
        let mut full = prefix[..prefix.len() - 1].to_vec();
        full.extend_from_slice(&suffix);
        let mut n = NameBuf::root();
        match read_name(&msg, second, Some(&mut n)) {
            Ok(end) => {
                prop_assert_eq!(end, msg.len());
                prop_assert_eq!(n.as_bytes(), &full[..]);
            }
            Err(e) => {
                prop_assert!(full.len() > 255, "{:?} for a {}-byte name", e, full.len());
            }
        }
    }

    /// A built query parses back to the same question and flags; its error answers too.
    #[test]
    fn built_queries_parse_back(
        s in dotted(), id in any::<u16>(), qtype in any::<u16>(), qclass in any::<u16>(),
        rd in any::<bool>(), cd in any::<bool>(), edns in prop::option::of((any::<u16>(), any::<bool>())),
        rc in 0u8..16,
    ) {
        prop_assume!(qtype != rtype::OPT);
        let n = NameBuf::from_dotted(&s).unwrap();
        let mut raw = Vec::new();
        build::query(&mut raw, id, &n, qtype, qclass, rd, cd);
        if let Some((size, d)) = edns {
            build::push_opt(&mut raw, size, 0, d, None);
        }
        let q = parse_query(&raw).unwrap();
        prop_assert_eq!(q.id, id);
        prop_assert_eq!((q.rd, q.cd), (rd, cd));
        prop_assert_eq!(q.question.name.as_bytes(), n.as_bytes());
        prop_assert_eq!((q.question.qtype, q.question.qclass), (qtype, qclass));
        prop_assert_eq!(q.question.end, HEADER_LEN + n.len() + 4);
        match edns {
            Some((size, d)) => {
                let o = q.opt.unwrap();
                prop_assert_eq!(o.udp_size, size.max(512));
                prop_assert_eq!(o.do_bit, d);
                prop_assert!(q.udp_limit() >= 512 && q.udp_limit() <= size.max(512) as usize);
            }
            None => prop_assert_eq!(q.udp_limit(), 512),
        }
        let ede = Ede { code: 23, text: "link down" };
        let mut out = Vec::new();
        write_error(&mut out, &q, rc, Some(ede));
        let s2 = scan_message(&out).unwrap();
        prop_assert_eq!(s2.id, id);
        prop_assert_eq!(s2.rcode, rc);
        prop_assert_eq!(s2.question.as_ref().unwrap().name.as_bytes(), n.as_bytes());
        prop_assert!(s2.records.is_empty());
        prop_assert_eq!(s2.opt.is_some(), edns.is_some());
        prop_assert!(out.len() <= 512);
        let reply = EdnsReply { do_bit: q.do_bit(), ext_rcode: 0, ede: None };
        build::error_reply(&mut out, &raw, rc, q.opt.map(|_| reply));
        let s3 = scan_message(&out).unwrap();
        prop_assert_eq!(s3.question.as_ref().unwrap().name.as_bytes(), n.as_bytes());
        prop_assert_eq!(s3.opt.is_some(), edns.is_some());
    }

    /// TCP framing splits a stream of framed messages back into the same messages.
    #[test]
    fn tcp_frames_split_back(msgs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..6), cut in any::<prop::sample::Index>()) {
        let mut stream = Vec::new();
        for m in &msgs {
            stream.extend_from_slice(&(m.len() as u16).to_be_bytes());
            stream.extend_from_slice(m);
        }
        let mut rest = &stream[..];
        for m in &msgs {
            let (got, used) = dproxy::tcp::split_frame(rest).unwrap();
            prop_assert_eq!(got, &m[..]);
            prop_assert_eq!(used, m.len() + 2);
            rest = &rest[used..];
        }
        prop_assert!(rest.is_empty() && dproxy::tcp::split_frame(rest).is_none());
        // A stream cut anywhere inside the first frame yields nothing yet.
        if let Some(first) = msgs.first() {
            let c = cut.index(first.len() + 2);
            prop_assert!(dproxy::tcp::split_frame(&stream[..c]).is_none());
        }
    }
}

proptest! {
    #![proptest_config(config(1500))]

    /// Generated upstream answers: the scan sees every record and TTL, `prepare` keeps a
    /// cacheable form inside the TTL policy, and every reply keeps its promises.
    #[test]
    fn answers_scan_prepare_and_reply(
        spec in answer_spec(),
        client_id in any::<u16>(), case in any::<u64>(), edns in prop::option::of((any::<u16>(), any::<bool>())),
        udp in any::<bool>(), elapsed in 0u32..100_000, trust_ad in any::<bool>(), dnssec_ok in any::<bool>(),
        min_ttl in prop_oneof![3 => Just(0u32), 1 => 0u32..600], max_ttl in prop_oneof![3 => Just(86400u32), 1 => 0u32..3600],
        neg_ttl in prop_oneof![3 => Just(3600u32), 1 => 0u32..600],
    ) {
        let (msg, recs) = encode_answer(&spec);
        let s = scan_message(&msg).expect("a well-formed answer scans");
        prop_assert_eq!(s.id, spec.id);
        prop_assert_eq!(s.rcode, spec.rcode);
        prop_assert_eq!(s.tc, spec.tc);
        prop_assert_eq!(s.records.len(), recs.len());
        for (r, (t, ttl)) in s.records.iter().zip(&recs) {
            prop_assert_eq!((r.rtype, r.ttl), (*t, *ttl));
            prop_assert_eq!(read_u32(&msg, r.ttl_pos), Ok(*ttl));
        }
        prop_assert_eq!(s.opt.map(|o| o.udp_size), spec.opt.map(|(size, _)| size.max(512)));

        let pol = TtlPolicy { min_ttl, max_ttl, neg_ttl };
        let Some(p) = prepare(&msg, &s, &pol, trust_ad, dnssec_ok, None) else {
            // Only RDATA that does not hold what its type says makes prepare give up,
            // and the generator writes every type correctly.
            return Err(TestCaseError::fail("prepare refused a well-formed answer"));
        };
        let ps = scan_message(&p.msg).expect("prepared answers scan");
        prop_assert!(ps.opt.is_none() && !ps.aa);
        prop_assert_eq!(ps.ad, trust_ad);
        prop_assert_eq!(ps.records.len(), p.ttl_pos.len());
        prop_assert!(ps.records.len() <= s.records.len());
        prop_assert!(ps.records.iter().all(|r| r.section != Section::Additional));
        let cap = max_ttl.max(min_ttl).max(neg_ttl);
        for r in &ps.records {
            prop_assert!(r.ttl <= cap);
        }
        prop_assert!(p.lifetime <= cap);
        if spec.tc {
            prop_assert_eq!(p.lifetime, 0);
        }
        match spec.rcode {
            rcode::SERVFAIL => prop_assert_eq!(p.kind, Kind::Failure),
            rcode::NXDOMAIN => prop_assert_eq!(p.kind, Kind::Negative),
            _ => {}
        }
        // Every answer record kept is owned by the question name or a CNAME target, or
        // is a DNAME above the question (RFC 6672).
        let q = NameBuf::from_dotted(&spec.qname).unwrap();
        let owner_of = |r: &dproxy::wire::Record| {
            let mut o = NameBuf::root();
            read_name(&p.msg, r.start, Some(&mut o)).unwrap();
            o
        };
        for r in ps.records.iter().filter(|r| r.section == Section::Answer) {
            let o = owner_of(r);
            let on_chain = o.eq_ignore_case(&q)
                || (r.rtype == rtype::DNAME && q.is_subdomain_of(&o))
                || ps.records.iter().any(|c| {
                    let mut t = NameBuf::root();
                    c.rtype == rtype::CNAME
                        && read_name(&p.msg, c.rdata, Some(&mut t)).is_ok()
                        && t.eq_ignore_case(&o)
                });
            prop_assert!(on_chain, "{:?} is off the chain of {:?}", o, q);
        }
        // DNSSEC (RFC 4035 3.1 and 3.2.1): without DO, no proof records the question did
        // not ask for; with DO, every authority NSEC/NSEC3 the upstream sent, and every
        // RRSIG kept goes with a kept RRset of the same owner and section.
        let proof = |t: u16| matches!(t, rtype::RRSIG | rtype::NSEC | rtype::NSEC3);
        if !dnssec_ok && spec.qtype != rtype::ANY {
            prop_assert!(ps.records.iter().all(|r| !proof(r.rtype)), "proof records without DO");
        }
        if dnssec_ok {
            let denial = |sc: &Scan| {
                sc.records
                    .iter()
                    .filter(|r| r.section == Section::Authority)
                    .filter(|r| matches!(r.rtype, rtype::NSEC | rtype::NSEC3))
                    .count()
            };
            prop_assert_eq!(denial(&ps), denial(&s), "NSEC/NSEC3 dropped with DO");
            for r in ps.records.iter().filter(|r| r.rtype == rtype::RRSIG) {
                if r.section == Section::Answer && spec.qtype == rtype::ANY {
                    continue;
                }
                let covered = dproxy::wire::read_u16(&p.msg, r.rdata).unwrap();
                let o = owner_of(r);
                let covers = ps.records.iter().any(|k| {
                    k.rtype == covered && k.section == r.section && owner_of(k).eq_ignore_case(&o)
                });
                prop_assert!(covers, "an RRSIG over type {} kept without its RRset", covered);
            }
        }

        let name = flip_case(&q, case);
        let cq = client(client_id, &name, spec.qtype, edns);
        let opts = ReplyOpts { elapsed, udp, ..Default::default() };
        check_reply(&p.msg, &p.ttl_pos, &cq, &opts);
        // The cache's form (no question section) gives the same reply.
        let (stored, spos) = to_stored(&p.msg, &p.ttl_pos).expect("prepared answers store");
        prop_assert_eq!(stored.len(), p.msg.len() - (q.len() + 4));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let ta = write_reply(&mut a, &p.msg, p.ttl_pos.iter().map(|&x| x as usize), &cq, &opts);
        let tb = write_stored_reply(&mut b, &stored, spos.iter().map(|&x| x as usize), &cq, &opts);
        prop_assert_eq!(ta, tb);
        prop_assert_eq!(a, b);
        // Stale serving: fixed TTLs.
        let stale = ReplyOpts { fixed_ttl: Some(30), udp, ..Default::default() };
        let mut out = Vec::new();
        let truncated = write_reply(&mut out, &p.msg, p.ttl_pos.iter().map(|&x| x as usize), &cq, &stale);
        let rs = scan_message(&out).unwrap();
        if !truncated {
            prop_assert!(rs.records.iter().all(|r| r.ttl == 30));
        }
    }

    /// 0x20: with the question sent in random case, `prepare` puts the canonical
    /// spelling back into the stored answer.
    #[test]
    fn respelled_answers_store_the_canonical_name(spec in answer_spec(), case in any::<u64>()) {
        let q = NameBuf::from_dotted(&spec.qname).unwrap();
        let sent = flip_case(&q, case);
        let mut spec = spec;
        spec.qname = sent.to_dotted();
        prop_assume!(NameBuf::from_dotted(&spec.qname).is_ok_and(|n| n == sent));
        let (msg, _) = encode_answer(&spec);
        let s = scan_message(&msg).unwrap();
        let fix = Respell { from: &sent, to: &q };
        let p = prepare(&msg, &s, &TtlPolicy::default(), false, case & 1 != 0, Some(fix))
            .expect("prepared");
        let ps = scan_message(&p.msg).unwrap();
        prop_assert_eq!(ps.question.as_ref().unwrap().name.as_bytes(), q.as_bytes());
    }
}

// ------------------------------------------------------------------ fuzz findings
//
// Inputs the fuzzer found (fuzz/regressions/README.md), kept as regression tests.

/// Runs the whole answer path on a fuzz input of the wire_answer target (8 knob bytes,
/// then the answer) as the harness does (client ID, EDNS and UDP from the knobs; the
/// client spells the name as the answer does) and checks the reply.
fn answer_path(input: &[u8]) {
    let (ctl, msg) = input.split_at(8);
    let s = scan_message(msg).expect("the input scans");
    let q = s.question.clone().unwrap();
    if let Some(p) = prepare(msg, &s, &TtlPolicy::default(), false, ctl[0] & 4 != 0, None) {
        scan_message(&p.msg).expect("a prepared answer scans");
        let edns =
            (ctl[0] & 2 != 0).then(|| (u16::from_be_bytes([ctl[1], ctl[2]]), ctl[0] & 4 != 0));
        let id = u16::from_be_bytes([ctl[3], ctl[4]]);
        let cq = client(id, &q.name, q.qtype, edns);
        let opts = ReplyOpts {
            udp: ctl[0] & 1 != 0,
            ..Default::default()
        };
        check_reply(&p.msg, &p.ttl_pos, &cq, &opts);
    }
}

/// Found by the fuzzer, fixed in eef492b (`prepare` rewrites a question that is not
/// written out in full).
#[test]
fn regression_header_pointer_in_question() {
    answer_path(include_bytes!(
        "../../fuzz/regressions/wire_answer/header-pointer-question-id-rewrite.bin"
    ));
}

/// Found by the fuzzer, fixed in bd15b40 (`prepare` always rewrites answers; names in
/// RDATA must end where RDLENGTH says).
#[test]
fn regression_label_across_ttl_and_opt() {
    answer_path(include_bytes!(
        "../../fuzz/regressions/wire_answer/label-across-ttl-and-opt.bin"
    ));
}

/// Found by the fuzzer, fixed in bd15b40 (as above).
#[test]
fn regression_cname_target_past_rdlength() {
    answer_path(include_bytes!(
        "../../fuzz/regressions/wire_answer/cname-target-past-rdlength.bin"
    ));
}
