//! Answers from local names (hosts files, DHCP leases), blocked names (`list blocklist`),
//! and the names that never leave the LAN: the local domain, home.arpa, dotless names
//! (`domain_needed`) and private reverse zones (`bogus_priv`).

use crate::answer::{self, ReplyOpts};
use crate::blocklist::{Blocklist, Verdict};
use crate::cache::Key;
use crate::config::BlockAnswer;
use crate::core::inflight::ReplyTo;
use crate::localnames::{is_private_reverse, parse_ptr_name, LocalConfig, LocalNames};
use crate::server::Server;
use crate::wire::build::Ede;
use crate::wire::{ede, rcode, rtype, Header, NameBuf, QueryView, CLASS_IN, HEADER_LEN};

/// Extended DNS Error on every answer for a blocked name.
const BLOCKED: Ede = Ede {
    code: ede::BLOCKED,
    text: "blocklist",
};

/// A name in wire form as presentation bytes without the final dot ("nas.lan"), copied in
/// one piece with the length bytes turned into dots. The root becomes empty.
pub fn wire_to_dotted(wire: &[u8], out: &mut Vec<u8>) {
    out.clear();
    if wire.len() < 2 {
        return;
    }
    // Drop the first length byte and the root label.
    out.extend_from_slice(&wire[1..wire.len() - 1]);
    let mut p = wire[0] as usize;
    while p < out.len() {
        let next = out[p] as usize;
        out[p] = b'.';
        p += 1 + next;
    }
}

pub fn local_config(cfg: &crate::config::Config) -> LocalConfig {
    LocalConfig {
        hosts: cfg.hosts.clone(),
        leasefiles: cfg.leasefiles.clone(),
        domain: cfg.domain.clone(),
    }
}

/// What the local table says about a question.
enum Local {
    /// Records to answer with (type, RDATA); empty = NODATA.
    Data(Vec<(u16, Vec<u8>)>),
    /// The name does not exist here, and must not be asked upstream.
    NxDomain,
    /// A blocklist covers the name: answer as `block_answer` says.
    Blocked,
    /// Not ours: go on to the cache.
    Elsewhere,
}

