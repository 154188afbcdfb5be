//! DNSSEC signature algorithms (IANA registry) and their verification with ring.
//!
//! RSA keys from 1024 bits up are accepted through ring's legacy verifiers: many
//! zones still sign with 1024-bit RSA ZSKs, and refusing them would turn those zones
//! bogus rather than safer.

use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};

/// How dproxy treats a DNSKEY/RRSIG algorithm number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Verified (8 RSASHA256, 10 RSASHA512, 13 ECDSAP256SHA256, 14 ECDSAP384SHA384, 15 ED25519).
    Yes,
    /// Verified but SHA-1 based (5 RSASHA1, 7 RSASHA1-NSEC3-SHA1): RFC 9905.
    Sha1,
    /// Not implemented (12 GOST, 16 ED448, 1 RSAMD5, 3 DSA, 6, unassigned, reserved).
    No,
}

/// Classifies an algorithm number.
pub fn support(alg: u8) -> Support {
    match alg {
        8 | 10 | 13 | 14 | 15 => Support::Yes,
        5 | 7 => Support::Sha1,
        _ => Support::No,
    }
}

/// Verifies `sig` over `data` with the DNSKEY public key `key` (the key field of the
/// RDATA). False for a bad signature, a malformed key, and an unsupported algorithm.
pub fn verify(alg: u8, key: &[u8], data: &[u8], sig: &[u8]) -> bool {
    match alg {
        5 | 7 => verify_rsa(
            &signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
            key,
            data,
            sig,
        ),
        8 => verify_rsa(
            &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
            key,
            data,
            sig,
        ),
        10 => verify_rsa(
            &signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
            key,
            data,
            sig,
        ),
        13 => verify_ec(&signature::ECDSA_P256_SHA256_FIXED, 64, key, data, sig),
        14 => verify_ec(&signature::ECDSA_P384_SHA384_FIXED, 96, key, data, sig),
        15 => {
            key.len() == 32
                && UnparsedPublicKey::new(&signature::ED25519, key)
                    .verify(data, sig)
                    .is_ok()
        }
        _ => false,
    }
}

/// RFC 3110 §2: exponent length (one byte, or zero then two bytes), exponent, modulus.
fn verify_rsa(params: &signature::RsaParameters, key: &[u8], data: &[u8], sig: &[u8]) -> bool {
    let (elen, rest) = match key {
        [0, hi, lo, rest @ ..] => (u16::from_be_bytes([*hi, *lo]) as usize, rest),
        [len, rest @ ..] => (*len as usize, rest),
        [] => return false,
    };
    if elen == 0 || rest.len() <= elen {
        return false;
    }
    let (e, n) = rest.split_at(elen);
    RsaPublicKeyComponents { n, e }
        .verify(params, data, sig)
        .is_ok()
}

/// RFC 6605 §4: the key is x | y without the SEC1 prefix; the signature is r | s.
fn verify_ec(
    alg: &'static signature::EcdsaVerificationAlgorithm,
    len: usize,
    key: &[u8],
    data: &[u8],
    sig: &[u8],
) -> bool {
    if key.len() != len {
        return false;
    }
    let mut point = [0u8; 97];
    point[0] = 4;
    point[1..=len].copy_from_slice(key);
    UnparsedPublicKey::new(alg, &point[..=len])
        .verify(data, sig)
        .is_ok()
}
