//! The DNSSEC crypto core against zones signed at test time by ldns-signzone (Debian
//! ldnsutils): one zone per algorithm (8 at 2048 and 1024 bits, 10, 13, 14, 15, 5, and 16
//! which dproxy does not implement), read back in RFC 3597 form with ldns-read-zone, DS
//! records made by ldns-key2ds. Signatures carry fixed dates and the tests pass fixed
//! times, so nothing depends on the system clock. No network at all.
#![cfg(feature = "dnssec")]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::dnssec_support;
use dnssec_support::{hex, run, wire, TempDir, EXPIRATION, INCEPTION, NOW, RRSIG};
use dproxy::dnssec::{
    anchors, cost, key_tag, verify_dnskey_rrset, verify_rrset, Bogus, Budget, Clock, Rrset,
    RrsigView, Verdict, DNSKEY, MAX_CRYPTO_PER_QUERY, MAX_FAILURES_PER_RRSET,
};

const T_INCEPTION: u64 = 1_767_225_600;
const T_EXPIRATION: u64 = 1_798_761_600;

const ZONE: &str = "$TTL 300
@        IN SOA ns1 hostmaster 1 3600 900 604800 60
@        IN NS  ns1
ns1      IN A   192.0.2.53
WWW      IN A   192.0.2.10
www      IN A   192.0.2.11
www      IN AAAA 2001:db8::10
Mail     IN MX  10 MX1.Example.
txt      IN TXT \"hello\" \"world\"
*.wild   IN A   192.0.2.77
c1       IN CNAME WWW
";

/// (lowercased owner, type).
type Key = (String, u16);
/// TTL and RDATAs of one RRset.
type Set = (u32, Vec<Vec<u8>>);

/// A signed zone: RRsets by (lowercased owner, type), RRSIGs by the same key.
struct Zone {
    apex: Vec<u8>,
    sets: BTreeMap<Key, Set>,
    sigs: BTreeMap<Key, Vec<Vec<u8>>>,
    /// DS records (RDATA) of the KSK from ldns-key2ds, digests 1, 2 and 4.
    ds: Vec<Vec<u8>>,
    /// The same, as ldns-key2ds printed them (a trust anchor file).
    ds_text: String,
}

impl Zone {
    fn set(&self, owner: &str, t: u16) -> Set {
        self.sets
            .get(&(owner.to_string(), t))
            .cloned()
            .unwrap_or_else(|| panic!("no {owner} {t}"))
    }
    fn sigs(&self, owner: &str, t: u16) -> Vec<Vec<u8>> {
        self.sigs
            .get(&(owner.to_string(), t))
            .cloned()
            .unwrap_or_default()
    }
    fn keys(&self) -> Vec<Vec<u8>> {
        self.set(&apex_text(&self.apex), DNSKEY).1
    }
}

fn apex_text(apex: &[u8]) -> String {
    let mut s = String::new();
    let mut p = 0;
    while apex[p] != 0 {
        let l = apex[p] as usize;
        s.push_str(std::str::from_utf8(&apex[p + 1..p + 1 + l]).unwrap());
        s.push('.');
        p += 1 + l;
    }
    s
}

/// A fresh scratch directory, removed when dropped (also when the test panics).
fn workdir() -> TempDir {
    TempDir::new("dnssec")
}

fn keygen(dir: &Path, origin: &str, alg: &str, bits: Option<&str>, ksk: bool) -> String {
    let mut c = Command::new("ldns-keygen");
    c.current_dir(dir).args(["-a", alg]);
    if let Some(b) = bits {
        c.args(["-b", b]);
    }
    if ksk {
        c.arg("-k");
    }
    run(c.arg(origin)).trim().to_string()
}

