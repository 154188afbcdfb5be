//! The chain-of-trust walk against a real signed hierarchy, compared with a real
//! validating resolver. A private root, the TLD `tld.` and one leaf zone per case
//! are signed at test time with ldns-keygen/ldns-signzone (Debian ldnsutils), some
//! broken on purpose after signing; one nsd on 127.0.0.1 serves them all, and one
//! unbound (Debian) validates with the private root's DS as its trust anchor and
//! the zones as stub zones. For each case the test asks unbound (its verdict: AD,
//! no AD or SERVFAIL), takes the same answer unvalidated (CD=1) as the response a
//! forwarder gets, runs the walk on it and answers its DS/DNSKEY sub-queries from
//! nsd itself. It prints the table and fails on any difference not listed in
//! KNOWN_DIFFERENCES (each explained in the README's DNSSEC section).
#![cfg(feature = "dnssec")]

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::dnssec_support;
use crate::server_start::start_on_free_port;
use dnssec_support::{run, spawn_nsd, spawn_with_conf, wire, TempDir, INCEPTION, NOW, RRSIG};
use dproxy::dnssec::walk::{Outcome, Settings, Step, Walk};
use dproxy::dnssec::{anchors, Bogus, Budget, MAX_CRYPTO_PER_QUERY};

/// The end of the signatures' validity: far enough ahead that the daemon, which reads
/// the system clock, finds them valid for years (the walk and unbound use NOW).
const EXPIRATION: &str = "20340101000000";
/// EXPIRATION as UNIX seconds.
const EXPIRATION_SECS: u64 = 2_019_686_400;

/// Unbound's clock: the same instant as NOW (1_780_000_000).
const UNBOUND_DATE: &str = "20260528202640";

/// Cases where the walk and unbound disagree on purpose: (case, ours, unbound's).
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[
    // Ed448 is not in ring: insecure for dproxy (RFC 4035 §5.2), secure for
    // unbound built with OpenSSL.
    ("ed448", "insecure", "secure"),
    // RSASHA1 is insecure by default (RFC 9905, `dnssec_sha1 0`); unbound 1.17
    // still validates it.
    ("rsasha1", "insecure", "secure"),
];

// ---------------------------------------------------------------- zones

/// A key made by ldns-keygen: its base name (for ldns-signzone), DNSKEY and DS lines.
struct Key {
    base: String,
    dnskey: String,
    ds: String,
}

fn keygen(dir: &Path, origin: &str, alg: &str, ksk: bool, taken: &mut Vec<String>) -> Key {
    static KEYS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    loop {
        // Each key in a directory of its own: ldns-keygen names its files after the key
        // tag and writes over a file of that name, so a key whose tag repeats one made
        // before would replace that key's files (its DS would then match no key).
        let sub = format!(
            "keys{}",
            KEYS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        std::fs::create_dir(dir.join(&sub)).unwrap();
        let mut c = Command::new("ldns-keygen");
        c.current_dir(dir.join(&sub)).args(["-a", alg]);
        if alg.starts_with("RSA") {
            c.args(["-b", "1024"]);
        }
        if ksk {
            c.arg("-k");
        }
        let base = format!("{sub}/{}", run(c.arg(origin)).trim());
        // Key tags must differ within a zone (ldns-signzone mixes them up otherwise).
        let tag = base.rsplit('+').next().unwrap_or("").to_string();
        if taken.contains(&tag) {
            continue;
        }
        taken.push(tag);
        let dnskey = std::fs::read_to_string(dir.join(format!("{base}.key"))).unwrap();
        let dnskey = dnskey.split(';').next().unwrap().trim().to_string();
        let ds = run(Command::new("ldns-key2ds")
            .current_dir(dir)
            .args(["-n", "-2"])
            .arg(format!("{base}.key")))
        .trim()
        .to_string();
        return Key { base, dnskey, ds };
    }
}

/// How a leaf zone is built and broken.
#[derive(Clone, Copy)]
struct Leaf {
    name: &'static str,
    alg: &'static str,
    signed: bool,
    /// Put a DS for the KSK in the parent.
    ds: bool,
    /// Edits the DS fields [owner, ttl, class, DS, tag, alg, digest type, digest].
    ds_edit: fn(&mut Vec<String>),
    /// Which DNSKEYs the zone carries: "both", "ksk", "zsk", "none", "badzsk", "badksk".
    dnskeys: &'static str,
    window: (&'static str, &'static str),
    /// ldns-signzone NSEC3 flags.
    nsec3: &'static [&'static str],
    /// Zone text added to the template.
    extra: &'static str,
    /// Edits of the signed zone's records, each as its whitespace-separated fields.
    post: fn(&mut Vec<Vec<String>>),
    /// Zone signing keys (KeyTrap: many RRSIGs per RRset).
    zsks: usize,
    /// Extra DNSKEYs whose key tag is the ZSK's (KeyTrap: colliding tags).
    colliding: usize,
}

fn no_edit<T>(_: &mut T) {}

const LEAF: Leaf = Leaf {
    name: "",
    alg: "ECDSAP256SHA256",
    signed: true,
    ds: true,
    ds_edit: no_edit,
    dnskeys: "both",
    window: (INCEPTION, EXPIRATION),
    nsec3: &[],
    extra: "",
    post: no_edit,
    zsks: 1,
    colliding: 0,
};

const TEMPLATE: &str = "$TTL 300
@        IN SOA ns1 hostmaster 1 3600 900 604800 60
@        IN NS  ns1
ns1      IN A   127.0.0.1
www      IN A   192.0.2.1
*.wild   IN A   192.0.2.7
";

/// Drops the records of type `t` and the RRSIGs covering it.
fn drop_type(recs: &mut Vec<Vec<String>>, t: &str) {
    recs.retain(|r| !(r[3] == t || (r[3] == "RRSIG" && r[4] == t)));
}

fn drop_sigs(recs: &mut Vec<Vec<String>>, t: &str) {
    recs.retain(|r| !(r[3] == "RRSIG" && r[4] == t));
}

/// Changes one character of a base32hex/base64/hex string in a way that keeps it valid.
fn flip(s: &mut String, at: usize) {
    let c = s.as_bytes()[at];
    let n = if c == b'a' || c == b'A' { 'b' } else { 'a' };
    s.replace_range(at..at + 1, &n.to_string());
}

