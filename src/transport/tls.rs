//! DNS over TLS to an upstream (RFC 7858, full build only): the sans-IO connection of
//! `crate::tls` driven over a non-blocking mio `TcpStream`.
//!
//! One persistent connection per upstream carries every attempt to it, pipelined and
//! matched by ID in any order. The connection keeps a copy of each query it carries, so
//! that when the server closes first (even mid-pipeline) the unanswered ones can go out
//! again on a new connection instead of costing the client an answer.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use rustls::{ClientConfig, RootCertStore};

use super::{Event, Owner};
use crate::clock_trust::ClockTrust;
// edns-tcp-keepalive, sent on every query (RFC 7828).
use crate::tls::id_map::{id_map, IdMap};
use crate::tls::keepalive::OPTION_CODE as OPT_KEEPALIVE;
use crate::tls::{Answer, DotConn, DotError, DotLimits, DotState, Pin, SendError};

/// EDNS padding option (RFC 7830) and the block size queries are padded to (RFC 8467).
const OPT_PADDING: u16 = 12;
const PAD_BLOCK: usize = 128;
/// Backoff after a failed connection: doubled per failure up to the cap.
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How often a query goes out again after connections closed with it unanswered: a
/// server that closes mid-pipeline now and then costs nothing, one that never answers
/// it does not get it forever.
pub const MAX_RESENDS: u8 = 3;

/// An upstream spoken to over TLS, with what outlives its connections: the client
/// configuration (whose session cache lets a reconnect resume), the backoff, and the
/// state last logged.
pub struct Server {
    pub auth_name: String,
    pins: Vec<Pin>,
    config: Option<Arc<ClientConfig>>,
    fails: u32,
    retry_at: Option<Instant>,
    /// The state as last logged and shown in stats ("ok", or why it failed).
    pub status: String,
}

impl Server {
    pub fn new(auth_name: String, pins: Vec<Pin>) -> Server {
        Server {
            auth_name,
            pins,
            config: None,
            fails: 0,
            retry_at: None,
            status: "not connected yet".into(),
        }
    }

    /// The configuration shared by every connection to this server, built on first use
    /// and after each reset.
    pub fn config(
        &mut self,
        roots: &Arc<RootCertStore>,
        clock: ClockTrust,
    ) -> Result<Arc<ClientConfig>, String> {
        if let Some(c) = &self.config {
            return Ok(Arc::clone(c));
        }
        let c = crate::tls::client_config(Arc::clone(roots), self.pins.clone(), clock)?;
        self.config = Some(Arc::clone(&c));
        Ok(c)
    }

    /// Link up or new addresses: sessions, backoff and the configuration start afresh.
    pub fn reset(&mut self) {
        self.config = None;
        self.fails = 0;
        self.retry_at = None;
    }

    /// Time left before the next connection may be tried.
    pub fn backing_off(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|t| now < t)
    }

    /// Records how a connection ended and logs a change of state (once, not per query).
    pub fn record(&mut self, addr: SocketAddr, outcome: Result<(), String>, now: Instant) {
        let status = match outcome {
            Ok(()) => {
                self.fails = 0;
                self.retry_at = None;
                "ok".to_string()
            }
            Err(e) => {
                self.fails = self.fails.saturating_add(1);
                let shift = self.fails.saturating_sub(1).min(8);
                self.retry_at = Some(now + (BACKOFF_FIRST * (1 << shift)).min(BACKOFF_MAX));
                e
            }
        };
        if status != self.status {
            if status == "ok" {
                log::info!("upstream {addr} ({}): TLS connected", self.auth_name);
            } else {
                log::warn!("upstream {addr} ({}): {status}", self.auth_name);
            }
            self.status = status;
        }
    }
}

struct Query {
    owner: Owner,
    msg: Vec<u8>,
    /// Times sent before on connections that closed without answering it.
    resends: u8,
}

/// Whether a read that returns less than it asked for shows the receive queue empty, so
/// that the read which would only say so (EAGAIN) can be skipped. On Linux a TCP read
/// returns short only when it has taken everything queued, and epoll (edge-triggered,
/// as mio registers) reports the socket again for every later arrival, data or FIN.
/// Elsewhere mio's own rule holds: read until WouldBlock.
const SHORT_READ_EMPTIES: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// Bytes one read asks for.
const READ_CHUNK: usize = 4096;

