//! Upstream transports: how a query attempt travels to an upstream server and how its
//! answer comes back, behind one interface.
//!
//! An attempt is named by its [`Owner`] (question slot, generation, attempt number) and
//! carries its transaction id; the sockets live here, not in the attempt. UDP gets a fresh
//! socket on a random port per attempt, connected to the server so that only the server's
//! address and port reach it (RFC 5452). TCP gets one length-framed stream per server with
//! its own table of transaction ids, so attempts to the same server share it (pipelining,
//! RFC 7766); it closes when no attempt waits on it any more. DNS over TLS is a stream
//! with the same framing and goes next to TCP; DNS over HTTPS gets a kind of its own.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use mio::{Interest, Registry, Token};

use crate::slab::Slab;

// The two DoH codecs are public for their fuzz targets (fuzz/fuzz_targets/doh_*.rs).
#[cfg(feature = "doh")]
pub mod h2;
#[cfg(feature = "doh")]
pub mod https;
#[cfg(feature = "doh")]
pub mod https_boot;
#[cfg(feature = "doh")]
pub mod https_http;
mod open;
pub mod tcp;
#[cfg(feature = "tls")]
pub mod tls;
pub mod udp;

/// Tokens from here on (up to the signal token) are transport sockets.
pub const TOKEN_BASE: usize = 1 << 24;

/// How an attempt travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Tcp,
    /// DNS over TLS (or over HTTPS): chosen by the transport for servers configured
    /// as such.
    #[cfg(feature = "tls")]
    Tls,
}

/// The attempt a transmission belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner {
    /// Slot of the question in flight, and its generation (slots are reused).
    pub pending: usize,
    pub gen: u32,
    /// Position of the attempt in the question's list.
    pub attempt: usize,
}

/// What a transport socket has to say; see [`Transports::next_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A message for `owner`, in the first `len` bytes of the buffer. Its transaction id
    /// is the attempt's on a stream; on UDP nothing about it is checked yet.
    Message(Owner, usize),
    /// A message on a stream whose transaction id no attempt there has. The stream is
    /// no longer trusted: its attempts fail next.
    Stray,
    /// The attempt's path failed (ICMP unreachable, connection refused, reset or closed).
    Failed(Owner),
}

enum Channel {
    Udp(udp::Socket),
    Tcp(tcp::Stream),
    #[cfg(feature = "tls")]
    Tls(Box<tls::Channel>),
    #[cfg(feature = "doh")]
    Https(Box<https::Channel>),
}

/// Every open upstream socket.
#[derive(Default)]
pub struct Transports {
    channels: Slab<Channel>,
    /// The channel each open attempt uses.
    open: open::OpenAttempts,
    /// The TCP stream to each server, while one is open. A list, not a hash map: one
    /// entry per upstream server at most, so a scan is as quick and costs no hash table
    /// code in the binary.
    streams: Vec<(SocketAddr, usize)>,
    #[cfg(feature = "tls")]
    tls: tls_glue::TlsUpstreams,
    #[cfg(feature = "doh")]
    https: https_glue::HttpsUpstreams,
}

