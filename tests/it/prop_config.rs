//! Property tests for the UCI config loader (stable Rust, part of `cargo test`):
//! `config::load` returns a config or a list of problems for any file content and never
//! panics; well-formed values come back as written.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use dproxy::config::load;
use proptest::prelude::*;

use crate::common;
use common::config;

/// A fresh config file per case.
fn write_temp(data: &[u8]) -> PathBuf {
    common::write_temp("dproxy-prop-config", ".conf", data)
}

const OPTIONS: &[&str] = &[
    "listen",
    "port",
    "server",
    "resolvfile",
    "cache_size",
    "min_ttl",
    "max_ttl",
    "neg_ttl",
    "log_level",
    "trust_ad",
    "hosts",
    "leasefile",
    "domain",
    "domain_needed",
    "bogus_priv",
    "local_ttl",
    "control_socket",
    "stale_max",
    "stale_exclude",
    "offline_policy",
    "hold_timeout",
    "stale_timeout",
    "prefetch",
    "persist_file",
    "persist_interval",
    "local_service",
    "allow",
    "deny",
    "refuse_action",
    "rebind_protection",
    "rebind_domain",
    "rebind_localhost",
    "case_randomization",
    "rate_limit",
    "rate_burst",
    "memory_limit",
    "user",
    "chroot",
    "enabled",
    "dnsmasq_integration",
    "wan_interface",
    "bogus",
];

/// A value, sometimes sensible for some option, sometimes not.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1".to_string()),
        Just("0".to_string()),
        Just("yes".to_string()),
        Just("off".to_string()),
        (0u64..100_000).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        Just("-1".to_string()),
        Just("127.0.0.1".to_string()),
        Just("::1".to_string()),
        Just("[::1]:5353".to_string()),
        Just("9.9.9.9#53".to_string()),
        Just("192.168.0.0/16".to_string()),
        Just("fd00::/8".to_string()),
        Just("300.1.1.1/33".to_string()),
        Just("hold".to_string()),
        Just("drop".to_string()),
        Just("debug".to_string()),
        Just("/tmp/x".to_string()),
        Just("".to_string()),
        "[ -~]{0,20}",
        "\\PC{0,10}",
    ]
}

fn quoted(v: String, q: u8) -> String {
    match q % 4 {
        0 => format!("'{v}'"),
        1 => format!("\"{v}\""),
        2 => v,
        _ => format!("'{v}"), // unterminated
    }
}

/// One line of a UCI file, well-formed or not.
fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (prop::bool::ANY, prop::sample::select(OPTIONS), value(), any::<u8>())
            .prop_map(|(list, o, v, q)| format!("\t{} {} {}", if list { "list" } else { "option" }, o, quoted(v, q))),
        2 => (prop_oneof![Just("dproxy"), Just("dnsmasq"), Just("")], "[a-z_]{0,8}", any::<u8>())
            .prop_map(|(t, n, q)| if n.is_empty() { format!("config {t}") } else { format!("config {t} {}", quoted(n, q)) }),
        1 => Just(String::new()),
        1 => "#[ -~]{0,20}",
        1 => "[ -~]{0,30}",
        1 => "\\PC{0,20}",
    ]
}

/// A file: usually starting with the main section, then random lines; the last line
/// sometimes without its newline (see `regression_file_ending_inside_a_keyword_line`).
fn file() -> impl Strategy<Value = String> {
    (
        prop::bool::weighted(0.8),
        prop::collection::vec(line(), 0..25),
        any::<bool>(),
    )
        .prop_map(|(head, lines, final_newline)| {
            let mut s = String::new();
            if head {
                s.push_str("config dproxy 'main'\n");
            }
            for l in lines {
                s.push_str(&l);
                s.push('\n');
            }
            if !final_newline {
                s.pop();
            }
            s
        })
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn uci_like_files_never_panic(text in file()) {
        let p = write_temp(text.as_bytes());
        let l = load(&p);
        let _ = std::fs::remove_file(&p);
        match l.config {
            Ok(cfg) => {
                prop_assert!(!cfg.listen.is_empty() || text.contains("listen"));
            }
            Err(problems) => prop_assert!(!problems.is_empty()),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..300)) {
        let p = write_temp(&data);
        let l = load(&p);
        let _ = std::fs::remove_file(&p);
        if let Err(problems) = l.config {
            prop_assert!(!problems.is_empty());
        }
    }

    /// Values written sensibly are read back as written.
    #[test]
    fn sensible_values_come_back(
        port in 1u16.., cache in 1u32..100_000, min_ttl in 0u32..100, max_ttl in 100u32..100_000,
        server in prop::sample::select(vec!["9.9.9.9", "1.1.1.1", "2620:fe::fe"]), prefetch in any::<bool>(),
    ) {
        let text = format!(
            "config dproxy 'main'\n\toption port '{port}'\n\toption cache_size '{cache}'\n\
             \toption min_ttl '{min_ttl}'\n\toption max_ttl '{max_ttl}'\n\tlist server '{server}'\n\
             \toption prefetch '{}'\n",
            if prefetch { "yes" } else { "no" }
        );
        let p = write_temp(text.as_bytes());
        let l = load(&p);
        let _ = std::fs::remove_file(&p);
        let cfg = l.config.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert!(cfg.listen.iter().all(|a| a.port() == port));
        prop_assert_eq!(cfg.cache_size_kib, cache);
        prop_assert_eq!((cfg.ttl.min_ttl, cfg.ttl.max_ttl), (min_ttl, max_ttl));
        prop_assert_eq!(cfg.servers.len(), 1);
        prop_assert_eq!(cfg.servers[0].ip().to_string(), server);
        prop_assert_eq!(cfg.servers[0].port(), 53);
        prop_assert_eq!(cfg.prefetch, prefetch);
    }
}

/// Found by the fuzzer (fuzz/regressions/config_load/eof-after-list-keyword-hangs.conf):
/// uci_rs 0.1.2 loops forever when a file ends inside a keyword line without a final
/// newline, so `load` (and with it `dproxy --check-config` and a SIGHUP reload) hangs at
/// 100% CPU. Fixed in bd15b40 (`load` terminates the last line first).
/// Each case runs on its own thread; a hang fails the test after 5 s (the thread spins on).
#[test]
fn regression_file_ending_inside_a_keyword_line() {
    for tail in [
        "\tlist",
        "\toption",
        "\toption ",
        "\toption port",
        "config",
        "config dproxy",
    ] {
        let text = format!("config dproxy 'main'\n{tail}");
        let p = write_temp(text.as_bytes());
        let (tx, rx) = mpsc::channel();
        let q = p.clone();
        std::thread::spawn(move || {
            let _ = load(&q);
            let _ = tx.send(());
        });
        let done = rx.recv_timeout(Duration::from_secs(5)).is_ok();
        let _ = std::fs::remove_file(&p);
        assert!(done, "load() hangs on a file ending in {tail:?}");
    }
}