/// Signs ZONE as `origin` with a KSK and a ZSK of `alg` (the KSK alone with `single`).
fn signed(origin: &str, alg: &str, bits: Option<&str>, single: bool) -> Zone {
    let scratch = workdir();
    let dir = scratch.dir().to_path_buf();
    let file = dir.join("zone");
    std::fs::write(&file, format!("$ORIGIN {origin}.\n{ZONE}")).unwrap();
    let mut keys = vec![keygen(&dir, origin, alg, bits, true)];
    if !single {
        let zsk = keygen(&dir, origin, alg, bits, false);
        if zsk == keys[0] {
            // The ZSK's tag is the KSK's: ldns-keygen wrote over the KSK's files.
            return signed(origin, alg, bits, single);
        }
        keys.push(zsk);
    }
    run(Command::new("ldns-signzone")
        .current_dir(&dir)
        .args(["-i", INCEPTION, "-e", EXPIRATION, "-f", "signed", "zone"])
        .args(&keys));
    // Every type in RFC 3597 form: "owner ttl IN TYPEn \# len hex" (SPF is the one type
    // left in presentation form, and the zone has none).
    let text = run(Command::new("ldns-read-zone")
        .current_dir(&dir)
        .args(["-U", "SPF", "signed"]));
    let mut z = Zone {
        apex: wire(origin),
        sets: BTreeMap::new(),
        sigs: BTreeMap::new(),
        ds: Vec::new(),
        ds_text: String::new(),
    };
    for line in text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f[4], "\\#", "{line}");
        let t: u16 = f[3].trim_start_matches("TYPE").parse().unwrap();
        let rdata = hex(f.get(6).copied().unwrap_or(""));
        assert_eq!(rdata.len(), f[5].parse::<usize>().unwrap());
        let owner = f[0].to_ascii_lowercase();
        if t == RRSIG {
            let covered = u16::from_be_bytes([rdata[0], rdata[1]]);
            z.sigs.entry((owner, covered)).or_default().push(rdata);
        } else {
            let e = z
                .sets
                .entry((owner, t))
                .or_insert((f[1].parse().unwrap(), Vec::new()));
            e.1.push(rdata);
        }
    }
    for d in ["-1", "-2", "-4"] {
        let out = run(Command::new("ldns-key2ds").current_dir(&dir).args([
            "-n",
            d,
            &format!("{}.key", keys[0]),
        ]));
        z.ds_text.push_str(&out);
        let f: Vec<&str> = out.split_whitespace().collect();
        let mut rd = f[4].parse::<u16>().unwrap().to_be_bytes().to_vec();
        rd.push(f[5].parse().unwrap());
        rd.push(f[6].parse().unwrap());
        rd.extend(hex(f[7]));
        z.ds.push(rd);
    }
    z
}

fn refs(v: &[Vec<u8>]) -> Vec<&[u8]> {
    v.iter().map(|x| x.as_slice()).collect()
}

/// Checks the RRset (`owner`, `t`) of `z` under the name `as_owner`, with `keys`.
fn check_as(
    z: &Zone,
    owner: &str,
    as_owner: &str,
    t: u16,
    keys: &[Vec<u8>],
    clock: Clock,
    budget: &mut Budget,
) -> Verdict {
    let (ttl, rdatas) = z.set(owner, t);
    let rd = refs(&rdatas);
    let o = wire(as_owner);
    let set = Rrset {
        owner: &o,
        rtype: t,
        class: 1,
        ttl,
        rdatas: &rd,
    };
    verify_rrset(
        &set,
        &refs(&z.sigs(owner, t)),
        &z.apex,
        &refs(keys),
        clock,
        budget,
    )
}

fn check(z: &Zone, owner: &str, t: u16) -> Verdict {
    check_as(z, owner, owner, t, &z.keys(), NOW, &mut Budget::per_query())
}

fn is_secure(v: Verdict) -> bool {
    matches!(v, Verdict::Secure { .. })
}

/// Every RRset of the zone (the DNSKEY set through its DS records) must be secure.
fn all_secure(z: &Zone, sha1: bool) {
    assert!(z.sets.len() >= 10, "too few RRsets: {}", z.sets.len());
    for (owner, t) in z.sets.keys() {
        let v = if *t == DNSKEY {
            let (ttl, rdatas) = z.set(owner, DNSKEY);
            let rd = refs(&rdatas);
            let set = Rrset {
                owner: &z.apex,
                rtype: DNSKEY,
                class: 1,
                ttl,
                rdatas: &rd,
            };
            for ds in &z.ds {
                let v = verify_dnskey_rrset(
                    &set,
                    &refs(&z.sigs(owner, DNSKEY)),
                    &[ds],
                    NOW,
                    &mut Budget::per_query(),
                );
                assert!(is_secure(v), "DNSKEY via DS {:?}: {v:?}", &ds[..4]);
            }
            verify_dnskey_rrset(
                &set,
                &refs(&z.sigs(owner, DNSKEY)),
                &refs(&z.ds),
                NOW,
                &mut Budget::per_query(),
            )
        } else {
            check(z, owner, *t)
        };
        match v {
            Verdict::Secure {
                sha1: s,
                wildcard: false,
                ttl,
            } => {
                assert_eq!(s, sha1, "{owner} {t}");
                assert!(ttl > 0 && ttl <= 3600, "{owner} {t}: ttl {ttl}");
            }
            other => panic!("{owner} type {t}: {other:?}"),
        }
    }
}