/// While queries go out on a connection at least this often, the ACK for answers read
/// waits for the next one to carry it, this long at most, before the connection sends
/// one of its own ([`ack_now`]): at such loads the ACK then costs no system call and no
/// segment (about 4 % of the CPU per miss at 3,000 a second), and a server with Nagle
/// on holds its next answer no longer than the gap between two queries. Otherwise
/// (light use: a burst, then nothing) what is read is acknowledged at once, so that
/// such a server sends the rest of the burst one round trip after its first answer.
pub const ACK_WAIT: Duration = Duration::from_millis(1);

/// One TLS connection to an upstream.
pub struct Channel {
    pub stream: TcpStream,
    pub addr: SocketAddr,
    conn: DotConn,
    out: Vec<u8>,
    written: usize,
    /// Token (as given to the connection) → the attempt and its query.
    queries: IdMap<u64, Query>,
    next_token: u64,
    answers: Vec<(Owner, Vec<u8>)>,
    /// What the connection matched in one read, on its way to `answers` (kept to keep
    /// its allocation).
    matched: Vec<Answer>,
    /// What one read takes from the socket: allocated once, not cleared per read.
    chunk: Box<[u8]>,
    /// Why the connection ended, once it has.
    pub error: Option<DotError>,
    /// A socket error (refused, reset) rather than something TLS said.
    pub socket_error: Option<String>,
    /// The handshake completed at some point.
    pub was_open: bool,
    /// A read found the receive queue empty and no readiness event came since: nothing
    /// new to read (see [`Channel::readiness`]).
    drained: bool,
    /// The last readiness event said the server's side is closed (or the socket has an
    /// error): read until end of file, whatever the reads return.
    read_to_end: bool,
    /// When the ACK for answers read goes out on its own if no query has carried it
    /// by then (see [`ACK_WAIT`]).
    ack_by: Option<Instant>,
    /// When queries were last written.
    wrote_at: Option<Instant>,
}

impl Channel {
    pub fn connect(
        addr: SocketAddr,
        config: Arc<ClientConfig>,
        auth_name: &str,
        now: Instant,
    ) -> Result<Channel, String> {
        let conn = DotConn::new(config, auth_name, DotLimits::default(), now)
            .map_err(|e| e.to_string())?;
        let stream = TcpStream::connect(addr).map_err(|e| format!("TCP connect failed: {e}"))?;
        // Every query is a small record of its own: with Nagle, one written while the
        // one before is unacknowledged would wait for that ACK (the server's delayed
        // ACK, 40 ms on Linux) instead of going out with it in flight.
        let _ = stream.set_nodelay(true);
        let mut c = Channel {
            stream,
            addr,
            conn,
            out: Vec::new(),
            written: 0,
            queries: id_map(),
            next_token: 0,
            answers: Vec::new(),
            matched: Vec::new(),
            chunk: vec![0u8; READ_CHUNK].into_boxed_slice(),
            error: None,
            socket_error: None,
            was_open: false,
            drained: false,
            read_to_end: false,
            ack_by: None,
            wrote_at: None,
        };
        c.collect_output();
        Ok(c)
    }

    /// Takes a query for `owner`; false if this connection cannot (full or closing).
    pub fn add(
        &mut self,
        owner: Owner,
        msg: &[u8],
        resends: u8,
        rng: &mut crate::rand::Rng,
    ) -> bool {
        if self.error.is_some() || !self.conn.accepts_queries() {
            return false;
        }
        let mut padded = self.conn.spare_buffer();
        pad_into(msg, &mut padded);
        let msg = padded;
        let token = self.next_token;
        match self.conn.send_query(&msg, token, &mut || rng.u16()) {
            Ok(()) => {}
            Err(SendError::Full | SendError::BadQuery) => return false,
            Err(SendError::Closed) => {
                self.end(None);
                return false;
            }
        }
        self.next_token += 1;
        self.queries.insert(
            token,
            Query {
                owner,
                msg,
                resends,
            },
        );
        // Sent by send_queued at the end of the loop turn, with the turn's other queries.
        true
    }

