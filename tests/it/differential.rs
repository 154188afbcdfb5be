//! Differential test: dproxy's wire reader (`scan_message`) against a full DNS library
//! (hickory-proto 0.25, `Message::from_vec`), on real packets and on random ones.
//!
//! The rule: for every packet hickory accepts, `scan_message` accepts it too and sees the
//! same header bits, the same question (name byte for byte, type, class), the same number
//! of records in each section, and in order the same owner names, types, classes and
//! TTLs, and the same EDNS (payload size, version, DO bit). For packets hickory refuses,
//! ours may accept or refuse, but must not panic (hickory checks RDATA contents, dproxy
//! deliberately does not: unknown types pass through, RFC 3597).
//!
//! Where the two legitimately differ, the packet is accepted by hickory and refused by
//! us, on purpose; each case is listed in [`Exception`] and checked precisely:
//! 1. Bytes after the last record: hickory ignores them, we refuse the message
//!    (TrailingData). Checked: some prefix of the packet is accepted by us and agrees
//!    with hickory.
//! 2. An OPT record outside the additional section: hickory reads it as an ordinary
//!    record, we refuse (BadOpt; RFC 6891 6.1.1 puts OPT in the additional section).
//! 3. An OPT record whose root owner name is written as a compression pointer: hickory
//!    follows the pointer, we insist on the literal root byte (BadOpt). No server does
//!    this (a pointer is longer than the one root byte).
//!
//! Cases where hickory is the stricter one (and so need no exception): hickory refuses
//! compression pointers that point into the name being read or after its start (we
//! only refuse pointers at or after the pointer itself), names in RDATA that run past
//! RDLENGTH, and malformed RDATA of known types.
//!
//! The real packets are tests/data/packets/*.bin, written by fuzz/gen_corpus.py with
//! dnspython (queries and answers as stub resolvers and recursive servers send them).

use std::path::PathBuf;
use std::sync::OnceLock;

use dproxy::wire::message::Section;
use dproxy::wire::name::read_name;
use dproxy::wire::{scan_message, Error, NameBuf, Scan, HEADER_LEN};
use hickory_proto::op::Message;
use hickory_proto::rr::{Name, Record};
use proptest::prelude::*;

use crate::common;
use common::config;

/// The real packets, read once.
fn packets() -> &'static [(String, Vec<u8>)] {
    static P: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    P.get_or_init(read_packets)
}

fn read_packets() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/packets");
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/data/packets (make fuzz-corpus writes it)")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    assert!(
        v.len() >= 20,
        "expected the packet set in {}",
        dir.display()
    );
    v
}

/// A hickory name in wire form (uncompressed, root label included).
fn wire(n: &Name) -> Vec<u8> {
    let mut w = Vec::new();
    for l in n.iter() {
        w.push(l.len() as u8);
        w.extend_from_slice(l);
    }
    w.push(0);
    w
}

/// Why a packet hickory accepts may be refused by us; see the module comment.
#[derive(Debug, PartialEq, Eq)]
enum Exception {
    TrailingData,
    OptOutsideAdditional,
    OptOwnerCompressed,
}

/// Does a documented exception explain our refusal of a packet hickory accepted?
fn exception(msg: &[u8], h: &Message, err: Error) -> Option<Exception> {
    let is_opt = |r: &Record| u16::from(r.record_type()) == 41;
    match err {
        Error::TrailingData => Some(Exception::TrailingData),
        Error::BadOpt if h.answers().iter().chain(h.name_servers()).any(is_opt) => {
            Some(Exception::OptOutsideAdditional)
        }
        Error::BadOpt => {
            // The OPT record hickory took is owned by the root; if ours refused it, the
            // owner must have been a pointer. Find the OPT records' owners by scanning
            // for a pointer followed by TYPE 41.
            let compressed = msg
                .windows(4)
                .any(|w| w[0] & 0xc0 == 0xc0 && w[2] == 0 && w[3] == 41);
            compressed.then_some(Exception::OptOwnerCompressed)
        }
        _ => None,
    }
}