#[test]
fn every_rrset_verifies_for_each_algorithm() {
    for (origin, alg, bits) in [
        ("rsa.test", "RSASHA256", Some("2048")),
        ("rsa1024.test", "RSASHA256", Some("1024")),
        ("rsa512.test", "RSASHA512", Some("2048")),
        ("p256.test", "ECDSAP256SHA256", None),
        ("p384.test", "ECDSAP384SHA384", None),
        ("ed.test", "ED25519", None),
    ] {
        let z = signed(origin, alg, bits, false);
        all_secure(&z, false);
    }
    // RSASHA1 verifies but is reported as SHA-1 (RFC 9905).
    all_secure(&signed("sha1.test", "RSASHA1", Some("2048"), true), true);
}

#[test]
fn wildcard_expansion_and_owner_case() {
    let z = signed("wc.test", "ECDSAP256SHA256", None, false);
    let mut b = Budget::per_query();
    let v = check_as(
        &z,
        "*.wild.wc.test.",
        "host.wild.wc.test.",
        1,
        &z.keys(),
        NOW,
        &mut b,
    );
    assert!(matches!(v, Verdict::Secure { wildcard: true, .. }), "{v:?}");
    let v = check_as(
        &z,
        "*.wild.wc.test.",
        "a.b.wild.wc.test.",
        1,
        &z.keys(),
        NOW,
        &mut b,
    );
    assert!(matches!(v, Verdict::Secure { wildcard: true, .. }), "{v:?}");
    // 0x20-style case in the owner and in the zone name changes nothing.
    let v = check_as(
        &z,
        "www.wc.test.",
        "WwW.wC.TeSt.",
        1,
        &z.keys(),
        NOW,
        &mut b,
    );
    assert!(
        matches!(
            v,
            Verdict::Secure {
                wildcard: false,
                ..
            }
        ),
        "{v:?}"
    );
    // Another owner is another RRset.
    let v = check_as(
        &z,
        "www.wc.test.",
        "www2.wc.test.",
        1,
        &z.keys(),
        NOW,
        &mut b,
    );
    assert_eq!(v, Verdict::Bogus(Bogus::BadSignature));
    // An owner above the signature's labels count contradicts the RRSIG.
    let v = check_as(&z, "www.wc.test.", "wc.test.", 1, &z.keys(), NOW, &mut b);
    assert_eq!(v, Verdict::Bogus(Bogus::Malformed));
    // Outside the signer's zone.
    let v = check_as(&z, "www.wc.test.", "www.other.", 1, &z.keys(), NOW, &mut b);
    assert_eq!(v, Verdict::Bogus(Bogus::Malformed));
}

#[test]
fn flipped_bytes_are_bad_signatures() {
    for (origin, alg) in [
        ("f8.test", "RSASHA256"),
        ("f13.test", "ECDSAP256SHA256"),
        ("f15.test", "ED25519"),
    ] {
        let z = signed(
            origin,
            alg,
            Some("2048").filter(|_| alg.starts_with("RSA")),
            false,
        );
        let www = format!("www.{origin}.");
        let (ttl, mut rdatas) = z.set(&www, 1);
        rdatas[0][3] ^= 1;
        let rd = refs(&rdatas);
        let o = wire(&www);
        let set = Rrset {
            owner: &o,
            rtype: 1,
            class: 1,
            ttl,
            rdatas: &rd,
        };
        let keys = z.keys();
        let v = verify_rrset(
            &set,
            &refs(&z.sigs(&www, 1)),
            &z.apex,
            &refs(&keys),
            NOW,
            &mut Budget::per_query(),
        );
        assert_eq!(v, Verdict::Bogus(Bogus::BadSignature), "{alg} data");
        assert_eq!(v.ede(), Some(6));

        let (_, rdatas) = z.set(&www, 1);
        let rd = refs(&rdatas);
        let set = Rrset { rdatas: &rd, ..set };
        let mut sigs = z.sigs(&www, 1);
        let last = sigs[0].len() - 1;
        sigs[0][last] ^= 0x40;
        let v = verify_rrset(
            &set,
            &refs(&sigs),
            &z.apex,
            &refs(&keys),
            NOW,
            &mut Budget::per_query(),
        );
        assert_eq!(v, Verdict::Bogus(Bogus::BadSignature), "{alg} signature");
        // The original TTL is signed too.
        let mut sigs = z.sigs(&www, 1);
        sigs[0][7] ^= 1;
        let v = verify_rrset(
            &set,
            &refs(&sigs),
            &z.apex,
            &refs(&keys),
            NOW,
            &mut Budget::per_query(),
        );
        assert_eq!(v, Verdict::Bogus(Bogus::BadSignature), "{alg} original TTL");
    }
}

