//! DNS over TCP from clients (RFC 7766): length-prefixed messages, many per connection,
//! pipelined, answered in completion order, with an idle timeout and bounded buffers.

use std::io::{self, Read, Write};
use std::time::Duration;

use mio::{Interest, Token};

use crate::config::RefuseAction;
use crate::core::inflight::ReplyTo;
use crate::server::{Conn, Listener, Server, Timer, CONN_BASE};
use crate::tcp_client::TcpClient;
/// Framing is shared with the upstream side.
pub use crate::transport::tcp::split_frame;

/// Close a connection after this long without traffic or outstanding queries.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections at once; beyond, new ones are closed at accept.
pub const MAX_CLIENTS: usize = 128;
/// Connections at once from one address.
pub const MAX_PER_CLIENT: usize = 16;
/// Unparsed request bytes held per connection (one full message plus its length).
const MAX_READ: usize = 65537;

impl Server {
    pub(crate) fn accept(&mut self, li: usize) {
        for _ in 0..64 {
            let r = match &self.listeners[li] {
                Listener::Tcp(l, _) => l.accept(),
                _ => return,
            };
            match r {
                Ok((stream, peer)) => {
                    if self.cfg.refuse_action == RefuseAction::Drop && !self.acl.permits(peer.ip())
                    {
                        self.stats.drop_refused += 1;
                        continue;
                    }
                    let (mut clients, mut same) = (0, 0);
                    for (_, c) in self.conns.iter() {
                        if let Conn::Client(c) = c {
                            clients += 1;
                            same += usize::from(c.peer.ip() == peer.ip());
                        }
                    }
                    if clients >= MAX_CLIENTS || same >= MAX_PER_CLIENT || self.tcp_over_limit() {
                        self.stats.drop_overload += 1;
                        log::debug!("tcp: too many connections, closing {peer}");
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    self.serial = self.serial.wrapping_add(1);
                    let c = TcpClient {
                        stream,
                        peer,
                        serial: self.serial,
                        rbuf: Vec::new(),
                        wbuf: Vec::new(),
                        wpos: 0,
                        outstanding: 0,
                        last_active: self.now,
                        read_closed: false,
                        wants_write: false,
                    };
                    match self.register_conn(Conn::Client(c), Interest::READABLE) {
                        Ok(i) => {
                            self.stats.tcp_clients += 1;
                            let at = self.now + IDLE_TIMEOUT;
                            let serial = self.serial;
                            self.add_timer(at, Timer::Client(i, serial));
                        }
                        Err(e) => log::debug!("tcp: register {peer}: {e}"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors and the like: try again on the next event.
                    log::warn!("tcp accept: {e}");
                    return;
                }
            }
        }
    }

    /// Bytes all client connections hold.
    pub(crate) fn tcp_buffered(&self) -> usize {
        self.conns
            .iter()
            .map(|(_, c)| match c {
                Conn::Client(c) => c.buffered(),
                _ => 0,
            })
            .sum()
    }

    /// With `memory_limit`, TCP clients may hold at most a quarter of it.
    fn tcp_over_limit(&self) -> bool {
        let limit = self.cfg.memory_limit_kib as usize * 1024;
        limit > 0 && self.tcp_buffered() + MAX_READ > limit / 4
    }

    pub(crate) fn client_ready(&mut self, ci: usize, readable: bool, writable: bool) {
        if writable {
            self.client_flush(ci);
        }
        if readable {
            self.client_read(ci);
        }
    }

    fn client_read(&mut self, ci: usize) {
        let mut chunk = [0u8; 4096];
        loop {
            let Some(Conn::Client(c)) = self.conns.get_mut(ci) else {
                return;
            };
            if c.rbuf.len() >= MAX_READ {
                break;
            }
            match c.stream.read(&mut chunk) {
                Ok(0) => {
                    c.read_closed = true;
                    break;
                }
                Ok(n) => {
                    c.rbuf.extend_from_slice(&chunk[..n]);
                    c.last_active = self.now;
                    self.client_process(ci);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.close_conn(ci);
                    return;
                }
            }
        }
        self.client_process(ci);
        self.client_maybe_close(ci);
    }

    /// Handles every complete message in the read buffer.
    fn client_process(&mut self, ci: usize) {
        loop {
            let (msg, serial, ip) = match self.conns.get_mut(ci) {
                Some(Conn::Client(c)) => match c.next_message() {
                    Some(m) => (m, c.serial, c.peer.ip()),
                    None => return,
                },
                _ => return,
            };
            self.handle_query(&msg, ReplyTo::Tcp { conn: ci, serial }, ip);
        }
    }

    fn client_maybe_close(&mut self, ci: usize) {
        if let Some(Conn::Client(c)) = self.conns.get(ci) {
            if c.read_closed && c.outstanding == 0 && c.wpos == c.wbuf.len() {
                self.close_conn(ci);
            }
        }
    }

    /// Writes what is queued; asks for writability if the socket is full.
    pub(crate) fn client_flush(&mut self, ci: usize) {
        let Some(Conn::Client(c)) = self.conns.get_mut(ci) else {
            return;
        };
        let mut dead = false;
        while c.wpos < c.wbuf.len() {
            match c.stream.write(&c.wbuf[c.wpos..]) {
                Ok(0) => {
                    dead = true;
                    break;
                }
                Ok(n) => {
                    c.wpos += n;
                    c.last_active = self.now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    dead = true;
                    break;
                }
            }
        }
        if dead {
            self.close_conn(ci);
            return;
        }
        let pending_out = c.wpos < c.wbuf.len();
        if pending_out != c.wants_write {
            c.wants_write = pending_out;
            let interest = if pending_out {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let token = Token(CONN_BASE + ci);
            let _ = self
                .poll
                .registry()
                .reregister(&mut c.stream, token, interest);
        }
        if !pending_out {
            self.client_maybe_close(ci);
        }
    }

    pub(crate) fn client_timer(&mut self, ci: usize, serial: u32) {
        let Some(Conn::Client(c)) = self.conns.get(ci) else {
            return;
        };
        if c.serial != serial {
            return;
        }
        let due = c.last_active + IDLE_TIMEOUT;
        if self.now >= due && c.outstanding == 0 {
            log::debug!("tcp: closing idle {}", c.peer);
            self.close_conn(ci);
        } else {
            let at = due.max(self.now + Duration::from_secs(1));
            self.add_timer(at, Timer::Client(ci, serial));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_frame;

    #[test]
    fn frames_split_only_when_complete() {
        assert_eq!(split_frame(&[]), None);
        assert_eq!(split_frame(&[0]), None);
        assert_eq!(split_frame(&[0, 3, 1, 2]), None);
        assert_eq!(split_frame(&[0, 2, 1, 2, 9]), Some((&[1u8, 2][..], 4)));
        assert_eq!(split_frame(&[0, 0, 7]), Some((&[][..], 2)));
    }
}
