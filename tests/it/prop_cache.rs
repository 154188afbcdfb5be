//! Property tests for the cache (stable Rust, part of `cargo test`): random sequences
//! of insert / get / peek / remove / set_budget / retain / clear, checked after every
//! step against a reference model (a plain list in recency order). Invariants:
//! `bytes() <= budget()` always, `len()` equals what `for_each` visits, the entries and
//! their LRU order are exactly the model's, and what is stored is what comes back.

use dproxy::cache::{Cache, Key, ENTRY_OVERHEAD, MAX_KEY_LEN};
use proptest::prelude::*;

use crate::common;
use common::config;

const NAMES: [&[u8]; 5] = [
    b"\x00",
    b"\x01a\x04test\x00",
    b"\x01A\x04TEST\x00",
    b"\x03www\x07example\x03com\x00",
    b"\x3fxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\x00",
];

fn key(sel: u8) -> Vec<u8> {
    let name = NAMES[sel as usize % NAMES.len()];
    let qtype = [1u16, 28, 255][(sel as usize / 8) % 3];
    Key::new(name, qtype, 1, (sel >> 6) & 3).as_bytes().to_vec()
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, Vec<u8>, u8, u32),
    Get(u8),
    Peek(u8),
    Remove(u8),
    SetBudget(usize),
    Retain(u8),
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (any::<u8>(), prop::collection::vec(any::<u8>(), 0..400), 0u8..4, any::<u32>())
            .prop_map(|(k, m, t, l)| Op::Insert(k, m, t, l)),
        4 => any::<u8>().prop_map(Op::Get),
        2 => any::<u8>().prop_map(Op::Peek),
        2 => any::<u8>().prop_map(Op::Remove),
        1 => (0usize..4000).prop_map(Op::SetBudget),
        1 => any::<u8>().prop_map(Op::Retain),
        1 => Just(Op::Clear),
    ]
}

/// One entry of the model: key, msg, TTL offsets, hits.
type Entry = (Vec<u8>, Vec<u8>, Vec<u16>, u16);

/// The model: entries most recently used first.
struct Model {
    budget: usize,
    entries: Vec<Entry>,
}

fn cost(k: &[u8], m: &[u8], t: &[u16]) -> usize {
    k.len() + m.len() + 2 * t.len() + ENTRY_OVERHEAD
}

impl Model {
    fn bytes(&self) -> usize {
        self.entries.iter().map(|(k, m, t, _)| cost(k, m, t)).sum()
    }
    fn evict_to(&mut self, target: usize) {
        while self.bytes() > target && self.entries.pop().is_some() {}
    }
    fn remove(&mut self, k: &[u8]) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.0 != k);
        before != self.entries.len()
    }
    fn insert(&mut self, k: &[u8], m: &[u8], t: &[u16]) -> bool {
        self.remove(k);
        let c = cost(k, m, t);
        if c > self.budget {
            return false;
        }
        self.evict_to(self.budget - c);
        self.entries
            .insert(0, (k.to_vec(), m.to_vec(), t.to_vec(), 0));
        true
    }
    fn get(&mut self, k: &[u8]) -> bool {
        match self.entries.iter().position(|e| e.0 == k) {
            Some(i) => {
                let mut e = self.entries.remove(i);
                // The cache counts hits in 8 bits, saturating (they only rank entries).
                e.3 = e.3.saturating_add(1).min(u8::MAX as u16);
                self.entries.insert(0, e);
                true
            }
            None => false,
        }
    }
}

