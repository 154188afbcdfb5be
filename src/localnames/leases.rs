//! DHCP lease files: format detection, dnsmasq leases and ISC dhcpd.leases.
//!
//! The format is detected per file from its content (see [`detect`]), so one
//! `leasefile` list can mix servers. odhcpd's outputs are hosts-style and are
//! handled by [`super::hosts`].
//!
//! Lease host names are bare names: a name sent as `laptop.corp.example` is
//! registered as `laptop`. Expiry times are UNIX seconds; expired records are
//! kept in the parse result and filtered when the table is built and at
//! lookup time, so a lease that runs out mid-run stops answering without a
//! reload.

use std::io;
use std::net::IpAddr;
use std::path::Path;

use super::hosts;
use super::parsed::Parsed;
use super::syntax::{clip, fields, lease_label, lines, parse_ip, parse_u64, trim_start, Warner};
use super::table::NEVER;
use super::watch::LineReader;

/// Lease-file flavours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// dnsmasq `dhcp-leasefile`: `expiry mac ip hostname client-id`, IPv6
    /// lines after a `duid` line.
    Dnsmasq,
    /// ISC dhcpd `dhcpd.leases`.
    Isc,
    /// hosts-style (odhcpd hostsfile / statefile).
    Hosts,
}

/// Top-level statements of dhcpd.leases(5).
const ISC_WORDS: &[&[u8]] = &[
    b"lease",
    b"host",
    b"ia-na",
    b"ia-ta",
    b"ia-pd",
    b"server-duid",
    b"authoring-byte-order",
    b"failover",
    b"class",
    b"subclass",
    b"db-time-format",
];

/// Detects the format from the first decisive line: a leading integer or a
/// `duid` line is dnsmasq, an ISC keyword is dhcpd.leases, an address or an
/// odhcpd state comment is hosts-style. Other comments and blank lines are
/// skipped; a file with nothing decisive is treated as hosts-style.
pub(crate) fn detect(data: &[u8]) -> Format {
    let mut scratch = Vec::new();
    lines(data)
        .find_map(|(_, line)| line_format(line, &mut scratch))
        .unwrap_or(Format::Hosts)
}

/// The format a line decides, `None` for a comment or blank line that does not.
fn line_format(line: &[u8], scratch: &mut Vec<(IpAddr, u64)>) -> Option<Format> {
    let t = trim_start(line);
    if let Some(c) = t.strip_prefix(b"#") {
        scratch.clear();
        return hosts::odhcpd_state_line(c, scratch).then_some(Format::Hosts);
    }
    let first = fields(t).next()?;
    if first == b"duid" || parse_u64(first).is_some() {
        return Some(Format::Dnsmasq);
    }
    if ISC_WORDS.contains(&first) || first.contains(&b'{') {
        return Some(Format::Isc);
    }
    // An address (odhcpd hostsfile) or anything unrecognised.
    Some(Format::Hosts)
}

/// Parses a lease file of any supported format.
#[allow(dead_code)]
pub(crate) fn parse(data: &[u8], path: &Path) -> Parsed {
    match detect(data) {
        Format::Dnsmasq => parse_dnsmasq(data, path),
        Format::Isc => parse_isc(data, path),
        Format::Hosts => hosts::parse(data, path),
    }
}

/// Parses a lease file as it is read, line by line: the first decisive line
/// sets the format (the lines before it are comments and blanks, which no
/// format uses). dnsmasq and hosts-style files are parsed line by line; an
/// ISC file, whose statements span lines, one statement or block at a time.
pub(crate) fn parse_lines(r: &mut LineReader, path: &Path) -> io::Result<Parsed> {
    let mut scratch = Vec::new();
    let mut format = None;
    let mut isc = IscParser::new(path);
    let mut hp = None;
    let mut dp = Parsed::default();
    let mut w = Warner::new(path);
    while let Some((n, line)) = r.next_line()? {
        let f = match format {
            Some(f) => f,
            None => {
                let Some(f) = line_format(line, &mut scratch) else {
                    continue;
                };
                format = Some(f);
                f
            }
        };
        match f {
            Format::Dnsmasq => dnsmasq_line(&mut dp, &mut w, n, line),
            Format::Hosts => hp
                .get_or_insert_with(|| hosts::Parser::new(path))
                .line(n, line),
            Format::Isc => isc.line(n, line),
        }
    }
    Ok(match format {
        Some(Format::Isc) => isc.finish(),
        Some(Format::Hosts) => hp.map_or_else(Parsed::default, |h| h.finish()),
        _ => {
            dp.shrink();
            dp.bad = w.finish();
            dp
        }
    })
}