#[test]
fn validity_window_with_serial_arithmetic() {
    let z = signed("time.test", "ED25519", None, false);
    let keys = z.keys();
    let at = |now: u64, check_inception: bool| {
        check_as(
            &z,
            "www.time.test.",
            "www.time.test.",
            1,
            &keys,
            Clock {
                now,
                check_inception,
            },
            &mut Budget::per_query(),
        )
    };
    assert!(is_secure(at(T_INCEPTION, true)));
    assert!(is_secure(at(T_EXPIRATION, true)));
    assert_eq!(
        at(T_EXPIRATION + 1, true),
        Verdict::Bogus(Bogus::SignatureExpired)
    );
    assert_eq!(at(T_EXPIRATION + 1, true).ede(), Some(7));
    assert_eq!(
        at(T_INCEPTION - 1, true),
        Verdict::Bogus(Bogus::SignatureNotYetValid)
    );
    assert_eq!(at(T_INCEPTION - 1, true).ede(), Some(8));
    // Clock not yet known good: inception is not checked, expiry still is.
    assert!(is_secure(at(T_INCEPTION - 86_400, false)));
    assert_eq!(
        at(T_EXPIRATION + 1, false),
        Verdict::Bogus(Bogus::SignatureExpired)
    );
    // The same 32-bit times one serial-number wrap (2^32 s) later are still valid.
    assert!(is_secure(at(NOW.now + (1 << 32), true)));
    // The TTL is capped by the time left before expiry.
    match at(T_EXPIRATION - 100, true) {
        Verdict::Secure { ttl, .. } => assert_eq!(ttl, 100),
        v => panic!("{v:?}"),
    }
}

#[test]
fn wrong_key_missing_rrsig_and_wrong_ds() {
    let z = signed("k1.test", "ECDSAP256SHA256", None, false);
    let other = signed("k2.test", "ECDSAP256SHA256", None, false);
    let mut b = Budget::per_query();
    // The keys of another zone (same algorithm): none matches the key tag.
    let v = check_as(
        &z,
        "www.k1.test.",
        "www.k1.test.",
        1,
        &other.keys(),
        NOW,
        &mut b,
    );
    assert_eq!(v, Verdict::Bogus(Bogus::DnskeyMissing));
    assert_eq!(v.ede(), Some(9));
    // No RRSIG at all.
    let (ttl, rdatas) = z.set("www.k1.test.", 1);
    let rd = refs(&rdatas);
    let o = wire("www.k1.test.");
    let set = Rrset {
        owner: &o,
        rtype: 1,
        class: 1,
        ttl,
        rdatas: &rd,
    };
    let v = verify_rrset(&set, &[], &z.apex, &refs(&z.keys()), NOW, &mut b);
    assert_eq!(v, Verdict::Bogus(Bogus::RrsigsMissing));
    assert_eq!(v.ede(), Some(10));
    // RRSIGs of another type only.
    let v = verify_rrset(
        &set,
        &refs(&z.sigs("www.k1.test.", 28)),
        &z.apex,
        &refs(&z.keys()),
        NOW,
        &mut b,
    );
    assert_eq!(v, Verdict::Bogus(Bogus::RrsigsMissing));
    // The DNSKEY set against the DS of another zone's key.
    let (ttl, keys) = z.set("k1.test.", DNSKEY);
    let rd = refs(&keys);
    let kset = Rrset {
        owner: &z.apex,
        rtype: DNSKEY,
        class: 1,
        ttl,
        rdatas: &rd,
    };
    let sigs = z.sigs("k1.test.", DNSKEY);
    let v = verify_dnskey_rrset(&kset, &refs(&sigs), &refs(&other.ds), NOW, &mut b);
    assert_eq!(v, Verdict::Bogus(Bogus::DnskeyMissing));
    // A DS of the right key tag and algorithm but a wrong digest.
    let mut bad = z.ds[1].clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let v = verify_dnskey_rrset(&kset, &refs(&sigs), &[&bad], NOW, &mut b);
    assert_eq!(v, Verdict::Bogus(Bogus::DnskeyMissing));
    // The DS matches the ZSK only if the ZSK signs the DNSKEY set: it does not here, the
    // KSK does. A DS naming the KSK with a SHA-1 digest beside a bad SHA-256 one is
    // ignored (RFC 4509 §3).
    let v = verify_dnskey_rrset(&kset, &refs(&sigs), &[&bad, &z.ds[0]], NOW, &mut b);
    assert_eq!(v, Verdict::Bogus(Bogus::DnskeyMissing));
    assert!(is_secure(verify_dnskey_rrset(
        &kset,
        &refs(&sigs),
        &[&z.ds[0]],
        NOW,
        &mut b
    )));
}