    /// Seals the queries added since the last call and writes them (one TLS record and
    /// one write for all of them, where one each cost a record, a write and, at 100 in
    /// flight, a share of the latency).
    pub fn send_queued(&mut self, now: Instant) {
        if self.conn.has_queued() {
            self.collect_output();
            self.flush();
            self.wrote_at = Some(now);
        }
    }

    /// Answers read but not yet delivered through [`Channel::next_event`].
    pub fn has_answers(&self) -> bool {
        !self.answers.is_empty()
    }

    pub fn remove(&mut self, owner: Owner) {
        self.queries.retain(|_, q| q.owner != owner);
    }

    /// True if an attempt of `owner`'s question (another attempt than `owner`) waits
    /// for its answer here.
    pub fn carries_question(&self, owner: Owner) -> bool {
        self.queries
            .values()
            .any(|q| q.owner.pending == owner.pending && q.owner.gen == owner.gen)
    }

    pub fn owners(&self) -> Vec<Owner> {
        self.queries.values().map(|q| q.owner).collect()
    }

    /// Nothing more will come of this connection.
    pub fn is_done(&self) -> bool {
        self.error.is_some() || *self.conn.state() == DotState::Closed
    }

    fn collect_output(&mut self) {
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
        }
        self.conn.write_output(&mut self.out);
        if let (None, DotState::Failed(e)) = (&self.error, self.conn.state()) {
            self.error = Some(e.clone());
        }
    }

    fn flush(&mut self) {
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(0) => return self.end(Some("connection closed".into())),
                Ok(n) => {
                    self.written += n;
                    // The segment carries the ACK of everything received.
                    self.ack_by = None;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // Still connecting: the writable event comes when it is done.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.end(Some(e.to_string())),
            }
        }
    }

    fn end(&mut self, socket_error: Option<String>) {
        if self.error.is_none() {
            let e = self.conn.receive_eof();
            self.error = Some(e);
            if !self.was_open {
                self.socket_error = socket_error;
            }
        }
    }

    /// The poller reported the socket: READABLE, or READ_CLOSED (the server's side is
    /// closed, or the socket has an error). Until such an event, a connection whose last
    /// read found the queue empty does not read again.
    pub fn readiness(&mut self, readable: bool, read_closed: bool) {
        if readable || read_closed {
            self.drained = false;
        }
        self.read_to_end = read_closed;
    }

    /// Reads and writes what the socket allows now.
    pub fn drive(&mut self, now: Instant) {
        self.flush();
        let mut read_some = false;
        while self.error.is_none() && !self.drained {
            match self.stream.read(&mut self.chunk) {
                Ok(0) => self.end(Some("connection closed by the server".into())),
                Ok(n) => {
                    read_some = true;
                    let r = self.conn.receive(&self.chunk[..n], now);
                    if *self.conn.state() == DotState::Open {
                        self.was_open = true;
                    }
                    if let Err(e) = r {
                        self.error = Some(e);
                    }
                    self.take_answers();
                    // A short read took all there was: what comes later raises a new
                    // event. (A FIN already queued behind the data raised none, but the
                    // event said so: read_to_end reads on to the end of file.)
                    if n < self.chunk.len() && SHORT_READ_EMPTIES && !self.read_to_end {
                        self.drained = true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.drained = true,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => self.end(Some(format!("TCP connect failed: {e}"))),
            }
        }
        // Only while more is due from the server: with nothing in flight it holds
        // nothing back, and the next query carries the ACK. The handshake's at once (a
        // reconnect waits on it); answers' by the next query while queries flow (see
        // ACK_WAIT), at once otherwise.
        if read_some {
            let flowing = self
                .wrote_at
                .is_some_and(|t| now.saturating_duration_since(t) < ACK_WAIT);
            if !self.awaits_data() {
                self.ack_by = None;
            } else if *self.conn.state() == DotState::Open && flowing {
                self.ack_by.get_or_insert(now + ACK_WAIT);
            } else if self.ack_by.is_none() {
                ack_now(&self.stream);
            }
        }
        if *self.conn.state() == DotState::Open {
            self.was_open = true;
        }
        // Handshake replies, alerts, close_notify.
        self.collect_output();
        self.flush();
    }

    /// The server has more to send: answers to queries in flight, or the rest of the
    /// handshake.
    fn awaits_data(&self) -> bool {
        self.conn.in_flight() > 0 || *self.conn.state() == DotState::Handshaking
    }

    fn take_answers(&mut self) {
        self.conn.move_answers(&mut self.matched);
        for a in self.matched.drain(..) {
            // An answer means the handshake completed, even if the server closed in
            // the same read.
            self.was_open = true;
            if let Some(q) = self.queries.remove(&a.token) {
                self.answers.push((q.owner, a.message));
                // The query is answered: its buffer takes a later answer.
                self.conn.recycle(q.msg);
            }
        }
    }

    /// The handshake deadline, the idle close or the ACK owed, whichever comes first.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.error.is_some() {
            return None;
        }
        match (self.conn.next_deadline(), self.ack_by) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Handshake deadline, idle close, and the ACK no query carried in time.
    pub fn tick(&mut self, now: Instant) {
        if self.ack_by.is_some_and(|at| at <= now) {
            self.ack_by = None;
            if self.error.is_none() && self.awaits_data() {
                ack_now(&self.stream);
            }
        }
        if self.error.is_none() {
            if let Err(e) = self.conn.tick(now) {
                self.error = Some(e);
            }
            self.collect_output();
            self.flush();
        }
    }

    /// The next answer, or failed attempt once the connection is over; see
    /// [`Channel::take_resend`] for the queries that may go out again.
    pub fn next_event(&mut self, buf: &mut Vec<u8>) -> Option<Event> {
        if let Some((owner, msg)) = self.answers.pop() {
            buf.clear();
            buf.extend_from_slice(&msg);
            let n = msg.len();
            self.conn.recycle(msg);
            return Some(Event::Message(owner, n));
        }
        if self.error.is_some() {
            // Failed for good: queries resent too often already, or all when the
            // server never completed a handshake (an authentication or connect failure).
            let failed = self
                .queries
                .iter()
                .find(|(_, q)| q.resends >= MAX_RESENDS || !self.was_open)
                .map(|(&t, q)| (t, q.owner));
            if let Some((t, owner)) = failed {
                self.queries.remove(&t);
                return Some(Event::Failed(owner));
            }
        }
        None
    }

    /// The unanswered queries of a connection the server ended after it had worked.
    /// (Those resent too often stay, to fail through [`Channel::next_event`].)
    pub fn take_resend(&mut self) -> Vec<(Owner, Vec<u8>, u8)> {
        if self.error.is_none() || !self.was_open {
            return Vec::new();
        }
        let tokens: Vec<u64> = self
            .queries
            .iter()
            .filter(|(_, q)| q.resends < MAX_RESENDS)
            .map(|(&t, _)| t)
            .collect();
        let mut qs: Vec<Query> = tokens
            .iter()
            .filter_map(|t| self.queries.remove(t))
            .collect();
        qs.sort_by_key(|q| (q.owner.pending, q.owner.attempt));
        qs.into_iter()
            .map(|q| (q.owner, q.msg, q.resends + 1))
            .collect()
    }

    /// Makes `owner` fail through this connection (its resend found no connection).
    pub fn fail_later(&mut self, owner: Owner) {
        let token = self.next_token;
        self.next_token += 1;
        let q = Query {
            owner,
            msg: Vec::new(),
            resends: MAX_RESENDS,
        };
        self.queries.insert(token, q);
    }

    /// How the connection ended, for the log and the backoff: None if it ended well
    /// (idle close, or the server closing a connection that had worked).
    pub fn failure(&self) -> Option<String> {
        if self.was_open {
            return match &self.error {
                Some(DotError::PeerClosed) | None => None,
                Some(e) => Some(e.to_string()),
            };
        }
        match (&self.socket_error, &self.error) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(e)) => Some(format!("TLS failed: {e}")),
            (None, None) => None,
        }
    }

    /// Ends the connection politely (close_notify), for link down and resets.
    pub fn close(&mut self) {
        self.conn.close();
        self.collect_output();
        self.flush();
    }
}