/// One line of a dnsmasq lease file (see [`parse_dnsmasq`]).
fn dnsmasq_line(p: &mut Parsed, w: &mut Warner, lineno: usize, line: &[u8]) {
    let mut f = fields(line);
    let Some(first) = f.next() else { return };
    if first == b"duid" || first.starts_with(b"#") {
        return;
    }
    let (Some(exp), Some(_id), Some(ip), Some(host)) =
        (parse_u64(first), f.next(), f.next(), f.next())
    else {
        w.warn(lineno, format_args!("malformed dnsmasq lease line skipped"));
        return;
    };
    let Some(addr) = parse_ip(ip) else {
        w.warn(
            lineno,
            format_args!("bad lease address skipped: {}", clip(ip, 64).escape_ascii()),
        );
        return;
    };
    if host == b"*" {
        return;
    }
    let exp = if exp == 0 { NEVER } else { exp };
    if !p.push(lease_label(host), addr, exp, true) {
        w.warn(
            lineno,
            format_args!(
                "invalid lease host name skipped: {}",
                clip(host, 64).escape_ascii()
            ),
        );
    }
}

/// dnsmasq: `<expiry> <mac> <ip> <hostname> <client-id>`; after a
/// `duid <server-duid>` line, IPv6 leases `<expiry> <[T]iaid> <ip6> <hostname>
/// <client-duid>`. Expiry 0 = infinite; hostname `*` = none.
pub(crate) fn parse_dnsmasq(data: &[u8], path: &Path) -> Parsed {
    let mut p = Parsed::default();
    let mut w = Warner::new(path);
    for (lineno, line) in lines(data) {
        dnsmasq_line(&mut p, &mut w, lineno, line);
    }
    p.shrink();
    p.bad = w.finish();
    p
}

