//! Helpers shared by the DNSSEC tests that sign zones with the ldns tools.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use dproxy::dnssec::Clock;

pub(crate) use crate::test_dir::TempDir;

pub const RRSIG: u16 = 46;
/// Signature inception and expiration given to ldns-signzone.
pub const INCEPTION: &str = "20260101000000";
pub const EXPIRATION: &str = "20270101000000";
/// A time inside that validity window.
pub const NOW: Clock = Clock {
    now: 1_780_000_000,
    check_inception: true,
};

/// Runs a command that must succeed; its standard output.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Starts nsd in the foreground on 127.0.0.1:`port`, its files in `dir`, serving
/// `zones` (name, zone file); the caller waits until it answers.
pub fn spawn_nsd<N: Display>(dir: &Path, port: u16, zones: &[(N, PathBuf)]) -> Child {
    let d = dir.display();
    let mut conf = format!(
        "server:\n ip-address: 127.0.0.1@{port}\n port: {port}\n do-ip6: no\n username: \"\"\n \
         chroot: \"\"\n zonesdir: \"{d}\"\n pidfile: \"{d}/nsd.pid\"\n database: \"\"\n \
         zonelistfile: \"{d}/zone.list\"\n xfrdfile: \"{d}/xfrd.state\"\n xfrdir: \"{d}\"\n \
         logfile: \"{d}/nsd.log\"\n server-count: 1\n reuseport: no\n rrl-ratelimit: 0\n\
         remote-control:\n control-enable: no\n"
    );
    for (name, file) in zones {
        conf += &format!(
            "zone:\n name: \"{name}\"\n zonefile: \"{}\"\n",
            file.display()
        );
    }
    spawn_with_conf(dir, "nsd", &conf)
}

/// Writes `conf` to `dir/<daemon>.conf` and starts `/usr/sbin/<daemon> -d -c` on it
/// (nsd and unbound: in the foreground), its output appended to `dir/<daemon>.out`
/// (unbound reports a failed bind there, before it opens its log file).
pub fn spawn_with_conf(dir: &Path, daemon: &str, conf: &str) -> Child {
    let cf = dir.join(format!("{daemon}.conf"));
    std::fs::write(&cf, conf).unwrap();
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{daemon}.out")))
        .unwrap();
    Command::new(format!("/usr/sbin/{daemon}"))
        .args(["-d", "-c"])
        .arg(&cf)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap()
}

/// Bytes from a hex string (as ldns and dig print them).
pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Wire form of a dotted name (no escapes; the test zones have none).
pub fn wire(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}