/// Appends a resource record whose owner is the question name (a pointer to offset 12).
fn push_rr(out: &mut Vec<u8>, t: u16, ttl: u32, rdata: &[u8]) {
    out.extend_from_slice(&[0xc0, 0x0c]);
    out.extend_from_slice(&t.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

/// Appends a synthesized SOA for `zone` (for NODATA and NXDOMAIN; RFC 2308 2.2).
fn push_soa(out: &mut Vec<u8>, zone: &NameBuf, ttl: u32) {
    out.extend_from_slice(zone.as_bytes());
    out.extend_from_slice(&rtype::SOA.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    let mut rdata = Vec::with_capacity(64);
    rdata.extend_from_slice(b"\x09localhost\x00");
    rdata.extend_from_slice(b"\x06nobody\x07invalid\x00");
    for v in [1u32, 3600, 600, 86400, ttl] {
        rdata.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(&rdata);
}

/// `block_answer null`: the unspecified address for A and AAAA, NODATA for other types.
fn null_records(qtype: u16) -> Vec<(u16, Vec<u8>)> {
    match qtype {
        rtype::A => vec![(rtype::A, vec![0; 4])],
        rtype::AAAA => vec![(rtype::AAAA, vec![0; 16])],
        _ => Vec::new(),
    }
}

impl Server {
    /// Rebuilds the local table when the files or domain in the config changed.
    pub(crate) fn apply_local_config(&mut self) {
        let lc = local_config(&self.cfg);
        if self.local_cfg.as_ref() != Some(&lc) {
            self.local = LocalNames::new(lc.clone());
            self.local_cfg = Some(lc);
        }
        let wall = self.wall_secs();
        self.local.reload_all(wall);
        log::info!("local names: {} entries", self.local.len());
        let bc = (self.cfg.blocklists.clone(), self.cfg.block_allow.clone());
        if self.block_cfg.as_ref() != Some(&bc) {
            // The old sets go first: the peak stays at one set per file.
            self.block = Blocklist::new(&bc.0, &bc.1);
            self.block_cfg = Some(bc);
        }
        self.refresh_blocklists(true);
    }

    /// Re-reads the blocklists that changed (all if `force`); when the sets changed, the
    /// cached answers they now block are dropped.
    pub(crate) fn refresh_blocklists(&mut self, force: bool) {
        if self.block.refresh(force) || force {
            self.drop_blocked_cached();
        }
    }

    /// Drops every cached answer for a name the blocklists cover. Blocked names are
    /// looked up only on a cache miss (a cache hit costs nothing extra however long the
    /// lists), so the cache must never hold one: this runs after every list (re)load and
    /// after the saved cache is read at start.
    pub(crate) fn drop_blocked_cached(&mut self) {
        if self.block.is_empty() {
            return;
        }
        let mut lower = std::mem::take(&mut self.lower);
        let block = &self.block;
        let before = self.cache.len();
        self.cache.retain(|e| {
            let Some(k) = Key::from_bytes(e.key) else {
                return true;
            };
            wire_to_dotted(k.name_wire(), &mut lower);
            !block.blocks(&lower)
        });
        self.lower = lower;
        let dropped = before.saturating_sub(self.cache.len());
        if dropped > 0 {
            log::info!("blocklists: {dropped} cached answers for blocked names dropped");
        }
    }

    /// True if a blocklist covers the key's name: the upstream's answer to a query sent
    /// before its list was loaded is then passed on but not cached.
    pub(crate) fn key_blocked(&mut self, key: &Key) -> bool {
        if self.block.is_empty() {
            return false;
        }
        let mut lower = std::mem::take(&mut self.lower);
        wire_to_dotted(key.name_wire(), &mut lower);
        let blocked = self.block.blocks(&lower);
        self.lower = lower;
        blocked
    }

    /// Answers a query for a blocked name as `block_answer` says; false if no list
    /// covers it. Called on a cache miss, before anything is forwarded.
    pub(crate) fn answer_blocked(&mut self, q: &QueryView, key: &Key, to: ReplyTo) -> bool {
        if q.question.qclass != CLASS_IN || !self.key_blocked(key) {
            return false;
        }
        self.write_local(q, Local::Blocked, to)
    }

    /// `dproxy ctl blocked NAME`: whether NAME is blocked, and by which entry and file.
    pub(crate) fn ctl_blocked(&self, name: &str) -> String {
        let n = name.trim_end_matches('.').to_ascii_lowercase();
        match self.block.verdict(n.as_bytes()) {
            Verdict::NotListed => format!("not blocked: {n}\n"),
            Verdict::Blocked { listed, file } => {
                format!(
                    "blocked: {n} (listed: {listed}, file: {})\n",
                    file.display()
                )
            }
            Verdict::Allowed { listed, allowed } => {
                format!("not blocked: {n} (listed: {listed}, allowed by block_allow {allowed})\n")
            }
        }
    }

    fn lookup_local(&self, q: &QueryView, lower: &[u8]) -> Local {
        if q.question.qclass != CLASS_IN {
            return Local::Elsewhere;
        }
        let now = self.wall_secs();
        let qtype = q.question.qtype;
        if let Some(a) = self.local.lookup_name(lower, now) {
            let mut recs = Vec::new();
            if qtype == rtype::A || qtype == rtype::ANY {
                recs.extend(a.v4.iter().map(|ip| (rtype::A, ip.octets().to_vec())));
            }
            if qtype == rtype::AAAA || qtype == rtype::ANY {
                recs.extend(a.v6.iter().map(|ip| (rtype::AAAA, ip.octets().to_vec())));
            }
            return Local::Data(recs);
        }
        if qtype == rtype::PTR {
            if let Some(ip) = parse_ptr_name(lower) {
                if let Some(name) = self.local.lookup_addr(ip, now) {
                    if let Ok(n) = NameBuf::from_dotted(&String::from_utf8_lossy(&name)) {
                        return Local::Data(vec![(rtype::PTR, n.as_bytes().to_vec())]);
                    }
                }
            }
        }
        let dotless = !lower.is_empty() && !lower.contains(&b'.');
        if self.local.is_local_zone(lower)
            || (self.cfg.domain_needed && dotless)
            || (self.cfg.bogus_priv && is_private_reverse(lower))
        {
            return Local::NxDomain;
        }
        Local::Elsewhere
    }

    /// Answers from local names; false if the question is not local. `key` holds the
    /// name already lowercased.
    pub(crate) fn answer_local(&mut self, q: &QueryView, key: &Key, to: ReplyTo) -> bool {
        let mut lower = std::mem::take(&mut self.lower);
        wire_to_dotted(key.name_wire(), &mut lower);
        let found = self.lookup_local(q, &lower);
        self.lower = lower;
        self.write_local(q, found, to)
    }

    /// Writes and sends the answer for what [`lookup_local`](Self::lookup_local) found.
    fn write_local(&mut self, q: &QueryView, found: Local, to: ReplyTo) -> bool {
        let blocked = matches!(found, Local::Blocked);
        let (records, rc) = match found {
            Local::Elsewhere => return false,
            Local::Data(r) => (r, rcode::NOERROR),
            Local::NxDomain => (Vec::new(), rcode::NXDOMAIN),
            Local::Blocked => match self.cfg.block_answer {
                BlockAnswer::Nxdomain => (Vec::new(), rcode::NXDOMAIN),
                BlockAnswer::Null => (null_records(q.question.qtype), rcode::NOERROR),
                BlockAnswer::Refused => {
                    self.stats.blocked += 1;
                    answer::write_error(&mut self.out, q, rcode::REFUSED, Some(BLOCKED));
                    self.reply(to);
                    return true;
                }
            },
        };
        let ttl = self.cfg.local_ttl;
        // The zone for the SOA of a negative answer: the local domain when the name is in
        // it, otherwise the name itself.
        let zone = self
            .cfg
            .domain
            .as_deref()
            .and_then(|d| NameBuf::from_dotted(d).ok())
            .filter(|z| q.question.name.is_subdomain_of(z))
            .unwrap_or_else(|| {
                let mut n = q.question.name.clone();
                n.make_lowercase();
                n
            });
        // Built in stored form (header, then records): the reply puts the client's
        // question back at offset 12, where the records' owner pointers lead.
        let mut msg = Vec::with_capacity(128);
        answer::write_error(&mut msg, q, rc, None);
        msg.truncate(HEADER_LEN);
        for (t, rd) in &records {
            push_rr(&mut msg, *t, ttl, rd);
        }
        let an = records.len() as u16;
        let ns = if records.is_empty() {
            push_soa(&mut msg, &zone, ttl);
            1
        } else {
            0
        };
        if let Ok(mut h) = Header::new_checked(&mut msg[..]) {
            h.set_ancount(an);
            h.set_nscount(ns);
            h.set_arcount(0);
        }
        let opts = ReplyOpts {
            authoritative: true,
            udp: to.is_udp(),
            ede: blocked.then_some(BLOCKED),
            ..Default::default()
        };
        if answer::write_stored_reply(&mut self.out, &msg, std::iter::empty(), q, &opts) {
            self.stats.truncated += 1;
        }
        if blocked {
            self.stats.blocked += 1;
        } else {
            self.stats.local += 1;
        }
        self.reply(to);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::wire_to_dotted;

    #[test]
    fn dotted_from_wire() {
        let mut out = Vec::new();
        wire_to_dotted(b"\x03nas\x03lan\x00", &mut out);
        assert_eq!(out, b"nas.lan");
        wire_to_dotted(b"\x01a\x00", &mut out);
        assert_eq!(out, b"a");
        wire_to_dotted(b"\x00", &mut out);
        assert!(out.is_empty());
        // A dot inside a label stays a byte of that label; only length bytes become dots.
        wire_to_dotted(b"\x03a.b\x01c\x00", &mut out);
        assert_eq!(out, b"a.b.c");
    }
}
