//! The examples of RFC 6605 §6 (ECDSA P-256, P-384) and RFC 8080 §6.1 (Ed25519, with
//! erratum 4935), checked through [`verify_rrset`]; RFC 5702 §6's RSA examples use
//! 512-bit keys, below ring's 1024-bit floor, and must come out bogus.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const EXAMPLE_NET: &[u8] = b"\x07example\x03net\0";
const WWW_EXAMPLE_NET: &[u8] = b"\x03www\x07example\x03net\0";
const EXAMPLE_COM: &[u8] = b"\x07example\x03com\0";

fn check(
    owner: &[u8],
    zone: &[u8],
    rt: u16,
    rdata: &[u8],
    key: &str,
    sig: &str,
    now: u64,
) -> (Verdict, u32) {
    let rd = [rdata];
    let set = Rrset {
        owner,
        rtype: rt,
        class: 1,
        ttl: 3600,
        rdatas: &rd,
    };
    let (key, sig) = (hex(key), hex(sig));
    let mut b = Budget::per_query();
    let v = verify_rrset(
        &set,
        &[&sig],
        zone,
        &[&key],
        Clock {
            now,
            check_inception: true,
        },
        &mut b,
    );
    (v, b.spent)
}

const P256_KEY: &str = "0101030d1a88c88615d437fbb8bf9e1942a1929f28562706ae6c2bd399e7b1bfb6d1e9e75b92b4aa42917ae1c61b701ef035c3fe7be3009cbafe5a2f71316c902dcf0d00";
const P256_SIG: &str = "00010d0300000e104c88b1374c63c737d960076578616d706c65036e657400ab1eb02d8aa687e97da0229337aa8873e6f0eb26be289f28333d183f5d3b7a95c0c869adfb748daee3c5286eed6682c12e5533186baced9c26c167a9ebae950b";
const P384_KEY: &str = "0101030ec4a61a36159d18e7c9fa73eb2fcfdaae4c1fd8463730327e484aca8af0554ae9b5c3f7a0b17bd2003b4d261c9e9b94423a9810e8af17d43452124adb610f8e07ebfcfee5f8e4d07063cae9eb917a1a5babf08fe695536017a5bfa93237ee6e34";
const P384_SIG: &str = "00010e0300000e104c88b4e94c63cae92a13076578616d706c65036e657400fcbe610ca22f183c88d5f700457df3eb9aab98fb15cfbdd00f532be4212a3a22cff79871428baeae81827993afcc56b1b13f0696bef885b6af44a6b224dbb2742bb35934923ddcfbc27a972f96dd709ceeb1d9c8d1148c44ec71c068a959c266";
const ED_KEY: &str = "0101030f974d96a22d224bc01adb915091477d44ccd91c9a41a11430010117d52c59240e";
const ED_SIG: &str = "000f0f0200000e1055d4fc6055b94ce00e1d076578616d706c6503636f6d00a0bf64ac9ba7ef17c138859c1878bb99a839fe1759aca5b0d798cf1ab1e98d079102f4ddb3368f0fe40bb377f1f00e0cddedb799167d56b6e932783072ba8d02";
const RSA512_KEY: &str = "0100030803010001c15c1ac6b1c5d822bae1a60a45489b2e21f7d0aa4fb8f0637a5ec4f19c9d416d476161dfa069a27730b6467870082dbdde10b3c3e4c54769ea9fc395498e6dd9";
const RSA512_SIG: &str = "0001080300000e1070dbd880386d43802349076578616d706c65036e65740091108e1fabbb974406cbdaa90bd975b0b9dc25c38a14b27b1a18943a26eee2d798a79544f519dcae24a164dcfce66c2532034469c1582bf94fb4f89560fe1bc2";

#[test]
fn rfc6605_ecdsa_examples() {
    let a = [192, 0, 2, 1];
    let (v, spent) = check(
        WWW_EXAMPLE_NET,
        EXAMPLE_NET,
        1,
        &a,
        P256_KEY,
        P256_SIG,
        1_282_000_000,
    );
    assert!(
        matches!(
            v,
            Verdict::Secure {
                wildcard: false,
                sha1: false,
                ..
            }
        ),
        "{v:?}"
    );
    assert_eq!(spent, 1);
    assert_eq!(key_tag(&hex(P256_KEY)), 55648);
    let (v, _) = check(
        WWW_EXAMPLE_NET,
        EXAMPLE_NET,
        1,
        &a,
        P384_KEY,
        P384_SIG,
        1_282_000_000,
    );
    assert!(matches!(v, Verdict::Secure { .. }), "{v:?}");
    assert_eq!(key_tag(&hex(P384_KEY)), 10771);
    // Another address is another RRset.
    let (v, _) = check(
        WWW_EXAMPLE_NET,
        EXAMPLE_NET,
        1,
        &[192, 0, 2, 2],
        P256_KEY,
        P256_SIG,
        1_282_000_000,
    );
    assert_eq!(v, Verdict::Bogus(Bogus::BadSignature));
}

#[test]
fn rfc8080_ed25519_example_and_its_ds() {
    let mx = b"\x00\x0a\x04mail\x07example\x03com\0";
    let (v, _) = check(
        EXAMPLE_COM,
        EXAMPLE_COM,
        15,
        mx,
        ED_KEY,
        ED_SIG,
        1_439_000_000,
    );
    assert!(matches!(v, Verdict::Secure { .. }), "{v:?}");
    // The name inside the MX RDATA is compared in lowercase.
    let (v, _) = check(
        EXAMPLE_COM,
        EXAMPLE_COM,
        15,
        b"\x00\x0a\x04MAIL\x07Example\x03com\0",
        ED_KEY,
        ED_SIG,
        1_439_000_000,
    );
    assert!(matches!(v, Verdict::Secure { .. }), "{v:?}");
    let key = hex(ED_KEY);
    assert_eq!(key_tag(&key), 3613);
    let ds = hex("0e1d0f023aa5ab37efce57f737fc1627013fee07bdf241bd10f3b1964ab55c78e79a304b");
    assert_eq!(
        match_ds(EXAMPLE_COM, &[&ds], &[&key], &mut Budget::per_query()),
        Ok(vec![0])
    );
}

#[test]
fn rfc5702_rsa512_examples_are_refused() {
    let (v, spent) = check(
        WWW_EXAMPLE_NET,
        EXAMPLE_NET,
        1,
        &[192, 0, 2, 91],
        RSA512_KEY,
        RSA512_SIG,
        1_500_000_000,
    );
    assert_eq!(v, Verdict::Bogus(Bogus::BadSignature));
    assert_eq!(spent, 1);
    assert_eq!(key_tag(&hex(RSA512_KEY)), 9033);
}