fn leaves() -> Vec<Leaf> {
    let l = |name| Leaf { name, ..LEAF };
    vec![
        Leaf {
            extra: "cname IN CNAME www.unsigned.tld.\nxcname IN CNAME www.nsec3-1.tld.\n\
                    bogus-cname IN CNAME www.rrsig-exp.tld.\ndn IN DNAME nsec3-1.tld.\n\
                    txt IN TXT \"t\"\n",
            ..l("valid")
        },
        Leaf {
            signed: false,
            ds: false,
            extra: "cname IN CNAME www.valid.tld.\n",
            ..l("unsigned")
        },
        Leaf {
            ds: false,
            ..l("no-ds")
        },
        Leaf {
            dnskeys: "ksk",
            ..l("no-zsk")
        },
        Leaf {
            dnskeys: "zsk",
            ..l("no-ksk")
        },
        Leaf {
            dnskeys: "badzsk",
            ..l("bad-zsk")
        },
        Leaf {
            dnskeys: "badksk",
            ..l("bad-ksk")
        },
        Leaf {
            dnskeys: "none",
            ..l("no-dnskey")
        },
        Leaf {
            ds_edit: |d| {
                let t: u16 = d[4].parse().unwrap();
                d[4] = t.wrapping_add(1).to_string();
            },
            ..l("ds-bad-tag")
        },
        Leaf {
            ds_edit: |d| d[5] = "8".into(),
            ..l("ds-bad-key-algo")
        },
        Leaf {
            ds_edit: |d| d[5] = "100".into(),
            ..l("ds-unassigned-key-algo")
        },
        Leaf {
            ds_edit: |d| d[5] = "200".into(),
            ..l("ds-reserved-key-algo")
        },
        Leaf {
            ds_edit: |d| flip(&mut d[7], 10),
            ..l("ds-bogus-digest-value")
        },
        Leaf {
            ds_edit: |d| d[6] = "100".into(),
            ..l("ds-unassigned-digest-algo")
        },
        Leaf {
            window: ("20250101000000", "20250201000000"),
            ..l("rrsig-exp")
        },
        Leaf {
            window: ("20350101000000", "20360101000000"),
            ..l("rrsig-not-yet")
        },
        Leaf {
            post: |r| drop_sigs(r, "A"),
            ..l("rrsig-no")
        },
        Leaf {
            post: |r| drop_sigs(r, "DNSKEY"),
            ..l("no-rrsig-dnskey")
        },
        Leaf {
            alg: "ED448",
            ..l("ed448")
        },
        Leaf {
            alg: "RSAMD5",
            ..l("rsamd5")
        },
        Leaf {
            alg: "RSASHA1",
            ..l("rsasha1")
        },
        Leaf {
            alg: "RSASHA256",
            ..l("rsasha256")
        },
        Leaf {
            alg: "ED25519",
            ..l("ed25519")
        },
        Leaf {
            alg: "ECDSAP384SHA384",
            ..l("ecdsap384")
        },
        Leaf {
            nsec3: &["-n", "-t", "1", "-s", "ab"],
            ..l("nsec3-1")
        },
        Leaf {
            nsec3: &["-n", "-t", "51", "-s", "ab"],
            ..l("nsec3-51")
        },
        Leaf {
            nsec3: &["-n", "-t", "101", "-s", "ab"],
            ..l("nsec3-101")
        },
        Leaf {
            nsec3: &["-n", "-t", "151", "-s", "ab"],
            ..l("nsec3-151")
        },
        Leaf {
            nsec3: &["-n", "-t", "200", "-s", "ab"],
            ..l("nsec3-200")
        },
        Leaf {
            post: |r| {
                for x in r.iter_mut().filter(|x| x[3] == "RRSIG" && x[4] == "DNSKEY") {
                    let last = x.len() - 1;
                    flip(&mut x[last], 12);
                }
            },
            ..l("bad-rrsig-dnskey")
        },
        Leaf {
            nsec3: &["-n", "-t", "0"],
            post: |r| drop_type(r, "NSEC3PARAM"),
            ..l("nsec3param-missing")
        },
        Leaf {
            nsec3: &["-n", "-t", "0"],
            post: |r| drop_type(r, "NSEC3"),
            ..l("nsec3-missing")
        },
        Leaf {
            nsec3: &["-n", "-t", "0"],
            post: |r| drop_sigs(r, "NSEC3"),
            ..l("nsec3-rrsig-missing")
        },
        Leaf {
            nsec3: &["-n", "-t", "0"],
            post: |r| {
                for x in r.iter_mut() {
                    if x[3] == "NSEC3" || (x[3] == "RRSIG" && x[4] == "NSEC3") {
                        flip(&mut x[0], 3);
                    }
                }
            },
            ..l("bad-nsec3-hash")
        },
        Leaf {
            nsec3: &["-n", "-t", "0"],
            post: |r| {
                for x in r.iter_mut().filter(|x| x[3] == "NSEC3") {
                    flip(&mut x[8], 3);
                }
            },
            ..l("bad-nsec3-next")
        },
        Leaf {
            colliding: 30,
            post: corrupt_a_sigs,
            ..l("keytrap-tags")
        },
        Leaf {
            colliding: 19,
            ..l("keytrap-tags-valid")
        },
        Leaf {
            zsks: 25,
            post: corrupt_a_sigs,
            ..l("keytrap-sigs")
        },
        Leaf {
            nsec3: &["-n", "-p", "-t", "0"],
            extra: "sub IN NS ns.sub\nns.sub IN A 127.0.0.1\n",
            ..l("optout")
        },
    ]
}

/// Spoils every signature over the A RRsets (the key tags still match).
// The type of `Leaf::post`, whose other edits drop records.
#[allow(clippy::ptr_arg)]
fn corrupt_a_sigs(recs: &mut Vec<Vec<String>>) {
    for r in recs.iter_mut().filter(|r| r[3] == "RRSIG" && r[4] == "A") {
        let last = r.len() - 1;
        flip(&mut r[last], 12);
    }
}

fn base64(b: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `n` DNSKEY lines of real P-256 public keys (ring) whose key tag is `tag`: the
/// flag bits validators ignore are chosen to hit it (ZONE set, REVOKE and SEP clear).
fn colliding_keys(origin: &str, tag: u16, n: usize) -> String {
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING as P256};
    let rng = SystemRandom::new();
    let mut out = String::new();
    let mut found = 0;
    for _ in 0..(n * 200) {
        if found == n {
            break;
        }
        let pk = EcdsaKeyPair::generate_pkcs8(&P256, &rng).unwrap();
        let kp = EcdsaKeyPair::from_pkcs8(&P256, pk.as_ref(), &rng).unwrap();
        let key = &kp.public_key().as_ref()[1..];
        let hit = (0u16..=0xffff).filter(|f| f & 0x0181 == 0x0100).find(|f| {
            let mut rd = f.to_be_bytes().to_vec();
            rd.extend_from_slice(&[3, 13]);
            rd.extend_from_slice(key);
            dproxy::dnssec::key_tag(&rd) == tag
        });
        if let Some(f) = hit {
            out += &format!("{origin} 300 IN DNSKEY {f} 3 13 {}\n", base64(key));
            found += 1;
        }
    }
    assert_eq!(found, n, "colliding keys");
    out
}

