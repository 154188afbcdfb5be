//! DNS over TLS in [`Transports`] (full build only): which servers speak TLS, their
//! connections, resending what a closed connection left unanswered, deadlines, and link
//! events.
//!
//! New queries go to a server's current connection. When it is full (its in-flight
//! limit) they go to an older connection to that server that has room, and only when
//! none has does another connection open and become the current one: a burst larger
//! than one connection's limit costs one more handshake, not one per burst, and the
//! older connections keep their idle close.
//!
//! A server configured for TLS is never sent anything in the clear: every attempt to its
//! address travels over TLS whatever protocol the caller asked for, and while it cannot
//! be reached (backoff, link down) sends to it fail at once so the caller moves on.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use mio::{Interest, Registry, Token};
use rustls::RootCertStore;

use super::tls::{Channel as TlsChannel, Server};
use super::{Channel, Event, Owner, Proto, Transports, TOKEN_BASE};
use crate::clock_trust::ClockTrust;
use crate::tls::id_map::IdMap;
use crate::tls::Pin;

#[derive(Default)]
pub struct TlsUpstreams {
    servers: IdMap<SocketAddr, Server>,
    roots: Option<Arc<RootCertStore>>,
    rng: Option<crate::rand::Rng>,
    /// The current connection to each server, while one is open.
    pub conns: IdMap<SocketAddr, usize>,
    /// Connections that were current before (full when a query came) and are still open.
    pub older: Vec<usize>,
    link_down: bool,
    /// How certificates' validity dates are checked (see `crate::clock_trust`).
    pub(super) clock: ClockTrust,
}

fn refused(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, why.to_string())
}

/// How a query goes out on an encrypted transport: `send_tls` or `send_https`.
type SendFn = fn(&mut Transports, &Registry, SocketAddr, Owner, &[u8], u8) -> io::Result<()>;

impl Transports {
    /// The servers spoken to over TLS: (address, name to authenticate, pins), all
    /// trusting `roots`. Open connections close, sessions and backoff start afresh.
    pub fn set_tls(
        &mut self,
        reg: &Registry,
        servers: Vec<(SocketAddr, String, Vec<Pin>)>,
        roots: Arc<RootCertStore>,
    ) -> io::Result<()> {
        if self.tls.rng.is_none() {
            self.tls.rng = Some(crate::rand::Rng::new()?);
        }
        self.close_tls(reg);
        let mut old = std::mem::take(&mut self.tls.servers);
        for (addr, name, pins) in servers {
            // New addresses or a new configuration: fresh sessions and backoff; the
            // state is kept so that an unchanged one is not logged again.
            let mut s = Server::new(name, pins);
            if let Some(o) = old.remove(&addr) {
                s.status = o.status;
            }
            self.tls.servers.insert(addr, s);
        }
        self.tls.roots = Some(roots);
        Ok(())
    }

    /// The protocol an attempt to `addr` really uses: TLS for a TLS server.
    pub fn proto_for(&self, addr: SocketAddr, proto: Proto) -> Proto {
        #[cfg(feature = "doh")]
        if self.is_https(addr) {
            return Proto::Tls;
        }
        if self.tls.servers.contains_key(&addr) {
            Proto::Tls
        } else {
            proto
        }
    }

    /// Per server: address (None for a DoH server whose name has no address yet),
    /// authentication name or URL, and its state ("ok" or the reason).
    pub fn tls_status(&self) -> Vec<(Option<SocketAddr>, String, String)> {
        let mut v: Vec<_> = self
            .tls
            .servers
            .iter()
            .map(|(a, s)| (Some(*a), s.auth_name.clone(), s.status.clone()))
            .collect();
        #[cfg(feature = "doh")]
        v.extend(self.https_status());
        v.sort();
        v
    }

