//! Unit tests of the blocklist: files of every format, suffix lookup, exceptions, reload.

use std::path::PathBuf;

use super::{Blocklist, FileSet, Verdict};
use crate::test_dir::TempDir;

/// `data` as the file `name` in a scratch dir of its own (removed when the guard drops).
fn temp(name: &str, data: &str) -> (TempDir, PathBuf) {
    let d = TempDir::new("bl-unit");
    let p = d.write(name, data.as_bytes());
    (d, p)
}

#[test]
fn every_format_and_subdomains() {
    let (_p_dir, p) = temp(
        "formats",
        "# comment\n! adblock comment\n\nplain.example\n0.0.0.0 hosts4.example\n\
         :: hosts6.example\n127.0.0.1 localhost\nlocal=/local.example/\n\
         address=/addr.example/\naddress=/null.example/#\nserver=/server.example/\n\
         ||abp.example^\nbad line here\nCRLF.example\r\n",
    );
    let mut b = Blocklist::new(std::slice::from_ref(&p), &[]);
    assert!(b.refresh(true));
    assert_eq!(b.len(), 9);
    for n in [
        "plain.example",
        "hosts4.example",
        "hosts6.example",
        "local.example",
        "addr.example",
        "null.example",
        "server.example",
        "abp.example",
        "crlf.example",
        "deep.sub.plain.example",
    ] {
        assert!(b.blocks(n.as_bytes()), "{n}");
    }
    for n in [
        "example",
        "localhost",
        "xplain.example",
        "plain.example.org",
        "",
    ] {
        assert!(!b.blocks(n.as_bytes()), "{n}");
    }
    assert_eq!(
        b.verdict(b"a.b.plain.example"),
        Verdict::Blocked {
            listed: "plain.example".into(),
            file: p
        }
    );
    assert_eq!(b.verdict(b"other.example"), Verdict::NotListed);
    let s = b.sets().next().unwrap();
    assert_eq!(s.bad(), 1);
}

#[test]
fn exceptions_win() {
    let (_p_dir, p) = temp("exc", "tracker.example\nads.example\n");
    let mut b = Blocklist::new(&[p], &["ok.tracker.example".into(), "ads.example".into()]);
    b.refresh(true);
    assert!(b.blocks(b"tracker.example"));
    assert!(b.blocks(b"x.tracker.example"));
    assert!(!b.blocks(b"ok.tracker.example"));
    assert!(!b.blocks(b"a.ok.tracker.example"));
    assert!(!b.blocks(b"ads.example"));
    assert!(!b.blocks(b"sub.ads.example"));
    assert_eq!(
        b.verdict(b"a.ok.tracker.example"),
        Verdict::Allowed {
            listed: "tracker.example".into(),
            allowed: "ok.tracker.example".into()
        }
    );
}

#[test]
fn reload_replaces_only_the_changed_file() {
    let (_a_dir, a) = temp("reload-a", "a.example\n");
    let (_c_dir, c) = temp("reload-c", "c.example\n");
    let mut b = Blocklist::new(&[a.clone(), c.clone()], &[]);
    b.refresh(true);
    assert!(b.blocks(b"a.example") && b.blocks(b"c.example"));
    assert!(!b.refresh(false), "nothing changed");
    // A rename into place (new inode), as list updaters do.
    let tmp = a.with_extension("new");
    std::fs::write(&tmp, "b.example\n").unwrap();
    std::fs::rename(&tmp, &a).unwrap();
    assert!(b.refresh(false));
    assert!(!b.blocks(b"a.example") && b.blocks(b"b.example") && b.blocks(b"c.example"));
    std::fs::remove_file(&c).unwrap();
    assert!(b.refresh(false));
    assert!(!b.blocks(b"c.example"));
    assert_eq!(b.len(), 1);
}