/// Reads a zone file in ldns' one-record-per-line form into fields.
fn records(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split(';').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty() && !l.starts_with('$'))
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

fn write_records(path: &Path, recs: &[Vec<String>]) {
    let text: String = recs.iter().map(|r| r.join(" ") + "\n").collect();
    std::fs::write(path, text).unwrap();
}

/// Signs `text` as `origin` with the keys; `-d` when the zone carries its own DNSKEYs.
fn sign(
    dir: &Path,
    origin: &str,
    text: &str,
    keys: &[&Key],
    add_keys: bool,
    leaf: &Leaf,
) -> PathBuf {
    let file = dir.join(format!("{origin}zone"));
    std::fs::write(&file, format!("$ORIGIN {origin}\n{text}")).unwrap();
    let out = dir.join(format!("{origin}signed"));
    let mut c = Command::new("ldns-signzone");
    c.current_dir(dir)
        .args(["-i", leaf.window.0, "-e", leaf.window.1, "-f"])
        .arg(&out)
        .args(leaf.nsec3);
    if !add_keys {
        c.arg("-d");
    }
    c.arg(&file).args(keys.iter().map(|k| k.base.as_str()));
    run(&mut c);
    let mut recs = records(&run(Command::new("ldns-read-zone").arg(&out)));
    (leaf.post)(&mut recs);
    write_records(&out, &recs);
    out
}

fn corrupt_key(line: &str) -> String {
    let mut f: Vec<String> = line.split_whitespace().map(String::from).collect();
    let last = f.len() - 1;
    flip(&mut f[last], 20);
    f.join(" ")
}

/// Builds one leaf; returns its served file and the DS lines for the parent.
fn build_leaf(dir: &Path, leaf: &Leaf) -> (String, PathBuf, Vec<String>) {
    let origin = format!("{}.tld.", leaf.name);
    let text = format!("{TEMPLATE}{}", leaf.extra);
    if !leaf.signed {
        let f = dir.join(format!("{origin}zone"));
        std::fs::write(&f, format!("$ORIGIN {origin}\n{text}")).unwrap();
        return (origin, f, Vec::new());
    }
    let mut taken = Vec::new();
    let ksk = keygen(dir, &origin, leaf.alg, true, &mut taken);
    let zsk = keygen(dir, &origin, leaf.alg, false, &mut taken);
    let more: Vec<Key> = (1..leaf.zsks)
        .map(|_| keygen(dir, &origin, leaf.alg, false, &mut taken))
        .collect();
    let own_keys = match leaf.dnskeys {
        "both" if leaf.colliding > 0 => {
            let tag: u16 = zsk.base.rsplit('+').next().unwrap().parse().unwrap();
            Some(format!(
                "{}\n{}\n{}",
                ksk.dnskey,
                zsk.dnskey,
                colliding_keys(&origin, tag, leaf.colliding)
            ))
        }
        "both" => None,
        "ksk" => Some(ksk.dnskey.clone()),
        "zsk" => Some(zsk.dnskey.clone()),
        "badzsk" => Some(format!("{}\n{}", ksk.dnskey, corrupt_key(&zsk.dnskey))),
        "badksk" => Some(format!("{}\n{}", corrupt_key(&ksk.dnskey), zsk.dnskey)),
        _ => Some(String::new()),
    };
    let text = match &own_keys {
        Some(k) => format!("{text}{k}\n"),
        None => text,
    };
    let mut keys = vec![&zsk, &ksk];
    keys.extend(more.iter());
    let file = sign(dir, &origin, &text, &keys, own_keys.is_none(), leaf);
    let mut ds = Vec::new();
    if leaf.ds {
        let mut f: Vec<String> = ksk.ds.split_whitespace().map(String::from).collect();
        (leaf.ds_edit)(&mut f);
        ds.push(f.join(" "));
    }
    (origin, file, ds)
}

// ---------------------------------------------------------------- servers

/// A child process stopped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_nsd(dir: &Path, zones: &[(String, PathBuf)]) -> (Proc, u16) {
    let (child, port) = start_on_free_port(
        "nsd",
        &[dir.join("nsd.log"), dir.join("nsd.out")],
        |port| spawn_nsd(dir, port, zones),
        |port| {
            zones
                .iter()
                .all(|(name, _)| answers(port, &wire(name), 6, false))
        },
    );
    (Proc(child), port)
}

/// A unbound for the zones: validating with `anchor`, or (None) a plain iterator
/// that passes the DNSSEC records on unchecked, as a forwarder's upstream.
fn start_unbound(
    dir: &Path,
    nsd: u16,
    zones: &[(String, PathBuf)],
    anchor: Option<&str>,
) -> (Proc, u16) {
    let dir = &dir.join(if anchor.is_some() {
        "unbound"
    } else {
        "iterator"
    });
    std::fs::create_dir_all(dir).unwrap();
    let d = dir.display();
    let validation = match anchor {
        Some(a) => format!(" trust-anchor: \"{a}\"\n"),
        None => " module-config: \"iterator\"\n".into(),
    };
    // The lines after `server:`, `interface:` and `port:`.
    let mut conf = format!(
        " do-ip6: no\n username: \"\"\n \
         chroot: \"\"\n directory: \"{d}\"\n pidfile: \"{d}/unbound.pid\"\n use-syslog: no\n \
         logfile: \"{d}/unbound.log\"\n num-threads: 1\n so-reuseport: no\n \
         do-not-query-localhost: no\n qname-minimisation: no\n aggressive-nsec: no\n \
         target-fetch-policy: \"0 0 0 0 0\"\n val-override-date: \"{UNBOUND_DATE}\"\n \
         val-log-level: 2\n ede: yes\n access-control: 127.0.0.0/8 allow\n\
         {validation}\
         remote-control:\n control-enable: no\n"
    );
    for (name, _) in zones {
        conf += &format!("stub-zone:\n name: \"{name}\"\n stub-addr: 127.0.0.1@{nsd}\n");
    }
    let (child, port) = start_on_free_port(
        "unbound",
        &[dir.join("unbound.log"), dir.join("unbound.out")],
        |port| {
            let head = format!("server:\n interface: 127.0.0.1\n port: {port}\n");
            spawn_with_conf(dir, "unbound", &(head + &conf))
        },
        |port| answers(port, &[0], 2, true),
    );
    (Proc(child), port)
}

/// True if the server on `port` answers (NOERROR) a question for `name`, type SOA (6)
/// or NS (2).
fn answers(port: u16, name: &[u8], t: u16, rd: bool) -> bool {
    ask(port, name, t, rd, false).is_some_and(|m| m[3] & 0xf == 0)
}

