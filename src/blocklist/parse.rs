//! Blocklist lines, format detected per line.
//!
//! - one domain per line: `ads.example`;
//! - hosts lines with a null or loopback address: `0.0.0.0 ads.example`,
//!   `127.0.0.1 ads.example`, `:: ads.example`, `::1 ads.example` (several names per
//!   line are fine); the usual hosts-file boilerplate (`127.0.0.1 localhost`,
//!   `255.255.255.255 broadcasthost`, `ff02::1 ip6-allnodes`, ...) is ignored: names
//!   without a dot and lines with other addresses;
//! - dnsmasq lines as adblock tools write them: `local=/ads.example/`,
//!   `server=/ads.example/`, `address=/ads.example/`, `address=/ads.example/#` and
//!   `address=/ads.example/0.0.0.0` (or `::`, `127.0.0.1`, `::1`), several domains
//!   between the slashes allowed;
//! - Adblock Plus domain rules without options: `||ads.example^`;
//! - `#` and `!` comments, blank lines, CRLF.
//!
//! Names: lowercased, one final dot and a leading `*.` dropped (a listed name covers its
//! subdomains anyway); labels of 1 to 63 letters, digits, `-` and `_`, at most 253 bytes.

use std::net::IpAddr;

/// What a line held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// One or more names (each passed to the callback).
    Names,
    /// A comment, a blank line or boilerplate: nothing to block, nothing wrong.
    Skip,
    /// Not understood (or an invalid name): counted and reported.
    Bad,
}

/// Longest name (presentation form, no final dot).
const MAX_NAME: usize = 253;

/// Bytes of a name, lowercased; `.` stays; 0 for bytes no label may hold.
static NAME_BYTE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => b,
            b'A'..=b'Z' => b + 32,
            _ => 0,
        };
        i += 1;
    }
    t
};

/// Lowercases and checks a listed name into `buf`; returns its length.
fn normalize(raw: &[u8], buf: &mut [u8; MAX_NAME]) -> Option<usize> {
    let raw = raw.strip_prefix(b"*.").unwrap_or(raw);
    let raw = raw.strip_suffix(b".").unwrap_or(raw);
    if raw.is_empty() || raw.len() > MAX_NAME {
        return None;
    }
    // One pass: check and lowercase (a million lines spend most of their time here).
    let mut label = 0usize;
    for (d, &b) in buf.iter_mut().zip(raw) {
        let c = NAME_BYTE[usize::from(b)];
        *d = c;
        if c == b'.' && label > 0 {
            label = 0;
            continue;
        }
        label += 1;
        if c == 0 || c == b'.' || label > 63 {
            return None;
        }
    }
    (label > 0).then_some(raw.len())
}

/// Passes the normalized name to `f`; false if it is invalid.
fn emit(raw: &[u8], f: &mut impl FnMut(&[u8])) -> bool {
    let mut buf = [0u8; MAX_NAME];
    match normalize(raw, &mut buf) {
        Some(n) => {
            f(buf.get(..n).unwrap_or_default());
            true
        }
        None => false,
    }
}

/// True if `raw` is a name a list may hold (`block_allow` is checked with this).
pub fn is_domain(raw: &[u8]) -> bool {
    normalize(raw, &mut [0; MAX_NAME]).is_some()
}

/// An address that means "this name does not exist here" in a hosts-style list:
/// `Some(true)`; another address: `Some(false)`; not an address: `None`.
fn is_null_addr(tok: &[u8]) -> Option<bool> {
    // Most tokens are names: only parse what could be an address. A zone
    // (`fe80::1%lo0`, hosts-file boilerplate) is dropped.
    let end = tok
        .iter()
        .position(|&b| !(b.is_ascii_hexdigit() || b == b'.' || b == b':'));
    let addr = match end {
        None => tok,
        Some(p) if tok.get(p) == Some(&b'%') => tok.get(..p).unwrap_or_default(),
        Some(_) => return None,
    };
    if addr.is_empty() || addr.len() > 45 {
        return None;
    }
    let ip: IpAddr = std::str::from_utf8(addr).ok()?.parse().ok()?;
    Some(ip.is_unspecified() || ip.is_loopback())
}

fn is_ws(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | 0x0b | 0x0c)
}

