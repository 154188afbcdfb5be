//! One DNS-over-TLS connection to an upstream, without I/O (RFC 7858, RFC 7766).
//!
//! The owner moves bytes: what the socket read goes into [`DotConn::receive`], what
//! [`DotConn::take_output`] returns goes to the socket. Time is an input too (every
//! call that may expire something takes `now`), so the same code runs under the mio
//! loop, in a blocking test driver, and on a virtual clock.
//!
//! Queries are pipelined: each gets an ID that is unique on this connection (drawn by
//! the caller's random source), answers are matched by that ID in any order and get
//! the client's ID back. Nothing is ever written in the clear: rustls holds queries
//! written before the handshake ends and encrypts them after it.

use std::fmt;
use std::io::{self, BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{AlertDescription, CertificateError, ClientConfig, ClientConnection};

use super::client_config::PinMismatch;
use super::id_map::{id_map, IdMap};

/// The limits of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DotLimits {
    /// From the first byte to the end of the handshake.
    pub handshake_timeout: Duration,
    /// With nothing in flight, the connection closes after this long without traffic
    /// (RFC 7858 3.4; public resolvers close at about 10 s themselves).
    pub idle_timeout: Duration,
    /// Queries in flight at once; more are refused so the owner queues or opens
    /// another connection. RFC 7766 6.2.1.1 sets no number; servers process a few dozen
    /// of a connection's queries at once (unbound 32) and leave the rest in the TCP
    /// stream, so a larger bound costs no head-of-line wait that a second connection
    /// to the same server would avoid, only a handshake.
    pub max_in_flight: usize,
}

impl Default for DotLimits {
    fn default() -> Self {
        DotLimits {
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
            max_in_flight: 128,
        }
    }
}

/// Why a connection failed. Every variant ends the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DotError {
    /// The server name is not a valid DNS name or address.
    BadServerName(String),
    HandshakeTimeout,
    /// The certificate is not valid for the configured authentication name.
    NameMismatch,
    /// The chain does not lead to a root of the CA file.
    UnknownCa,
    CertificateExpired,
    CertificateNotYetValid,
    /// Chain and name are fine, but no certificate matches a configured pin.
    PinMismatch,
    /// Some other certificate problem (revoked, bad signature, wrong usage, ...).
    BadCertificate(String),
    /// The server does not speak a TLS version this build accepts (TLS 1.3, and 1.2
    /// only in builds with the tls12 feature).
    ProtocolVersion(String),
    /// A TLS alert or protocol error not covered above.
    Tls(String),
    /// The server sent a frame that cannot be a DNS message.
    BadFrame(usize),
    /// The server closed the connection (cleanly or not).
    PeerClosed,
}

impl fmt::Display for DotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DotError::BadServerName(n) => write!(f, "'{n}' is not a valid TLS server name"),
            DotError::HandshakeTimeout => f.write_str("TLS handshake timed out"),
            DotError::NameMismatch => f.write_str("certificate is not valid for the server's name"),
            DotError::UnknownCa => f.write_str("certificate is not issued by a CA of ca_file"),
            DotError::CertificateExpired => f.write_str("certificate has expired"),
            DotError::CertificateNotYetValid => f.write_str("certificate is not valid yet"),
            DotError::PinMismatch => write!(f, "{PinMismatch}"),
            DotError::BadCertificate(e) => write!(f, "bad certificate: {e}"),
            DotError::ProtocolVersion(e) => write!(f, "server does not offer TLS 1.3: {e}"),
            DotError::Tls(e) => write!(f, "TLS error: {e}"),
            DotError::BadFrame(n) => write!(f, "server sent a {n}-byte frame, not a DNS message"),
            DotError::PeerClosed => f.write_str("server closed the connection"),
        }
    }
}

impl std::error::Error for DotError {}

impl From<rustls::Error> for DotError {
    fn from(e: rustls::Error) -> Self {
        use rustls::Error as E;
        match e {
            E::InvalidCertificate(c) => match c {
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => DotError::NameMismatch,
                CertificateError::UnknownIssuer => DotError::UnknownCa,
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    DotError::CertificateExpired
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    DotError::CertificateNotYetValid
                }
                CertificateError::Other(ref o) if o.0.downcast_ref::<PinMismatch>().is_some() => {
                    DotError::PinMismatch
                }
                other => {
                    DotError::BadCertificate(rustls::Error::InvalidCertificate(other).to_string())
                }
            },
            E::AlertReceived(AlertDescription::ProtocolVersion) | E::PeerIncompatible(_) => {
                DotError::ProtocolVersion(e.to_string())
            }
            other => DotError::Tls(other.to_string()),
        }
    }
}

