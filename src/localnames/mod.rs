//! Local names: hosts files and DHCP lease files merged into one lookup table.
//!
//! [`LocalNames`] owns the configured sources (`list hosts`, `list
//! leasefile`), re-reads them when they change ([`LocalNames::poll`], about
//! once a second from the event loop) or on demand ([`LocalNames::reload_all`],
//! SIGHUP), and answers forward ([`LocalNames::lookup_name`]) and reverse
//! ([`LocalNames::lookup_addr`]) queries from a table rebuilt after every
//! change. It does no I/O at lookup time and never touches the DNS cache.
//!
//! Sources:
//! - hosts(5) files, or directories of them (`hosts.rs`, `watch.rs`);
//! - lease files, format detected per file: dnsmasq, ISC dhcpd.leases, or
//!   odhcpd's hosts-style host file / state file (`leases.rs`).
//!
//! Semantics:
//! - Names are stored lowercased; several addresses per name, deduplicated.
//! - Lease names expire with their lease: lookups compare against `now_wall`
//!   (UNIX seconds), so an expired lease stops answering without a reload;
//!   `poll` also rebuilds the table when the earliest expiry passes.
//! - With `domain` (e.g. `lan`), every name without a dot (`nas`) also
//!   answers as `nas.lan`, and PTR answers give `nas.lan`.
//! - Two layers, as in dnsmasq: names from hosts files win. A name found in
//!   any hosts file is answered from the hosts files only (a lease claiming
//!   the same name is not merged in); lease names answer when no hosts file
//!   has the name. Within a layer, every source's addresses for a name are
//!   merged. Each layer is rebuilt only when its own files change, so a
//!   lease renewal does not re-index a 50,000-line hosts file. A lease whose
//!   name is shadowed that way gives no PTR answer either.
//! - PTR: the first canonical name for the address (first name on a hosts
//!   line, a lease's host name) in configuration order, hosts layer first,
//!   skipping expired ones.
//! - Files are never fatal: missing ones contribute nothing until they
//!   appear, malformed lines are skipped with a capped number of warnings.

mod hosts;
mod leases;
mod parsed;
mod reverse;
mod syntax;
mod table;
pub(crate) mod watch;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

pub use reverse::{is_private_reverse, parse_ptr_name};
// Optional helpers below carry `allow(dead_code)`/`allow(unused_imports)`: the
// daemon (a binary crate) may not call all of them.
#[allow(unused_imports)]
pub use reverse::reverse_name;

use parsed::Parsed;
use table::{Table, NEVER};
use watch::{Content, Kind, LineReader, Source};

/// Which files to read, and the local domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalConfig {
    /// hosts files or directories of hosts files (`list hosts`).
    pub hosts: Vec<PathBuf>,
    /// DHCP lease files (`list leasefile`), any supported format.
    pub leasefiles: Vec<PathBuf>,
    /// `option domain`: appended to names without a dot.
    pub domain: Option<String>,
}

/// Addresses of a local name, borrowed from the table. Either slice may be
/// empty (the name exists but lacks that type: answer NODATA).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAnswer<'a> {
    /// A records: still-valid ones only, latest expiry first, then file order.
    pub v4: &'a [Ipv4Addr],
    /// AAAA records: still-valid ones only, latest expiry first, then file order.
    pub v6: &'a [Ipv6Addr],
}

/// The merged local-names table and the sources it is built from.
#[derive(Debug)]
pub struct LocalNames {
    /// `list hosts`: wins over leases.
    hosts: Layer,
    /// `list leasefile`.
    leases: Layer,
    domain: Option<Vec<u8>>,
}

/// Lowercases and checks `option domain`; dots at either end are dropped.
fn normalize_domain(d: &str) -> Option<Vec<u8>> {
    let t = d.trim().trim_matches('.');
    if t.is_empty() {
        return None;
    }
    let v: Vec<u8> = t.bytes().map(|b| b.to_ascii_lowercase()).collect();
    if syntax::valid_name(&v) {
        Some(v)
    } else {
        log::warn!("option domain '{}' is not a valid domain name; ignored", d);
        None
    }
}

/// True if `q` equals `zone` or ends with `.zone`.
#[allow(dead_code)]
fn in_zone(q: &[u8], zone: &[u8]) -> bool {
    match q.len().checked_sub(zone.len()) {
        Some(0) => q == zone,
        Some(cut) => q.get(cut..) == Some(zone) && q.get(cut - 1) == Some(&b'.'),
        None => false,
    }
}

/// One precedence layer: its sources and the table built from them.
#[derive(Debug, Default)]
struct Layer {
    sources: Vec<Source>,
    table: Table,
}

impl Layer {
    /// Refreshes the sources (all of them re-read if `force`) and rebuilds
    /// the table if anything changed, if `force`, or if a record expired.
    /// Returns true if the table was rebuilt.
    fn update(&mut self, force: bool, domain: Option<&[u8]>, now: u64) -> bool {
        let mut changed = false;
        // A file about to be parsed again frees the table first (nothing is
        // looked up during the update), so a reload holds neither two
        // tables nor the new file's records next to the old table.
        let mut dropped = false;
        let table = &mut self.table;
        let mut free_table = || {
            if !dropped {
                *table = Table::default();
                dropped = true;
            }
        };
        for s in &mut self.sources {
            changed |= s.refresh_then(force, &mut free_table);
        }
        if changed || force || dropped || now >= self.table.next_expiry() {
            // The old table goes first: a rebuild never holds two tables at once.
            self.table = Table::default();
            self.table = Table::build(
                self.sources.iter().flat_map(|s| s.parsed::<Parsed>()),
                domain,
                now,
            );
            true
        } else {
            false
        }
    }
}

