//! UDP to an upstream: one fresh socket per attempt, on a port the kernel picks at random,
//! connected to the server so that answers from any other address or port never reach it.

use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};

use super::{Event, Owner};

/// Largest upstream answer read over UDP (what we advertise in EDNS, and then some).
const RECV_SIZE: usize = 4096;

pub struct Socket {
    sock: UdpSocket,
    pub owner: Owner,
}

impl Socket {
    /// Opens a socket to `addr` and sends `msg` on it.
    pub fn open(addr: SocketAddr, owner: Owner, msg: &[u8]) -> io::Result<Socket> {
        let sock = crate::sockets::upstream_udp(addr)?;
        sock.send(msg)?;
        Ok(Socket { sock, owner })
    }

    pub fn register(&mut self, reg: &Registry, token: Token) -> io::Result<()> {
        reg.register(&mut self.sock, token, Interest::READABLE)
    }

    /// One datagram, or the socket's error (ICMP unreachable and friends).
    pub fn next_event(&mut self, buf: &mut Vec<u8>) -> Option<Event> {
        buf.resize(RECV_SIZE, 0);
        loop {
            match self.sock.recv(buf) {
                Ok(n) => return Some(Event::Message(self.owner, n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("upstream receive: {e}");
                    return Some(Event::Failed(self.owner));
                }
            }
        }
    }
}
