//! hosts(5)-style files: `/etc/hosts`, `/tmp/hosts/*`, odhcpd's hosts file and state file.
//!
//! Syntax: an address, then one or more names; `#` starts a comment (also
//! after data); fields are separated by spaces and/or tabs; CRLF line endings
//! and a missing final newline are accepted. Names are validated and stored
//! lowercased; a trailing dot on a name is dropped.
//!
//! Decisions:
//! - A line whose address is unparsable, or carries an IPv6 zone
//!   (`fe80::1%eth0`: a zone has no meaning in a DNS answer), or that has no
//!   names, is skipped with a warning. Invalid names on an otherwise good line
//!   are dropped individually (one warning for the line); the valid ones stay.
//! - The first name on a line is the canonical one (the PTR answer).
//! - odhcpd's state file (`option leasefile`, on older OpenWrt
//!   `/tmp/hosts/odhcpd`) interleaves hosts lines with `# iface duid iaid
//!   hostname valid-until hostid length addr/len...` lines. Those comment
//!   lines, when they match that shape exactly, give the hosts lines *of the
//!   same file* for those addresses their lease expiry (`-1` = infinite, `0`
//!   = already expired). Other comments are ignored.

use std::net::IpAddr;
use std::path::Path;

use super::parsed::Parsed;
use super::syntax::{
    clip, fields, is_hex, lines, parse_i64, parse_ip, parse_u64, strip_comment, trim_start, Warner,
};
use super::table::NEVER;

/// Parses a hosts-style file held in memory.
pub(crate) fn parse(data: &[u8], path: &Path) -> Parsed {
    let mut hp = Parser::new(path);
    for (lineno, line) in lines(data) {
        hp.line(lineno, line);
    }
    hp.finish()
}

/// A hosts-style file parsed line by line, as it is read.
pub(crate) struct Parser<'a> {
    p: Parsed,
    w: Warner<'a>,
    /// (address, expiry) from odhcpd state lines; usually empty.
    state: Vec<(IpAddr, u64)>,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(path: &'a Path) -> Self {
        Parser {
            p: Parsed::default(),
            w: Warner::new(path),
            state: Vec::new(),
        }
    }

    /// One line (1-based number, no newline).
    pub(crate) fn line(&mut self, lineno: usize, line: &[u8]) {
        let t = trim_start(line);
        if let Some(c) = t.strip_prefix(b"#") {
            odhcpd_state_line(c, &mut self.state);
            return;
        }
        let body = strip_comment(t);
        let mut it = fields(body);
        let Some(addr_tok) = it.next() else { return };
        let addr = match parse_ip(addr_tok) {
            Some(a) => a,
            None => {
                if addr_tok.contains(&b'%') {
                    self.w.warn(
                        lineno,
                        format_args!(
                            "IPv6 zone index not supported, line skipped: {}",
                            clip(addr_tok, 64).escape_ascii()
                        ),
                    );
                } else {
                    self.w.warn(
                        lineno,
                        format_args!(
                            "bad address, line skipped: {}",
                            clip(addr_tok, 64).escape_ascii()
                        ),
                    );
                }
                return;
            }
        };
        let mut good = 0usize;
        let mut bad: Option<&[u8]> = None;
        for name in it {
            if self.p.push(name, addr, NEVER, good == 0) {
                good += 1;
            } else if bad.is_none() {
                bad = Some(name);
            }
        }
        if let Some(b) = bad {
            self.w.warn(
                lineno,
                format_args!("invalid host name skipped: {}", clip(b, 64).escape_ascii()),
            );
        } else if good == 0 {
            self.w
                .warn(lineno, format_args!("address without names, line skipped"));
        }
    }

    /// Applies the odhcpd lease times and returns the records.
    pub(crate) fn finish(self) -> Parsed {
        let Parser {
            mut p,
            w,
            mut state,
        } = self;
        if !state.is_empty() {
            super::table::sort_by(&mut state, |x, y| {
                (x.0, std::cmp::Reverse(x.1)) < (y.0, std::cmp::Reverse(y.1))
            });
            state.dedup_by_key(|&mut (a, _)| a);
            p.map_exp(|r| match state.binary_search_by_key(&r.addr, |&(a, _)| a) {
                Ok(i) => state.get(i).map_or(r.exp, |&(_, exp)| exp),
                Err(_) => r.exp,
            });
        }
        p.shrink();
        p.bad = w.finish();
        p
    }
}

/// Recognises an odhcpd state line (the text after the leading `#`):
/// `iface duid iaid|ipv4 hostname valid hostid length addr/len...`, and
/// records the expiry of its full-length addresses (`/32`, `/128`; shorter
/// ones are delegated prefixes, not host addresses). Returns true if the
/// line had that shape.
pub(crate) fn odhcpd_state_line(c: &[u8], out: &mut Vec<(IpAddr, u64)>) -> bool {
    let mut f = fields(c);
    let (Some(_iface), Some(_duid), Some(iaid), Some(_host), Some(valid), Some(hostid), Some(len)) = (
        f.next(),
        f.next(),
        f.next(),
        f.next(),
        f.next(),
        f.next(),
        f.next(),
    ) else {
        return false;
    };
    if !(iaid == b"ipv4" || is_hex(iaid)) || !is_hex(hostid) {
        return false;
    }
    let (Some(valid), Some(_len)) = (parse_i64(valid), parse_u64(len)) else {
        return false;
    };
    let exp = match valid {
        v if v < 0 => NEVER,
        // 0 = expired; positive = wall-clock expiry.
        v => u64::try_from(v).unwrap_or(0),
    };
    let start = out.len();
    for a in f {
        let Some(slash) = a.iter().position(|&b| b == b'/') else {
            out.truncate(start);
            return false;
        };
        let (ip, plen) = (
            a.get(..slash).unwrap_or(&[]),
            a.get(slash + 1..).unwrap_or(&[]),
        );
        let (Some(ip), Some(plen)) = (parse_ip(ip), parse_u64(plen)) else {
            out.truncate(start);
            return false;
        };
        let full = match ip {
            IpAddr::V4(_) => plen == 32,
            IpAddr::V6(_) => plen == 128,
        };
        if full {
            out.push((ip, exp));
        }
    }
    true
}