    pub(super) fn send_tls(
        &mut self,
        reg: &Registry,
        addr: SocketAddr,
        owner: Owner,
        msg: &[u8],
        resends: u8,
    ) -> io::Result<()> {
        if self.tls.link_down {
            return Err(refused("link down: no connections to TLS upstreams"));
        }
        let Some(rng) = self.tls.rng.as_mut() else {
            return Err(refused("no random source for TLS"));
        };
        // A later attempt of a question (its earlier one timed out) never goes on a
        // connection that still carries the question: that connection counts as
        // stalled, and a duplicate there would only wait behind the original. It goes
        // on another one, a new one if need be. (First attempts skip the check.)
        let usable = |t: &TlsChannel| owner.attempt == 0 || !t.carries_question(owner);
        if let Some(&slot) = self.tls.conns.get(&addr) {
            if let Some(Channel::Tls(t)) = self.channels.get_mut(slot) {
                if usable(t) && t.add(owner, msg, resends, rng) {
                    self.open.insert(owner, slot);
                    return Ok(());
                }
            }
        }
        for i in 0..self.tls.older.len() {
            let slot = self.tls.older[i];
            if let Some(Channel::Tls(t)) = self.channels.get_mut(slot) {
                if t.addr == addr && usable(t) && t.add(owner, msg, resends, rng) {
                    self.open.insert(owner, slot);
                    return Ok(());
                }
            }
        }
        let (Some(server), Some(roots)) = (self.tls.servers.get_mut(&addr), &self.tls.roots) else {
            return Err(refused("not a TLS upstream"));
        };
        // The clock is read only here: most queries go on an open connection (above).
        let now = Instant::now();
        if server.backing_off(now) {
            return Err(refused("TLS upstream backing off"));
        }
        let config = server
            .config(roots, self.tls.clock)
            .map_err(|e| refused(&e))?;
        let mut t = match TlsChannel::connect(addr, config, &server.auth_name, now) {
            Ok(t) => t,
            Err(e) => {
                server.record(addr, Err(e.clone()), now);
                return Err(refused(&e));
            }
        };
        if !t.add(owner, msg, resends, rng) {
            return Err(refused("query not accepted by a new TLS connection"));
        }
        let slot = self.channels.insert(Channel::Tls(Box::new(t)));
        if let Some(Channel::Tls(t)) = self.channels.get_mut(slot) {
            let token = Token(TOKEN_BASE + slot);
            if let Err(e) = reg.register(
                &mut t.stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            ) {
                self.channels.remove(slot);
                return Err(e);
            }
        }
        // The one it replaces stays open for its queries, and for new ones when it has room.
        if let Some(prev) = self.tls.conns.insert(addr, slot) {
            self.tls.older.push(prev);
        }
        self.open.insert(owner, slot);
        Ok(())
    }

    pub(super) fn next_tls_event(
        &mut self,
        reg: &Registry,
        slot: usize,
        buf: &mut Vec<u8>,
        now: Instant,
    ) -> Option<Event> {
        let Some(Channel::Tls(t)) = self.channels.get_mut(slot) else {
            return None;
        };
        // One read takes all the answers that arrived; reading again for each of them
        // would only cost a system call that finds the socket empty.
        if !t.has_answers() {
            t.drive(now);
        }
        let addr = t.addr;
        let worked = t.was_open;
        if let Some(ev) = t.next_event(buf) {
            if let Event::Message(o, _) | Event::Failed(o) = ev {
                self.open.remove(&o);
            }
            if worked {
                if let Some(s) = self.tls.servers.get_mut(&addr) {
                    if s.status != "ok" {
                        s.record(addr, Ok(()), now);
                    }
                }
            }
            return Some(ev);
        }
        if !t.is_done() {
            return None;
        }
        let failure = t.failure();
        let resend = t.take_resend();
        log::debug!(
            "TLS connection to {addr} ended ({}); {} unanswered queries go out again",
            t.error.as_ref().map_or("closed".into(), |e| e.to_string()),
            resend.len()
        );
        if let Some(s) = self.tls.servers.get_mut(&addr) {
            match failure {
                Some(e) => s.record(addr, Err(e), now),
                None if worked => s.record(addr, Ok(()), now),
                None => {}
            }
        }
        if self.tls.conns.get(&addr) == Some(&slot) {
            self.tls.conns.remove(&addr);
        }
        self.resend_after_close(reg, addr, slot, resend, buf, Self::send_tls)
    }