#[test]
fn unimplemented_algorithm_is_unsupported_not_bogus() {
    let z = signed("ed448.test", "ED448", None, true);
    let v = check(&z, "www.ed448.test.", 1);
    assert_eq!(v, Verdict::UnsupportedAlgorithm(16));
    assert_eq!(v.ede(), Some(1));
    let (ttl, keys) = z.set("ed448.test.", DNSKEY);
    let rd = refs(&keys);
    let kset = Rrset {
        owner: &z.apex,
        rtype: DNSKEY,
        class: 1,
        ttl,
        rdatas: &rd,
    };
    let v = verify_dnskey_rrset(
        &kset,
        &refs(&z.sigs("ed448.test.", DNSKEY)),
        &refs(&z.ds),
        NOW,
        &mut Budget::per_query(),
    );
    assert_eq!(v, Verdict::UnsupportedAlgorithm(16));
}

#[test]
fn trust_anchor_file_from_ldns_key2ds() {
    let z = signed("anchor.test", "ED25519", None, false);
    let other = signed("other.test", "ED25519", None, true);
    let scratch = workdir();
    let file = scratch.path("anchors.ds");
    std::fs::write(&file, format!("; test anchors\n{}", z.ds_text)).unwrap();
    let anchors = anchors::load(file.to_str().unwrap()).unwrap();
    assert_eq!(anchors.len(), 3);
    let (ttl, rdatas) = z.set("anchor.test.", DNSKEY);
    let rd = refs(&rdatas);
    let set = Rrset {
        owner: &z.apex,
        rtype: DNSKEY,
        class: 1,
        ttl,
        rdatas: &rd,
    };
    let sigs = z.sigs("anchor.test.", DNSKEY);
    let ds = anchors::for_zone(&anchors, &z.apex);
    assert_eq!(ds.len(), 3);
    let v = verify_dnskey_rrset(&set, &refs(&sigs), &ds, NOW, &mut Budget::per_query());
    assert!(is_secure(v), "{v:?}");
    // Another zone's anchor does not vouch for these keys.
    std::fs::write(&file, &other.ds_text).unwrap();
    let wrong = anchors::load(file.to_str().unwrap()).unwrap();
    assert!(anchors::for_zone(&wrong, &z.apex).is_empty());
    let mut renamed = wrong.clone();
    for a in &mut renamed {
        a.owner = z.apex.clone();
    }
    let ds = anchors::for_zone(&renamed, &z.apex);
    let v = verify_dnskey_rrset(&set, &refs(&sigs), &ds, NOW, &mut Budget::per_query());
    assert_eq!(v, Verdict::Bogus(Bogus::DnskeyMissing));
}