/// Leaves 127.0.0.1:`port` in TIME_WAIT as a client's port: a client socket without
/// SO_REUSEADDR bound to it connects to a local listener and closes first, as every
/// short loopback client does with its ephemeral port.
fn time_wait_on(port: u16) {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let to = SockaddrIn::from(match listener.local_addr().unwrap() {
        std::net::SocketAddr::V4(a) => a,
        _ => unreachable!("bound to 127.0.0.1"),
    });
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, port)).unwrap();
    connect(fd.as_raw_fd(), &to).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    drop(fd);
    // The client's FIN is in before the server side closes: the client ends in TIME_WAIT.
    let mut rest = Vec::new();
    (&accepted).read_to_end(&mut rest).unwrap();
}

/// A port can be taken between the check that it is free and the server's bind (any
/// process's client may get it as its ephemeral port). unbound exits at start then, and
/// the test used to wait for it in vain ("unbound does not answer"): it is started
/// again on another port.
#[test]
fn a_server_whose_port_is_taken_at_start_is_started_on_another() {
    let dir = TempDir::new("portrace");
    let d = dir.dir().display();
    let mut tries = Vec::new();
    let (child, port) = start_on_free_port(
        "unbound",
        &[dir.dir().join("unbound.log"), dir.dir().join("unbound.out")],
        |port| {
            if tries.is_empty() {
                time_wait_on(port);
            }
            tries.push(port);
            let conf = format!(
                "server:\n interface: 127.0.0.1\n port: {port}\n do-ip6: no\n username: \"\"\n \
                 chroot: \"\"\n directory: \"{d}\"\n pidfile: \"{d}/unbound.pid\"\n \
                 use-syslog: no\n logfile: \"{d}/unbound.log\"\n num-threads: 1\n \
                 so-reuseport: no\n module-config: \"iterator\"\n \
                 access-control: 127.0.0.0/8 allow\n local-zone: \"test.\" static\n \
                 local-data: \"a.test. 300 IN A 192.0.2.1\"\n\
                 remote-control:\n control-enable: no\n"
            );
            spawn_with_conf(dir.dir(), "unbound", &conf)
        },
        |port| answers(port, &wire("a.test."), 1, true),
    );
    let _unbound = Proc(child);
    assert_eq!(
        tries.len(),
        2,
        "started once on the taken port, then on another: {tries:?}"
    );
    assert_ne!(port, tries[0]);
    assert_eq!(port, tries[1]);
}

// ---------------------------------------------------------------- queries

fn query(name: &[u8], t: u16, rd: bool, cd: bool) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, u8::from(rd), if cd { 0x10 } else { 0 }];
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]);
    q.extend_from_slice(name);
    q.extend_from_slice(&t.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    // OPT: 4096 bytes, DO.
    q.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0x80, 0, 0, 0]);
    q
}

/// One question to 127.0.0.1:`port` with DO=1: UDP, then TCP if truncated.
fn ask(port: u16, name: &[u8], t: u16, rd: bool, cd: bool) -> Option<Vec<u8>> {
    let q = query(name, t, rd, cd);
    let s = UdpSocket::bind("127.0.0.1:0").ok()?;
    s.set_read_timeout(Some(Duration::from_millis(2000))).ok()?;
    s.send_to(&q, ("127.0.0.1", port)).ok()?;
    let mut buf = vec![0u8; 65535];
    let n = recv(&s, &mut buf).ok()?;
    buf.truncate(n);
    if n < 12 || buf[..2] != q[..2] {
        return None;
    }
    if buf[2] & 0x02 == 0 {
        return Some(buf);
    }
    let mut t = TcpStream::connect(("127.0.0.1", port)).ok()?;
    t.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut m = (q.len() as u16).to_be_bytes().to_vec();
    m.extend_from_slice(&q);
    t.write_all(&m).ok()?;
    let mut len = [0u8; 2];
    t.read_exact(&mut len).ok()?;
    let mut out = vec![0u8; u16::from_be_bytes(len) as usize];
    t.read_exact(&mut out).ok()?;
    Some(out)
}

/// `s.recv`, again when it was interrupted: a read with a timeout fails with EINTR when
/// the process is stopped and continued, signal handler or not (signal(7)), as happens
/// on a loaded machine; that is no lost answer. Bounded: 100 interruptions.
fn recv(s: &UdpSocket, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut r = s.recv(buf);
    for _ in 0..100 {
        match r {
            Err(ref e) if e.kind() == std::io::ErrorKind::Interrupted => r = s.recv(buf),
            _ => break,
        }
    }
    r
}

/// The EDE info code in a response's OPT record, if any.
fn ede(msg: &[u8]) -> Option<u16> {
    // The OPT is the last record; its options follow the fixed part.
    let pos = msg
        .windows(4)
        .rposition(|w| w == [0, 41, 0x10, 0])
        .or_else(|| msg.windows(2).rposition(|w| w == [0, 41]))?;
    let mut p = pos + 10;
    while p + 4 <= msg.len() {
        let code = u16::from_be_bytes([msg[p], msg[p + 1]]);
        let len = u16::from_be_bytes([msg[p + 2], msg[p + 3]]) as usize;
        if code == 15 && len >= 2 && p + 6 <= msg.len() {
            return Some(u16::from_be_bytes([msg[p + 4], msg[p + 5]]));
        }
        p += 4 + len;
    }
    None
}

fn class(o: Outcome) -> &'static str {
    match o {
        Outcome::Secure => "secure",
        Outcome::Insecure(_) => "insecure",
        Outcome::Bogus(_) => "bogus",
        Outcome::Indeterminate => "indeterminate",
    }
}

/// Unbound's verdict on (name, t): AD → secure, SERVFAIL → bogus, else insecure.
fn unbound_verdict(port: u16, name: &[u8], t: u16) -> (&'static str, Option<u16>) {
    let Some(m) = ask(port, name, t, true, false) else {
        return ("indeterminate", None);
    };
    let v = match (m[3] & 0xf, m[3] & 0x20 != 0) {
        (2, _) => "bogus",
        (0 | 3, true) => "secure",
        (0 | 3, false) => "insecure",
        _ => "indeterminate",
    };
    (v, ede(&m))
}

