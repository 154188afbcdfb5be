//! Authenticated denial (NSEC, NSEC3, opt-out, iteration limits) against real answers:
//! zones signed at test time by ldns-signzone (Debian ldnsutils), served by a real nsd
//! on 127.0.0.1, asked with dig (RFC 3597 form, so the records come back as bytes).
//! Each denial record's signature is verified with the zone's keys before the proof is
//! checked, as the validator will. Then records are dropped and the claims changed:
//! the proof must turn bogus with EDE 12 (NSEC Missing).
#![cfg(feature = "dnssec")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use crate::dnssec_support;
use crate::server_start::start_on_free_port;
use dnssec_support::{hex, run, spawn_nsd, wire, TempDir, EXPIRATION, INCEPTION, NOW, RRSIG};
use dproxy::dnssec::{
    prove_denial, verify_rrset, Bogus, Budget, Denied, Insecure, Proof, Question, Rrset, Verdict,
};

const NSEC: u16 = 47;
const NSEC3: u16 = 50;
const DNSKEY: u16 = 48;

const ZONE: &str = "$TTL 300
@          IN SOA ns1 hostmaster 1 3600 900 604800 60
@          IN NS  ns1
ns1        IN A   192.0.2.53
www        IN A   192.0.2.10
txtonly    IN TXT \"t\"
*.wild     IN A   192.0.2.77
a.b.ent    IN A   192.0.2.5
insecure   IN NS  ns.insecure
ns.insecure IN A  192.0.2.54
";

/// Length of the uncompressed name at the start of `b`.
fn wire_name_len(b: &[u8]) -> usize {
    let mut p = 0;
    while b[p] != 0 {
        p += 1 + b[p] as usize;
    }
    p + 1
}

/// One record in RFC 3597 form: owner (wire), type, RDATA.
#[derive(Clone, Debug)]
struct Rec {
    owner: Vec<u8>,
    rtype: u16,
    ttl: u32,
    rdata: Vec<u8>,
}

/// Parses "owner ttl class type \# len hex…" lines (ldns-read-zone -U / dig
/// +unknownformat); comments and blank lines skipped.
fn parse_records(text: &str) -> Vec<Rec> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(i) = f.iter().position(|x| *x == "\\#") else {
            continue;
        };
        let t = f[i - 1];
        let rtype = match t {
            "NSEC" => NSEC,
            "NSEC3" => NSEC3,
            "RRSIG" => RRSIG,
            "DNSKEY" => DNSKEY,
            "SOA" => 6,
            "NS" => 2,
            "A" => 1,
            "AAAA" => 28,
            "TXT" => 16,
            "DS" => 43,
            "CNAME" => 5,
            "NSEC3PARAM" => 51,
            other => other.trim_start_matches("TYPE").parse().unwrap(),
        };
        let rdata = hex(&f[i + 2..].concat());
        assert_eq!(rdata.len(), f[i + 1].parse::<usize>().unwrap(), "{line}");
        out.push(Rec {
            owner: wire(&f[0].to_ascii_lowercase()),
            rtype,
            ttl: f[1].parse().unwrap(),
            rdata,
        });
    }
    out
}

/// Signs ZONE as `origin` with `extra` ldns-signzone flags; returns the signed file
/// and the zone's DNSKEY RDATAs.
fn sign(dir: &Path, origin: &str, extra: &[&str]) -> (PathBuf, Vec<Vec<u8>>) {
    let file = dir.join(format!("{origin}.zone"));
    std::fs::write(&file, format!("$ORIGIN {origin}.\n{ZONE}")).unwrap();
    let key = run(Command::new("ldns-keygen").current_dir(dir).args([
        "-a",
        "ECDSAP256SHA256",
        "-k",
        origin,
    ]))
    .trim()
    .to_string();
    let signed = dir.join(format!("{origin}.signed"));
    run(Command::new("ldns-signzone")
        .current_dir(dir)
        .args(["-i", INCEPTION, "-e", EXPIRATION, "-f"])
        .arg(&signed)
        .args(extra)
        .arg(&file)
        .arg(&key));
    let text = run(Command::new("ldns-read-zone")
        .args(["-U", "SPF"])
        .arg(&signed));
    let keys = parse_records(&text)
        .into_iter()
        .filter(|r| r.rtype == DNSKEY)
        .map(|r| r.rdata)
        .collect();
    (signed, keys)
}

/// A real nsd on 127.0.0.1, stopped on drop.
struct Nsd {
    child: Child,
    port: u16,
}