/// Compares our scan of `msg` with hickory's message; panics with the difference.
fn agree(msg: &[u8], h: &Message, s: &Scan) {
    let hd = h.header();
    assert_eq!(s.id, hd.id(), "id");
    assert_eq!(s.tc, hd.truncated(), "TC");
    assert_eq!(s.aa, hd.authoritative(), "AA");
    assert_eq!(s.ad, hd.authentic_data(), "AD");
    assert_eq!(
        u16::from(s.rcode),
        u16::from(hd.response_code()) & 0xf,
        "rcode"
    );
    // Question.
    assert_eq!(
        u16::from_be_bytes([msg[4], msg[5]]) as usize,
        h.queries().len(),
        "QDCOUNT"
    );
    match (h.queries().first(), &s.question) {
        (None, None) => {}
        (Some(hq), Some(q)) => {
            assert_eq!(q.name.as_bytes(), &wire(hq.name())[..], "question name");
            assert_eq!(q.qtype, u16::from(hq.query_type()), "qtype");
            assert_eq!(q.qclass, u16::from(hq.query_class()), "qclass");
        }
        (a, b) => panic!("question: hickory {a:?}, ours {b:?}"),
    }
    // Records, section by section, in order.
    for (section, theirs) in [
        (Section::Answer, h.answers()),
        (Section::Authority, h.name_servers()),
        (Section::Additional, h.additionals()),
    ] {
        let ours: Vec<_> = s.records.iter().filter(|r| r.section == section).collect();
        assert_eq!(ours.len(), theirs.len(), "{section:?} count");
        for (i, (o, t)) in ours.iter().zip(theirs).enumerate() {
            let mut owner = NameBuf::root();
            read_name(msg, o.start, Some(&mut owner)).expect("owner re-reads");
            assert_eq!(
                owner.as_bytes(),
                &wire(t.name())[..],
                "{section:?} {i} owner"
            );
            assert_eq!(o.rtype, u16::from(t.record_type()), "{section:?} {i} type");
            assert_eq!(o.class, u16::from(t.dns_class()), "{section:?} {i} class");
            assert_eq!(o.ttl, t.ttl(), "{section:?} {i} TTL");
        }
    }
    // EDNS.
    match (h.extensions(), &s.opt) {
        (None, None) => {}
        (Some(e), Some(o)) => {
            assert_eq!(o.udp_size, e.max_payload(), "EDNS payload size");
            assert_eq!(o.version, e.version(), "EDNS version");
            assert_eq!(o.do_bit, e.flags().dnssec_ok, "DO");
        }
        (a, b) => panic!("EDNS: hickory {a:?}, ours {b:?}"),
    }
}

/// The whole rule for one packet. Returns what happened, for the statistics.
#[derive(Debug, Default)]
struct Tally {
    both: usize,
    only_ours: usize,
    neither: usize,
    exceptions: usize,
}

