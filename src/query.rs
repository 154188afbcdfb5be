//! A client query, from bytes to reply: parse, answer locally or from the cache, or forward.

use std::net::IpAddr;

use crate::answer::{self, ReplyOpts};
use crate::cache::{flag, Key, KEY_CD, KEY_DO};
use crate::config::RefuseAction;
use crate::core::inflight::ReplyTo;
use crate::server::{Conn, Server};
use crate::wire::build::{error_reply, Ede, EdnsReply};
use crate::wire::message::parse_query_into;
use crate::wire::message::QueryError;
use crate::wire::{rcode, rtype, Header, QueryView, CLASS_CH};

/// Writes the cache key for a query into `key`.
pub fn fill_key(key: &mut Key, q: &QueryView) {
    let mut flags = 0;
    if q.do_bit() {
        flags |= KEY_DO;
    }
    if q.cd {
        flags |= KEY_CD;
    }
    key.fill(
        q.question.name.as_bytes(),
        q.question.qtype,
        q.question.qclass,
        flags,
    );
}

/// The answer to a query that is never forwarded nor looked up, if it is one: zone
/// transfers and meta types (RFC 6895 3.1: OPT, TSIG and TKEY live only in the additional
/// section; MAILA and MAILB ask for obsolete mail records, RFC 1035 3.2.3) get NOTIMP, the CHAOS class REFUSED (an
/// upstream's `version.bind` or `hostname.bind` is not the client's business).
#[inline]
fn refused_locally(q: &QueryView) -> Option<u8> {
    if q.question.qclass == CLASS_CH {
        return Some(rcode::REFUSED);
    }
    match q.question.qtype {
        rtype::AXFR
        | rtype::IXFR
        | rtype::OPT
        | rtype::TSIG
        | rtype::TKEY
        | rtype::MAILA
        | rtype::MAILB => Some(rcode::NOTIMP),
        _ => None,
    }
}

/// RFC 8482 answer to ANY over UDP: one synthesized HINFO record.
fn write_any_reply(out: &mut Vec<u8>, q: &QueryView) {
    answer::write_error(out, q, rcode::NOERROR, None);
    // write_error appended an OPT for EDNS clients; rebuild without it, then add the record.
    out.truncate(12 + q.question.name.len() + 4);
    out.extend_from_slice(&[0xc0, 0x0c]);
    out.extend_from_slice(&rtype::HINFO.to_be_bytes());
    out.extend_from_slice(&q.question.qclass.to_be_bytes());
    out.extend_from_slice(&3600u32.to_be_bytes());
    let rdata = b"\x07RFC8482\x00";
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
    crate::wire::write_u16(out, 6, 1);
    crate::wire::write_u16(out, 10, 0);
    if let Some(o) = q.opt {
        crate::wire::build::push_opt(out, crate::wire::EDNS_UDP_SIZE, 0, o.do_bit, None);
    }
}

impl Server {
    /// Handles one query from a client.
    pub(crate) fn handle_query(&mut self, msg: &[u8], to: ReplyTo, peer: IpAddr) {
        // One parsed query and one key, reused: taking the boxes moves two pointers.
        let mut q = self.scratch_query.take().unwrap_or_default();
        let mut key = self.scratch_key.take().unwrap_or_default();
        self.handle_parsed(msg, to, peer, &mut q, &mut key);
        self.scratch_query = Some(q);
        self.scratch_key = Some(key);
    }

