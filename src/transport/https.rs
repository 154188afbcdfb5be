//! One DNS over HTTPS connection to an upstream (RFC 8484, full build only): rustls over
//! a non-blocking mio `TcpStream`, HTTP/2 when the server picks it by ALPN (many
//! queries in flight on one connection, see `h2`), else HTTP/1.1 with keep-alive, one
//! request at a time.
//!
//! Why one at a time and not pipelined: HTTP/1.1 answers come back in request order,
//! so one slow answer holds up every one behind it, and many servers and proxies do
//! not support pipelining well (a failure then loses the whole pipeline). A small pool
//! of connections per upstream (see the glue) gives the concurrency instead; queries
//! beyond it wait in a connection's queue, in order.
//!
//! Queries go with DNS ID 0 (RFC 8484 4.1, cache friendly); the client's ID is put back
//! into the answer. The connection keeps each query until it is answered, so when the
//! server closes a connection that worked, the unanswered ones go out again elsewhere.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

use super::h2::{H2Event, H2, MAX_STREAMS};
use super::https_http::{parse_response, request, MAX_BODY, MAX_HEAD};
use super::tls::MAX_RESENDS;
use super::{Event, Owner};
use crate::tls::DotError;

/// From the TCP connect to the end of the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// From a request written to its whole response.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// With nothing to do, the connection closes after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Queries waiting on one connection; more go to another or fail.
pub const MAX_QUEUED: usize = 16;
/// The same over HTTP/2: the streams in flight and as many waiting for one.
const MAX_QUEUED_H2: usize = 2 * MAX_STREAMS;

/// Where a DoH upstream is: its URL's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL's host: SNI and the name the certificate must be valid for.
    pub host: String,
    /// The Host header: the host, and the port when not 443.
    pub authority: String,
    pub path: String,
}

struct Query {
    owner: Owner,
    /// The query as it goes on the wire (ID 0, padded).
    wire: Vec<u8>,
    client_id: u16,
    resends: u8,
    /// The attempt gave up on it after its request was written: the response still
    /// comes, in order, and is dropped.
    abandoned: bool,
    /// HTTP/2: its stream (0 until it has one) and when its request was written.
    stream: u32,
    at: Option<Instant>,
}

/// How the connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Closed by the server (or by us when idle): no fault.
    Closed,
    /// A TCP error before the handshake (refused, unreachable, reset).
    Socket(String),
    /// TLS failed (certificate, pin, version, handshake timeout).
    Tls(DotError),
    /// The server answered something that is not a DoH answer, or nothing in time.
    Http(String),
}

pub struct Channel {
    pub stream: TcpStream,
    pub addr: SocketAddr,
    target: Arc<Target>,
    tls: ClientConnection,
    /// The TLS handshake completed at some point.
    pub was_open: bool,
    started: Instant,
    last_activity: Instant,
    /// When the request at the head of the queue was written, while it waits.
    sent_at: Option<Instant>,
    queue: VecDeque<Query>,
    /// Bytes encrypted for the socket and not yet written.
    out: Vec<u8>,
    written: usize,
    /// Decrypted response bytes not yet a whole response.
    rx: Vec<u8>,
    answers: Vec<(Owner, Vec<u8>)>,
    /// Queries that failed for good, to report.
    failed: Vec<Owner>,
    /// The server said it closes after the current response.
    closing: bool,
    /// Closed by us: nothing more is written.
    shut: bool,
    pub end: Option<End>,
    /// The server chose HTTP/2 (ALPN "h2").
    h2: Option<Box<H2>>,
}

impl Channel {
    pub fn connect(
        addr: SocketAddr,
        config: Arc<ClientConfig>,
        target: Arc<Target>,
        now: Instant,
    ) -> Result<Channel, String> {
        let name = ServerName::try_from(target.host.clone())
            .map_err(|_| format!("'{}' is not a valid TLS server name", target.host))?;
        let tls = ClientConnection::new(config, name).map_err(|e| DotError::from(e).to_string())?;
        let stream = TcpStream::connect(addr).map_err(|e| format!("TCP connect failed: {e}"))?;
        let mut c = Channel {
            stream,
            addr,
            target,
            tls,
            was_open: false,
            started: now,
            last_activity: now,
            sent_at: None,
            queue: VecDeque::new(),
            out: Vec::new(),
            written: 0,
            rx: Vec::new(),
            answers: Vec::new(),
            failed: Vec::new(),
            closing: false,
            shut: false,
            end: None,
            h2: None,
        };
        c.collect_output();
        Ok(c)
    }