fn check(c: &Cache, m: &Model) -> Result<(), TestCaseError> {
    prop_assert!(c.bytes() <= c.budget(), "{} > {}", c.bytes(), c.budget());
    prop_assert_eq!(c.budget(), m.budget);
    prop_assert_eq!(c.bytes(), m.bytes());
    prop_assert_eq!(c.len(), m.entries.len());
    prop_assert_eq!(c.is_empty(), m.entries.is_empty());
    let mut seen = Vec::new();
    c.for_each(|e| {
        seen.push((
            e.key.to_vec(),
            e.msg.to_vec(),
            e.ttl_positions().map(|p| p as u16).collect::<Vec<_>>(),
            e.hits,
        ))
    });
    prop_assert_eq!(seen.len(), c.len(), "for_each visits each entry once");
    prop_assert_eq!(&seen, &m.entries, "entries and LRU order");
    Ok(())
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn cache_matches_model(budget in 0usize..6000, ops in prop::collection::vec(op(), 1..80)) {
        let mut c = Cache::new(budget);
        let mut m = Model { budget, entries: Vec::new() };
        let mut now = 0u32;
        for op in ops {
            now = now.wrapping_add(7);
            match op {
                Op::Insert(k, msg, nt, lifetime) => {
                    let k = key(k);
                    let ttl: Vec<u16> = (0..nt as u16).map(|i| i * 6).collect();
                    let a = c.insert(&k, &msg, &ttl, now, lifetime, nt);
                    prop_assert_eq!(a, m.insert(&k, &msg, &ttl));
                    if a {
                        let e = c.peek(&k).unwrap();
                        prop_assert_eq!(e.msg, &msg[..]);
                        prop_assert_eq!((e.inserted, e.flags, e.hits), (now, nt, 0));
                        prop_assert_eq!(e.expires, now.saturating_add(lifetime));
                        prop_assert_eq!(e.remaining(now), e.lifetime());
                    }
                }
                Op::Get(k) => {
                    let k = key(k);
                    prop_assert_eq!(c.get(&k).is_some(), m.get(&k));
                }
                Op::Peek(k) => {
                    let k = key(k);
                    prop_assert_eq!(c.peek(&k).is_some(), m.entries.iter().any(|e| e.0 == k));
                }
                Op::Remove(k) => {
                    let k = key(k);
                    prop_assert_eq!(c.remove(&k), m.remove(&k));
                }
                Op::SetBudget(b) => {
                    c.set_budget(b);
                    m.budget = b;
                    m.evict_to(b);
                }
                Op::Retain(sel) => {
                    let keep = |k: &[u8]| k.iter().fold(sel, |a, &x| a ^ x) & 1 == 0;
                    c.retain(|e| keep(e.key));
                    m.entries.retain(|e| keep(&e.0));
                }
                Op::Clear => {
                    c.clear();
                    m.entries.clear();
                }
            }
            check(&c, &m)?;
        }
    }

    /// Keys ignore the case of the name but not type, class or flags; they round-trip.
    #[test]
    fn keys_fold_case_only(
        labels in prop::collection::vec("[a-zA-Z0-9-]{1,20}", 0..5),
        qtype in any::<u16>(), qclass in any::<u16>(), flags in any::<u8>(), other in any::<u16>(),
    ) {
        let dotted = labels.join(".");
        let n = dproxy::wire::NameBuf::from_dotted(&dotted).unwrap();
        let mut lower = n.clone();
        lower.make_lowercase();
        let a = Key::new(n.as_bytes(), qtype, qclass, flags);
        let b = Key::new(lower.as_bytes(), qtype, qclass, flags);
        prop_assert_eq!(a.as_bytes(), b.as_bytes());
        prop_assert_eq!(a.name_wire(), lower.as_bytes());
        prop_assert_eq!((a.qtype(), a.qclass(), a.flags()), (qtype, qclass, flags));
        prop_assert!(a.as_bytes().len() <= MAX_KEY_LEN);
        let back = Key::from_bytes(a.as_bytes()).unwrap();
        prop_assert_eq!(back.as_bytes(), a.as_bytes());
        if other != qtype {
            let o = Key::new(n.as_bytes(), other, qclass, flags);
            prop_assert_ne!(o.as_bytes(), a.as_bytes());
        }
    }
}