impl LocalNames {
    /// Sets up the sources; nothing is read until [`reload_all`](Self::reload_all)
    /// or [`poll`](Self::poll).
    pub fn new(cfg: LocalConfig) -> Self {
        LocalNames {
            hosts: Layer {
                sources: cfg
                    .hosts
                    .into_iter()
                    .map(|p| Source::new(p, Kind::Hosts, parse_names))
                    .collect(),
                table: Table::default(),
            },
            leases: Layer {
                sources: cfg
                    .leasefiles
                    .into_iter()
                    .map(|p| Source::new(p, Kind::Leases, parse_names))
                    .collect(),
                table: Table::default(),
            },
            domain: cfg.domain.as_deref().and_then(normalize_domain),
        }
    }

    /// Re-reads every source now (SIGHUP) and rebuilds the table.
    pub fn reload_all(&mut self, now_wall: u64) {
        self.hosts.update(true, self.domain.as_deref(), now_wall);
        self.leases.update(true, self.domain.as_deref(), now_wall);
        log::info!(
            "local names: {} from hosts files, {} from lease files",
            self.hosts.table.len(),
            self.leases.table.len()
        );
    }

    /// Cheap periodic check: re-reads the files whose `stat` signature
    /// changed or that appeared / disappeared, and drops leases that expired.
    /// Only the layer concerned is rebuilt (a lease change does not re-index
    /// a big hosts file). Returns true if the table changed.
    pub fn poll(&mut self, now_wall: u64) -> bool {
        let h = self.hosts.update(false, self.domain.as_deref(), now_wall);
        let l = self.leases.update(false, self.domain.as_deref(), now_wall);
        if h || l {
            log::debug!(
                "local names: {} from hosts files, {} from lease files",
                self.hosts.table.len(),
                self.leases.table.len()
            );
        }
        h || l
    }

    /// Addresses for `qname_lower` (lowercased presentation form, no trailing
    /// dot, e.g. `b"nas.lan"`) valid at `now_wall`; `None` if it is not a
    /// local name (or all its leases have expired).
    pub fn lookup_name(&self, qname_lower: &[u8], now_wall: u64) -> Option<NameAnswer<'_>> {
        let q = qname_lower.strip_suffix(b".").unwrap_or(qname_lower);
        let d = self.domain.as_deref();
        let (v4, v6) = self
            .hosts
            .table
            .lookup_name(q, d, now_wall)
            .or_else(|| self.leases.table.lookup_name(q, d, now_wall))?;
        Some(NameAnswer { v4, v6 })
    }

    /// The PTR target for `ip` valid at `now_wall` (lowercase, no trailing
    /// dot; qualified with the domain when the name has no dot).
    pub fn lookup_addr(&self, ip: IpAddr, now_wall: u64) -> Option<Cow<'_, [u8]>> {
        let d = self.domain.as_deref();
        if let Some(n) = self.hosts.table.lookup_addr(&ip, d, now_wall) {
            return Some(n);
        }
        // A lease name shadowed by a hosts entry does not resolve back to
        // this address, so it is no PTR answer either.
        let n = self.leases.table.lookup_addr(&ip, d, now_wall)?;
        match self.hosts.table.lookup_name(&n, d, now_wall) {
            Some(_) => None,
            None => Some(n),
        }
    }

    /// Number of names in the table (domain-qualified aliases included; a
    /// name present in both hosts files and leases counts twice).
    pub fn len(&self) -> usize {
        self.hosts.table.len() + self.leases.table.len()
    }

    /// True if the table holds no names.
    #[allow(dead_code)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The normalized local domain (`b"lan"`), if configured.
    #[allow(dead_code)]
    pub fn domain(&self) -> Option<&[u8]> {
        self.domain.as_deref()
    }

    /// True if `qname_lower` is the local domain or below it, or `home.arpa`
    /// or below it (names that must never be forwarded).
    #[allow(dead_code)]
    pub fn is_local_zone(&self, qname_lower: &[u8]) -> bool {
        let q = qname_lower.strip_suffix(b".").unwrap_or(qname_lower);
        in_zone(q, b"home.arpa") || self.domain.as_deref().is_some_and(|d| in_zone(q, d))
    }

    /// The earliest UNIX time at which a lease in the table expires, if any
    /// (the event loop may use it to schedule the next `poll`).
    #[allow(dead_code)]
    pub fn next_expiry(&self) -> Option<u64> {
        let e = self
            .hosts
            .table
            .next_expiry()
            .min(self.leases.table.next_expiry());
        (e != NEVER).then_some(e)
    }
}

/// The [`watch::ParseFn`] of hosts and lease files (here, not in `watch`, which
/// knows no file format).
fn parse_names(r: &mut LineReader, path: &Path, kind: Kind) -> io::Result<Box<dyn Content>> {
    if kind == Kind::Leases {
        return Ok(Box::new(leases::parse_lines(r, path)?));
    }
    // hosts files can be large: parsed as they are read.
    let mut p = hosts::Parser::new(path);
    while let Some((n, line)) = r.next_line()? {
        p.line(n, line);
    }
    Ok(Box::new(p.finish()))
}
