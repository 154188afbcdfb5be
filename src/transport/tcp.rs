//! TCP to an upstream (RFC 7766): length-framed messages on one stream per server, with
//! the stream's own table of transaction ids so that several attempts share it.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;

use super::{Event, Owner};

/// Attempts waiting on one stream at once; more open a stream of their own.
const MAX_PIPELINED: usize = 16;

/// Splits the first length-prefixed message off a TCP byte stream:
/// the message and the bytes it used, or None until it is complete.
pub fn split_frame(buf: &[u8]) -> Option<(&[u8], usize)> {
    let len = u16::from_be_bytes([*buf.first()?, *buf.get(1)?]) as usize;
    let msg = buf.get(2..2 + len)?;
    Some((msg, 2 + len))
}

pub struct Stream {
    pub stream: TcpStream,
    pub addr: SocketAddr,
    wbuf: Vec<u8>,
    written: usize,
    rbuf: Vec<u8>,
    /// Transaction id → the attempt waiting for it.
    ids: Vec<(u16, Owner)>,
    /// Closed, reset or not trusted: no more messages are read and nothing joins it.
    dead: bool,
}

impl Stream {
    pub fn connect(addr: SocketAddr) -> io::Result<Stream> {
        Ok(Stream {
            stream: TcpStream::connect(addr)?,
            addr,
            wbuf: Vec::new(),
            written: 0,
            rbuf: Vec::new(),
            ids: Vec::new(),
            dead: false,
        })
    }

    /// Queues a query; false if this stream cannot take it (dead, unused since its last
    /// answer and perhaps being closed by the server, full, or its id is taken here).
    pub fn add(&mut self, owner: Owner, id: u16, msg: &[u8]) -> bool {
        let fresh = self.wbuf.is_empty() && self.rbuf.is_empty() && self.ids.is_empty();
        if self.dead
            || (self.ids.is_empty() && !fresh)
            || self.ids.len() >= MAX_PIPELINED
            || self.ids.iter().any(|&(i, _)| i == id)
            || msg.len() > usize::from(u16::MAX)
        {
            return false;
        }
        if self.written == self.wbuf.len() {
            self.wbuf.clear();
            self.written = 0;
        }
        self.wbuf
            .extend_from_slice(&(msg.len() as u16).to_be_bytes());
        self.wbuf.extend_from_slice(msg);
        self.ids.push((id, owner));
        true
    }

    pub fn remove(&mut self, owner: Owner) {
        self.ids.retain(|&(_, o)| o != owner);
    }

    /// Nobody waits on it any more.
    pub fn is_idle(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn owners(&self) -> Vec<Owner> {
        self.ids.iter().map(|&(_, o)| o).collect()
    }

    /// Writes what it can of the queued queries; a write error kills the stream.
    pub fn write_pending(&mut self) {
        while !self.dead && self.written < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.written..]) {
                Ok(0) => self.dead = true,
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // Still connecting: the writable event comes when it is done.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => self.dead = true,
            }
        }
    }

    /// Reads until a whole message is buffered, the socket is drained, or it ends.
    fn read_some(&mut self) {
        let mut chunk = [0u8; 4096];
        while !self.dead && split_frame(&self.rbuf).is_none() {
            match self.stream.read(&mut chunk) {
                Ok(0) => self.dead = true,
                Ok(n) => self.rbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => self.dead = true,
            }
        }
    }

    /// The next message, stray, or failed attempt; None when there is nothing more now.
    pub fn next_event(&mut self, buf: &mut Vec<u8>) -> Option<Event> {
        self.write_pending();
        self.read_some();
        if let Some((msg, used)) = split_frame(&self.rbuf).filter(|_| !self.dead) {
            let id = msg.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
            let len = msg.len();
            buf.clear();
            buf.extend_from_slice(msg);
            self.rbuf.drain(..used);
            let found = self.ids.iter().position(|&(i, _)| Some(i) == id);
            return match found {
                Some(pos) => Some(Event::Message(self.ids.remove(pos).1, len)),
                None => {
                    // An answer to nothing we asked on this stream: a confused or
                    // hostile server; its other answers are not trusted either.
                    self.dead = true;
                    Some(Event::Stray)
                }
            };
        }
        if self.dead {
            return self.ids.pop().map(|(_, o)| Event::Failed(o));
        }
        None
    }
}