/// Runs the walk on `resp`, answering its sub-queries from nsd. With
/// DPROXY_WALK_SEEDS=dir set, writes the transcript to dir/`case` in the input
/// form of the fuzz target dnssec_walk (anchor, response, replies).
fn walk(case: &str, resp: &[u8], nsd: u16, anchors: &[anchors::Anchor]) -> (Outcome, u32, Budget) {
    let set = Settings {
        clock: NOW,
        sha1: false,
        check_unsigned: true,
    };
    let mut transcript = Vec::new();
    let mut chunk = |b: &[u8]| {
        transcript.extend_from_slice(&(b.len() as u16).to_be_bytes());
        transcript.extend_from_slice(b);
    };
    chunk(&anchors[0].ds);
    chunk(resp);
    let mut w = Walk::new(resp, anchors.to_vec(), set);
    let out = loop {
        match w.step() {
            Step::Done(o) => break (o, w.subqueries(), w.budget()),
            Step::Query { name, qtype } => {
                let a = ask(nsd, &name, qtype, false, false);
                if let Some(a) = &a {
                    chunk(a);
                }
                w.answer(a.as_deref());
            }
        }
    };
    if let Some(dir) = std::env::var_os("DPROXY_WALK_SEEDS") {
        std::fs::write(Path::new(&dir).join(case), transcript).unwrap();
    }
    out
}

/// `msg` without its authority section (the denial proofs of a response).
fn drop_authority(msg: &[u8]) -> Vec<u8> {
    use dproxy::wire::message::{read_question, read_record, Section};
    let an = u16::from_be_bytes([msg[6], msg[7]]);
    let ns = u16::from_be_bytes([msg[8], msg[9]]);
    let mut p = read_question(msg, 12).unwrap().end;
    for _ in 0..an {
        p = read_record(msg, p, Section::Answer).unwrap().end;
    }
    let cut = p;
    for _ in 0..ns {
        p = read_record(msg, p, Section::Authority).unwrap().end;
    }
    let mut out = msg[..cut].to_vec();
    out[8] = 0;
    out[9] = 0;
    out.extend_from_slice(&msg[p..]);
    out
}

/// Signs the hierarchy into `dir`: the zones to serve (origin, file) and the
/// private root's DS line (the trust anchor).
fn build_hierarchy(dir: &Path) -> (Vec<(String, PathBuf)>, String) {
    let mut zones: Vec<(String, PathBuf)> = Vec::new();
    let mut tld = String::from(
        "$TTL 300\n@ IN SOA ns.tld. hostmaster.tld. 1 3600 900 604800 60\n@ IN NS ns.tld.\n\
         ns.tld. IN A 127.0.0.1\n",
    );
    let mut seen = Vec::new();
    for leaf in leaves() {
        if seen.contains(&leaf.name) {
            continue;
        }
        seen.push(leaf.name);
        let (origin, file, ds) = build_leaf(dir, &leaf);
        tld += &format!("{origin} IN NS ns1.{origin}\nns1.{origin} IN A 127.0.0.1\n");
        for d in ds {
            tld += &format!("{d}\n");
        }
        zones.push((origin, file));
    }
    // The unsigned child under the opt-out span.
    let sub = dir.join("sub.optout.tld.zone");
    std::fs::write(&sub, format!("$ORIGIN sub.optout.tld.\n{TEMPLATE}")).unwrap();
    zones.push(("sub.optout.tld.".into(), sub));

    let mut taken = Vec::new();
    let tksk = keygen(dir, "tld.", "ECDSAP256SHA256", true, &mut taken);
    let tzsk = keygen(dir, "tld.", "ECDSAP256SHA256", false, &mut taken);
    let tfile = sign(dir, "tld.", &tld, &[&tzsk, &tksk], true, &LEAF);
    zones.push(("tld.".into(), tfile));

    let root = format!(
        "$TTL 300\n. IN SOA ns.tld. hostmaster.tld. 1 3600 900 604800 60\n. IN NS ns.tld.\n\
         tld. IN NS ns.tld.\nns.tld. IN A 127.0.0.1\n{}\n",
        tksk.ds
    );
    let mut taken = Vec::new();
    let rksk = keygen(dir, ".", "ECDSAP256SHA256", true, &mut taken);
    let rzsk = keygen(dir, ".", "ECDSAP256SHA256", false, &mut taken);
    let rfile = sign(dir, ".", &root, &[&rzsk, &rksk], true, &LEAF);
    zones.push((".".into(), rfile));

    let anchor_line = rksk.ds.split_whitespace().collect::<Vec<_>>().join(" ");
    (zones, anchor_line)
}

/// The questions asked of every validator: (case, name, type).
fn cases() -> Vec<(String, String, u16)> {
    // (case, name, type)
    let mut cases: Vec<(String, String, u16)> = Vec::new();
    for leaf in leaves() {
        let n = leaf.name;
        if leaf.nsec3.is_empty() {
            cases.push((n.into(), format!("www.{n}.tld."), 1));
        } else {
            cases.push((n.into(), format!("nx.{n}.tld."), 1));
        }
    }
    cases.dedup();
    for (case, name, t) in [
        ("valid-nxdomain", "nx.valid.tld.", 1),
        ("valid-nodata", "www.valid.tld.", 16),
        ("valid-wildcard", "a.wild.valid.tld.", 1),
        ("valid-wildcard-nodata", "a.wild.valid.tld.", 16),
        ("nsec3-wildcard", "a.wild.nsec3-1.tld.", 1),
        ("nsec3-positive", "www.nsec3-1.tld.", 1),
        ("nsec3-nodata", "www.nsec3-1.tld.", 16),
        ("cname-secure-to-insecure", "cname.valid.tld.", 1),
        ("cname-secure-to-secure", "xcname.valid.tld.", 1),
        ("cname-secure-to-bogus", "bogus-cname.valid.tld.", 1),
        ("cname-insecure-to-secure", "cname.unsigned.tld.", 1),
        ("dname-secure", "www.dn.valid.tld.", 1),
        ("optout-unsigned-child", "www.sub.optout.tld.", 1),
        ("ds-of-unsigned", "unsigned.tld.", 43),
        ("ds-of-valid", "valid.tld.", 43),
        ("root-dnskey", ".", 48),
    ] {
        cases.push((case.into(), name.into(), t));
    }

    cases
}

/// The signed hierarchy in a scratch directory, nsd serving it and a validating unbound
/// over it: what both tests start from. Dropped, it stops the servers, then removes the
/// directory (fields drop in order), also when a test panics.
struct Hierarchy {
    _servers: (Proc, Proc),
    zones: Vec<(String, PathBuf)>,
    anchor_line: String,
    /// nsd's and unbound's ports.
    nsd: u16,
    unbound: u16,
    dir: TempDir,
}

impl Hierarchy {
    fn start(tag: &str) -> Hierarchy {
        let dir = TempDir::new(tag);
        let (zones, anchor_line) = build_hierarchy(dir.dir());
        let (nsd_proc, nsd) = start_nsd(dir.dir(), &zones);
        let (unbound_proc, unbound) = start_unbound(dir.dir(), nsd, &zones, Some(&anchor_line));
        Hierarchy {
            _servers: (unbound_proc, nsd_proc),
            zones,
            anchor_line,
            nsd,
            unbound,
            dir,
        }
    }
}

