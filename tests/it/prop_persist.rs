//! Property tests for the persist file (stable Rust, part of `cargo test`): encode →
//! decode keeps every entry it should (key, answer, TTL offsets, flags, remaining
//! lifetime, recency order); any single damaged byte and any truncation make the whole
//! file refused with the cache left untouched; arbitrary bytes never panic.

use dproxy::cache::{flag, Cache, Key};
use dproxy::persist::{crc32, decode, encode};
use proptest::prelude::*;

use crate::common;
use common::config;

const WALL: u64 = 1_800_000_000;
const CLOCK: u32 = 1 << 20;
const STALE_MAX: u32 = 86400;

#[derive(Debug, Clone)]
struct EntrySpec {
    name: String,
    qtype: u16,
    kflags: u8,
    msg: Vec<u8>,
    ttl_count: usize,
    age: u32,
    lifetime: u32,
    flags: u8,
}

fn entry() -> impl Strategy<Value = EntrySpec> {
    (
        "[a-z0-9]{1,10}(\\.[a-z0-9]{1,10}){0,3}",
        prop_oneof![Just(1u16), Just(28), Just(15), any::<u16>()],
        0u8..4,
        prop::collection::vec(any::<u8>(), 12..300),
        0usize..5,
        0u32..200_000,
        0u32..100_000,
        prop_oneof![4 => Just(0u8), 1 => Just(flag::NEGATIVE), 1 => Just(flag::FAILURE), 1 => Just(flag::OFFLINE)],
    )
        .prop_map(|(name, qtype, kflags, msg, ttl_count, age, lifetime, flags)| EntrySpec {
            name,
            qtype,
            kflags,
            msg,
            ttl_count,
            age,
            lifetime,
            flags,
        })
}

/// A cache holding the entries, inserted `age` seconds before CLOCK.
fn filled(specs: &[EntrySpec]) -> Cache {
    let mut c = Cache::new(1 << 24);
    for s in specs {
        let n = dproxy::wire::NameBuf::from_dotted(&s.name).unwrap();
        let k = Key::new(n.as_bytes(), s.qtype, 1, s.kflags);
        let ttl: Vec<u16> = (0..s.ttl_count)
            .map(|i| ((i * 7) % (s.msg.len() - 3)) as u16)
            .collect();
        assert!(c.insert(
            k.as_bytes(),
            &s.msg,
            &ttl,
            CLOCK - s.age,
            s.lifetime,
            s.flags
        ));
    }
    c
}

type Snapshot = Vec<(Vec<u8>, Vec<u8>, Vec<usize>, u8, u32, u32)>;

/// (key, msg, ttl offsets, flags, remaining at `now`, lifetime) in recency order.
fn snapshot(c: &Cache, now: u32) -> Snapshot {
    let mut v = Vec::new();
    c.for_each(|e| {
        v.push((
            e.key.to_vec(),
            e.msg.to_vec(),
            e.ttl_positions().collect(),
            e.flags,
            e.remaining(now),
            e.lifetime(),
        ))
    });
    v
}

fn sentinel_cache() -> Cache {
    let mut c = Cache::new(1 << 24);
    let k = Key::new(b"\x04keep\x00", 1, 1, 0);
    assert!(c.insert(k.as_bytes(), &[7u8; 30], &[4], 3, 99, 0));
    c
}

