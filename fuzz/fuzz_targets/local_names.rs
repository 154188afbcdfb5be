//! The local-name files (hosts files; dnsmasq, ISC dhcpd and odhcpd lease files) through
//! the public `LocalNames` API: any file content loads without panicking, and every
//! lookup on names and addresses taken from the file answers without panicking.
//! The first byte picks the role of the file (hosts or lease file) and the clock.
#![no_main]

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

use dproxy::localnames::{is_private_reverse, parse_ptr_name, LocalConfig, LocalNames};
use libfuzzer_sys::fuzz_target;

static PATH: OnceLock<PathBuf> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let path = PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("dproxy-fuzz-local-{}", std::process::id()))
    });
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(body))
        .expect("temp file");
    let cfg = LocalConfig {
        hosts: if mode & 1 == 0 {
            vec![path.clone()]
        } else {
            Vec::new()
        },
        leasefiles: if mode & 1 != 0 {
            vec![path.clone()]
        } else {
            Vec::new()
        },
        domain: (mode & 2 != 0).then(|| "lan".to_string()),
    };
    // Around the lease times a fuzzer would write (small numbers) or a real clock.
    let now = if mode & 4 != 0 {
        1_800_000_000
    } else {
        u64::from(mode >> 3) * 100
    };
    let mut ln = LocalNames::new(cfg);
    ln.reload_all(now);
    let _ = ln.len();
    let _ = ln.next_expiry();

    // Every word of the file, lowercased, as a question; every address as a PTR question.
    let words = body
        .split(|b| b.is_ascii_whitespace() || *b == b',' || *b == b';' || *b == b'"')
        .filter(|w| !w.is_empty())
        .take(64);
    for w in words {
        let lower: Vec<u8> = w.iter().map(|c| c.to_ascii_lowercase()).collect();
        if ln.lookup_name(&lower, now).is_some() {
            assert!(!ln.is_empty(), "a name found in an empty table");
        }
        let _ = ln.is_local_zone(&lower);
        let _ = is_private_reverse(&lower);
        if let Some(ip) = parse_ptr_name(&lower) {
            let _ = ln.lookup_addr(ip, now);
        }
        if let Ok(ip) = std::str::from_utf8(w).unwrap_or("").parse::<IpAddr>() {
            if let Some(name) = ln.lookup_addr(ip, now) {
                assert!(!name.is_empty(), "a PTR answer names something");
            }
            let rev = dproxy::localnames::reverse_name(ip);
            assert_eq!(
                parse_ptr_name(rev.as_bytes()),
                Some(ip),
                "reverse name round trip"
            );
        }
    }
});
