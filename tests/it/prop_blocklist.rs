//! Property tests for blocklists (stable Rust, part of `cargo test`): any bytes parse
//! without panicking, every name a line lists is blocked with its subdomains and only
//! those, exceptions win, and a file replaced on disk is picked up.

use std::io::Cursor;

use dproxy::blocklist::{parse_line, Blocklist, FileSet, Line};
use proptest::prelude::*;

use crate::common;
use common::config;

/// A valid lowercase domain of 2 to 4 labels with a TLD that is not a number (hosts
/// lines skip single-label names and addresses, as boilerplate).
fn domain() -> impl Strategy<Value = String> {
    "[a-z0-9_][a-z0-9_-]{0,14}(\\.[a-z0-9][a-z0-9-]{0,9}){0,2}\\.[a-z][a-z0-9]{0,5}"
}

/// `name` written in one of the formats, in random case, with random decoration.
fn line_for(name: &str, fmt: u8, upper: bool) -> String {
    let n = if upper {
        name.to_ascii_uppercase()
    } else {
        name.to_string()
    };
    match fmt % 9 {
        0 => n,
        1 => format!("0.0.0.0 {n}"),
        2 => format!("127.0.0.1\t{n}  # comment"),
        3 => format!(":: {n}."),
        4 => format!("local=/{n}/"),
        5 => format!("address=/{n}/"),
        6 => format!("address=/{n}/#\r"),
        7 => format!("server=/{n}/"),
        _ => format!("||{n}^"),
    }
}

fn read(text: &str) -> FileSet {
    FileSet::read(
        Box::new(Cursor::new(text.as_bytes().to_vec())),
        "prop".as_ref(),
    )
    .unwrap()
}

/// True if `q` is `n` or a subdomain of it.
fn covered(q: &str, n: &str) -> bool {
    q == n || q.ends_with(&format!(".{n}"))
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_bytes_parse(data in prop::collection::vec(any::<u8>(), 0..600)) {
        for line in data.split(|&b| b == b'\n') {
            let mut names = Vec::new();
            let k = parse_line(line, |n| names.push(n.to_vec()));
            prop_assert_eq!(k == Line::Names, !names.is_empty());
            for n in &names {
                prop_assert!(!n.is_empty() && n.len() <= 253);
                prop_assert!(!n.iter().any(|b| b.is_ascii_uppercase()));
            }
        }
        let s = FileSet::read(Box::new(Cursor::new(data.clone())), "prop".as_ref()).unwrap();
        prop_assert!(s.len() <= data.len());
    }

    #[test]
    fn listed_names_and_subdomains_are_blocked(
        entries in prop::collection::vec((domain(), any::<u8>(), any::<bool>()), 1..30),
        probes in prop::collection::vec(domain(), 0..30),
        sub in "[a-z0-9]{1,8}",
    ) {
        let text: Vec<String> = entries.iter().map(|(n, f, u)| line_for(n, *f, *u)).collect();
        let s = read(&text.join("\n"));
        for (n, _, _) in &entries {
            prop_assert!(s.blocks(n.as_bytes()), "{} not blocked", n);
            let child = format!("{sub}.{n}");
            prop_assert!(s.blocks(child.as_bytes()), "{} not blocked", child);
        }
        // Others only if a listed name covers them (false positives: ~1e-17 here).
        for q in probes.iter().chain(entries.iter().map(|(n, _, _)| n).filter_map(|n| n.split_once('.').map(|(_, p)| p)).map(|p| p.to_string()).collect::<Vec<_>>().iter()) {
            let expect = entries.iter().any(|(n, _, _)| covered(q, n));
            prop_assert_eq!(s.blocks(q.as_bytes()), expect, "{}", q);
        }
        prop_assert_eq!(s.bad(), 0);
    }

    #[test]
    fn exceptions_win(
        listed in prop::collection::vec(domain(), 1..10),
        allowed in prop::collection::vec(domain(), 0..5),
        probes in prop::collection::vec(domain(), 0..20),
    ) {
        let p = common::write_temp("dproxy-prop-block", ".list", listed.join("\n").as_bytes());
        let mut b = Blocklist::new(std::slice::from_ref(&p), &allowed);
        b.refresh(true);
        for q in probes.iter().chain(listed.iter()).chain(allowed.iter()) {
            let expect = listed.iter().any(|n| covered(q, n)) && !allowed.iter().any(|a| covered(q, a));
            prop_assert_eq!(b.blocks(q.as_bytes()), expect, "{}", q);
        }
        // Replaced on disk: the new content, and only it, is used.
        let tmp = p.with_extension("new");
        std::fs::write(&tmp, "replaced.example\n").unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        b.refresh(true);
        prop_assert!(b.blocks(b"x.replaced.example"));
        for n in &listed {
            prop_assert_eq!(b.blocks(n.as_bytes()), covered(n, "replaced.example") && !allowed.iter().any(|a| covered(n, a)));
        }
        std::fs::remove_file(&p).unwrap();
    }
}
