//! Blocklist files through the public API: any content is read line by line without
//! panicking, and every name the parser takes from a line is blocked afterwards, with
//! its subdomains.
#![no_main]

use std::io::Cursor;

use dproxy::blocklist::{parse_line, FileSet, Line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let set = FileSet::read(Box::new(Cursor::new(data.to_vec())), "fuzz".as_ref())
        .expect("reading from memory cannot fail");
    let mut names = Vec::new();
    let mut bad = 0u32;
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let before = names.len();
        let kind = parse_line(line, |n| names.push(n.to_vec()));
        assert_eq!(kind == Line::Names, names.len() > before);
        bad += u32::from(kind == Line::Bad);
    }
    assert_eq!(set.bad(), bad);
    assert!(set.len() <= names.len());
    for n in &names {
        assert!(set.blocks(n), "a listed name is not blocked");
        let mut sub = b"x.".to_vec();
        sub.extend_from_slice(n);
        if sub.len() <= 253 {
            assert!(
                set.blocks(&sub),
                "a subdomain of a listed name is not blocked"
            );
        }
    }
});
