//! Test certificates made with the openssl command at test time (a CA, a server
//! certificate for `dot.test`, one for another name, one from an unknown CA, an
//! expired one, one not valid yet), and DNS message helpers shared by the DoT tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::test_dir::TempDir;

pub const NAME: &str = "dot.test";

pub struct Certs {
    pub dir: PathBuf,
    // Removes `dir` on drop, also when making a certificate failed half way.
    _scratch: TempDir,
}

fn run(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn key_and_csr(dir: &Path, stem: &str, cn: &str) {
    run(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{stem}.key"),
            "-out",
            &format!("{stem}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
}

fn ca(dir: &Path, stem: &str) {
    run(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{stem}.key"),
            "-out",
            &format!("{stem}.pem"),
            "-days",
            "30",
            "-subj",
            &format!("/CN=dproxy test {stem}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

fn leaf(dir: &Path, stem: &str, name: &str, ca_stem: &str) {
    key_and_csr(dir, stem, name);
    let ext = format!("{stem}.ext");
    std::fs::write(
        dir.join(&ext),
        format!(
            "subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .unwrap();
    run(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{stem}.csr"),
            "-CA",
            &format!("{ca_stem}.pem"),
            "-CAkey",
            &format!("{ca_stem}.key"),
            "-CAcreateserial",
            "-days",
            "30",
            "-out",
            &format!("{stem}.pem"),
            "-extfile",
            &ext,
        ],
    );
}

/// A certificate for `name` valid from `start` to `end` (openssl dates, e.g.
/// 20200101000000Z): `openssl ca` is the openssl command that sets explicit dates.
fn dated_leaf(dir: &Path, stem: &str, name: &str, start: &str, end: &str) {
    key_and_csr(dir, stem, name);
    if !dir.join("ca.cnf").exists() {
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "1000\n").unwrap();
        std::fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n\
             default_md = sha256\npolicy = p\nunique_subject = no\n[p]\ncommonName = supplied\n",
        )
        .unwrap();
    }
    std::fs::write(
        dir.join(format!("{stem}.ext")),
        format!(
            "subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .unwrap();
    run(
        dir,
        &[
            "ca",
            "-batch",
            "-notext",
            "-config",
            "ca.cnf",
            "-cert",
            "ca.pem",
            "-keyfile",
            "ca.key",
            "-in",
            &format!("{stem}.csr"),
            "-out",
            &format!("{stem}.pem"),
            "-startdate",
            start,
            "-enddate",
            end,
            "-extfile",
            &format!("{stem}.ext"),
        ],
    );
}

/// The openssl form (YYYYMMDDHHMMSSZ) of now plus `days`, from the date command.
fn openssl_date(days: i64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("{days} days"), "+%Y%m%d%H%M%SZ"])
        .output()
        .expect("run date");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl Certs {
    /// Makes every certificate in a fresh temporary directory.
    pub fn make(tag: &str) -> Certs {
        let certs = Certs::scratch(&format!("dot-{tag}"));
        let dir = &certs.dir;
        ca(dir, "ca");
        ca(dir, "otherca");
        leaf(dir, "good", NAME, "ca");
        leaf(dir, "wrongname", "other.test", "ca");
        leaf(dir, "unknownca", NAME, "otherca");
        // Valid only in January 2020.
        dated_leaf(dir, "expired", NAME, "20200101000000Z", "20200201000000Z");
        // Valid from two days ahead (inside the CA's 30 days): what a router whose clock
        // is behind sees.
        let (start, end) = (openssl_date(2), openssl_date(20));
        dated_leaf(dir, "future", NAME, &start, &end);
        certs
    }

    /// Only the CA (`ca.pem`), for tests that need one real certificate file.
    pub fn ca_only(tag: &str) -> Certs {
        let certs = Certs::scratch(&format!("ca-{tag}"));
        ca(&certs.dir, "ca");
        certs
    }

    /// An empty directory `dproxy-<tag>-<pid>-<n>` in the temp dir.
    fn scratch(tag: &str) -> Certs {
        let scratch = TempDir::new(tag);
        Certs {
            dir: scratch.dir().to_path_buf(),
            _scratch: scratch,
        }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// The SPKI pin of `<stem>.pem` as openssl computes it (the way users make pins).
    pub fn openssl_pin(&self, stem: &str) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "openssl x509 -in {stem}.pem -pubkey -noout | openssl pkey -pubin -outform der \
                 | openssl dgst -sha256 -binary | openssl base64 -A"
            ))
            .current_dir(&self.dir)
            .output()
            .unwrap();
        assert!(out.status.success());
        format!("sha256/{}", String::from_utf8(out.stdout).unwrap().trim())
    }
}

/// The wire form of `name` (the bytes a plaintext leak would show).
pub fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.trim_end_matches('.').split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// A recursive A query for `name` with ID `id`.
pub fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(&wire_name(name));
    q.extend_from_slice(&[0, 1, 0, 1]);
    q
}

/// The first A record's address in an answer (a plain parse, enough for tests).
pub fn first_a(msg: &[u8]) -> Option<[u8; 4]> {
    let ancount = u16::from_be_bytes([msg[6], msg[7]]);
    if ancount == 0 {
        return None;
    }
    let mut pos = 12;
    while msg[pos] != 0 {
        pos += 1 + msg[pos] as usize;
    }
    pos += 5;
    // Answer name: a compression pointer or labels.
    if msg[pos] & 0xc0 == 0xc0 {
        pos += 2;
    } else {
        while msg[pos] != 0 {
            pos += 1 + msg[pos] as usize;
        }
        pos += 1;
    }
    let rdlen = u16::from_be_bytes([msg[pos + 8], msg[pos + 9]]) as usize;
    (rdlen == 4).then(|| [msg[pos + 10], msg[pos + 11], msg[pos + 12], msg[pos + 13]])
}

/// True if `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