    /// Queries waiting or in flight on this connection.
    pub fn load(&self) -> usize {
        self.queue.iter().filter(|q| !q.abandoned).count()
    }

    /// True when this connection may take another query.
    pub fn accepts(&self) -> bool {
        let max = if self.h2.is_some() {
            MAX_QUEUED_H2
        } else {
            MAX_QUEUED
        };
        self.end.is_none() && !self.closing && !self.shut && self.queue.len() < max
    }

    /// True when this connection carries many queries at once (HTTP/2), or may once
    /// its handshake says which protocol: the pool waits for that before it opens
    /// another connection, rather than paying for a handshake HTTP/2 does not need.
    pub fn multiplexed(&self) -> bool {
        self.h2.is_some() || !self.was_open
    }

    /// Takes a query for `owner`; false if this connection cannot.
    pub fn add(&mut self, owner: Owner, msg: &[u8], resends: u8, now: Instant) -> bool {
        if !self.accepts() || msg.len() < 12 || msg.len() > MAX_BODY {
            return false;
        }
        let client_id = u16::from_be_bytes([msg[0], msg[1]]);
        let mut wire = super::tls::pad(msg);
        wire[..2].copy_from_slice(&[0, 0]);
        self.queue.push_back(Query {
            owner,
            wire,
            client_id,
            resends,
            abandoned: false,
            stream: 0,
            at: None,
        });
        self.send_next(now);
        true
    }

    /// The attempt no longer waits for an answer.
    pub fn remove(&mut self, owner: Owner) {
        if let Some(h) = self.h2.as_mut() {
            // A stream can be reset: nothing to read past.
            self.queue.retain(|q| {
                if q.owner == owner && q.stream != 0 {
                    h.cancel(q.stream);
                }
                q.owner != owner
            });
            return self.write_h2();
        }
        let head_sent = self.sent_at.is_some();
        let mut i = 0;
        self.queue.retain_mut(|q| {
            let first = i == 0;
            i += 1;
            if q.owner != owner {
                return true;
            }
            // Its request is on the wire: the response must still be read past.
            if first && head_sent {
                q.abandoned = true;
                return true;
            }
            false
        });
    }

    /// True if an attempt of `owner`'s question waits for its answer here (also one
    /// given up whose request is still on the wire: the answers behind it wait for it).
    pub fn carries_question(&self, owner: Owner) -> bool {
        self.queue
            .iter()
            .any(|q| q.owner.pending == owner.pending && q.owner.gen == owner.gen)
    }

    pub fn owners(&self) -> Vec<Owner> {
        let mut v: Vec<Owner> = self
            .queue
            .iter()
            .filter(|q| !q.abandoned)
            .map(|q| q.owner)
            .collect();
        v.extend(self.failed.iter().copied());
        v
    }

    pub fn is_done(&self) -> bool {
        self.end.is_some()
    }

    /// Nothing waits and nothing more will come: the connection can go.
    pub fn is_idle_done(&self) -> bool {
        self.end.is_some() && self.load() == 0 && self.answers.is_empty() && self.failed.is_empty()
    }

    /// Writes the request at the head of the queue, if none is on the wire.
    fn send_next(&mut self, now: Instant) {
        // Nothing before the handshake ends: ALPN says which protocol to speak.
        if self.sent_at.is_some() || self.end.is_some() || self.shut || self.tls.is_handshaking() {
            return;
        }
        if self.h2.is_some() {
            return self.send_h2(now);
        }
        // Requests abandoned before they were written are not sent at all.
        while self.queue.front().is_some_and(|q| q.abandoned) {
            self.queue.pop_front();
        }
        let Some(q) = self.queue.front() else {
            return;
        };
        let req = request(&self.target.authority, &self.target.path, &q.wire);
        if let Err(e) = self.tls.writer().write_all(&req) {
            self.finish(End::Tls(DotError::Tls(e.to_string())));
            return;
        }
        self.sent_at = Some(now);
        self.collect_output();
        self.flush();
    }

