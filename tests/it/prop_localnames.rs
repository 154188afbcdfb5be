//! Property tests for the local-name files (stable Rust, part of `cargo test`): hosts
//! files and DHCP lease files (dnsmasq, ISC dhcpd, odhcpd) of any content load through
//! the public `LocalNames` API without panicking, every lookup answers, and well-formed
//! hosts lines are found by name and by address.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use dproxy::blocklist::{parse_line, Line};
use dproxy::localnames::{parse_ptr_name, reverse_name, LocalConfig, LocalNames};
use proptest::prelude::*;

use crate::common;
use common::config;

fn write_temp(data: &[u8]) -> PathBuf {
    common::write_temp("dproxy-prop-local", "", data)
}

const NOW: u64 = 1_800_000_000;

fn load(data: &[u8], lease: bool, domain: bool) -> (LocalNames, PathBuf) {
    let p = write_temp(data);
    let cfg = LocalConfig {
        hosts: if lease { vec![] } else { vec![p.clone()] },
        leasefiles: if lease { vec![p.clone()] } else { vec![] },
        domain: domain.then(|| "lan".to_string()),
    };
    let mut ln = LocalNames::new(cfg);
    ln.reload_all(NOW);
    (ln, p)
}

/// Lines in the formats the parsers know, with random fields and some junk.
fn line() -> impl Strategy<Value = String> {
    let name = "[a-zA-Z0-9-]{1,12}(\\.[a-zA-Z0-9-]{1,8}){0,2}";
    prop_oneof![
        (any::<[u8; 4]>(), prop::collection::vec(name, 1..4)).prop_map(|(a, n)| format!(
            "{} {}",
            Ipv4Addr::from(a),
            n.join(" ")
        )),
        (any::<u128>(), name).prop_map(|(a, n)| format!("{}\t{}", std::net::Ipv6Addr::from(a), n)),
        (NOW - 1000..NOW + 100_000, any::<[u8; 4]>(), name)
            .prop_map(|(t, a, n)| format!("{t} aa:bb:cc:dd:ee:ff {} {n} *", Ipv4Addr::from(a))),
        Just("duid 00:01:00:01:2c:3e:5f:6a:aa:bb:cc:dd:ee:ff".to_string()),
        (any::<[u8; 4]>(), name).prop_map(|(a, n)| format!(
            "lease {} {{\n  ends 4 2027/01/14 20:00:00;\n  client-hostname \"{n}\";\n}}",
            Ipv4Addr::from(a)
        )),
        Just("lease 10.0.0.1 {".to_string()),
        Just("}".to_string()),
        "#[ -~]{0,30}",
        "[ -~]{0,40}",
        "\\PC{0,20}",
    ]
}

proptest! {
    #![proptest_config(config(250))]

    #[test]
    fn any_file_loads_and_answers(lines in prop::collection::vec(line(), 0..20), lease in any::<bool>(), domain in any::<bool>()) {
        let text = lines.join("\n");
        let (ln, p) = load(text.as_bytes(), lease, domain);
        let _ = std::fs::remove_file(&p);
        for w in text.split(|c: char| c.is_whitespace() || c == '"' || c == ';').filter(|w| !w.is_empty()) {
            let lower = w.to_ascii_lowercase();
            if ln.lookup_name(lower.as_bytes(), NOW).is_some() {
                prop_assert!(!ln.is_empty());
            }
            let _ = ln.is_local_zone(lower.as_bytes());
            if let Some(ip) = parse_ptr_name(lower.as_bytes()) {
                let _ = ln.lookup_addr(ip, NOW);
            }
            if let Ok(ip) = w.parse::<IpAddr>() {
                if let Some(n) = ln.lookup_addr(ip, NOW) {
                    prop_assert!(!n.is_empty());
                }
            }
        }
    }

    #[test]
    fn hosts_lines_parse_as_blocklist_lines(lines in prop::collection::vec(line(), 0..20)) {
        // Blocklists accept hosts files: the same lines never panic the blocklist parser,
        // and every name it takes from a line appears on that line.
        for l in &lines {
            let lower = l.to_ascii_lowercase();
            let k = parse_line(l.as_bytes(), |n| {
                assert!(lower.contains(std::str::from_utf8(n).unwrap()));
            });
            prop_assert!(matches!(k, Line::Names | Line::Skip | Line::Bad));
        }
    }

    #[test]
    fn arbitrary_bytes_load(data in prop::collection::vec(any::<u8>(), 0..400), lease in any::<bool>()) {
        let (ln, p) = load(&data, lease, true);
        let _ = std::fs::remove_file(&p);
        let _ = ln.lookup_name(b"nas.lan", NOW);
        let _ = ln.lookup_addr(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1)), NOW);
    }

    /// A plain hosts line is found by name (any case, with the local domain) and by address.
    #[test]
    fn hosts_lines_are_found(a in any::<[u8; 4]>(), name in "[a-z][a-z0-9]{0,10}") {
        let ip = IpAddr::V4(Ipv4Addr::from(a));
        let text = format!("{ip} {name}\n");
        let (ln, p) = load(text.as_bytes(), false, true);
        let _ = std::fs::remove_file(&p);
        let found = ln.lookup_name(name.as_bytes(), NOW);
        let v4 = found.map(|f| f.v4.to_vec()).unwrap_or_default();
        prop_assert!(v4.contains(&Ipv4Addr::from(a)), "{} not found", name);
        let qualified = format!("{name}.lan");
        prop_assert!(ln.lookup_name(qualified.as_bytes(), NOW).is_some());
        prop_assert!(ln.lookup_addr(ip, NOW).is_some());
    }

    /// Reverse names round-trip for every address.
    #[test]
    fn reverse_names_round_trip(v4 in any::<[u8; 4]>(), v6 in any::<u128>()) {
        for ip in [IpAddr::V4(Ipv4Addr::from(v4)), IpAddr::V6(std::net::Ipv6Addr::from(v6))] {
            let r = reverse_name(ip);
            prop_assert_eq!(parse_ptr_name(r.as_bytes()), Some(ip));
            let with_dot = format!("{r}.");
            prop_assert_eq!(parse_ptr_name(with_dot.as_bytes()), Some(ip));
        }
    }
}
