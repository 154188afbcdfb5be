//! DNS over HTTPS in [`Transports`] (full build only): which addresses are DoH servers,
//! their small pool of connections, resending what a closed connection left
//! unanswered, deadlines, and link events, as for DNS over TLS.
//!
//! A DoH server's address is never sent anything in the clear: attempts to it travel
//! over HTTPS whatever the caller asked for, and while it cannot be reached (backoff,
//! link down) sends fail at once so the caller moves on.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use mio::{Interest, Registry, Token};
use rustls::{ClientConfig, RootCertStore};

use super::https::{Channel as HttpsChannel, Target};
use super::https_boot::{Boot, Change, Named, Send};
use super::tls::Server;
use super::{Channel, Event, Owner, Transports, TOKEN_BASE};
use crate::tls::Pin;

/// Connections open at once to one DoH server.
pub const POOL: usize = 2;

pub struct HttpsServer {
    target: Arc<Target>,
    /// Backoff, state and the TLS configuration (session cache) shared with DoT.
    tls: Server,
    /// `tls`'s configuration with ALPN h2 and http/1.1, built with it.
    config: Option<Arc<ClientConfig>>,
}

#[derive(Default)]
pub struct HttpsUpstreams {
    /// Lists, not hash maps: a few entries at most, so a scan is as quick and costs no
    /// hash table code in the binary.
    servers: Vec<(SocketAddr, HttpsServer)>,
    roots: Option<Arc<RootCertStore>>,
    /// The open connections: (server, slot).
    pub conns: Vec<(SocketAddr, usize)>,
    link_down: bool,
    /// The addresses of servers given by host name.
    boot: Boot,
}

impl HttpsUpstreams {
    fn server(&mut self, addr: SocketAddr) -> Option<&mut HttpsServer> {
        self.servers
            .iter_mut()
            .find(|(a, _)| *a == addr)
            .map(|(_, s)| s)
    }
}

fn refused(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, why.to_string())
}

impl Transports {
    /// The servers spoken to over HTTPS: by address (address, URL parts, pins) and by
    /// host name (looked up through `bootstrap` on the loop), all trusting `roots`.
    /// Open connections close; sessions and backoff start afresh; names are looked up
    /// again (a name configured as before keeps its address meanwhile).
    pub fn set_https(
        &mut self,
        reg: &Registry,
        mut servers: Vec<(SocketAddr, Target, Vec<Pin>)>,
        named: Vec<Named>,
        bootstrap: Vec<SocketAddr>,
        roots: Arc<RootCertStore>,
    ) {
        self.close_https(reg);
        for slot in self.https.boot.asking() {
            self.drop_channel(reg, slot);
        }
        let kept = self.https.boot.configure(named, bootstrap, Instant::now());
        servers.extend(kept.into_iter().map(|(a, n)| (a, n.target, n.pins)));
        let old = std::mem::take(&mut self.https.servers);
        for (addr, target, pins) in servers {
            if self.https.servers.iter().any(|(a, _)| *a == addr) {
                continue;
            }
            let mut tls = Server::new(target.host.clone(), pins);
            // Kept so that an unchanged state is not logged again.
            if let Some((_, o)) = old.iter().find(|(a, _)| *a == addr) {
                tls.status.clone_from(&o.tls.status);
            }
            let s = HttpsServer {
                target: Arc::new(target),
                tls,
                config: None,
            };
            self.https.servers.push((addr, s));
        }
        self.https.roots = Some(roots);
    }

    /// No DoH servers (the CA file could not be read): nothing is looked up either.
    pub fn clear_https(&mut self, reg: &Registry) {
        self.close_https(reg);
        for slot in self.https.boot.asking() {
            self.drop_channel(reg, slot);
        }
        self.https
            .boot
            .configure(Vec::new(), Vec::new(), Instant::now());
        self.https.servers.clear();
    }

    pub(super) fn is_https(&self, addr: SocketAddr) -> bool {
        self.https.servers.iter().any(|(a, _)| *a == addr)
    }

    /// The addresses of the DoH servers known so far, to be used as upstreams.
    pub fn https_addrs(&self) -> Vec<SocketAddr> {
        self.https.servers.iter().map(|(a, _)| *a).collect()
    }