#[test]
fn directories_and_missing_files() {
    let d = TempDir::new("bl-dir");
    let dir = d.dir().to_path_buf();
    std::fs::write(dir.join("one.list"), "one.example\n").unwrap();
    std::fs::write(dir.join("two.list"), "0.0.0.0 two.example\n").unwrap();
    let missing = dir.join("missing");
    let mut b = Blocklist::new(&[dir.clone(), missing], &[]);
    b.refresh(true);
    assert!(b.blocks(b"one.example") && b.blocks(b"two.example"));
    assert_eq!(b.len(), 2);
    match b.verdict(b"two.example") {
        Verdict::Blocked { file, .. } => assert_eq!(file, dir.join("two.list")),
        v => panic!("{v:?}"),
    }
}

#[test]
fn read_from_any_reader() {
    let data = b"one.example\nno final newline.example".to_vec();
    let s = FileSet::read(Box::new(std::io::Cursor::new(data)), "mem".as_ref()).unwrap();
    assert_eq!((s.len(), s.bad()), (1, 1));
    assert!(s.blocks(b"x.one.example"));
}

#[test]
fn empty_list_blocks_nothing() {
    let b = Blocklist::new(&[], &[]);
    assert!(b.is_empty() && !b.blocks(b"example.com"));
    assert_eq!(b.verdict(b"example.com"), Verdict::NotListed);
}

/// Repeats `line` forever, without holding more than one copy.
struct Endless {
    line: &'static [u8],
    pos: usize,
}

impl std::io::Read for Endless {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        for (i, b) in out.iter_mut().enumerate() {
            *b = self.line[(self.pos + i) % self.line.len()];
        }
        self.pos = (self.pos + out.len()) % self.line.len();
        Ok(out.len())
    }
}

#[test]
fn line_reader_lines_long_lines_and_the_size_cap() {
    use crate::localnames::watch::{LineReader, MAX_FILE_BYTES};
    let long = "x".repeat(200_000);
    let text = format!("a\r\n\nb\n{long}\nlast");
    let mut r = LineReader::new(
        Box::new(std::io::Cursor::new(text.into_bytes())),
        "t".as_ref(),
    );
    let mut got = Vec::new();
    while let Some((n, l)) = r.next_line().unwrap() {
        got.push((n, l.len()));
    }
    assert_eq!(got, vec![(1, 1), (2, 0), (3, 1), (4, 200_000), (5, 4)]);
    // A stream longer than the cap: whole lines up to it, then the end. Files get the
    // 64 MiB cap; the stream here a 1 MiB one, the same code at a size the unoptimised
    // test build streams in well under a second under qemu.
    assert_eq!(
        LineReader::new(Box::new(std::io::empty()), "e".as_ref()).cap,
        MAX_FILE_BYTES
    );
    let cap = 1 << 20;
    let line = b"ads.example\n";
    let mut r =
        LineReader::new(Box::new(Endless { line, pos: 0 }), "endless".as_ref()).with_cap(cap);
    let mut n = 0usize;
    while let Some((_, l)) = r.next_line().unwrap() {
        assert_eq!(l, b"ads.example");
        n += 1;
    }
    assert_eq!(n, cap / line.len());
}

/// Not a check: `BL_LOOKUPS=N cargo test --release -- --ignored lookup_cost` does N
/// lookups of a passed and N of a blocked 3-label name in a 100,000-domain list, to be
/// counted with `perf stat -e instructions:u` against N=0.
#[test]
#[ignore]
fn lookup_cost() {
    let n: usize = std::env::var("BL_LOOKUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let list: String = (0..100_000).map(|i| format!("ads{i}.example\n")).collect();
    let (_p_dir, p) = temp("cost", &list);
    let mut b = Blocklist::new(&[p], &[]);
    b.refresh(true);
    let mut hits = 0usize;
    for _ in 0..n {
        hits +=
            usize::from(std::hint::black_box(&b).blocks(std::hint::black_box(b"h1.bench.example")));
        hits +=
            usize::from(std::hint::black_box(&b).blocks(std::hint::black_box(b"www.ads7.example")));
    }
    assert_eq!(hits, n);
}