/// Makes the kernel acknowledge what was read at once instead of after its delayed-ACK
/// timer (40 ms on Linux). A connection that sends right after it receives, as a DoT
/// connection does, is taken for an interactive one and has its ACKs delayed; a server
/// whose socket has Nagle on (unbound's DoT service) then holds every answer after the
/// first of a burst until that ACK: 40 ms more for most queries of a burst. Setting it
/// also sends an ACK that is due at once; without it a read does so only for some
/// segment sizes, and a sender short of ACKs (its congestion window) slows down even
/// with Nagle off. So it is set after a read while answers are due, unless a query
/// carries the ACK first (see [`ACK_WAIT`]).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn ack_now(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid descriptor and a c_int option of the size given; failure (not a
    // TCP socket any more) changes nothing and needs no handling.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn ack_now(_stream: &TcpStream) {}

/// Adds edns-tcp-keepalive (empty, RFC 7828 3.2.1) to a query whose last record is an
/// empty OPT and pads it to a multiple of 128 bytes (RFC 8467 4.1); other queries go as
/// they are.
pub fn pad(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    pad_into(msg, &mut out);
    out
}

/// [`pad`] into `out` (emptied first), a buffer the caller reuses.
pub fn pad_into(msg: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let n = msg.len();
    // An OPT with no options: root name, type 41, class, TTL, rdlength 0.
    let tail_is_empty_opt = n >= 12 + 11
        && msg[n - 11] == 0
        && msg[n - 10..n - 8] == 41u16.to_be_bytes()
        && msg[n - 2..] == [0, 0]
        && u16::from_be_bytes([msg[10], msg[11]]) >= 1;
    if !tail_is_empty_opt {
        out.extend_from_slice(msg);
        return;
    }
    // Keepalive (4 bytes) and the padding option's header (4) count in the length.
    let with_headers = n + 8;
    let pad_len = (PAD_BLOCK - with_headers % PAD_BLOCK) % PAD_BLOCK;
    // Sized once, filled in order.
    out.reserve(with_headers + pad_len);
    out.extend_from_slice(&msg[..n - 2]);
    // RDLENGTH, then keepalive (code, length 0) and padding's code and length, in one copy.
    let [r0, r1] = ((8 + pad_len) as u16).to_be_bytes();
    let [k0, k1] = OPT_KEEPALIVE.to_be_bytes();
    let [p0, p1] = OPT_PADDING.to_be_bytes();
    let [l0, l1] = (pad_len as u16).to_be_bytes();
    out.extend_from_slice(&[r0, r1, k0, k1, 0, 0, p0, p1, l0, l1]);
    out.resize(with_headers + pad_len, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_queries_fill_whole_blocks() {
        let mut q = Vec::new();
        for name_len in [1usize, 20, 100, 119, 200] {
            q.clear();
            q.extend_from_slice(&[0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
            q.push(name_len.min(63) as u8);
            q.extend(std::iter::repeat_n(b'a', name_len.min(63)));
            q.push(0);
            q.extend_from_slice(&[0, 1, 0, 1]);
            q.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
            let p = pad(&q);
            assert_eq!(p.len() % PAD_BLOCK, 0, "len {}", p.len());
            let opt_at = q.len() - 11;
            let rdlen = u16::from_be_bytes([p[opt_at + 9], p[opt_at + 10]]) as usize;
            assert_eq!(opt_at + 11 + rdlen, p.len());
            // edns-tcp-keepalive without a value, then the padding.
            assert_eq!(p[opt_at + 11..opt_at + 15], [0, 11, 0, 0]);
            assert_eq!(p[opt_at + 15..opt_at + 17], OPT_PADDING.to_be_bytes());
        }
        // Without EDNS nothing is added.
        let plain = &q[..q.len() - 11];
        assert_eq!(pad(plain), plain);
    }

    #[test]
    fn padding_into_a_used_buffer_replaces_its_contents() {
        let mut q = vec![
            0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, b'a', 0, 0, 1, 0, 1,
        ];
        q.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
        let mut buf = vec![0xee; 300];
        pad_into(&q, &mut buf);
        assert_eq!(buf, pad(&q));
        let plain = &q[..q.len() - 11];
        pad_into(plain, &mut buf);
        assert_eq!(buf, plain);
    }
}