    fn handle_parsed(
        &mut self,
        msg: &[u8],
        to: ReplyTo,
        peer: IpAddr,
        q: &mut QueryView,
        key: &mut Key,
    ) {
        self.stats.queries += 1;
        if !self.acl.permits(peer) {
            self.stats.drop_refused += 1;
            // Never answer something that is itself an answer.
            let is_query = msg.len() >= 12 && msg[2] & 0x80 == 0;
            if self.cfg.refuse_action == RefuseAction::Refused && is_query {
                error_reply(&mut self.out, msg, rcode::REFUSED, None);
                self.reply(to);
            }
            return;
        }
        if !self.ratelimit.allow(peer, self.now) {
            self.stats.drop_ratelimit += 1;
            return;
        }
        match parse_query_into(msg, q) {
            Ok(()) => {}
            Err(QueryError::Ignore) => {
                self.stats.drop_malformed += 1;
                return;
            }
            Err(e) => {
                self.stats.drop_malformed += 1;
                let (rc, edns) = match e {
                    QueryError::NotImp => (rcode::NOTIMP, None),
                    QueryError::BadVers => (
                        0,
                        Some(EdnsReply {
                            ext_rcode: (rcode::BADVERS >> 4) as u8,
                            ..Default::default()
                        }),
                    ),
                    _ => (rcode::FORMERR, None),
                };
                error_reply(&mut self.out, msg, rc, edns);
                if e == QueryError::NotImp {
                    // RA and CD mean nothing outside a QUERY: do not claim them.
                    if let Ok(mut h) = Header::new_checked(&mut self.out[..]) {
                        h.set_ra(false);
                        h.set_cd(false);
                    }
                }
                self.reply(to);
                return;
            }
        }
        let qtype = q.question.qtype;
        if let Some(rc) = refused_locally(q) {
            answer::write_error(&mut self.out, q, rc, None);
            self.reply(to);
            return;
        }
        fill_key(key, q);
        if self.answer_local(q, key, to) {
            return;
        }
        if qtype == rtype::ANY && to.is_udp() {
            write_any_reply(&mut self.out, q);
            self.reply(to);
            return;
        }
        if self.answer_from_cache(q, key, to) || self.answer_blocked(q, key, to) {
            return;
        }
        if self.offline() && self.reply_stale(q, key, to) {
            return;
        }
        self.stats.misses += 1;
        self.forward(q, key, to);
    }

    /// Serves a fresh cache entry; false on a miss.
    fn answer_from_cache(&mut self, q: &QueryView, key: &Key, to: ReplyTo) -> bool {
        let now = self.now_secs();
        let Some(hit) = self.cache.get(key.as_bytes()) else {
            return false;
        };
        if hit.expires <= now {
            return false;
        }
        // Not validated (fetched for a walk, or cached before validation was on): the
        // question is asked and validated anew.
        #[cfg(feature = "dnssec")]
        if !crate::forward::validate::servable(self.cfg.dnssec.enabled, hit.flags, key.flags()) {
            return false;
        }
        let opts = ReplyOpts {
            elapsed: now.saturating_sub(hit.inserted),
            udp: to.is_udp(),
            #[cfg(feature = "dnssec")]
            ede: crate::forward::validate::cached_ede(hit.flags),
            ..Default::default()
        };
        let failure = hit.flags & flag::FAILURE != 0;
        // Prefetch: asked at least twice (the miss that filled it, and a hit since) and
        // under 10 % of its lifetime left.
        let prefetch = crate::core::stale::wants_prefetch(
            self.cfg.prefetch,
            failure,
            hit.hits,
            hit.remaining(now),
            hit.lifetime(),
        );
        let truncated =
            answer::write_stored_reply(&mut self.out, hit.msg, hit.ttl_positions(), q, &opts);
        // The verdict of the miss, kept with the entry: AD without crypto.
        #[cfg(feature = "dnssec")]
        if self.cfg.dnssec.enabled && crate::forward::validate::sets_ad(hit.flags, q.do_bit(), q.ad)
        {
            if let Ok(mut h) = Header::new_checked(&mut self.out[..]) {
                h.set_ad(true);
            }
        }
        self.stats.hits += 1;
        if truncated {
            self.stats.truncated += 1;
        }
        if failure {
            self.stats.servfail += 1;
        }
        self.reply(to);
        if prefetch && !self.offline() && self.background(key) {
            self.stats.prefetch += 1;
        }
        true
    }

    /// Answers SERVFAIL (with an Extended DNS Error for EDNS clients).
    pub(crate) fn reply_servfail(&mut self, q: &QueryView, to: ReplyTo, ede: Ede) {
        self.stats.servfail += 1;
        answer::write_error(&mut self.out, q, rcode::SERVFAIL, Some(ede));
        self.reply(to);
    }

    /// Sends `self.out` to a client.
    pub(crate) fn reply(&mut self, to: ReplyTo) {
        if self.out.is_empty() {
            return;
        }
        match to {
            ReplyTo::Udp { listener, peer } => self.send_udp(listener, peer),
            ReplyTo::Tcp { conn, serial } => {
                let out = std::mem::take(&mut self.out);
                let ok = match self.conns.get_mut(conn) {
                    Some(Conn::Client(c)) if c.serial == serial => c.queue_reply(&out),
                    _ => true,
                };
                self.out = out;
                if ok {
                    self.stats.replies += 1;
                    self.client_flush(conn);
                } else {
                    // The client stopped reading: let it go rather than buffer without bound.
                    self.stats.drop_tcp_full += 1;
                    self.close_conn(conn);
                }
            }
        }
    }
}