    /// A DoH server's first address lookup still runs: a miss with no other server to
    /// go to may wait for it.
    pub fn https_resolving(&self) -> bool {
        self.https.boot.resolving()
    }

    /// Per DoH server: address, URL, and its state ("ok" or the reason). A server whose
    /// name has no address yet has None.
    pub fn https_status(&self) -> Vec<(Option<SocketAddr>, String, String)> {
        let mut v: Vec<_> = self
            .https
            .servers
            .iter()
            .map(|(a, s)| {
                let url = format!("https://{}{}", s.target.authority, s.target.path);
                (Some(*a), url, s.tls.status.clone())
            })
            .collect();
        for (url, why) in self.https.boot.unresolved() {
            v.push((None, url, why));
        }
        v
    }

    /// Whether [`Transports::boot_tick`] has something to do at `now`.
    pub fn boot_due(&self, now: Instant) -> bool {
        let b = &self.https.boot;
        b.settled_news || !b.changes.is_empty() || self.boot_deadline().is_some_and(|d| d <= now)
    }

    fn boot_deadline(&self) -> Option<Instant> {
        if self.https.link_down {
            // Nothing is sent while the link is down: only replies still awaited count.
            return None;
        }
        self.https.boot.next_deadline()
    }

    /// Bootstrap lookups at `now`: timeouts, queries due, and new addresses put in
    /// place (the connections to an old one close). True when the daemon must look at
    /// the DoH addresses again (one changed, or a first lookup ended).
    pub fn boot_tick(&mut self, reg: &Registry, now: Instant) -> bool {
        let (close, send) = self.https.boot.tick(now, self.https.link_down);
        for slot in close {
            self.drop_channel(reg, slot);
        }
        self.boot_send(reg, send, now);
        let mut news = std::mem::take(&mut self.https.boot.settled_news);
        for Change::Moved { old, new, named } in std::mem::take(&mut self.https.boot.changes) {
            news = true;
            let mut moved = Vec::new();
            if let Some(old) = old {
                for slot in self.https_slots_to(old) {
                    if let Some(Channel::Https(t)) = self.channels.get_mut(slot) {
                        moved.extend(t.take_unanswered());
                        t.close();
                    }
                    self.drop_channel(reg, slot);
                }
                self.https.servers.retain(|(a, _)| *a != old);
            }
            if !self.is_https(new) {
                let s = HttpsServer {
                    tls: Server::new(named.target.host.clone(), named.pins),
                    target: Arc::new(named.target),
                    config: None,
                };
                self.https.servers.push((new, s));
            }
            // The queries the old connections carried go to the new address now, as
            // when a server closes first, instead of waiting out their retransmission
            // timers (1 to 2 s). One that cannot go still has its timer.
            for (owner, msg, resends) in moved {
                self.open.remove(&owner);
                if let Err(e) = self.send_https(reg, new, owner, &msg, resends) {
                    log::debug!("query moved to DoH server {new}: {e}");
                }
            }
        }
        news
    }

    /// Sends bootstrap queries, each on a fresh socket; one that cannot go out moves
    /// its lookup on to the next step.
    fn boot_send(&mut self, reg: &Registry, mut send: Vec<Send>, now: Instant) {
        // Bounded: each step moves a lookup forward, and a lookup has finitely many.
        while let Some(s) = send.pop() {
            if self.https.link_down {
                continue;
            }
            let slot = match super::udp::Socket::open(s.server, s.owner, &s.msg) {
                Ok(sock) => {
                    let slot = self.channels.insert(Channel::Udp(sock));
                    match self.channels.get_mut(slot) {
                        Some(Channel::Udp(u)) => match u.register(reg, Token(TOKEN_BASE + slot)) {
                            Ok(()) => Some(slot),
                            Err(_) => {
                                self.channels.remove(slot);
                                None
                            }
                        },
                        _ => None,
                    }
                }
                Err(e) => {
                    log::debug!("bootstrap query to {}: {e}", s.server);
                    None
                }
            };
            self.https.boot.sent(&s, slot, now, &mut send);
        }
    }