impl Transports {
    /// Sends `msg` (with transaction id `id`) to `addr` for `owner`.
    pub fn send(
        &mut self,
        reg: &Registry,
        proto: Proto,
        addr: SocketAddr,
        owner: Owner,
        id: u16,
        msg: &[u8],
    ) -> io::Result<()> {
        match proto {
            Proto::Udp => {
                let sock = udp::Socket::open(addr, owner, msg)?;
                let slot = self.channels.insert(Channel::Udp(sock));
                if let Some(Channel::Udp(s)) = self.channels.get_mut(slot) {
                    if let Err(e) = s.register(reg, Token(TOKEN_BASE + slot)) {
                        self.channels.remove(slot);
                        return Err(e);
                    }
                }
                self.open.insert(owner, slot);
                Ok(())
            }
            Proto::Tcp => {
                // Pipelined on the stream already open to this server, if it takes it.
                if let Some(slot) = self.stream_to(addr) {
                    if let Some(Channel::Tcp(t)) = self.channels.get_mut(slot) {
                        if t.add(owner, id, msg) {
                            t.write_pending();
                            self.open.insert(owner, slot);
                            return Ok(());
                        }
                    }
                }
                let mut t = tcp::Stream::connect(addr)?;
                t.add(owner, id, msg);
                let slot = self.channels.insert(Channel::Tcp(t));
                if let Some(Channel::Tcp(t)) = self.channels.get_mut(slot) {
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
                // A newer stream takes the new attempts; an older one serves its own.
                match self.streams.iter_mut().find(|(a, _)| *a == addr) {
                    Some(e) => e.1 = slot,
                    None => self.streams.push((addr, slot)),
                }
                self.open.insert(owner, slot);
                Ok(())
            }
            #[cfg(feature = "doh")]
            Proto::Tls if self.is_https(addr) => self.send_https(reg, addr, owner, msg, 0),
            #[cfg(feature = "tls")]
            Proto::Tls => self.send_tls(reg, addr, owner, msg, 0),
        }
    }

    /// Stops listening for `owner`'s answer: closes its UDP socket, or takes it off its
    /// stream (closing the stream when nothing else waits on it).
    pub fn close(&mut self, reg: &Registry, owner: Owner) {
        let Some(slot) = self.open.remove(&owner) else {
            return;
        };
        let idle = match self.channels.get_mut(slot) {
            // Closing the only descriptor of a socket removes it from epoll: no syscall
            // to deregister first (upstream sockets come and go with every miss).
            Some(Channel::Udp(_)) => true,
            Some(Channel::Tcp(t)) => {
                t.remove(owner);
                t.is_idle()
            }
            // The connection stays for the next queries, until idle or closed.
            #[cfg(feature = "tls")]
            Some(Channel::Tls(t)) => {
                t.remove(owner);
                t.is_done() && t.owners().is_empty()
            }
            #[cfg(feature = "doh")]
            Some(Channel::Https(t)) => {
                t.remove(owner);
                t.is_idle_done()
            }
            None => false,
        };
        if idle {
            self.drop_channel(reg, slot);
        }
    }

    /// The slot of the TCP stream open to `addr`, if any.
    fn stream_to(&self, addr: SocketAddr) -> Option<usize> {
        self.streams
            .iter()
            .find(|(a, _)| *a == addr)
            .map(|&(_, s)| s)
    }

    /// Open upstream sockets.
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    fn drop_channel(&mut self, reg: &Registry, slot: usize) {
        match self.channels.remove(slot) {
            Some(Channel::Tcp(mut t)) => {
                let _ = reg.deregister(&mut t.stream);
                self.streams.retain(|&(a, s)| !(a == t.addr && s == slot));
                for o in t.owners() {
                    self.open.remove(&o);
                }
            }
            Some(Channel::Udp(u)) => {
                self.open.remove(&u.owner);
            }
            #[cfg(feature = "tls")]
            Some(Channel::Tls(mut t)) => {
                let _ = reg.deregister(&mut t.stream);
                if self.tls.conns.get(&t.addr) == Some(&slot) {
                    self.tls.conns.remove(&t.addr);
                }
                self.tls.older.retain(|&s| s != slot);
                for o in t.owners() {
                    self.open.remove(&o);
                }
            }
            #[cfg(feature = "doh")]
            Some(Channel::Https(mut t)) => {
                let _ = reg.deregister(&mut t.stream);
                self.forget_https_slot(t.addr, slot);
                for o in t.owners() {
                    self.open.remove(&o);
                }
            }
            None => {}
        }
    }

    /// The poller reported the socket with token `TOKEN_BASE + slot` (readable, or its
    /// read side closed or in error): a DoT connection reads again only after this.
    #[cfg(feature = "tls")]
    pub fn readiness(&mut self, slot: usize, readable: bool, read_closed: bool) {
        if let Some(Channel::Tls(t)) = self.channels.get_mut(slot) {
            t.readiness(readable, read_closed);
        }
    }

    /// The next thing the socket with token `TOKEN_BASE + slot` has to say, reading from
    /// the socket as needed; None when it has nothing more for now. A message is put into
    /// `buf`. Call until None: epoll reports a socket once per change (edge-triggered).
    /// `now` is the loop turn's clock, read once after the wait: reading it here was a
    /// clock read per answer.
    #[cfg_attr(not(feature = "tls"), allow(unused_variables))]
    pub fn next_event(
        &mut self,
        reg: &Registry,
        slot: usize,
        buf: &mut Vec<u8>,
        now: Instant,
    ) -> Option<Event> {
        let ev = match self.channels.get_mut(slot)? {
            // A bootstrap lookup's socket: the lookup takes what it says.
            #[cfg(feature = "doh")]
            Channel::Udp(u) if u.owner.pending == https_boot::OWNER => {
                self.boot_ready(reg, slot, buf);
                return None;
            }
            Channel::Udp(u) => return u.next_event(buf),
            Channel::Tcp(t) => t.next_event(buf),
            #[cfg(feature = "tls")]
            Channel::Tls(_) => return self.next_tls_event(reg, slot, buf, now),
            #[cfg(feature = "doh")]
            Channel::Https(_) => return self.next_https_event(reg, slot, buf, now),
        };
        match ev {
            Some(Event::Message(o, _)) | Some(Event::Failed(o)) => {
                self.open.remove(&o);
            }
            Some(Event::Stray) => {}
            None => {
                // Nothing more to say: a failed or unused stream goes.
                if matches!(self.channels.get(slot), Some(Channel::Tcp(t)) if t.is_idle()) {
                    self.drop_channel(reg, slot);
                }
            }
        }
        ev
    }
}

#[cfg(feature = "doh")]
mod https_glue;
#[cfg(feature = "tls")]
mod tls_glue;

#[cfg(test)]
mod tests;