fn check(msg: &[u8], t: &mut Tally) {
    let ours = scan_message(msg);
    let Ok(h) = Message::from_vec(msg) else {
        if ours.is_ok() {
            t.only_ours += 1;
        } else {
            t.neither += 1;
        }
        return;
    };
    match ours {
        Ok(s) => {
            agree(msg, &h, &s);
            t.both += 1;
        }
        Err(e) => {
            let why = exception(msg, &h, e)
                .unwrap_or_else(|| panic!("hickory accepts, we refuse ({e:?}): {}", hex(msg)));
            t.exceptions += 1;
            if why == Exception::TrailingData {
                // The message without the trailing bytes must be ours, and agree.
                let n = (HEADER_LEN..msg.len())
                    .rev()
                    .find(|&n| scan_message(&msg[..n]).is_ok())
                    .unwrap_or_else(|| panic!("no prefix of {} scans", hex(msg)));
                let short = &msg[..n];
                let s = scan_message(short).unwrap();
                let h2 = Message::from_vec(short).expect("hickory reads the prefix too");
                agree(short, &h2, &s);
            }
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn real_packets_agree() {
    let mut t = Tally::default();
    for (name, p) in packets() {
        assert!(
            Message::from_vec(p).is_ok(),
            "hickory refuses real packet {name}"
        );
        let s = scan_message(p).unwrap_or_else(|e| panic!("we refuse real packet {name}: {e:?}"));
        let h = Message::from_vec(p).unwrap();
        agree(p, &h, &s);
        check(p, &mut t);
    }
    assert_eq!(t.exceptions, 0);
}

/// The exceptions, each on a packet made for it, so that the list stays true.
#[test]
fn documented_exceptions_hold() {
    let base = packets()
        .iter()
        .find(|(n, _)| n == "r-a-simple.bin")
        .expect("r-a-simple.bin")
        .1
        .clone();
    let s = scan_message(&base).unwrap();
    let opt = s.opt.expect("the simple answer has EDNS");
    // 1. Trailing data.
    let mut m = base.clone();
    m.extend_from_slice(b"junk");
    assert!(Message::from_vec(&m).is_ok());
    assert_eq!(scan_message(&m).err(), Some(Error::TrailingData));
    check(&m, &mut Tally::default());
    // 3. OPT owner as a pointer to a root byte: the question's root label.
    let root_at = HEADER_LEN + s.question.as_ref().unwrap().name.len() - 1;
    let mut m = base[..opt.start].to_vec();
    m.extend_from_slice(&(0xc000u16 | root_at as u16).to_be_bytes());
    m.extend_from_slice(&base[opt.start + 1..]);
    assert!(Message::from_vec(&m).is_ok());
    assert_eq!(scan_message(&m).err(), Some(Error::BadOpt));
    check(&m, &mut Tally::default());
    // 2. OPT in the answer section: moved in front of the answer, counted there.
    let (q_end, an_end) = (
        s.question.as_ref().unwrap().end,
        s.records.last().unwrap().end,
    );
    let mut m = base[..q_end].to_vec();
    m.extend_from_slice(&base[opt.start..opt.end]);
    m.extend_from_slice(&base[q_end..an_end]);
    let an = u16::from_be_bytes([base[6], base[7]]) + 1;
    m[6..8].copy_from_slice(&an.to_be_bytes());
    m[10..12].copy_from_slice(&0u16.to_be_bytes());
    assert!(Message::from_vec(&m).is_ok());
    assert_eq!(scan_message(&m).err(), Some(Error::BadOpt));
    check(&m, &mut Tally::default());
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(prop::sample::Index, u8),
    Flip(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Insert(prop::sample::Index, u8),
    Remove(prop::sample::Index),
    Count(u8, u16),
    Pointer(prop::sample::Index, u16),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let i = any::<prop::sample::Index>;
    prop_oneof![
        4 => (i(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        4 => (i(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        1 => i().prop_map(Mutation::Truncate),
        2 => (i(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        2 => i().prop_map(Mutation::Remove),
        2 => (0u8..4, 0u16..6).prop_map(|(w, c)| Mutation::Count(w, c)),
        2 => (i(), 0u16..0x200).prop_map(|(i, p)| Mutation::Pointer(i, p)),
    ]
}

fn mutate(m: &mut Vec<u8>, mu: &Mutation) {
    if m.is_empty() {
        return;
    }
    match mu {
        Mutation::Set(i, b) => {
            let k = i.index(m.len());
            m[k] = *b;
        }
        Mutation::Flip(i, b) => {
            let k = i.index(m.len());
            m[k] ^= 1 << b;
        }
        Mutation::Truncate(i) => m.truncate(i.index(m.len())),
        Mutation::Insert(i, b) => {
            let k = i.index(m.len() + 1);
            m.insert(k, *b);
        }
        Mutation::Remove(i) => {
            m.remove(i.index(m.len()));
        }
        Mutation::Count(w, c) => {
            let k = 4 + 2 * *w as usize;
            if m.len() >= k + 2 {
                m[k..k + 2].copy_from_slice(&c.to_be_bytes());
            }
        }
        Mutation::Pointer(i, p) => {
            let k = i.index(m.len());
            if k + 2 <= m.len() {
                m[k..k + 2].copy_from_slice(&(0xc000 | p).to_be_bytes());
            }
        }
    }
}

proptest! {
    #![proptest_config(config(6000))]

    /// Real packets with a few random changes: the rule holds for every one.
    #[test]
    fn mutated_packets_agree(pick in any::<prop::sample::Index>(), muts in prop::collection::vec(mutation(), 1..4)) {
        let all = packets();
        let mut m = all[pick.index(all.len())].1.clone();
        for mu in &muts {
            mutate(&mut m, mu);
        }
        check(&m, &mut Tally::default());
    }

    /// Random messages with a plausible header: mostly refused by both; never a panic.
    #[test]
    fn random_packets_agree(
        id in any::<u16>(), flags in any::<u16>(), counts in prop::array::uniform4(0u16..3),
        body in prop::collection::vec(prop_oneof![3 => any::<u8>(), 1 => 0u8..4, 1 => Just(0xc0u8)], 0..120),
    ) {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&flags.to_be_bytes());
        for c in counts {
            m.extend_from_slice(&c.to_be_bytes());
        }
        m.extend_from_slice(&body);
        check(&m, &mut Tally::default());
    }
}

/// How often the mutated packets land in each class; also a smoke test that the
/// mutation test does reach both branches (accepted by both, and refused by hickory).
#[test]
fn mutation_mix_reaches_both_branches() {
    let mut t = Tally::default();
    let all = packets();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..3000 {
        let mut m = all[(next() as usize) % all.len()].1.clone();
        let k = (next() as usize) % m.len();
        m[k] = next() as u8;
        check(&m, &mut t);
    }
    eprintln!("differential mix: {t:?}");
    assert!(t.both > 300 && t.neither + t.only_ours > 100, "{t:?}");
}