/// Why a query was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// `max_in_flight` queries are waiting already.
    Full,
    /// Shorter than a DNS header or longer than a DNS-over-TCP frame.
    BadQuery,
    /// The connection failed or is closing; take the queries elsewhere.
    Closed,
}

/// An answer, with the ID of the query as the owner wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub token: u64,
    pub message: Vec<u8>,
}

/// Where the connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DotState {
    Handshaking,
    Open,
    /// Closed by us (idle, or on request): a close_notify may still be in the output.
    Closed,
    Failed(DotError),
}

struct InFlight {
    token: u64,
    client_id: u16,
}

/// A DoT connection: TLS state, the ID table, and the framing buffer.
pub struct DotConn {
    tls: ClientConnection,
    limits: DotLimits,
    state: DotState,
    started: Instant,
    last_activity: Instant,
    in_flight: IdMap<u16, InFlight>,
    /// Decrypted bytes not yet a whole frame.
    rx: Vec<u8>,
    /// Query frames not yet handed to TLS: [`DotConn::take_output`] seals all the
    /// queries of one loop turn into one record (one AEAD pass, one write) instead of
    /// a record and a write each.
    queued: Vec<u8>,
    answers: Vec<Answer>,
    /// Answers whose ID matched no query in flight (late, duplicated or forged).
    stray_answers: u64,
    /// The idle timeout the connection started with: a server's edns-tcp-keepalive
    /// may shorten it, never lengthen it.
    idle_cap: Duration,
    /// Emptied message buffers given back by the owner ([`DotConn::recycle`]): an
    /// answer taken from the stream is copied into one instead of a new allocation.
    spare: Vec<Vec<u8>>,
}

/// Buffers kept for reuse, and the largest kept (a typical answer or padded query
/// fits; a rare large one is freed).
const SPARE_BUFFERS: usize = 16;
const SPARE_CAPACITY: usize = 1232;

impl DotConn {
    /// Starts a connection to the server authenticated as `auth_name` (a DNS name, or an
    /// address for servers whose certificate names their IP). The first flight
    /// (ClientHello) is ready in [`DotConn::take_output`] at once.
    pub fn new(
        config: Arc<ClientConfig>,
        auth_name: &str,
        limits: DotLimits,
        now: Instant,
    ) -> Result<Self, DotError> {
        let name = ServerName::try_from(auth_name.to_string())
            .map_err(|_| DotError::BadServerName(auth_name.to_string()))?;
        let mut tls = ClientConnection::new(config, name).map_err(DotError::from)?;
        // What rustls buffers is bounded by the in-flight limit, and the owner takes
        // the output every loop turn: its own 64 KiB cap would only make a burst of
        // large queries fail during the handshake.
        tls.set_buffer_limit(None);
        Ok(DotConn {
            tls,
            limits,
            state: DotState::Handshaking,
            started: now,
            last_activity: now,
            in_flight: id_map(),
            rx: Vec::new(),
            queued: Vec::new(),
            answers: Vec::new(),
            stray_answers: 0,
            idle_cap: limits.idle_timeout,
            spare: Vec::new(),
        })
    }

    /// How long the connection stays open without queries: ours, or shorter when the
    /// server announced less (edns-tcp-keepalive, RFC 7828).
    pub fn idle_timeout(&self) -> Duration {
        self.limits.idle_timeout
    }

    pub fn state(&self) -> &DotState {
        &self.state
    }