    /// A bootstrap socket is readable: its reply (others read past), or its error.
    pub(super) fn boot_ready(&mut self, reg: &Registry, slot: usize, buf: &mut Vec<u8>) {
        let now = Instant::now();
        let mut send = Vec::new();
        loop {
            let Some(Channel::Udp(u)) = self.channels.get_mut(slot) else {
                return;
            };
            match u.next_event(buf) {
                Some(Event::Message(o, n)) => {
                    if self
                        .https
                        .boot
                        .answer(o, &buf[..n], now, &mut send)
                        .is_some()
                    {
                        self.drop_channel(reg, slot);
                        break;
                    }
                }
                Some(Event::Failed(o)) => {
                    self.https.boot.failed(o, now, &mut send);
                    self.drop_channel(reg, slot);
                    break;
                }
                Some(Event::Stray) | None => return,
            }
        }
        self.boot_send(reg, send, now);
    }

    pub(super) fn send_https(
        &mut self,
        reg: &Registry,
        addr: SocketAddr,
        owner: Owner,
        msg: &[u8],
        resends: u8,
    ) -> io::Result<()> {
        let now = Instant::now();
        if self.https.link_down {
            return Err(refused("link down: no connections to DoH upstreams"));
        }
        // A later attempt of a question (its earlier one timed out) never goes on a
        // connection that still carries the question, as over DoT: that connection
        // counts as stalled, and a duplicate there would only wait behind the original
        // (over HTTP/1.1 in the same queue, over HTTP/2 on the same stalled connection).
        let usable = |t: &HttpsChannel| owner.attempt == 0 || !t.carries_question(owner);
        // The least loaded connection that takes queries; an idle one at once.
        let slots: Vec<usize> = self.https_slots_to(addr);
        let best = slots
            .iter()
            .filter_map(|&slot| match self.channels.get(slot) {
                Some(Channel::Https(t)) if t.accepts() && usable(t) => Some((t.load(), slot)),
                _ => None,
            })
            .min();
        // Over HTTP/2 one connection carries the load until it takes no more.
        let shared = best.is_some_and(|(_, slot)| {
            matches!(self.channels.get(slot), Some(Channel::Https(t)) if t.multiplexed())
        });
        // A later attempt that every open connection carries opens one more, past the
        // pool if need be. Bounded: each of those connections carries one of the
        // question's few attempts.
        let all_carry = owner.attempt > 0
            && slots.iter().all(
                |&slot| !matches!(self.channels.get(slot), Some(Channel::Https(t)) if usable(t)),
            );
        let room = slots.len() < POOL || all_carry;
        let open_new = room && !shared && best.map_or(true, |(load, _)| load > 0);
        if !open_new {
            if let Some((_, slot)) = best {
                if let Some(Channel::Https(t)) = self.channels.get_mut(slot) {
                    if t.add(owner, msg, resends, now) {
                        self.open.insert(owner, slot);
                        return Ok(());
                    }
                }
            }
            return Err(refused("every connection to the DoH upstream is busy"));
        }
        let up = &mut self.https;
        let server = up
            .servers
            .iter_mut()
            .find(|(a, _)| *a == addr)
            .map(|(_, s)| s);
        let (Some(server), Some(roots)) = (server, &up.roots) else {
            return Err(refused("not a DoH upstream"));
        };
        if server.tls.backing_off(now) {
            return Err(refused("DoH upstream backing off"));
        }
        let config = match &server.config {
            Some(c) => Arc::clone(c),
            None => {
                let mut c = (*server
                    .tls
                    .config(roots, self.tls.clock)
                    .map_err(|e| refused(&e))?)
                .clone();
                // The server's choice decides the connection's protocol.
                c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                let c = Arc::new(c);
                server.config = Some(Arc::clone(&c));
                c
            }
        };
        let mut t = match HttpsChannel::connect(addr, config, Arc::clone(&server.target), now) {
            Ok(t) => t,
            Err(e) => {
                server.tls.record(addr, Err(e.clone()), now);
                self.https.boot.connect_failed(addr, now);
                return Err(refused(&e));
            }
        };
        if !t.add(owner, msg, resends, now) {
            return Err(refused("query not accepted by a new DoH connection"));
        }
        let slot = self.channels.insert(Channel::Https(Box::new(t)));
        if let Some(Channel::Https(t)) = self.channels.get_mut(slot) {
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
        self.https.conns.push((addr, slot));
        self.open.insert(owner, slot);
        Ok(())
    }

    pub(super) fn next_https_event(
        &mut self,
        reg: &Registry,
        slot: usize,
        buf: &mut Vec<u8>,
        now: Instant,
    ) -> Option<Event> {
        let Some(Channel::Https(t)) = self.channels.get_mut(slot) else {
            return None;
        };
        t.drive(now);
        let addr = t.addr;
        if let Some(ev) = t.next_event(buf) {
            if let Event::Message(o, _) | Event::Failed(o) = ev {
                self.open.remove(&o);
            }
            if let Event::Message(..) = ev {
                self.https.boot.connect_ok(addr);
                if let Some(s) = self.https.server(addr) {
                    if s.tls.status != "ok" {
                        s.tls.record(addr, Ok(()), now);
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
            "DoH connection to {addr} ended ({}); {} unanswered queries go out again",
            failure.as_deref().unwrap_or("closed"),
            resend.len()
        );
        if let Some(e) = failure {
            if let Some(s) = self.https.server(addr) {
                s.tls.record(addr, Err(e), now);
            }
            self.https.boot.connect_failed(addr, now);
        }
        self.forget_https_slot(addr, slot);
        self.resend_after_close(reg, addr, slot, resend, buf, Self::send_https)
    }

    pub(super) fn forget_https_slot(&mut self, addr: SocketAddr, slot: usize) {
        self.https.conns.retain(|&c| c != (addr, slot));
    }

    fn https_slots(&self) -> Vec<usize> {
        self.https.conns.iter().map(|&(_, s)| s).collect()
    }

    fn https_slots_to(&self, addr: SocketAddr) -> Vec<usize> {
        self.https
            .conns
            .iter()
            .filter(|&&(a, _)| a == addr)
            .map(|&(_, s)| s)
            .collect()
    }

    /// The earliest handshake, response or idle deadline of a DoH connection, or of a
    /// bootstrap lookup.
    pub(super) fn next_https_deadline(&self) -> Option<Instant> {
        self.https
            .conns
            .iter()
            .filter_map(|&(_, slot)| match self.channels.get(slot) {
                Some(Channel::Https(t)) => t.next_deadline(),
                _ => None,
            })
            .chain(self.boot_deadline())
            .min()
    }

    /// Applies due deadlines; adds the slots that now have events to read.
    pub(super) fn tick_https(&mut self, now: Instant, due: &mut Vec<usize>) {
        for slot in self.https_slots() {
            if let Some(Channel::Https(t)) = self.channels.get_mut(slot) {
                if t.next_deadline().is_some_and(|d| d <= now) {
                    t.tick(now);
                    due.push(slot);
                }
            }
        }
    }

    /// Closes every DoH connection; their attempts fail.
    fn close_https(&mut self, reg: &Registry) {
        for slot in self.https_slots() {
            if let Some(Channel::Https(t)) = self.channels.get_mut(slot) {
                t.close();
            }
            self.drop_channel(reg, slot);
        }
    }

    /// Link down: every DoH connection closes and none is opened until link up.
    pub(super) fn https_link_down(&mut self, reg: &Registry) {
        self.https.link_down = true;
        self.close_https(reg);
    }

    /// Link up (or new addresses): connections and sessions dropped, backoff reset.
    pub(super) fn https_link_up(&mut self, reg: &Registry) {
        self.https.link_down = false;
        self.https_reset(reg);
        self.https.boot.relook_all(Instant::now());
    }

    /// Connections closed; sessions, configurations and backoff start afresh.
    pub(super) fn https_reset(&mut self, reg: &Registry) {
        self.close_https(reg);
        for (_, s) in self.https.servers.iter_mut() {
            s.tls.reset();
            s.config = None;
        }
    }
}

#[cfg(test)]
#[path = "https_tests.rs"]
mod tests;
