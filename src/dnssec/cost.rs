//! What each crypto operation costs, in units of about one microsecond of this
//! project's x86-64 test machine (ring, release build), measured by the ignored test
//! `measure_worst_case_query_cost` in tests/it/dnssec_core.rs. The per-query cap in the
//! same units bounds the CPU one client query can make dproxy spend, whichever
//! algorithm an attacker picks (KeyTrap, CVE-2023-50387; NSEC3 floods, CVE-2023-50868).
//! On a mips router every operation is some 20-50 times slower, and so is the cap.

/// The cost cap of one client query: about 10 ms here.
pub const PER_QUERY: u32 = 10_000;

/// One DS digest (SHA-256 over a name and a key: well under a microsecond).
pub const DIGEST: u32 = 1;

/// One signature verification of algorithm `alg` with a key field of `key_len` bytes.
pub fn verify(alg: u8, key_len: usize) -> u32 {
    match alg {
        // RSA: public-exponent verification grows with the square of the modulus;
        // 28 units at 2048 bits (measured 28 µs), 112 at 4096 (108 µs), never less
        // than 9 (1024 bits: 8.8 µs).
        5 | 7 | 8 | 10 => {
            let k = key_len.min(1024) as u32;
            (28 * k * k / (256 * 256)).max(9)
        }
        // Measured P-256 76-100 µs, P-384 0.76-1.5 ms (ring has no assembly for
        // P-384), Ed25519 43-50 µs, the spread from runs on a busy machine: rounded up,
        // P-384 to its middle figure so that a chain of a few P-384 zones (about
        // eight verifications) still fits one query.
        13 => 100,
        14 => 1200,
        15 => 50,
        // Never verified; a cost of one keeps the operation count honest.
        _ => 1,
    }
}

/// One NSEC3 hash with `iterations` extra rounds (each a SHA-1 of 20 bytes plus
/// salt, 0.29-0.38 µs measured: 44-57 µs at 150 iterations).
pub fn nsec3_hash(iterations: u16) -> u32 {
    1 + iterations as u32 * 2 / 5
}