/// Copies of `key` with the same key tag and algorithm but other key bits: moving one
/// unit between two bytes at the same parity keeps the tag's checksum (candidates where
/// a byte would wrap around are skipped, as the checksum would change).
fn colliding_keys(key: &[u8], n: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for p in (8..key.len() - 2).step_by(2) {
        for by in 1..=4u8 {
            let (Some(up), Some(down)) = (key[p].checked_add(by), key[p + 2].checked_sub(by))
            else {
                continue;
            };
            let mut k = key.to_vec();
            k[p] = up;
            k[p + 2] = down;
            assert_eq!(key_tag(&k), key_tag(key));
            out.push(k);
            if out.len() == n {
                return out;
            }
        }
    }
    out
}

#[test]
fn keytrap_work_is_capped() {
    let z = signed("trap.test", "ECDSAP256SHA256", None, true);
    let real = z.keys();
    let fakes = colliding_keys(&real[0], 40);
    assert_eq!(fakes.len(), 40, "the test keys must collide");
    // Forty keys sharing the signer's tag, the real one last: at most 20 failures.
    let mut keys = fakes.clone();
    keys.extend(real.iter().cloned());
    let mut b = Budget::per_query();
    let v = check_as(
        &z,
        "www.trap.test.",
        "www.trap.test.",
        1,
        &keys,
        NOW,
        &mut b,
    );
    assert_eq!(v, Verdict::Bogus(Bogus::WorkLimit));
    assert_eq!(b.spent, MAX_FAILURES_PER_RRSET);
    // Many RRSIGs (bad copies) against the one real key: the same cap.
    let mut sigs = Vec::new();
    for i in 0..100u8 {
        let mut s = z.sigs("www.trap.test.", 1)[0].clone();
        let last = s.len() - 1;
        s[last] ^= i | 1;
        sigs.push(s);
    }
    let (ttl, rdatas) = z.set("www.trap.test.", 1);
    let rd = refs(&rdatas);
    let o = wire("www.trap.test.");
    let set = Rrset {
        owner: &o,
        rtype: 1,
        class: 1,
        ttl,
        rdatas: &rd,
    };
    let mut b = Budget::per_query();
    let v = verify_rrset(&set, &refs(&sigs), &z.apex, &refs(&real), NOW, &mut b);
    assert_eq!(v, Verdict::Bogus(Bogus::WorkLimit));
    assert_eq!(b.spent, MAX_FAILURES_PER_RRSET);
    // The per-query budget ends the query's work across RRsets: 200 operations or
    // the cost cap, whichever comes first (P-256 verifications weigh 60 units each).
    let mut b = Budget::per_query();
    for _ in 0..10 {
        verify_rrset(&set, &refs(&sigs), &z.apex, &refs(&real), NOW, &mut b);
    }
    let each = cost::verify(13, 64);
    assert_eq!(b.spent, MAX_CRYPTO_PER_QUERY.min(cost::PER_QUERY / each));
    assert_eq!(b.cost, b.spent * each);
    assert!(b.cost <= cost::PER_QUERY);
    // The operation cap alone, as dnsmasq's, with a cost cap out of reach.
    let mut b = Budget::with_cost(MAX_CRYPTO_PER_QUERY, u32::MAX);
    for _ in 0..20 {
        verify_rrset(&set, &refs(&sigs), &z.apex, &refs(&real), NOW, &mut b);
    }
    assert_eq!(b.spent, MAX_CRYPTO_PER_QUERY);
    let v = check_as(
        &z,
        "www.trap.test.",
        "www.trap.test.",
        1,
        &real,
        NOW,
        &mut b,
    );
    assert_eq!(v, Verdict::Bogus(Bogus::WorkLimit));
    // With budget left the real key still verifies after the fakes.
    let mut keys = fakes[..5].to_vec();
    keys.extend(real.iter().cloned());
    let mut b = Budget::per_query();
    assert!(is_secure(check_as(
        &z,
        "www.trap.test.",
        "www.trap.test.",
        1,
        &keys,
        NOW,
        &mut b
    )));
    assert_eq!(b.spent, 6);
}

