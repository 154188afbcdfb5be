//! One DNS-over-TCP client connection: its socket and bounded read and write buffers.
//! The event loop (`server`) holds these in its connection table and `tcp` drives them;
//! the type lives apart so the loop does not import the code that drives it.

use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;

use crate::transport::tcp::split_frame;

/// Unsent reply bytes a client may leave with us before it is dropped.
const MAX_UNSENT: usize = 256 * 1024;

pub struct TcpClient {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// Distinguishes this connection from a later one in the same slot.
    pub serial: u32,
    pub(crate) rbuf: Vec<u8>,
    pub(crate) wbuf: Vec<u8>,
    pub(crate) wpos: usize,
    pub outstanding: u32,
    pub(crate) last_active: Instant,
    pub(crate) read_closed: bool,
    pub(crate) wants_write: bool,
}

impl TcpClient {
    /// Queues a length-prefixed reply; false if the client has let too much pile up.
    pub fn queue_reply(&mut self, msg: &[u8]) -> bool {
        if self.wbuf.len() - self.wpos + msg.len() > MAX_UNSENT {
            return false;
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        }
        self.wbuf
            .extend_from_slice(&(msg.len() as u16).to_be_bytes());
        self.wbuf.extend_from_slice(msg);
        true
    }

    /// Bytes held in buffers.
    pub fn buffered(&self) -> usize {
        self.rbuf.capacity() + self.wbuf.capacity() + std::mem::size_of::<Self>()
    }

    /// Takes the next complete message out of the read buffer.
    pub(crate) fn next_message(&mut self) -> Option<Vec<u8>> {
        let (msg, used) = split_frame(&self.rbuf)?;
        let msg = msg.to_vec();
        self.rbuf.drain(..used);
        Some(msg)
    }
}