    /// Opens a stream for each waiting query while the server's limits allow.
    fn send_h2(&mut self, now: Instant) {
        let Some(h) = self.h2.as_mut() else {
            return;
        };
        self.queue.retain(|q| !q.abandoned);
        for q in self.queue.iter_mut().filter(|q| q.stream == 0) {
            if !h.can_open(q.wire.len()) {
                break;
            }
            q.stream = h.open(&self.target.authority, &self.target.path, &q.wire);
            q.at = Some(now);
        }
        self.write_h2();
    }

    /// Hands what the HTTP/2 side has to say to TLS and the socket.
    fn write_h2(&mut self) {
        let Some(h) = self.h2.as_mut() else {
            return;
        };
        if h.out.is_empty() || self.shut || self.end.is_some() {
            return;
        }
        let out = std::mem::take(&mut h.out);
        if let Err(e) = self.tls.writer().write_all(&out) {
            return self.finish(End::Tls(DotError::Tls(e.to_string())));
        }
        self.collect_output();
        self.flush();
    }

    /// Bytes from an HTTP/2 server: answers, failed queries, the end of the connection.
    fn receive_h2(&mut self, data: &[u8], now: Instant) {
        let Some(h) = self.h2.as_mut() else {
            return;
        };
        let result = h.receive(data);
        let mut bad = None;
        while let Some(ev) = h.next_event() {
            let (H2Event::Answer(id, _) | H2Event::Reset(id) | H2Event::Bad(id, _)) = ev;
            let Some(i) = self.queue.iter().position(|q| q.stream == id) else {
                continue;
            };
            let Some(q) = self.queue.remove(i) else {
                continue;
            };
            match ev {
                // RFC 8484 4.1: the ID was 0 on the wire, and so must be the answer's.
                H2Event::Answer(_, body) if body[..2] != [0, 0] => {
                    let id = u16::from_be_bytes([body[0], body[1]]);
                    bad = Some(format!("answer ID {id}, not 0"));
                    self.failed.push(q.owner);
                }
                H2Event::Answer(_, mut body) => {
                    body[..2].copy_from_slice(&q.client_id.to_be_bytes());
                    self.answers.push((q.owner, body));
                }
                H2Event::Reset(_) => self.failed.push(q.owner),
                // As over HTTP/1.1: the query fails and the connection ends, with the
                // reason in the log; the others go out again on a new one.
                H2Event::Bad(_, why) => {
                    bad = Some(why);
                    self.failed.push(q.owner);
                }
            }
        }
        self.write_h2();
        let goaway = h_goaway(&self.h2);
        if let Err(e) = result {
            return self.finish(End::Http(e));
        }
        if let Some(why) = bad {
            return self.finish(End::Http(why));
        }
        if let Some(active) = goaway {
            // The unanswered go out again on another connection once it is closed.
            self.closing = true;
            if active == 0 {
                self.close();
            }
        } else {
            self.send_h2(now);
        }
    }