    /// A DoT or DoH connection at `slot` ended: its unanswered queries go out again
    /// through `send` (on another connection); those that find none fail now, through
    /// the old connection, whose events are delivered before it is dropped.
    pub(super) fn resend_after_close(
        &mut self,
        reg: &Registry,
        addr: SocketAddr,
        slot: usize,
        resend: Vec<(Owner, Vec<u8>, u8)>,
        buf: &mut Vec<u8>,
        send: SendFn,
    ) -> Option<Event> {
        let mut lost = Vec::new();
        for (owner, msg, resends) in resend {
            self.open.remove(&owner);
            if send(self, reg, addr, owner, &msg, resends).is_err() {
                lost.push(owner);
            }
        }
        // Queries that found no new connection fail now, through the old one.
        let ev = match self.channels.get_mut(slot) {
            Some(Channel::Tls(t)) => {
                for o in lost {
                    t.fail_later(o);
                }
                t.next_event(buf)
            }
            #[cfg(feature = "doh")]
            Some(Channel::Https(t)) => {
                for o in lost {
                    t.fail_later(o);
                }
                t.next_event(buf)
            }
            _ => None,
        };
        if let Some(ev) = ev {
            if let Event::Failed(o) = ev {
                self.open.remove(&o);
            }
            return Some(ev);
        }
        self.drop_channel(reg, slot);
        None
    }

    /// True while some TLS connection is open: the per-turn work below is skipped
    /// otherwise, so that cached answers cost the same as in a build without TLS.
    fn tls_open(&self) -> bool {
        !self.tls.conns.is_empty() || !self.tls.older.is_empty()
    }

    /// Writes the queries of this loop turn on every TLS connection; called once per
    /// turn after everything that may send.
    pub fn flush_tls(&mut self, now: Instant) {
        if !self.tls_open() {
            return;
        }
        for &slot in self.tls.conns.values().chain(self.tls.older.iter()) {
            if let Some(Channel::Tls(t)) = self.channels.get_mut(slot) {
                t.send_queued(now);
            }
        }
    }

    /// The earliest handshake deadline or idle close of a TLS connection.
    pub fn next_deadline(&self) -> Option<Instant> {
        let tls = if self.tls_open() {
            self.tls
                .conns
                .values()
                .chain(self.tls.older.iter())
                .filter_map(|&slot| match self.channels.get(slot) {
                    Some(Channel::Tls(t)) => t.next_deadline(),
                    _ => None,
                })
                .min()
        } else {
            None
        };
        #[cfg(feature = "doh")]
        let tls = match (tls, self.next_https_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tls
    }

    /// Applies due deadlines; returns the slots that now have events to read (also
    /// those holding answers that a reader left for later).
    pub fn tick(&mut self, now: Instant) -> Vec<usize> {
        let mut due = Vec::new();
        if self.tls_open() {
            for &slot in self.tls.conns.values().chain(self.tls.older.iter()) {
                if let Some(Channel::Tls(t)) = self.channels.get_mut(slot) {
                    if t.next_deadline().is_some_and(|d| d <= now) {
                        t.tick(now);
                        due.push(slot);
                    } else if t.has_answers() {
                        due.push(slot);
                    }
                }
            }
        }
        #[cfg(feature = "doh")]
        self.tick_https(now, &mut due);
        due
    }

    /// Closes every TLS connection; their attempts fail.
    fn close_tls(&mut self, reg: &Registry) {
        let slots: Vec<usize> = self
            .tls
            .conns
            .values()
            .chain(self.tls.older.iter())
            .copied()
            .collect();
        for slot in slots {
            if let Some(Channel::Tls(t)) = self.channels.get_mut(slot) {
                t.close();
            }
            self.drop_channel(reg, slot);
        }
    }

    /// The clock became trusted (or not): connections and sessions made under the other
    /// policy are dropped, so every certificate in use passed the checks of the new one.
    pub fn set_clock(&mut self, reg: &Registry, clock: ClockTrust) {
        if self.tls.clock == clock {
            return;
        }
        self.tls.clock = clock;
        self.close_tls(reg);
        for s in self.tls.servers.values_mut() {
            s.reset();
        }
        // DoH connections are TLS connections made under the same policy.
        #[cfg(feature = "doh")]
        self.https_reset(reg);
    }

    /// Link down: every TLS connection closes and none is opened until link up.
    pub fn link_down(&mut self, reg: &Registry) {
        self.tls.link_down = true;
        self.close_tls(reg);
        #[cfg(feature = "doh")]
        self.https_link_down(reg);
    }

    /// Link up (or new addresses): connections and sessions dropped, backoff reset.
    pub fn link_up(&mut self, reg: &Registry) {
        self.tls.link_down = false;
        self.close_tls(reg);
        #[cfg(feature = "doh")]
        self.https_link_up(reg);
        for s in self.tls.servers.values_mut() {
            s.reset();
        }
    }
}