#[test]
fn malformed_records_are_bogus_never_a_crash() {
    let z = signed("bad.test", "RSASHA256", Some("1024"), true);
    let keys = z.keys();
    let sig = z.sigs("www.bad.test.", 1)[0].clone();
    let (ttl, rdatas) = z.set("www.bad.test.", 1);
    let rd = refs(&rdatas);
    let o = wire("www.bad.test.");
    let set = Rrset {
        owner: &o,
        rtype: 1,
        class: 1,
        ttl,
        rdatas: &rd,
    };
    for cut in 0..sig.len() {
        let v = verify_rrset(
            &set,
            &[&sig[..cut]],
            &z.apex,
            &refs(&keys),
            NOW,
            &mut Budget::per_query(),
        );
        assert!(matches!(v, Verdict::Bogus(_)), "cut at {cut}: {v:?}");
    }
    for cut in 0..keys[0].len() {
        let k = &keys[0][..cut];
        let v = verify_rrset(&set, &[&sig], &z.apex, &[k], NOW, &mut Budget::per_query());
        assert!(matches!(v, Verdict::Bogus(_)), "key cut at {cut}: {v:?}");
    }
    // Expiration before inception.
    let mut s = sig.clone();
    s[8..12].copy_from_slice(&(T_INCEPTION as u32 - 1).to_be_bytes());
    let v = verify_rrset(
        &set,
        &[&s],
        &z.apex,
        &refs(&keys),
        NOW,
        &mut Budget::per_query(),
    );
    assert_eq!(v, Verdict::Bogus(Bogus::Malformed));
    let parsed = RrsigView::parse(&sig).unwrap();
    assert_eq!(parsed.signer, &z.apex[..]);
    assert_eq!(parsed.algorithm, 8);
}

/// CPU time of this thread: the figures hold on a machine busy with other work.
fn cpu_now() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Not a check: prints the CPU time one verification of each algorithm takes, and the
/// worst a query can cost under the caps (failing verifications, then NSEC3 hashes at
/// 150 iterations, until the budget refuses). Run with `cargo test --release --features
/// dnssec --test it measure_worst_case_query_cost -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_worst_case_query_cost() {
    let mut worst = std::time::Duration::ZERO;
    for (origin, alg, bits) in [
        ("m8.test", "RSASHA256", Some("2048")),
        ("m8b.test", "RSASHA256", Some("4096")),
        ("m8c.test", "RSASHA256", Some("1024")),
        ("m10.test", "RSASHA512", Some("2048")),
        ("m13.test", "ECDSAP256SHA256", None),
        ("m14.test", "ECDSAP384SHA384", None),
        ("m15.test", "ED25519", None),
    ] {
        let z = signed(origin, alg, bits, true);
        let www = format!("www.{origin}.");
        let (ttl, rdatas) = z.set(&www, 1);
        let rd = refs(&rdatas);
        let o = wire(&www);
        let set = Rrset {
            owner: &o,
            rtype: 1,
            class: 1,
            ttl,
            rdatas: &rd,
        };
        let mut sigs = Vec::new();
        for i in 0..20u8 {
            let mut s = z.sigs(&www, 1)[0].clone();
            let last = s.len() - 1;
            s[last] ^= i | 1;
            sigs.push(s);
        }
        let keys = z.keys();
        // One query's worst case: failing verifications until the budget refuses.
        let start = cpu_now();
        let mut b = Budget::per_query();
        loop {
            let before = b.spent;
            verify_rrset(&set, &refs(&sigs), &z.apex, &refs(&keys), NOW, &mut b);
            if b.spent == before {
                break;
            }
        }
        let t = cpu_now() - start;
        // The cost of one verification alone, without a cap.
        let n = 200;
        let start = cpu_now();
        let mut free = Budget::with_cost(u32::MAX, u32::MAX);
        while free.spent < n {
            verify_rrset(&set, &refs(&sigs), &z.apex, &refs(&keys), NOW, &mut free);
        }
        let each = (cpu_now() - start) / free.spent;
        println!(
            "{alg} {}: one verification {each:?}; worst query: {} failed verifications, \
             {} cost units, {t:?}",
            bits.unwrap_or("-"),
            b.spent,
            b.cost,
        );
        worst = worst.max(t);
    }
    // NSEC3 hashes at the highest iteration count still validated, until the budget
    // refuses.
    let start = cpu_now();
    let mut b = Budget::per_query();
    let mut hashes = 0;
    while b.take(dproxy::dnssec::cost::nsec3_hash(150)) {
        dproxy::dnssec::nsec3::hash(b"\x03www\x07example\0", 150, &[1, 2, 3, 4]).unwrap();
        hashes += 1;
    }
    let t = cpu_now() - start;
    println!("NSEC3 150 iterations: worst query {hashes} hashes, {t:?}");
    worst = worst.max(t);
    println!("worst query overall: {worst:?}");
}