/// A UDP read that a signal interrupts (EINTR, as a stop and continue of the process
/// on a loaded machine does to every read with a timeout) is read again: the answer
/// that comes after it is not lost.
#[test]
fn an_interrupted_udp_read_is_read_again() {
    crate::server_start::sigusr1_interrupts_reads();
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let to = s.local_addr().unwrap();
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    // Three signals, 0.2 s apart, while the read waits; then the datagram. Joined
    // before this thread can end.
    let kicker = std::thread::spawn(move || {
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(200));
            // SAFETY: the test thread lives until this thread is joined.
            unsafe { libc::pthread_kill(me, libc::SIGUSR1) };
        }
        std::thread::sleep(Duration::from_millis(200));
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.send_to(b"answer", to).unwrap();
    });
    let mut buf = [0u8; 16];
    let r = recv(&s, &mut buf);
    kicker.join().unwrap();
    assert_eq!(r.ok(), Some(6));
    assert_eq!(&buf[..6], b"answer");
}

// ---------------------------------------------------------------- the test

#[test]
fn walk_agrees_with_unbound_on_a_signed_hierarchy() {
    let h = Hierarchy::start("chain");
    let anchors = anchors::parse(&h.anchor_line).unwrap();
    let (nsd, unbound) = (h.nsd, h.unbound);

    let cases = cases();
    let mut table = String::from("case                          ours           unbound\n");
    let mut diffs = Vec::new();
    for (case, name, t) in &cases {
        let qn = wire(name);
        let (theirs, their_ede) = unbound_verdict(unbound, &qn, *t);
        let resp = ask(unbound, &qn, *t, true, true);
        let started = std::time::Instant::now();
        let (ours, subs, spent) = match &resp {
            Some(r) => walk(case, r, nsd, &anchors),
            None => (Outcome::Indeterminate, 0, Budget::per_query()),
        };
        let took = started.elapsed();
        // The caps hold whatever the zone: operations and weighted cost.
        assert!(spent.spent <= MAX_CRYPTO_PER_QUERY, "{case}: {spent:?}");
        assert!(
            spent.cost <= dproxy::dnssec::cost::PER_QUERY,
            "{case}: {spent:?}"
        );
        let ours_s = format!("{} {:?}", class(ours), ours.ede());
        table += &format!(
            "{case:29} {:14} {theirs} {their_ede:?}   ({ours:?}, {subs} sub-queries, \
             {} ops, {} units, {} µs with I/O)\n",
            ours_s,
            spent.spent,
            spent.cost,
            took.as_micros()
        );
        if class(ours) != theirs {
            diffs.push((case.clone(), class(ours), theirs));
        }
    }
    println!("{table}");

    // The same answers without their authority section: a wildcard expansion or a
    // denial without its NSEC/NSEC3 proof is bogus (EDE 12); a plain positive answer
    // needs none.
    for (name, t, want) in [
        ("a.wild.valid.tld.", 1, Outcome::Bogus(Bogus::NsecMissing)),
        ("a.wild.nsec3-1.tld.", 1, Outcome::Bogus(Bogus::NsecMissing)),
        ("nx.valid.tld.", 1, Outcome::Bogus(Bogus::NsecMissing)),
        ("www.valid.tld.", 16, Outcome::Bogus(Bogus::NsecMissing)),
        ("nx.nsec3-1.tld.", 1, Outcome::Bogus(Bogus::NsecMissing)),
        ("www.valid.tld.", 1, Outcome::Secure),
    ] {
        let full = ask(unbound, &wire(name), t, true, true).unwrap();
        let (o, _, _) = walk("stripped", &drop_authority(&full), nsd, &anchors);
        assert_eq!(o, want, "{name} {t} without its authority section");
    }

    // The cache interface: the key sets one walk validated, seeded into the next,
    // spare it every sub-query.
    let resp = ask(unbound, &wire("www.valid.tld."), 1, true, true).unwrap();
    let set = Settings {
        clock: NOW,
        sha1: false,
        check_unsigned: true,
    };
    let mut first = Walk::new(&resp, anchors.clone(), set);
    while let Step::Query { name, qtype } = first.step() {
        first.answer(ask(nsd, &name, qtype, false, false).as_deref());
    }
    assert_eq!(first.step(), Step::Done(Outcome::Secure));
    let learned: Vec<(Vec<u8>, Vec<Vec<u8>>)> = first
        .learned()
        .map(|(z, k)| (z.to_vec(), k.to_vec()))
        .collect();
    assert_eq!(learned.len(), 3, "root, tld. and valid.tld.");
    let mut second = Walk::new(&resp, anchors.clone(), set);
    for (z, k) in learned {
        second.seed(&z, k);
    }
    assert_eq!(second.step(), Step::Done(Outcome::Secure));
    assert_eq!(second.subqueries(), 0);

    let unexpected: Vec<_> = diffs
        .iter()
        .filter(|(c, o, u)| !KNOWN_DIFFERENCES.contains(&(c.as_str(), *o, *u)))
        .collect();
    assert!(
        unexpected.is_empty(),
        "differences: {unexpected:?}\n{table}"
    );
    for k in KNOWN_DIFFERENCES {
        assert!(
            diffs.iter().any(|(c, o, u)| (c.as_str(), *o, *u) == *k),
            "known difference gone: {k:?}\n{table}"
        );
    }
}

// ---------------------------------------------------------------- the daemon

/// A question with DO and CD as given, AD as given, and an OPT record only if `edns`.
fn client_query(name: &[u8], t: u16, edns: bool, do_bit: bool, cd: bool, ad: bool) -> Vec<u8> {
    let flags = if cd { 0x10 } else { 0 } | if ad { 0x20 } else { 0 };
    let mut q = vec![0x43, 0x21, 1, flags, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)];
    q.extend_from_slice(name);
    q.extend_from_slice(&t.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    if edns {
        q.extend_from_slice(&[
            0,
            0,
            41,
            0x10,
            0,
            0,
            0,
            if do_bit { 0x80 } else { 0 },
            0,
            0,
            0,
        ]);
    }
    q
}

/// One question to dproxy over TCP (no truncation to care about).
fn ask_tcp(port: u16, q: &[u8]) -> Vec<u8> {
    let mut t = TcpStream::connect(("127.0.0.1", port)).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut m = (q.len() as u16).to_be_bytes().to_vec();
    m.extend_from_slice(q);
    t.write_all(&m).unwrap();
    let mut len = [0u8; 2];
    t.read_exact(&mut len).unwrap();
    let mut out = vec![0u8; u16::from_be_bytes(len) as usize];
    t.read_exact(&mut out).unwrap();
    out
}

/// Record types in a message's answer and authority sections.
fn record_types(msg: &[u8]) -> Vec<u16> {
    use dproxy::wire::scan_message;
    let s = scan_message(msg).unwrap();
    s.records.iter().map(|r| r.rtype).collect()
}

