//! Shared low-level text helpers: lines, fields, names, addresses, capped warnings.
//!
//! Everything here works on raw bytes (files may hold invalid UTF-8 or NUL
//! bytes) and never panics: no `unwrap`, no unchecked indexing.

use std::net::IpAddr;
use std::path::Path;

/// Longest name accepted (presentation form, without trailing dot).
pub(crate) const MAX_NAME: usize = 253;
/// Longest label accepted.
pub(crate) const MAX_LABEL: usize = 63;
/// Individual warnings logged per file before switching to a summary count.
pub(crate) const WARN_CAP: u32 = 10;

/// Whitespace as hosts(5) and the lease formats understand it.
#[inline]
pub(crate) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c)
}

/// Iterates over the lines of `data` as `(line_number, line)`, 1-based,
/// with a trailing `\r` (CRLF files) removed. A missing final newline is fine.
pub(crate) fn lines(data: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let empty = data.is_empty();
    body.split(|&b| b == b'\n')
        .enumerate()
        .filter(move |_| !empty)
        .map(|(i, l)| (i + 1, l.strip_suffix(b"\r").unwrap_or(l)))
}

/// Splits a line into whitespace-separated, non-empty fields.
pub(crate) fn fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&b| is_ws(b)).filter(|f| !f.is_empty())
}

/// The part of a line before the first `#`.
pub(crate) fn strip_comment(line: &[u8]) -> &[u8] {
    match line.iter().position(|&b| b == b'#') {
        Some(p) => line.get(..p).unwrap_or(line),
        None => line,
    }
}

/// Leading whitespace removed.
pub(crate) fn trim_start(line: &[u8]) -> &[u8] {
    match line.iter().position(|&b| !is_ws(b)) {
        Some(p) => line.get(p..).unwrap_or(&[]),
        None => &[],
    }
}

/// At most `n` bytes of `s`, for log messages.
pub(crate) fn clip(s: &[u8], n: usize) -> &[u8] {
    s.get(..n).unwrap_or(s)
}

/// Parses an IPv4 or IPv6 address token (no zone, no prefix length).
pub(crate) fn parse_ip(tok: &[u8]) -> Option<IpAddr> {
    if tok.is_empty() || tok.len() > 45 {
        return None;
    }
    std::str::from_utf8(tok).ok()?.parse::<IpAddr>().ok()
}

/// Parses an unsigned decimal (digits only, no sign).
pub(crate) fn parse_u64(tok: &[u8]) -> Option<u64> {
    if tok.is_empty() || tok.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in tok {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// Parses a signed decimal (`-1`, `0`, `1764151200`).
pub(crate) fn parse_i64(tok: &[u8]) -> Option<i64> {
    match tok.strip_prefix(b"-") {
        Some(rest) => {
            let v = parse_u64(rest)?;
            i64::try_from(v).ok().map(|v| -v)
        }
        None => i64::try_from(parse_u64(tok)?).ok(),
    }
}

/// True if `tok` is one or more hex digits.
pub(crate) fn is_hex(tok: &[u8]) -> bool {
    !tok.is_empty() && tok.iter().all(|b| b.is_ascii_hexdigit())
}

#[inline]
fn label_byte_ok(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// True if `name` (no trailing dot) is a valid host name: labels of 1–63
/// letters, digits, `-`, `_`; total at most 253.
pub(crate) fn valid_name(name: &[u8]) -> bool {
    if name.is_empty() || name.len() > MAX_NAME {
        return false;
    }
    name.split(|&b| b == b'.')
        .all(|l| !l.is_empty() && l.len() <= MAX_LABEL && l.iter().all(|&b| label_byte_ok(b)))
}

/// A lease host name reduced to its first label (leases carry bare names; a
/// client that sends `laptop.corp.example` is registered as `laptop`).
pub(crate) fn lease_label(raw: &[u8]) -> &[u8] {
    match raw.iter().position(|&b| b == b'.') {
        Some(p) => raw.get(..p).unwrap_or(raw),
        None => raw,
    }
}

/// Per-file warning limiter: the first [`WARN_CAP`] problems are logged with
/// `file:line`, the rest only counted and summarised by [`Warner::finish`].
pub(crate) struct Warner<'a> {
    path: &'a Path,
    count: u32,
}

impl<'a> Warner<'a> {
    pub(crate) fn new(path: &'a Path) -> Self {
        Warner { path, count: 0 }
    }

    pub(crate) fn warn(&mut self, line: usize, what: std::fmt::Arguments<'_>) {
        if self.count < WARN_CAP {
            log::warn!("{}:{}: {}", self.path.display(), line, what);
        }
        self.count = self.count.saturating_add(1);
    }

    /// Logs the summary line if warnings were suppressed; returns the total.
    pub(crate) fn finish(self) -> u32 {
        if self.count > WARN_CAP {
            log::warn!(
                "{}: {} more malformed entries skipped (only the first {} reported)",
                self.path.display(),
                self.count - WARN_CAP,
                WARN_CAP
            );
        }
        self.count
    }
}