    fn collect_output(&mut self) {
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
        }
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    fn flush(&mut self) {
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(0) => return self.finish(End::Closed),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // Still connecting: the writable event comes when it is done.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.socket_failed(e),
            }
        }
    }

    fn socket_failed(&mut self, e: io::Error) {
        if self.was_open {
            self.finish(End::Closed)
        } else {
            self.finish(End::Socket(format!("TCP connect failed: {e}")))
        }
    }

    /// Reads and writes what the socket allows now.
    pub fn drive(&mut self, now: Instant) {
        self.flush();
        let mut chunk = [0u8; 4096];
        while self.end.is_none() {
            match self.stream.read(&mut chunk) {
                Ok(0) => self.peer_closed(),
                Ok(n) => {
                    self.last_activity = now;
                    self.receive(&chunk[..n], now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => self.socket_failed(e),
            }
        }
        if self.end.is_none() {
            self.collect_output();
            self.flush();
        }
    }

    fn peer_closed(&mut self) {
        if self.was_open {
            self.finish(End::Closed)
        } else {
            self.finish(End::Socket("connection closed by the server".into()))
        }
    }

    fn receive(&mut self, mut data: &[u8], now: Instant) {
        while !data.is_empty() && self.end.is_none() {
            if let Err(e) = self.tls.read_tls(&mut data) {
                return self.finish(End::Tls(DotError::Tls(e.to_string())));
            }
            if let Err(e) = self.tls.process_new_packets() {
                // An alert for the server may wait in the output.
                self.collect_output();
                self.flush();
                return self.finish(End::Tls(e.into()));
            }
            if !self.tls.is_handshaking() && !self.was_open {
                self.was_open = true;
                if self.tls.alpn_protocol() == Some(b"h2") {
                    self.h2 = Some(Box::new(H2::new()));
                }
                self.send_next(now);
            }
            let mut buf = [0u8; 4096];
            loop {
                match self.tls.reader().read(&mut buf) {
                    Ok(0) => {
                        self.responses(now);
                        return self.finish(End::Closed);
                    }
                    Ok(n) if self.h2.is_some() => {
                        self.receive_h2(&buf[..n], now);
                        if self.end.is_some() {
                            return;
                        }
                    }
                    Ok(n) => {
                        self.rx.extend_from_slice(&buf[..n]);
                        // Bounded: more than one whole response is never buffered.
                        if self.rx.len() > MAX_HEAD + 2 * MAX_BODY {
                            return self
                                .finish(End::Http("response larger than a DNS message".into()));
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        self.responses(now);
                        return self.finish(End::Closed);
                    }
                }
            }
            self.responses(now);
        }
    }

    /// Takes the whole responses out of `rx`, in request order.
    fn responses(&mut self, now: Instant) {
        while self.end.is_none() && !self.rx.is_empty() {
            if self.sent_at.is_none() {
                return self.finish(End::Http("response to no request".into()));
            }
            let resp = match parse_response(&self.rx) {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => return self.http_failed(e),
            };
            self.rx.drain(..resp.consumed);
            self.sent_at = None;
            let Some(q) = self.queue.pop_front() else {
                return self.finish(End::Http("response to no request".into()));
            };
            let mut body = resp.body;
            // RFC 8484 4.1: the ID was 0 on the wire, and so must be the answer's.
            if body[..2] != [0, 0] {
                let id = u16::from_be_bytes([body[0], body[1]]);
                if !q.abandoned {
                    self.failed.push(q.owner);
                }
                return self.finish(End::Http(format!("answer ID {id}, not 0")));
            }
            body[..2].copy_from_slice(&q.client_id.to_be_bytes());
            if !q.abandoned {
                self.answers.push((q.owner, body));
            }
            if resp.close {
                // The rest go out again on another connection.
                self.closing = true;
                self.close();
            } else {
                self.send_next(now);
            }
        }
    }

    /// The response to the request on the wire is not a DoH answer: its query fails,
    /// the connection ends (the others may go out again elsewhere).
    fn http_failed(&mut self, why: String) {
        if let Some(q) = self.queue.pop_front() {
            if !q.abandoned {
                self.failed.push(q.owner);
            }
        }
        self.sent_at = None;
        self.finish(End::Http(why));
    }

    fn finish(&mut self, end: End) {
        if self.end.is_none() {
            self.end = Some(end);
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        if self.end.is_some() {
            return None;
        }
        if !self.was_open {
            return Some(self.started + HANDSHAKE_TIMEOUT);
        }
        if let Some(t) = self.queue.iter().filter_map(|q| q.at).min() {
            return Some(t + RESPONSE_TIMEOUT);
        }
        if let Some(t) = self.sent_at {
            return Some(t + RESPONSE_TIMEOUT);
        }
        if self.load() == 0 {
            return Some(self.last_activity + IDLE_TIMEOUT);
        }
        None
    }

    /// Applies the handshake and response deadlines and the idle close.
    pub fn tick(&mut self, now: Instant) {
        if self.end.is_some() {
            return;
        }
        if !self.was_open {
            if now >= self.started + HANDSHAKE_TIMEOUT {
                self.finish(End::Tls(DotError::HandshakeTimeout));
            }
        } else if let Some(i) = self
            .queue
            .iter()
            .position(|q| q.at.is_some_and(|t| now >= t + RESPONSE_TIMEOUT))
        {
            // HTTP/2 as HTTP/1.1: a server that leaves a query unanswered this long
            // is not used further on this connection.
            if let Some(q) = self.queue.remove(i) {
                self.failed.push(q.owner);
            }
            self.finish(End::Http(format!(
                "no response within {} s",
                RESPONSE_TIMEOUT.as_secs()
            )));
        } else if let Some(t) = self.sent_at {
            if now >= t + RESPONSE_TIMEOUT {
                self.http_failed(format!(
                    "no response within {} s",
                    RESPONSE_TIMEOUT.as_secs()
                ));
            }
        } else if self.load() == 0 && now >= self.last_activity + IDLE_TIMEOUT {
            self.close();
        }
    }

    /// The next answer, or a query that failed for good; queries that may go out
    /// again are in [`Channel::take_resend`] once the connection ended.
    pub fn next_event(&mut self, buf: &mut Vec<u8>) -> Option<Event> {
        if let Some((owner, msg)) = self.answers.pop() {
            buf.clear();
            buf.extend_from_slice(&msg);
            return Some(Event::Message(owner, msg.len()));
        }
        if let Some(owner) = self.failed.pop() {
            return Some(Event::Failed(owner));
        }
        if self.end.is_some() {
            // Failed for good: resent too often already, or all of them when the
            // connection never worked (a connect or authentication failure).
            let i = self
                .queue
                .iter()
                .position(|q| !q.abandoned && (q.resends >= MAX_RESENDS || !self.was_open))?;
            let q = self.queue.remove(i)?;
            return Some(Event::Failed(q.owner));
        }
        None
    }

    /// The unanswered queries of a connection that ended after it had worked.
    pub fn take_resend(&mut self) -> Vec<(Owner, Vec<u8>, u8)> {
        if self.end.is_none() || !self.was_open {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut keep = VecDeque::new();
        for q in self.queue.drain(..) {
            if q.abandoned {
                continue;
            }
            if q.resends >= MAX_RESENDS {
                keep.push_back(q);
                continue;
            }
            // The query as the attempt wrote it: its own ID back in place.
            let mut msg = q.wire;
            msg[..2].copy_from_slice(&q.client_id.to_be_bytes());
            out.push((q.owner, msg, q.resends + 1));
        }
        self.queue = keep;
        out
    }

    /// Every query not answered yet, as its attempt wrote it, to go out on another
    /// connection now: the server moved to a new address and this one is dropped. Not
    /// counted as a resend (the server did nothing wrong).
    pub fn take_unanswered(&mut self) -> Vec<(Owner, Vec<u8>, u8)> {
        self.queue
            .drain(..)
            .filter(|q| !q.abandoned)
            .map(|q| {
                let mut msg = q.wire;
                msg[..2].copy_from_slice(&q.client_id.to_be_bytes());
                (q.owner, msg, q.resends)
            })
            .collect()
    }

    /// Makes `owner` fail through this connection (its resend found no connection).
    pub fn fail_later(&mut self, owner: Owner) {
        self.failed.push(owner);
    }

    /// How the connection ended, for the log and the backoff: None if it ended well.
    pub fn failure(&self) -> Option<String> {
        match &self.end {
            None | Some(End::Closed) => None,
            Some(End::Socket(s)) => Some(s.clone()),
            Some(End::Tls(DotError::PeerClosed)) if self.was_open => None,
            Some(End::Tls(e)) if self.was_open => Some(e.to_string()),
            Some(End::Tls(e)) => Some(format!("TLS failed: {e}")),
            Some(End::Http(e)) => Some(format!("DNS over HTTPS: {e}")),
        }
    }

    /// Ends the connection politely (close_notify), for idle, link down and resets.
    pub fn close(&mut self) {
        if !self.shut {
            self.shut = true;
            self.tls.send_close_notify();
            self.collect_output();
            self.flush();
        }
        self.finish(End::Closed);
    }
}

/// The number of streams still to be answered, once the server sent GOAWAY.
fn h_goaway(h2: &Option<Box<H2>>) -> Option<usize> {
    h2.as_ref().and_then(|h| h.goaway.map(|_| h.active()))
}