/// AD → secure, SERVFAIL → bogus, NOERROR/NXDOMAIN without AD → insecure.
fn verdict_of(m: &[u8]) -> &'static str {
    match (m[3] & 0xf, m[3] & 0x20 != 0) {
        (2, _) => "bogus",
        (0 | 3, true) => "secure",
        (0 | 3, false) => "insecure",
        _ => "indeterminate",
    }
}

/// dproxy (the full build) started on a UCI config, stopped on drop.
struct Daemon {
    proc: Option<Proc>,
    port: u16,
    dir: PathBuf,
    conf: PathBuf,
}

impl Daemon {
    /// `extra`: more option lines.
    fn start(dir: &Path, name: &str, upstream: u16, anchor_file: &Path, extra: &str) -> Daemon {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        // Started as root, dproxy runs as nobody: it must be able to write its persist file.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let d = dir.display();
        std::fs::write(dir.join("resolv.conf"), "").unwrap();
        std::fs::write(dir.join("hosts"), "").unwrap();
        let conf = dir.join("dproxy.conf");
        let text = |port: u16| {
            format!(
                "config dproxy 'main'\n\tlist listen '127.0.0.1'\n\toption port '{port}'\n\
                 \tlist server '127.0.0.1#{upstream}'\n\toption resolvfile '{d}/resolv.conf'\n\
                 \tlist hosts '{d}/hosts'\n\toption control_socket '{d}/ctl.sock'\n\
                 \toption persist_file '{d}/cache.persist'\n\toption rebind_protection '0'\n\
                 \toption prefetch '0'\n\toption log_level 'info'\n\toption dnssec '1'\n\
                 \toption trust_anchor_file '{}'\n{extra}",
                anchor_file.display()
            )
        };
        let (child, port) = start_on_free_port(
            "dproxy",
            &[dir.join("stderr")],
            |port| {
                std::fs::write(&conf, text(port)).unwrap();
                Daemon::spawn_child(&dir, &conf)
            },
            |port| Daemon::serves(&dir, port),
        );
        Daemon {
            proc: Some(Proc(child)),
            port,
            dir,
            conf,
        }
    }

    /// True once the daemon takes both DNS (TCP) and `ctl` connections: it opens its
    /// control socket after its DNS listeners, and the tests use both at once.
    fn serves(dir: &Path, port: u16) -> bool {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
            && std::os::unix::net::UnixStream::connect(dir.join("ctl.sock")).is_ok()
    }