    /// True when queries may be sent (during the handshake they wait inside rustls).
    pub fn accepts_queries(&self) -> bool {
        matches!(self.state, DotState::Handshaking | DotState::Open)
            && self.in_flight.len() < self.limits.max_in_flight
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub fn stray_answers(&self) -> u64 {
        self.stray_answers
    }

    /// True if the last handshake resumed an earlier session (one round trip).
    pub fn resumed(&self) -> bool {
        self.tls.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    /// Queues `query` (a whole DNS message, the client's ID in it) under `token`. Its ID
    /// on the wire comes from `random_id`, retried until unused on this connection.
    pub fn send_query(
        &mut self,
        query: &[u8],
        token: u64,
        random_id: &mut dyn FnMut() -> u16,
    ) -> Result<(), SendError> {
        if !matches!(self.state, DotState::Handshaking | DotState::Open) {
            return Err(SendError::Closed);
        }
        if self.in_flight.len() >= self.limits.max_in_flight {
            return Err(SendError::Full);
        }
        if query.len() < 12 || query.len() > usize::from(u16::MAX) {
            return Err(SendError::BadQuery);
        }
        // The table is at most max_in_flight of 65,536 IDs: a free one turns up fast.
        let id = loop {
            let id = random_id();
            if !self.in_flight.contains_key(&id) {
                break id;
            }
        };
        let client_id = u16::from_be_bytes([query[0], query[1]]);
        self.queued
            .extend_from_slice(&(query.len() as u16).to_be_bytes());
        self.queued.extend_from_slice(&id.to_be_bytes());
        self.queued.extend_from_slice(&query[2..]);
        self.in_flight.insert(id, InFlight { token, client_id });
        Ok(())
    }

    /// Feeds bytes read from the socket. Answers become available in
    /// [`DotConn::take_answers`]; an error ends the connection (the output may still
    /// hold an alert for the server).
    pub fn receive(&mut self, mut data: &[u8], now: Instant) -> Result<(), DotError> {
        if let DotState::Failed(e) = &self.state {
            return Err(e.clone());
        }
        if !data.is_empty() {
            self.last_activity = now;
        }
        while !data.is_empty() {
            match self.tls.read_tls(&mut data) {
                Ok(_) => {}
                Err(e) => return Err(self.fail(DotError::Tls(e.to_string()))),
            }
            if let Err(e) = self.tls.process_new_packets() {
                return Err(self.fail(e.into()));
            }
            self.drain_plaintext()?;
        }
        if self.state == DotState::Handshaking && !self.tls.is_handshaking() {
            self.state = DotState::Open;
        }
        Ok(())
    }

    /// The socket reported end of file (or a reset): the connection is over.
    pub fn receive_eof(&mut self) -> DotError {
        match &self.state {
            DotState::Failed(e) => e.clone(),
            _ => self.fail(DotError::PeerClosed),
        }
    }

    fn drain_plaintext(&mut self) -> Result<(), DotError> {
        loop {
            // Straight from rustls's buffer into the frame buffer, with no copy between.
            let mut reader = self.tls.reader();
            match reader.fill_buf() {
                // close_notify: the server is done; what it sent before still counts.
                Ok([]) => {
                    self.parse_frames()?;
                    return Err(self.fail(DotError::PeerClosed));
                }
                Ok(chunk) => {
                    let n = chunk.len();
                    self.rx.extend_from_slice(chunk);
                    reader.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // An unclean end (TCP closed without close_notify).
                Err(_) => return Err(self.fail(DotError::PeerClosed)),
            }
        }
        self.parse_frames()
    }

    fn parse_frames(&mut self) -> Result<(), DotError> {
        let mut pos = 0;
        while let Some(len_bytes) = self.rx.get(pos..pos + 2) {
            let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
            if len < 12 {
                return Err(self.fail(DotError::BadFrame(len)));
            }
            // A length prefix followed by junk is caught at the header, not after the
            // up to 64 KiB the prefix promises (which may never come).
            if let Some(h) = self.rx.get(pos + 2..pos + 2 + 12) {
                if !is_answer_header(h) {
                    return Err(self.fail(DotError::BadFrame(len)));
                }
            }
            let Some(msg) = self.rx.get(pos + 2..pos + 2 + len) else {
                break;
            };
            let id = u16::from_be_bytes([msg[0], msg[1]]);
            match self.in_flight.remove(&id) {
                Some(q) => {
                    if let Some(t) = super::keepalive::announced(msg) {
                        self.limits.idle_timeout = super::keepalive::bounded(t, self.idle_cap);
                    }
                    let mut message = self.spare.pop().unwrap_or_default();
                    message.extend_from_slice(msg);
                    message[..2].copy_from_slice(&q.client_id.to_be_bytes());
                    self.answers.push(Answer {
                        token: q.token,
                        message,
                    });
                }
                None => self.stray_answers += 1,
            }
            pos += 2 + len;
        }
        self.rx.drain(..pos);
        Ok(())
    }

    /// Gives back a message buffer the owner is done with (an answer it took, a query
    /// it sent): the next answer is copied into it.
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS && buf.capacity() <= SPARE_CAPACITY {
            buf.clear();
            self.spare.push(buf);
        }
    }

    /// An emptied buffer for a message the owner builds (one given back, or a new one).
    pub fn spare_buffer(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_default()
    }

    /// Answers matched since the last call, in arrival order.
    pub fn take_answers(&mut self) -> Vec<Answer> {
        std::mem::take(&mut self.answers)
    }

    /// [`DotConn::take_answers`] into the end of `out`: both vectors keep their
    /// allocations (one read after another, per query otherwise).
    pub fn move_answers(&mut self, out: &mut Vec<Answer>) {
        out.append(&mut self.answers);
    }

    /// True if queries wait to be sealed by [`DotConn::take_output`].
    pub fn has_queued(&self) -> bool {
        !self.queued.is_empty()
    }

    /// Hands the queued query frames to rustls in one write (during the handshake it
    /// holds them and sends them encrypted once the handshake is done).
    fn seal_queued(&mut self) {
        if !matches!(self.state, DotState::Handshaking | DotState::Open) {
            // Closed or failed: these queries are the owner's to resend elsewhere.
            self.queued.clear();
            return;
        }
        if self.queued.is_empty() {
            return;
        }
        let r = self.tls.writer().write_all(&self.queued);
        self.queued.clear();
        if let Err(e) = r {
            self.fail(DotError::Tls(e.to_string()));
        }
    }

    /// Bytes for the socket (TLS records: handshake, queries, alerts, close_notify).
    /// The queries sent since the last call go out together, in as few records as fit.
    pub fn take_output(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_output(&mut out);
        out
    }

    /// [`DotConn::take_output`] onto the end of `out`, with no vector of its own.
    pub fn write_output(&mut self, out: &mut Vec<u8>) {
        self.seal_queued();
        while self.tls.wants_write() {
            match self.tls.write_tls(out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    /// When [`DotConn::tick`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            DotState::Handshaking => Some(self.started + self.limits.handshake_timeout),
            DotState::Open if self.in_flight.is_empty() => {
                Some(self.last_activity + self.limits.idle_timeout)
            }
            _ => None,
        }
    }

    /// Applies the handshake deadline and the idle timeout. An idle close is not an
    /// error: the state becomes Closed and a close_notify waits in the output.
    pub fn tick(&mut self, now: Instant) -> Result<(), DotError> {
        match self.state {
            DotState::Handshaking if now >= self.started + self.limits.handshake_timeout => {
                Err(self.fail(DotError::HandshakeTimeout))
            }
            DotState::Open
                if self.in_flight.is_empty()
                    && now >= self.last_activity + self.limits.idle_timeout =>
            {
                self.close();
                Ok(())
            }
            DotState::Failed(ref e) => Err(e.clone()),
            _ => Ok(()),
        }
    }

    /// Ends the connection politely (close_notify in the output).
    pub fn close(&mut self) {
        if matches!(self.state, DotState::Handshaking | DotState::Open) {
            self.seal_queued();
            self.tls.send_close_notify();
            self.state = DotState::Closed;
        }
    }

    /// Tokens of the queries still unanswered, for the owner to send on another
    /// connection; the table is emptied.
    pub fn take_unanswered(&mut self) -> Vec<u64> {
        self.in_flight.drain().map(|(_, q)| q.token).collect()
    }

    fn fail(&mut self, e: DotError) -> DotError {
        if !matches!(self.state, DotState::Failed(_)) {
            self.state = DotState::Failed(e.clone());
        }
        e
    }
}

/// True if `h` (the first 12 bytes of a frame) can head an answer to one of our
/// queries: QR set, opcode QUERY, at most the one question we asked.
fn is_answer_header(h: &[u8]) -> bool {
    let qr_opcode = h[2] & 0xf8;
    let qdcount = u16::from_be_bytes([h[4], h[5]]);
    qr_opcode == 0x80 && qdcount <= 1
}
