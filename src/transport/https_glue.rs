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
    /// The servers spoken to over HTTPS: (address, URL parts, pins), all trusting
    /// `roots`. Open connections close; sessions and backoff start afresh.
    pub fn set_https(
        &mut self,
        reg: &Registry,
        servers: Vec<(SocketAddr, Target, Vec<Pin>)>,
        roots: Arc<RootCertStore>,
    ) {
        self.close_https(reg);
        let old = std::mem::take(&mut self.https.servers);
        for (addr, target, pins) in servers {
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

    pub(super) fn is_https(&self, addr: SocketAddr) -> bool {
        self.https.servers.iter().any(|(a, _)| *a == addr)
    }

    /// Per DoH server: address, URL, and its state ("ok" or the reason).
    pub fn https_status(&self) -> Vec<(SocketAddr, String, String)> {
        self.https
            .servers
            .iter()
            .map(|(a, s)| {
                let url = format!("https://{}{}", s.target.authority, s.target.path);
                (*a, url, s.tls.status.clone())
            })
            .collect()
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
        // The least loaded connection that takes queries; an idle one at once.
        let slots: Vec<usize> = self
            .https
            .conns
            .iter()
            .filter(|(a, _)| *a == addr)
            .map(|&(_, s)| s)
            .collect();
        let best = slots
            .iter()
            .filter_map(|&slot| match self.channels.get(slot) {
                Some(Channel::Https(t)) if t.accepts() => Some((t.load(), slot)),
                _ => None,
            })
            .min();
        // Over HTTP/2 one connection carries the load until it takes no more.
        let shared = best.is_some_and(|(_, slot)| {
            matches!(self.channels.get(slot), Some(Channel::Https(t)) if t.multiplexed())
        });
        let open_new = slots.len() < POOL && !shared && best.map_or(true, |(load, _)| load > 0);
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
    ) -> Option<Event> {
        let now = Instant::now();
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
        if let Some(s) = self.https.server(addr) {
            if let Some(e) = failure {
                s.tls.record(addr, Err(e), now);
            }
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

    /// The earliest handshake, response or idle deadline of a DoH connection.
    pub(super) fn next_https_deadline(&self) -> Option<Instant> {
        self.https
            .conns
            .iter()
            .filter_map(|&(_, slot)| match self.channels.get(slot) {
                Some(Channel::Https(t)) => t.next_deadline(),
                _ => None,
            })
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