impl Drop for Nsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_nsd(dir: &Path, zones: &[(&str, PathBuf)]) -> Nsd {
    // Ready when every zone answers its SOA; started again on another port if its port
    // was taken before it bound it (bounded: 60 s, 5 ports).
    let (child, port) = start_on_free_port(
        "nsd",
        &[dir.join("nsd.log"), dir.join("nsd.out")],
        |port| spawn_nsd(dir, port, zones),
        |port| {
            zones.iter().all(|(name, _)| {
                let out = dig(port, name, "SOA");
                out.contains("status: NOERROR") && out.contains("SOA")
            })
        },
    );
    Nsd { child, port }
}

fn dig(port: u16, name: &str, t: &str) -> String {
    let out = Command::new("dig")
        .args([
            "+dnssec",
            "+norec",
            "+unknownformat",
            "+time=1",
            "+tries=1",
            "+bufsize=4096",
            "-p",
            &port.to_string(),
            "@127.0.0.1",
            name,
            t,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The signed zones and the nsd serving them (stopped when the World is dropped).
struct World {
    _nsd: Nsd,
    port: u16,
    keys: std::collections::HashMap<String, Vec<Vec<u8>>>,
    // The zones' directory, removed after nsd is stopped (fields drop in order), also
    // when a test panics.
    _zones: TempDir,
}

fn world() -> World {
    {
        let zones_dir = TempDir::new("denial-zones");
        let dir = zones_dir.dir().to_path_buf();
        let variants: [(&str, &[&str]); 6] = [
            ("nsec.test", &[]),
            ("nsec3.test", &["-n", "-t", "10", "-s", "beef"]),
            ("optout.test", &["-n", "-p", "-t", "0"]),
            ("it150.test", &["-n", "-t", "150"]),
            ("it151.test", &["-n", "-t", "151"]),
            ("it200.test", &["-n", "-t", "200"]),
        ];
        let mut zones = Vec::new();
        let mut keys = std::collections::HashMap::new();
        for (origin, extra) in variants {
            let (file, k) = sign(&dir, origin, extra);
            zones.push((origin, file));
            keys.insert(origin.to_string(), k);
        }
        let nsd = start_nsd(&dir, &zones);
        World {
            port: nsd.port,
            _nsd: nsd,
            keys,
            _zones: zones_dir,
        }
    }
}

/// What nsd says to (`name`, `t`): the rcode text and the denial records of the
/// authority section with their RRSIGs, and the RRSIG labels of a wildcard answer.
struct Answer {
    status: String,
    nsec: Vec<Rec>,
    sigs: Vec<Rec>,
    answer_labels: Option<u8>,
}

fn ask(w: &World, zone: &str, name: &str, t: &str) -> Answer {
    let text = dig(w.port, name, t);
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("")
        .to_string();
    let mut section = "";
    let mut nsec = Vec::new();
    let mut sigs = Vec::new();
    let mut answer_labels = None;
    for line in text.lines() {
        if line.starts_with(";; ANSWER") {
            section = "answer";
        } else if line.starts_with(";; AUTHORITY") {
            section = "authority";
        } else if line.starts_with(";; ADDITIONAL") {
            section = "additional";
        }
        for r in parse_records(line) {
            match (section, r.rtype) {
                ("authority", NSEC | NSEC3) => nsec.push(r),
                ("authority", RRSIG) => sigs.push(r),
                ("answer", RRSIG) => answer_labels = Some(r.rdata[3]),
                _ => {}
            }
        }
    }
    assert!(w.keys.contains_key(zone), "unknown zone {zone}: {text}");
    Answer {
        status,
        nsec,
        sigs,
        answer_labels,
    }
}

/// Verifies the signature of every denial record (each its own RRset in these zones).
fn verify_all(w: &World, zone: &str, a: &Answer) -> Result<(), Verdict> {
    let keys = &w.keys[zone];
    let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
    let apex = wire(zone);
    let mut b = Budget::per_query();
    for r in &a.nsec {
        let rd = [r.rdata.as_slice()];
        let set = Rrset {
            owner: &r.owner,
            rtype: r.rtype,
            class: 1,
            ttl: r.ttl,
            rdatas: &rd,
        };
        let sigs: Vec<&[u8]> = a
            .sigs
            .iter()
            .filter(|s| s.owner == r.owner)
            .map(|s| s.rdata.as_slice())
            .collect();
        match verify_rrset(&set, &sigs, &apex, &keys, NOW, &mut b) {
            Verdict::Secure { .. } => {}
            v => return Err(v),
        }
    }
    Ok(())
}

fn proof(zone: &str, q: &Question, recs: &[Rec]) -> Proof {
    let pairs = |t: u16| -> Vec<(&[u8], &[u8])> {
        recs.iter()
            .filter(|r| r.rtype == t)
            .map(|r| (r.owner.as_slice(), r.rdata.as_slice()))
            .collect()
    };
    prove_denial(
        q,
        &wire(zone),
        &pairs(NSEC),
        &pairs(NSEC3),
        &mut Budget::per_query(),
    )
}

/// Asks nsd, checks the signatures, expects `want`; then every record left out in
/// turn must make the proof fail (each one nsd sent is needed).
fn case(w: &World, zone: &str, rel: &str, t: &str, status: &str, want: Proof) {
    let name = format!("{rel}.{zone}.");
    let a = ask(w, zone, &name, t);
    assert_eq!(a.status, status, "{name} {t}");
    assert!(!a.nsec.is_empty(), "{name} {t}: no denial records");
    verify_all(w, zone, &a).unwrap_or_else(|v| panic!("{name} {t}: signature {v:?}"));
    let qname = wire(&name);
    let qtype = match t {
        "A" => 1,
        "AAAA" => 28,
        "TXT" => 16,
        "DS" => 43,
        _ => unreachable!(),
    };
    let q = if status == "NXDOMAIN" {
        Question::NxDomain { qname: &qname }
    } else if let Some(labels) = a.answer_labels {
        Question::Wildcard {
            qname: &qname,
            labels,
        }
    } else {
        Question::NoData {
            qname: &qname,
            qtype,
        }
    };
    assert_eq!(proof(zone, &q, &a.nsec), want, "{name} {t}: {:?}", a.nsec);
    if matches!(want, Proof::Denied(_)) {
        for i in 0..a.nsec.len() {
            let mut fewer = a.nsec.clone();
            fewer.remove(i);
            let p = proof(zone, &q, &fewer);
            assert_eq!(
                p,
                Proof::Bogus(Bogus::NsecMissing),
                "{name} {t} without record {i}"
            );
        }
    }
}

const PROVEN: Proof = Proof::Denied(Denied::Proven);

fn nsec_denials_from_nsd(w: &World) {
    for zone in ["nsec.test", "nsec3.test"] {
        case(w, zone, "nope", "A", "NXDOMAIN", PROVEN);
        case(w, zone, "x.y.nope", "A", "NXDOMAIN", PROVEN);
        case(w, zone, "www", "TXT", "NOERROR", PROVEN);
        case(w, zone, "txtonly", "A", "NOERROR", PROVEN);
        case(w, zone, "b.ent", "A", "NOERROR", PROVEN);
        case(w, zone, "host.wild", "A", "NOERROR", PROVEN);
        case(w, zone, "host.wild", "AAAA", "NOERROR", PROVEN);
        case(
            w,
            zone,
            "insecure",
            "DS",
            "NOERROR",
            Proof::Denied(Denied::NoDsAtCut),
        );
    }
}

fn nsec3_opt_out_is_insecure_not_proven(w: &World) {
    // ldns-signzone -p keeps an NSEC3 for the unsigned delegation it has: proven.
    case(
        w,
        "optout.test",
        "insecure",
        "DS",
        "NOERROR",
        Proof::Denied(Denied::NoDsAtCut),
    );
    // A name inside an opt-out span: its NXDOMAIN holds but may hide an unsigned
    // delegation, so it is not secure.
    case(
        w,
        "optout.test",
        "nope",
        "A",
        "NXDOMAIN",
        Proof::Denied(Denied::OptOut),
    );
    // A DS NODATA for a delegation left out of the NSEC3 chain (RFC 5155 §8.6) carries
    // the same records: the encloser's NSEC3 and the opt-out one covering the name.
    let a = ask(w, "optout.test", "nope.optout.test.", "DS");
    verify_all(w, "optout.test", &a).unwrap();
    let nope = wire("nope.optout.test.");
    let q = Question::NoData {
        qname: &nope,
        qtype: 43,
    };
    assert_eq!(
        proof("optout.test", &q, &a.nsec),
        Proof::Denied(Denied::OptOut)
    );
    // The same records in a zone without opt-out prove nothing of the kind.
    let a = ask(w, "nsec3.test", "nope.nsec3.test.", "DS");
    let nope = wire("nope.nsec3.test.");
    let q = Question::NoData {
        qname: &nope,
        qtype: 43,
    };
    assert_eq!(
        proof("nsec3.test", &q, &a.nsec),
        Proof::Bogus(Bogus::NsecMissing)
    );
    case(w, "optout.test", "txtonly", "A", "NOERROR", PROVEN);
}

fn nsec3_iterations_above_150_are_insecure(w: &World) {
    case(w, "it150.test", "nope", "A", "NXDOMAIN", PROVEN);
    for (zone, n) in [("it151.test", 151), ("it200.test", 200)] {
        case(
            w,
            zone,
            "nope",
            "A",
            "NXDOMAIN",
            Proof::Insecure(Insecure::Nsec3Iterations(n)),
        );
    }
}

fn changed_claims_and_records_are_bogus(w: &World) {
    for zone in ["nsec.test", "nsec3.test"] {
        let apex = format!("{zone}.");
        // The records of a NODATA for www TXT do not deny www A.
        let a = ask(w, zone, &format!("www.{apex}"), "TXT");
        let www = wire(&format!("www.{apex}"));
        let q = Question::NoData {
            qname: &www,
            qtype: 1,
        };
        assert_eq!(proof(zone, &q, &a.nsec), Proof::Bogus(Bogus::NsecMissing));
        // Nor that www does not exist.
        let q = Question::NxDomain { qname: &www };
        assert_eq!(proof(zone, &q, &a.nsec), Proof::Bogus(Bogus::NsecMissing));
        // The records of an NXDOMAIN for nope do not deny a name that exists (its
        // NSEC/NSEC3 owner is a chain link, never inside another interval).
        let a = ask(w, zone, &format!("nope.{apex}"), "A");
        let q = Question::NxDomain { qname: &www };
        assert_eq!(proof(zone, &q, &a.nsec), Proof::Bogus(Bogus::NsecMissing));
        // A wildcard answer claimed with no denial records at all.
        let host = wire(&format!("host.wild.{apex}"));
        let q = Question::Wildcard {
            qname: &host,
            labels: 3,
        };
        assert_eq!(proof(zone, &q, &[]), Proof::Bogus(Bogus::NsecMissing));
        // A flipped byte in a denial record breaks its signature.
        let mut a = ask(w, zone, &format!("nope.{apex}"), "A");
        let last = a.nsec[0].rdata.len() - 1;
        a.nsec[0].rdata[last] ^= 0x40;
        assert!(matches!(verify_all(w, zone, &a), Err(Verdict::Bogus(_))));
        // A record cut short is malformed, never a panic. Cut inside the next name (or
        // the NSEC3 header, salt and next hash) it cannot be read; cut at the end of
        // a bitmap window it still reads (its signature would fail), elsewhere not.
        let a = ask(w, zone, &format!("nope.{apex}"), "A");
        let nope = wire(&format!("nope.{apex}"));
        let q = Question::NxDomain { qname: &nope };
        let rd = &a.nsec[0].rdata;
        let fixed = if a.nsec[0].rtype == NSEC {
            wire_name_len(rd)
        } else {
            let salt = rd[4] as usize;
            6 + salt + rd[5 + salt] as usize
        };
        for cut in 0..rd.len() {
            let mut recs = a.nsec.clone();
            recs[0].rdata.truncate(cut);
            let p = proof(zone, &q, &recs);
            if cut < fixed {
                assert_eq!(p, Proof::Bogus(Bogus::Malformed), "cut {cut}");
            }
        }
    }
}

fn unknown_nsec3_hash_algorithm_is_insecure(w: &World) {
    let a = ask(w, "nsec3.test", "nope.nsec3.test.", "A");
    let mut recs = a.nsec.clone();
    for r in &mut recs {
        r.rdata[0] = 2;
    }
    let nope = wire("nope.nsec3.test.");
    assert_eq!(
        proof("nsec3.test", &Question::NxDomain { qname: &nope }, &recs),
        Proof::Insecure(Insecure::Nsec3HashAlgorithm(2))
    );
}

fn nsec3_hashes_spend_the_query_budget(w: &World) {
    let a = ask(w, "it150.test", "x.y.z.nope.it150.test.", "A");
    let q_name = wire("x.y.z.nope.it150.test.");
    let pairs: Vec<(&[u8], &[u8])> = a
        .nsec
        .iter()
        .map(|r| (r.owner.as_slice(), r.rdata.as_slice()))
        .collect();
    let q = Question::NxDomain { qname: &q_name };
    let apex = wire("it150.test.");
    let mut b = Budget::per_query();
    assert_eq!(prove_denial(&q, &apex, &[], &pairs, &mut b), PROVEN);
    // Five names hashed at most (x.y.z.nope … the apex, then the wildcard), each at the
    // cost of 150 iterations.
    let each = dproxy::dnssec::cost::nsec3_hash(150);
    assert!(b.spent >= 3 && b.spent <= 6, "{}", b.spent);
    assert_eq!(b.cost, b.spent * each);
    // Without budget for them, bogus (work limit), not a wrong answer.
    let mut b = Budget::new(2);
    assert_eq!(
        prove_denial(&q, &apex, &[], &pairs, &mut b),
        Proof::Bogus(Bogus::WorkLimit)
    );
}

/// One nsd for every case (signing six zones takes a while); each part names itself
/// in its failure messages.
#[test]
fn denials_against_real_nsd() {
    let w = world();
    nsec_denials_from_nsd(&w);
    nsec3_opt_out_is_insecure_not_proven(&w);
    nsec3_iterations_above_150_are_insecure(&w);
    changed_claims_and_records_are_bogus(&w);
    unknown_nsec3_hash_algorithm_is_insecure(&w);
    nsec3_hashes_spend_the_query_budget(&w);
}
