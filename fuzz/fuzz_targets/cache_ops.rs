//! The cache under an arbitrary sequence of operations, checked after every step against
//! a simple reference model (a list in recency order): same entries, same order, same
//! byte count, and `bytes() <= budget()` always. One operation stores an arbitrary
//! upstream answer the way the forwarder does (scan, prepare, insert) and serves it back.
#![no_main]

use dproxy::answer::{prepare, to_stored, write_stored_reply, ReplyOpts, TtlPolicy};
use dproxy::cache::{Cache, Key};
use dproxy::wire::scan_message;
use dproxy_fuzz::{check_reply, client_query, odd_pointers, Model};
use libfuzzer_sys::fuzz_target;

const NAMES: [&[u8]; 6] = [
    b"\x00",
    b"\x01a\x04test\x00",
    b"\x01A\x04TEST\x00",
    b"\x03www\x07example\x03com\x00",
    b"\x03WwW\x07Example\x03com\x00",
    b"\x3fxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\x00",
];

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

fn key(sel: u8) -> Vec<u8> {
    let name = NAMES[(sel as usize) % NAMES.len()];
    let qtype = [1u16, 28, 255][(sel as usize >> 3) % 3];
    Key::new(name, qtype, 1, (sel >> 6) & 3).as_bytes().to_vec()
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let Some(b) = inp.u16() else { return };
    let budget = b as usize * 8;
    let mut cache = Cache::new(budget);
    let mut model = Model::new(budget);
    let mut now = 0u32;
    while let Some(op) = inp.byte() {
        let sel = inp.byte().unwrap_or(0);
        now = now.wrapping_add(u32::from(op >> 4));
        match op & 7 {
            0 => {
                let k = key(sel);
                let len = inp.byte().unwrap_or(0) as usize * 3;
                let msg = inp.take(len).to_vec();
                let ttl: Vec<u16> = (0..(sel as usize & 3)).map(|i| i as u16 * 6).collect();
                let a = cache.insert(&k, &msg, &ttl, now, u32::from(sel), sel & 7);
                let b = model.insert(&k, &msg, &ttl);
                assert_eq!(a, b, "insert result");
                if a {
                    let e = cache.peek(&k).expect("just inserted");
                    assert_eq!(e.msg, &msg[..]);
                    assert_eq!((e.inserted, e.flags), (now, sel & 7));
                    assert_eq!(e.lifetime(), u32::from(sel).min(u32::MAX - now));
                }
            }
            1 => {
                let k = key(sel);
                assert_eq!(cache.get(&k).is_some(), model.get(&k));
            }
            2 => {
                let k = key(sel);
                let found = model.entries.iter().any(|e| e.0 == k);
                assert_eq!(cache.peek(&k).is_some(), found);
            }
            3 => {
                let k = key(sel);
                assert_eq!(cache.remove(&k), model.remove(&k));
            }
            4 => {
                let b = inp.u16().unwrap_or(0) as usize * 8;
                cache.set_budget(b);
                model.set_budget(b);
            }
            5 => {
                let keep = |k: &[u8]| k.iter().fold(sel, |a, &x| a ^ x) & 1 == 0;
                cache.retain(|e| keep(e.key));
                model.retain(keep);
            }
            6 => {
                // An arbitrary upstream answer, stored and served like the forwarder does.
                let len = inp.u16().unwrap_or(0) as usize;
                let msg = inp.take(len);
                let Ok(s) = scan_message(msg) else { continue };
                let Some(q) = s.question.clone() else {
                    continue;
                };
                if u16::from_be_bytes([msg[4], msg[5]]) != 1
                    || (dproxy_fuzz::SKIP_ODD_POINTERS && odd_pointers(msg, &s))
                {
                    continue;
                }
                let scratch = &mut dproxy::sanitize::Scratch::default();
                let Some(p) = prepare(msg, &s, &TtlPolicy::default(), false, false, None, scratch)
                else {
                    continue;
                };
                let k = Key::new(q.name.as_bytes(), q.qtype, q.qclass, 0);
                // The daemon caches the stored form: header and what follows the question.
                let (stored, spos) = to_stored(&p.msg, &p.ttl_pos).expect("prepared answers store");
                let a = cache.insert(k.as_bytes(), &stored, &spos, now, p.lifetime, 0);
                assert_eq!(a, model.insert(k.as_bytes(), &stored, &spos));
                if a {
                    assert!(model.get(k.as_bytes()));
                    let hit = cache.get(k.as_bytes()).expect("just inserted");
                    let edns = (sel & 1 != 0).then_some((1232, false));
                    let (_, cq) = client_query(0x5555, &q.name, q.qtype, q.qclass, edns);
                    let opts = ReplyOpts {
                        elapsed: u32::from(sel),
                        udp: sel & 2 != 0,
                        ..Default::default()
                    };
                    // Served from the cache = served from the whole prepared answer.
                    let mut out = Vec::new();
                    write_stored_reply(&mut out, hit.msg, hit.ttl_positions(), &cq, &opts);
                    let full = check_reply(&p.msg, &p.ttl_pos, &cq, &opts);
                    assert_eq!(out, full, "cached reply differs");
                }
            }
            _ => {
                cache.clear();
                model.clear();
            }
        }
        model.check(&cache);
    }
});
