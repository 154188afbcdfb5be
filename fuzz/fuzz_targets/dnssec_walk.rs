//! The DNSSEC chain-of-trust walk on arbitrary bytes. The input is a list of chunks,
//! each a 2-byte length then its bytes: the DS RDATA of a trust anchor for the root,
//! the response to validate, then the replies to the walk's sub-queries in the order
//! it asks them (a missing chunk is a failed sub-query). Checks: the walk ends within
//! its sub-query cap, never spends more than its crypto budget, and a verdict is
//! final. Seeds with real signed data come from tests/it/dnssec_chain.rs
//! (DPROXY_WALK_SEEDS=dir).
#![no_main]

use dproxy::dnssec::anchors::Anchor;
use dproxy::dnssec::walk::{Settings, Step, Walk, MAX_SUBQUERIES};
use dproxy::dnssec::{cost, Clock, MAX_CRYPTO_PER_QUERY};
use libfuzzer_sys::fuzz_target;

fn chunks(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while data.len() >= 2 {
        let n = u16::from_be_bytes([data[0], data[1]]) as usize;
        let rest = &data[2..];
        let n = n.min(rest.len());
        out.push(&rest[..n]);
        data = &rest[n..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let parts = chunks(data);
    let (Some(ds), Some(resp)) = (parts.first(), parts.get(1)) else {
        return;
    };
    let anchors = vec![Anchor {
        owner: vec![0],
        ds: ds.to_vec(),
    }];
    let set = Settings {
        clock: Clock {
            now: 1_780_000_000,
            check_inception: data.len() % 2 == 0,
        },
        sha1: data.len() % 3 == 0,
        check_unsigned: data.len() % 5 != 0,
    };
    let mut w = Walk::new(resp, anchors, set);
    let mut replies = parts[2..].iter();
    let mut steps = 0;
    let verdict = loop {
        steps += 1;
        assert!(steps <= MAX_SUBQUERIES + 2, "the walk does not end");
        match w.step() {
            Step::Done(o) => break o,
            Step::Query { .. } => w.answer(replies.next().copied()),
        }
    };
    assert!(w.subqueries() <= MAX_SUBQUERIES + 1);
    let b = w.budget();
    assert!(b.spent <= MAX_CRYPTO_PER_QUERY && b.cost <= cost::PER_QUERY);
    assert_eq!(w.step(), Step::Done(verdict), "a verdict is final");
    let _ = verdict.ede();
});