// ---------------------------------------------------------------------------
// ISC dhcpd.leases

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok<'a> {
    Word(&'a [u8]),
    Str(&'a [u8]),
    Open,
    Close,
    Semi,
}

/// Tokenizer for dhcpd.leases: words, quoted strings (backslash escapes),
/// `{`, `}`, `;`, `#` comments to end of line. Tracks line numbers.
struct Lexer<'a> {
    data: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Lexer<'a> {
    fn peek_byte(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    fn next_tok(&mut self) -> Option<Tok<'a>> {
        loop {
            let b = self.peek_byte()?;
            if b == b'\n' {
                self.line += 1;
                self.pos += 1;
            } else if super::syntax::is_ws(b) {
                self.pos += 1;
            } else if b == b'#' {
                while let Some(c) = self.peek_byte() {
                    if c == b'\n' {
                        break;
                    }
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
        let b = self.peek_byte()?;
        let start = self.pos;
        self.pos += 1;
        match b {
            b'{' => Some(Tok::Open),
            b'}' => Some(Tok::Close),
            b';' => Some(Tok::Semi),
            b'"' => {
                let s = self.pos;
                let mut esc = false;
                while let Some(c) = self.peek_byte() {
                    if c == b'\n' {
                        self.line += 1;
                    }
                    if esc {
                        esc = false;
                    } else if c == b'\\' {
                        esc = true;
                    } else if c == b'"' {
                        let v = self.data.get(s..self.pos).unwrap_or(&[]);
                        self.pos += 1;
                        return Some(Tok::Str(v));
                    }
                    self.pos += 1;
                }
                Some(Tok::Str(self.data.get(s..self.pos).unwrap_or(&[])))
            }
            _ => {
                while let Some(c) = self.peek_byte() {
                    if super::syntax::is_ws(c) || matches!(c, b'{' | b'}' | b';' | b'"' | b'#') {
                        break;
                    }
                    self.pos += 1;
                }
                Some(Tok::Word(self.data.get(start..self.pos).unwrap_or(&[])))
            }
        }
    }

    /// Skips the rest of a `{ ... }` block whose `{` was just read.
    fn skip_block(&mut self) {
        let mut depth = 1u32;
        while let Some(t) = self.next_tok() {
            match t {
                Tok::Open => depth = depth.saturating_add(1),
                Tok::Close => {
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }
}

/// Statement tokens kept for inspection (enough for every statement we read).
const STMT_MAX: usize = 8;

/// A statement being collected: the first [`STMT_MAX`] tokens and the line it started on.
struct Stmt<'a> {
    toks: [Tok<'a>; STMT_MAX],
    n: usize,
    line: usize,
}

impl<'a> Stmt<'a> {
    fn new() -> Self {
        Stmt {
            toks: [Tok::Semi; STMT_MAX],
            n: 0,
            line: 0,
        }
    }
    fn push(&mut self, t: Tok<'a>, line: usize) {
        if self.n == 0 {
            self.line = line;
        }
        if let Some(slot) = self.toks.get_mut(self.n) {
            *slot = t;
        }
        self.n = self.n.saturating_add(1);
    }
    fn get(&self) -> &[Tok<'a>] {
        self.toks.get(..self.n.min(STMT_MAX)).unwrap_or(&[])
    }
    fn clear(&mut self) {
        self.n = 0;
    }
}

/// What a lease block said about itself.
struct LeaseInfo<'a> {
    ends: Option<u64>,
    active: bool,
    client_hostname: Option<&'a [u8]>,
    hostname: Option<&'a [u8]>,
    bad_time: bool,
}

/// ISC dhcpd.leases: `lease <ip> { ... }` blocks. A block counts if its
/// `binding state` is `active` (or absent, as in old files); `ends never;` is
/// infinite, `ends epoch N;` and `ends W YYYY/MM/DD HH:MM:SS;` (UTC) are
/// expiries. The name is `client-hostname`, else `hostname`. A later block
/// for the same address replaces an earlier one (dhcpd appends). Other
/// top-level statements and blocks (`ia-na`, `host`, `failover`, ...) are
/// skipped.
pub(crate) fn parse_isc(data: &[u8], path: &Path) -> Parsed {
    let mut ip = IscParser::new(path);
    for (n, line) in lines(data) {
        ip.line(n, line);
    }
    ip.finish()
}

/// dhcpd.leases parsed as it is read: lines are gathered only until they
/// complete a top-level statement or block (brace depth back to 0 after a `;`
/// or `}`, counted outside quoted strings and `#` comments), which is then
/// parsed and dropped. The chunk is bounded by the reader's size cap, like a
/// line; a block still open at the end of the input (dhcpd appending, or the
/// cap reached) is ignored.
pub(crate) struct IscParser<'a> {
    p: Parsed,
    w: Warner<'a>,
    /// Every lease block in file order: (address, position, index of its record in p or
    /// usize::MAX if it has no usable name / is not active). The latest block per address
    /// wins; sorting this list at the end finds the earlier ones (a sort rather than a hash
    /// map: the router binary has no other map of this type to share the code with).
    blocks: Vec<(IpAddr, usize, usize)>,
    /// The statement being gathered, lines joined by `\n`, and its first line number.
    chunk: Vec<u8>,
    first: usize,
    depth: u32,
    in_str: bool,
    esc: bool,
    /// The chunk ends at a statement boundary (nothing but `;`, `}`, blanks and comments since).
    whole: bool,
}

impl<'a> IscParser<'a> {
    pub(crate) fn new(path: &'a Path) -> Self {
        IscParser {
            p: Parsed::default(),
            w: Warner::new(path),
            blocks: Vec::new(),
            chunk: Vec::new(),
            first: 0,
            depth: 0,
            in_str: false,
            esc: false,
            whole: true,
        }
    }

    /// Takes line `n`; parses the chunk once it holds whole statements.
    pub(crate) fn line(&mut self, n: usize, line: &[u8]) {
        if self.chunk.is_empty() {
            self.first = n;
        }
        self.chunk.extend_from_slice(line);
        self.chunk.push(b'\n');
        // The lexer's view of quotes, escapes and comments, for the depth only.
        for &b in line {
            if self.in_str {
                if self.esc {
                    self.esc = false;
                } else if b == b'\\' {
                    self.esc = true;
                } else if b == b'"' {
                    self.in_str = false;
                }
                continue;
            }
            match b {
                b'#' => break,
                b'"' => (self.in_str, self.whole) = (true, false),
                b'{' => (self.depth, self.whole) = (self.depth.saturating_add(1), false),
                b'}' => {
                    self.depth = self.depth.saturating_sub(1);
                    self.whole = self.depth == 0;
                }
                b';' => self.whole = self.depth == 0,
                _ if super::syntax::is_ws(b) => {}
                _ => self.whole = false,
            }
        }
        if self.in_str {
            // The newline belongs to the string (an escaped one too).
            self.esc = false;
        } else if self.whole && self.depth == 0 {
            self.parse_chunk();
        }
    }

    /// Parses the chunk gathered so far and empties it.
    fn parse_chunk(&mut self) {
        let mut lx = Lexer {
            data: &self.chunk,
            pos: 0,
            line: self.first,
        };
        let (p, w, blocks) = (&mut self.p, &mut self.w, &mut self.blocks);
        let mut st = Stmt::new();
        while let Some(t) = lx.next_tok() {
            match t {
                Tok::Semi => st.clear(),
                Tok::Close => st.clear(), // stray
                Tok::Open => {
                    let toks = st.get();
                    let line = st.line;
                    let is_lease = matches!(toks.first(), Some(Tok::Word(b"lease")));
                    if !is_lease {
                        lx.skip_block();
                        st.clear();
                        continue;
                    }
                    let addr = match toks.get(1) {
                        Some(Tok::Word(a)) if st.n == 2 => parse_ip(a),
                        _ => None,
                    };
                    let info = lease_block(&mut lx);
                    st.clear();
                    let Some(info) = info else {
                        // Cut off mid-block (file being appended to): ignored.
                        break;
                    };
                    let Some(addr) = addr else {
                        w.warn(line, format_args!("lease block with a bad address skipped"));
                        continue;
                    };
                    if info.bad_time {
                        w.warn(
                            line,
                            format_args!("lease {addr}: unreadable 'ends' time, block skipped"),
                        );
                        continue;
                    }
                    let host = info.client_hostname.or(info.hostname).map(lease_label);
                    let mut new_idx = usize::MAX;
                    if info.active {
                        if let Some(h) = host {
                            let exp = info.ends.unwrap_or(NEVER);
                            if p.push(h, addr, exp, true) {
                                new_idx = p.len() - 1;
                            } else {
                                w.warn(
                                    line,
                                    format_args!(
                                        "lease {addr}: invalid host name skipped: {}",
                                        clip(h, 64).escape_ascii()
                                    ),
                                );
                            }
                        }
                    }
                    blocks.push((addr, blocks.len(), new_idx));
                }
                other => st.push(other, lx.line),
            }
        }
        // The buffer is kept for the next chunk.
        self.chunk.clear();
    }

    /// Parses what is left (a cut-off block is ignored) and drops the earlier
    /// blocks of each address.
    pub(crate) fn finish(mut self) -> Parsed {
        self.parse_chunk();
        let mut p = self.p;
        let mut blocks = self.blocks;
        super::table::sort_by(&mut blocks, |x, y| x < y);
        let mut dead: Vec<usize> = blocks
            .windows(2)
            .filter(|w| w[0].0 == w[1].0 && w[0].2 != usize::MAX)
            .map(|w| w[0].2)
            .collect();
        if !dead.is_empty() {
            super::table::sort_by(&mut dead, |x, y| x < y);
            let mut k = 0usize;
            p.retain(|idx, _| {
                let keep = dead.get(k) != Some(&idx);
                if !keep {
                    k += 1;
                }
                keep
            });
        }
        p.shrink();
        p.bad = self.w.finish();
        p
    }
}

/// The whole input as one chunk, lexed in one pass (the reference the
/// statement-at-a-time reading is checked against).
#[cfg(test)]
pub(crate) fn parse_isc_one_chunk(data: &[u8], path: &Path) -> Parsed {
    let mut ip = IscParser::new(path);
    ip.chunk = data.to_vec();
    ip.first = 1;
    ip.finish()
}

/// Reads a lease block body (after its `{`) up to the matching `}`;
/// `None` if the file ends first.
fn lease_block<'a>(lx: &mut Lexer<'a>) -> Option<LeaseInfo<'a>> {
    let mut info = LeaseInfo {
        ends: None,
        active: true,
        client_hostname: None,
        hostname: None,
        bad_time: false,
    };
    let mut st = Stmt::new();
    while let Some(t) = lx.next_tok() {
        match t {
            Tok::Close => return Some(info),
            Tok::Open => {
                lx.skip_block();
                st.clear();
            }
            Tok::Semi => {
                lease_stmt(st.get(), st.n, &mut info);
                st.clear();
            }
            other => st.push(other, lx.line),
        }
    }
    None
}

fn lease_stmt<'a>(toks: &[Tok<'a>], n: usize, info: &mut LeaseInfo<'a>) {
    match toks {
        [Tok::Word(b"ends"), rest @ ..] if n == toks.len() => match rest {
            [Tok::Word(b"never")] => info.ends = Some(NEVER),
            [Tok::Word(b"epoch"), Tok::Word(s)] => match parse_u64(s) {
                Some(v) => info.ends = Some(v),
                None => info.bad_time = true,
            },
            [Tok::Word(_wday), Tok::Word(date), Tok::Word(time)] => match parse_utc(date, time) {
                Some(v) => info.ends = Some(v),
                None => info.bad_time = true,
            },
            _ => info.bad_time = true,
        },
        [Tok::Word(b"binding"), Tok::Word(b"state"), Tok::Word(s)] => {
            info.active = matches!(*s, b"active" | b"bootp");
        }
        [Tok::Word(b"client-hostname"), Tok::Str(s)] => info.client_hostname = Some(*s),
        [Tok::Word(b"hostname"), Tok::Str(s)] => info.hostname = Some(*s),
        _ => {}
    }
}

/// `YYYY/MM/DD` `HH:MM:SS` (UTC) → UNIX seconds. Times before 1970 give 0.
pub(crate) fn parse_utc(date: &[u8], time: &[u8]) -> Option<u64> {
    let mut d = date.split(|&b| b == b'/');
    let (Some(y), Some(m), Some(dd), None) = (d.next(), d.next(), d.next(), d.next()) else {
        return None;
    };
    let mut t = time.split(|&b| b == b':');
    let (Some(h), Some(mi), Some(s), None) = (t.next(), t.next(), t.next(), t.next()) else {
        return None;
    };
    let (y, m, dd) = (parse_u64(y)?, parse_u64(m)?, parse_u64(dd)?);
    let (h, mi, s) = (parse_u64(h)?, parse_u64(mi)?, parse_u64(s)?);
    if !(1..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&dd) {
        return None;
    }
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(y as i64, m as i64, dd as i64);
    let secs = days * 86_400 + (h * 3600 + mi * 60 + s) as i64;
    Some(u64::try_from(secs).unwrap_or(0))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