proptest! {
    #![proptest_config(config(200))]

    /// Everything but failures and entries too stale to keep comes back, aged by the
    /// time the file spent on disk, in the same recency order.
    #[test]
    fn encode_decode_round_trip(specs in prop::collection::vec(entry(), 0..25), offline_for in 0u64..200_000) {
        let c = filled(&specs);
        let file = encode(&c, CLOCK, WALL, STALE_MAX);
        let clock2 = 1u32 << 30;
        let mut d = Cache::new(1 << 24);
        let r = decode(&file, &mut d, clock2, WALL + offline_for, STALE_MAX).expect("own file loads");
        prop_assert!(!r.clock_behind);
        let before = snapshot(&c, CLOCK);
        let after = snapshot(&d, clock2);
        let mut expect = Vec::new();
        let (mut fresh, mut stale, mut skipped) = (0, 0, 0);
        c.for_each(|e| {
            if e.flags & flag::FAILURE != 0 || CLOCK > e.expires.saturating_add(STALE_MAX) {
                return; // not written
            }
            let rem = e.expires as i64 - CLOCK as i64 - offline_for as i64;
            if rem <= -(STALE_MAX as i64) {
                skipped += 1;
                return;
            }
            if rem > 0 { fresh += 1 } else { stale += 1 }
            let i = before.iter().position(|b| b.0 == e.key).unwrap();
            let mut b = before[i].clone();
            b.4 = rem.clamp(0, e.lifetime() as i64) as u32;
            b.5 = e.lifetime();
            expect.push(b);
        });
        prop_assert_eq!((r.fresh, r.stale, r.skipped), (fresh, stale, skipped));
        prop_assert_eq!(after.len(), expect.len());
        for (a, e) in after.iter().zip(&expect) {
            prop_assert_eq!(&a.0, &e.0);
            prop_assert_eq!(&a.1, &e.1);
            prop_assert_eq!(&a.2, &e.2);
            prop_assert_eq!(a.3, e.3);
            prop_assert_eq!(a.4, e.4, "remaining lifetime");
            prop_assert_eq!(a.5, e.5, "lifetime");
        }
    }

    /// Any single damaged byte, and any truncation, refuses the whole file and leaves
    /// the cache exactly as it was.
    #[test]
    fn damaged_files_are_refused_whole(
        specs in prop::collection::vec(entry(), 1..8),
        at in any::<prop::sample::Index>(), xor in 1u8..=255, cut in any::<prop::sample::Index>(),
    ) {
        let file = encode(&filled(&specs), CLOCK, WALL, STALE_MAX);
        let mut bad = file.clone();
        let i = at.index(bad.len());
        bad[i] ^= xor;
        let mut c = sentinel_cache();
        let before = snapshot(&c, 0);
        prop_assert!(decode(&bad, &mut c, CLOCK, WALL, STALE_MAX).is_err(), "byte {} ^ {:#x} accepted", i, xor);
        prop_assert_eq!(snapshot(&c, 0), before.clone());
        let n = cut.index(file.len());
        prop_assert!(decode(&file[..n], &mut c, CLOCK, WALL, STALE_MAX).is_err(), "cut at {} accepted", n);
        prop_assert_eq!(snapshot(&c, 0), before);
    }
}

proptest! {
    #![proptest_config(config(1500))]

    /// Arbitrary files never panic; with a valid header and checksum patched in (so the
    /// entry parser is reached) a refused file still leaves the cache untouched.
    #[test]
    fn arbitrary_files_never_panic(mut data in prop::collection::vec(any::<u8>(), 0..400), patch in any::<bool>(), wall in prop_oneof![Just(0u64), Just(WALL)]) {
        if patch {
            if data.len() < 24 {
                data.resize(24, 0);
            }
            data[..8].copy_from_slice(b"DPROXYC\0");
            data[8..10].copy_from_slice(&1u16.to_be_bytes());
            // Small entry counts, so that some files parse.
            data[20] = 0;
            data[21] = 0;
            data[22] = 0;
            data[23] %= 4;
            let crc = crc32(&data);
            data.extend_from_slice(&crc.to_be_bytes());
        }
        let mut c = sentinel_cache();
        let before = snapshot(&c, 0);
        match decode(&data, &mut c, CLOCK, wall, STALE_MAX) {
            Err(_) => prop_assert_eq!(snapshot(&c, 0), before),
            Ok(r) => {
                let count = u32::from_be_bytes(data[20..24].try_into().unwrap()) as usize;
                prop_assert_eq!(r.fresh + r.stale + r.skipped, count);
                prop_assert!(c.bytes() <= c.budget());
            }
        }
    }
}

/// Found by the fuzzer (fuzz/regressions/persist_decode/expires-at-overflow.bin): an
/// `expires_at` just above 2^63 makes `expires_at as i64 - wall_now as i64` overflow in
/// `decode`, a panic in debug builds. Fixed in bd15b40. The file below is well-formed
/// apart from that.
#[test]
fn regression_expires_at_overflow() {
    let c = filled(&[EntrySpec {
        name: "a.test".into(),
        qtype: 1,
        kflags: 0,
        msg: vec![0; 40],
        ttl_count: 1,
        age: 0,
        lifetime: 300,
        flags: 0,
    }]);
    let mut file = encode(&c, CLOCK, WALL, STALE_MAX);
    // The first entry's expires_at, right after the 24-byte header.
    file[24..32].copy_from_slice(&0x8000_0000_0000_0001u64.to_be_bytes());
    let n = file.len() - 4;
    let crc = crc32(&file[..n]);
    file[n..].copy_from_slice(&crc.to_be_bytes());
    let mut d = Cache::new(1 << 20);
    // Must not panic; refusing the file or loading it as stale are both fine.
    let _ = decode(&file, &mut d, CLOCK, WALL, STALE_MAX);
}