    /// Starts dproxy on `conf`, its standard error appended to `dir`/stderr.
    fn spawn_child(dir: &Path, conf: &Path) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("stderr"))
            .unwrap();
        Command::new(env!("CARGO_BIN_EXE_dproxy"))
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// Starts it again on its port (after `stop`).
    fn spawn(&mut self) {
        // Stored first: killed on drop if the wait below panics.
        self.proc = Some(Proc(Daemon::spawn_child(&self.dir, &self.conf)));
        // Bounded: 60 s, as for the first start.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !Daemon::serves(&self.dir, self.port) {
            if let Some(status) = self.proc.as_mut().unwrap().0.try_wait().unwrap() {
                panic!("dproxy exited at restart ({status}):\n{}", self.log());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "dproxy does not serve within 60 s of its restart:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it with SIGTERM (so it writes its persist file) and waits.
    fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let pid = p.0.id().to_string();
            run(Command::new("kill").args(["-TERM", &pid]));
            let _ = p.0.wait();
        }
    }

    fn pid(&self) -> u32 {
        self.proc.as_ref().unwrap().0.id()
    }

    /// CPU time the daemon has used so far (ns, from the scheduler's accounting).
    fn cpu_ns(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/schedstat", self.pid())).unwrap();
        s.split_whitespace().next().unwrap().parse().unwrap()
    }

    fn ctl(&self, args: &[&str]) -> String {
        run(Command::new(env!("CARGO_BIN_EXE_dproxy"))
            .args(["ctl", "--socket"])
            .arg(self.dir.join("ctl.sock"))
            .args(args))
    }

    fn stat(&self, name: &str) -> u64 {
        let out = self.ctl(&["stats"]);
        out.lines()
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == name).then(|| v.trim().parse().ok())?
            })
            .unwrap_or_else(|| panic!("no {name} in ctl stats:\n{out}"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    fn ask(&self, name: &str, t: u16) -> Vec<u8> {
        ask_tcp(
            self.port,
            &client_query(&wire(name), t, true, true, false, false),
        )
    }
}

/// A forwarder that clears the DO bit of every query it passes on: the upstream then
/// answers without signatures, as CPE resolvers that strip RRSIGs do. UDP only; stops
/// when `stop` is set (each wait is bounded by a 100 ms read timeout).
fn stripping_forwarder(to: u16, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> u16 {
    use std::sync::atomic::Ordering;
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = s.local_addr().unwrap().port();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    std::thread::spawn(move || {
        let up = UdpSocket::bind("127.0.0.1:0").unwrap();
        up.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = vec![0u8; 65535];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = s.recv_from(&mut buf) else {
                continue;
            };
            let mut q = buf[..n].to_vec();
            // dproxy's OPT is the last record, without options: DO is 4 bytes from the end.
            if n > 23 && q[n - 11..n - 8] == [0, 0, 41] {
                q[n - 4] &= 0x7f;
            }
            if up.send_to(&q, ("127.0.0.1", to)).is_err() {
                continue;
            }
            if let Ok(m) = recv(&up, &mut buf) {
                let _ = s.send_to(&buf[..m], from);
            }
        }
    });
    port
}

#[test]
fn daemon_agrees_with_unbound_on_a_signed_hierarchy() {
    // Declared first, dropped last: the daemons and the iterator stop before the
    // directory they work in goes.
    let h = Hierarchy::start("chaind");
    let dir = h.dir.dir().to_path_buf();
    let anchor_file = dir.join("anchor.ds");
    std::fs::write(&anchor_file, format!("{}\n", h.anchor_line)).unwrap();
    let (nsd, unbound) = (h.nsd, h.unbound);
    let (_iter, iterator) = start_unbound(&dir, nsd, &h.zones, None);
    let mut d = Daemon::start(&dir, "dproxy", iterator, &anchor_file, "");

    // The daemon checks signatures against the system clock: it must lie inside the
    // test zones' validity window (2026 to 2034).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (1_767_225_600..EXPIRATION_SECS).contains(&now),
        "the signatures of the test zones are valid from 2026 to 2034"
    );

    // Clock not known good: inception is not checked, so a signature that is not yet
    // valid passes (a router that booted in the past must still resolve).
    assert!(
        d.ctl(&["stats"]).contains("clock=unsynced"),
        "{}",
        d.ctl(&["stats"])
    );
    let r = d.ask("www.rrsig-not-yet.tld.", 1);
    assert_eq!(verdict_of(&r), "secure", "unsynced clock");
    d.ctl(&["flush"]);
    d.ctl(&["time-synced"]);
    assert!(d.ctl(&["stats"]).contains("clock=synced"));

    let mut table = String::from("case                          dproxy             unbound\n");
    let mut diffs = Vec::new();
    let mut keytrap_cpu = Vec::new();
    for (case, name, t) in &cases() {
        let qn = wire(name);
        let (theirs, their_ede) = unbound_verdict(unbound, &qn, *t);
        let cpu = d.cpu_ns();
        let started = std::time::Instant::now();
        let m = ask_tcp(d.port, &client_query(&qn, *t, true, true, false, false));
        let took = started.elapsed();
        let cpu = d.cpu_ns() - cpu;
        let ours = verdict_of(&m);
        if case.starts_with("keytrap") {
            keytrap_cpu.push((case.clone(), cpu));
        }
        if ours == "bogus" {
            assert!(ede(&m).is_some(), "{case}: SERVFAIL without an EDE");
        }
        table += &format!(
            "{case:29} {:18} {theirs} {their_ede:?}   ({} µs CPU, {} µs)\n",
            format!("{ours} {:?}", ede(&m)),
            cpu / 1000,
            took.as_micros()
        );
        if ours != theirs {
            diffs.push((case.clone(), ours, theirs));
        }
    }
    println!("{table}");
    println!("KeyTrap-shaped answers through dproxy (whole query, daemon CPU): {keytrap_cpu:?}");
    let unexpected: Vec<_> = diffs
        .iter()
        .filter(|(c, o, u)| !KNOWN_DIFFERENCES.contains(&(c.as_str(), *o, *u)))
        .collect();
    assert!(
        unexpected.is_empty(),
        "differences: {unexpected:?}\n{table}\n{}",
        d.log()
    );

    // A secure answer: AD=1 on the miss and from the cache (a hit, no new validation).
    let hits = d.stat("hits");
    let secure = d.stat("dnssec_secure");
    let m = d.ask("www.valid.tld.", 1);
    assert_eq!(verdict_of(&m), "secure");
    assert!(
        record_types(&m).contains(&RRSIG),
        "DO client gets the RRSIGs"
    );
    assert_eq!(d.stat("hits"), hits + 1, "a cache hit");
    assert_eq!(d.stat("dnssec_secure"), secure, "no walk on a hit");

    // A client without DO: neither RRSIGs nor AD; with AD=1 (RFC 6840 §5.8) AD but no RRSIGs.
    for (edns, ad, want_ad) in [
        (false, false, false),
        (true, false, false),
        (true, true, true),
    ] {
        let m = ask_tcp(
            d.port,
            &client_query(&wire("www.valid.tld."), 1, edns, false, false, ad),
        );
        assert_eq!(m[3] & 0xf, 0);
        assert!(!record_types(&m).contains(&RRSIG), "no RRSIG without DO");
        assert_eq!(m[3] & 0x20 != 0, want_ad, "edns {edns} ad {ad}");
    }

    // Bogus: SERVFAIL with its EDE, on the miss and again (never cached as good); CD=1
    // passes the bogus answer unvalidated.
    for _ in 0..2 {
        let m = d.ask("www.rrsig-exp.tld.", 1);
        assert_eq!((verdict_of(&m), ede(&m)), ("bogus", Some(7)));
    }
    std::thread::sleep(Duration::from_millis(2100));
    let m = d.ask("www.rrsig-exp.tld.", 1);
    assert_eq!(
        (verdict_of(&m), ede(&m)),
        ("bogus", Some(7)),
        "after the failure TTL"
    );
    let m = ask_tcp(
        d.port,
        &client_query(&wire("www.rrsig-exp.tld."), 1, true, true, true, false),
    );
    assert_eq!(
        (m[3] & 0xf, m[3] & 0x20),
        (0, 0),
        "CD=1 passes unvalidated, no AD"
    );
    assert!(d.stat("dnssec_bogus") >= 3);

    // After a restart from the persist file the secure entry still answers AD=1.
    d.stop();
    d.spawn();
    let upstream = d.stat("upstream_queries");
    let m = d.ask("www.valid.tld.", 1);
    assert_eq!(verdict_of(&m), "secure", "from the persist file");
    assert_eq!(
        d.stat("upstream_queries"),
        upstream,
        "answered from the cache"
    );
    d.stop();

    // Answers cached before validation was turned on (here: in the persist file of a
    // run with dnssec 0) are not served as they are: asked and validated anew.
    let mut before = Daemon::start(
        &dir,
        "before",
        iterator,
        &anchor_file,
        "\toption dnssec '0'\n",
    );
    assert_eq!(verdict_of(&before.ask("www.rrsig-exp.tld.", 1)), "insecure");
    before.stop();
    let conf = std::fs::read_to_string(&before.conf).unwrap();
    std::fs::write(&before.conf, conf.replace("\toption dnssec '0'\n", "")).unwrap();
    before.spawn();
    let m = before.ask("www.rrsig-exp.tld.", 1);
    assert_eq!(
        (verdict_of(&m), ede(&m)),
        ("bogus", Some(7)),
        "{}",
        before.log()
    );
    drop(before);

    // A stale answer (link down, entry expired) keeps the verdict: AD=1.
    let st = Daemon::start(
        &dir,
        "stale",
        iterator,
        &anchor_file,
        "\toption max_ttl '1'\n",
    );
    assert_eq!(verdict_of(&st.ask("www.valid.tld.", 1)), "secure");
    st.ctl(&["link", "down"]);
    std::thread::sleep(Duration::from_millis(2100));
    let m = st.ask("www.valid.tld.", 1);
    assert_eq!(
        (verdict_of(&m), ede(&m)),
        ("secure", Some(3)),
        "stale, still AD\n{}",
        st.log()
    );
    drop(st);

    // An upstream that strips RRSIGs: everything signed is bogus, said once in the log
    // and counted.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fwd = stripping_forwarder(iterator, stop.clone());
    let s = Daemon::start(&dir, "stripped", fwd, &anchor_file, "");
    let m = s.ask("www.valid.tld.", 1);
    assert_eq!(verdict_of(&m), "bogus", "{}", s.log());
    assert!(s.stat("dnssec_stripped") >= 1, "{}", s.ctl(&["stats"]));
    let log = s.log();
    assert_eq!(
        log.matches("without signatures").count(),
        1,
        "logged once, naming the upstream:\n{log}"
    );
    assert!(log.contains(&format!("127.0.0.1:{fwd}")), "{log}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(s);
}