/// Parses one line (without its newline), calling `f` with every name it lists.
pub fn parse_line(line: &[u8], mut f: impl FnMut(&[u8])) -> Line {
    let body = match line.iter().position(|&b| b == b'#') {
        // `address=/name/#` keeps its `#`; anywhere else it starts a comment.
        Some(p) if !line.starts_with(b"address=/") => line.get(..p).unwrap_or_default(),
        _ => line,
    };
    let mut fields = body.split(is_ws).filter(|t| !t.is_empty());
    let Some(first) = fields.next() else {
        return Line::Skip;
    };
    if first.starts_with(b"!") {
        return Line::Skip;
    }
    let rest = fields.clone();
    let more = fields.next().is_some();
    if let Some(null) = is_null_addr(first) {
        // A hosts line.
        if !more {
            return Line::Bad;
        }
        if !null {
            return Line::Skip;
        }
        // Boilerplate (`localhost`, `0.0.0.0 0.0.0.0`) has nothing to block.
        let listed = |n: &&[u8]| n.contains(&b'.') && is_null_addr(n).is_none();
        let mut names = rest.clone().filter(listed);
        let Some(one) = names.next() else {
            return Line::Skip;
        };
        if names.next().is_none() {
            return if emit(one, &mut f) {
                Line::Names
            } else {
                Line::Bad
            };
        }
        // Several names: check every one first so a bad line blocks nothing.
        let mut buf = [0u8; MAX_NAME];
        if !rest
            .clone()
            .filter(listed)
            .all(|n| normalize(n, &mut buf).is_some())
        {
            return Line::Bad;
        }
        for name in rest.filter(listed) {
            emit(name, &mut f);
        }
        return Line::Names;
    }
    if more {
        return Line::Bad;
    }
    if let Some(r) = first.strip_prefix(b"||") {
        return match r.strip_suffix(b"^") {
            Some(name) if emit(name, &mut f) => Line::Names,
            _ => Line::Bad,
        };
    }
    for (prefix, is_address) in [
        (&b"address=/"[..], true),
        (b"local=/", false),
        (b"server=/", false),
    ] {
        if let Some(r) = first.strip_prefix(prefix) {
            return dnsmasq(r, is_address, &mut f);
        }
    }
    if first.contains(&b'=') || first.contains(&b'/') {
        return Line::Bad;
    }
    if emit(first, &mut f) {
        Line::Names
    } else {
        Line::Bad
    }
}

/// `name/.../name/TARGET` after `address=/`, `local=/` or `server=/`.
fn dnsmasq(r: &[u8], is_address: bool, f: &mut impl FnMut(&[u8])) -> Line {
    let Some(last) = r.iter().rposition(|&b| b == b'/') else {
        return Line::Bad;
    };
    let names = r.get(..last).unwrap_or_default();
    let target = r.get(last + 1..).unwrap_or_default();
    // Only targets that block: none (local only), `#` (null address) or a null or
    // loopback address; anything else redirects or forwards, which a blocklist cannot.
    let blocks =
        target.is_empty() || (is_address && (target == b"#" || is_null_addr(target) == Some(true)));
    if !blocks || names.is_empty() {
        return Line::Bad;
    }
    // Several names: check every one first so a bad line blocks nothing.
    let mut buf = [0u8; MAX_NAME];
    if names.contains(&b'/')
        && !names
            .split(|&b| b == b'/')
            .all(|n| normalize(n, &mut buf).is_some())
    {
        return Line::Bad;
    }
    for n in names.split(|&b| b == b'/') {
        if !emit(n, f) {
            return Line::Bad;
        }
    }
    Line::Names
}

#[cfg(test)]
mod tests {
    use super::{parse_line, Line};

    fn names(line: &str) -> (Line, Vec<String>) {
        let mut v = Vec::new();
        let k = parse_line(line.as_bytes(), |n| {
            v.push(String::from_utf8_lossy(n).into_owned())
        });
        (k, v)
    }

    #[test]
    fn formats() {
        let one =
            |l: &str, n: &str| assert_eq!(names(l), (Line::Names, vec![n.to_string()]), "{l}");
        one("ads.example", "ads.example");
        one("  Ads.Example.  # comment\r", "ads.example");
        one("*.ads.example", "ads.example");
        one("0.0.0.0 ads.example", "ads.example");
        one("127.0.0.1\tads.example # x", "ads.example");
        one(":: ads.example", "ads.example");
        one("::1 ads.example", "ads.example");
        one("local=/ads.example/", "ads.example");
        one("server=/ads.example/", "ads.example");
        one("address=/ads.example/", "ads.example");
        one("address=/ads.example/#", "ads.example");
        one("address=/ads.example/0.0.0.0", "ads.example");
        one("address=/ads.example/::", "ads.example");
        one("||ads.example^", "ads.example");
        one("tld", "tld");
        assert_eq!(
            names("address=/a.example/b.example/#"),
            (Line::Names, vec!["a.example".into(), "b.example".into()])
        );
        assert_eq!(
            names("0.0.0.0 a.example B.example"),
            (Line::Names, vec!["a.example".into(), "b.example".into()])
        );
    }

    #[test]
    fn skipped_and_bad() {
        for l in [
            "",
            "   ",
            "# comment",
            "! adblock comment",
            "127.0.0.1 localhost",
            "::1 ip6-localhost ip6-loopback",
            "255.255.255.255 broadcasthost",
            "ff02::1 ip6-allnodes",
            "fe80::1%lo0 localhost",
            "192.168.1.1 router.lan",
            "0.0.0.0 0.0.0.0",
        ] {
            assert_eq!(names(l).0, Line::Skip, "{l:?}");
        }
        for l in [
            "0.0.0.0",
            "bad name.example",
            "ads..example",
            "ads.example/path",
            "http://ads.example",
            "server=/corp.example/10.0.0.1",
            "address=/ads.example/192.0.2.1",
            "address=//",
            "local=/ads.example",
            "local=/bad..name/",
            "address=/ok.example/bad..name/",
            "||ads.example^$third-party",
            "0.0.0.0 ok.example bad..example",
            "\u{e9}.example",
        ] {
            assert_eq!(names(l), (Line::Bad, vec![]), "{l:?}");
        }
        let long = format!("{}.example", "a".repeat(64));
        assert_eq!(names(&long).0, Line::Bad);
        let deep = ["a"; 130].join(".");
        assert_eq!(names(&deep).0, Line::Bad);
    }
}
