//! The HTTP/2 client side of DNS over HTTPS (RFC 9113, RFC 8484), without I/O: plaintext
//! bytes in (from TLS), plaintext bytes out (to TLS), answers out by stream id.
//!
//! One POST per query, one stream each, many in flight; answers come back in any order.
//! Everything a server sends is bounded (frame size, header block, body, stream count);
//! anything that breaks the protocol ends the connection with a reason for the log.
//! Request headers are encoded as literals without indexing (allowed by RFC 7541, and it
//! keeps our encoder free of table state); responses are decoded with `loona-hpack`
//! (static and dynamic table, Huffman).

use loona_hpack::Decoder;

use super::https_http::{DNS_MESSAGE, MAX_BODY};

/// The client connection preface (RFC 9113 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Streams we keep open at once whatever the server allows.
pub const MAX_STREAMS: usize = 128;
/// The largest frame payload we accept: the default, never raised by our SETTINGS.
const MAX_FRAME: usize = 16_384;
/// A response header block (HEADERS and its CONTINUATIONs) longer than this is refused.
const MAX_BLOCK: usize = 16_384;
/// Decoded header bytes of one response (name + value + 32 each, as RFC 9113 counts).
const MAX_HEADER_LIST: usize = 16_384;
/// The HPACK dynamic table size we allow the server (the default, RFC 9113 6.5.2).
const HEADER_TABLE: usize = 4_096;
/// The largest window RFC 9113 6.9.1 allows.
const MAX_WINDOW: i64 = (1 << 31) - 1;

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PUSH_PROMISE: u8 = 5;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// Error codes we send (RFC 9113 7).
const PROTOCOL_ERROR: u32 = 1;
const CANCEL: u32 = 8;

/// What the connection has to say about a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum H2Event {
    /// The stream's whole response body: a DoH answer (status 200, dns-message).
    Answer(u32, Vec<u8>),
    /// The server reset the stream: that query gets no answer here.
    Reset(u32),
    /// The response is not a DoH answer (status, content type, body): the reason.
    Bad(u32, String),
}

struct Stream {
    id: u32,
    /// What we may still send on it (our request body is sent whole, so this only
    /// follows the server's SETTINGS changes).
    window: i64,
    status: Option<u16>,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// A header block being received: HEADERS without END_HEADERS, CONTINUATIONs to come.
struct Block {
    stream: u32,
    data: Vec<u8>,
    end_stream: bool,
}

pub struct H2 {
    decoder: Decoder<'static>,
    /// Bytes for the server, to go through TLS.
    pub out: Vec<u8>,
    rx: Vec<u8>,
    next_id: u32,
    streams: Vec<Stream>,
    /// The server's SETTINGS (RFC 9113 6.5.2 defaults until it sends its own).
    peer_max_streams: usize,
    peer_frame: usize,
    peer_window: i64,
    /// What we may still send on the connection.
    conn_window: i64,
    /// The server's first frame (its SETTINGS) has come.
    preface_seen: bool,
    block: Option<Block>,
    /// The server's GOAWAY: the last stream it will answer.
    pub goaway: Option<u32>,
    events: Vec<H2Event>,
}

impl Default for H2 {
    fn default() -> Self {
        Self::new()
    }
}

impl H2 {
    /// A connection whose preface and SETTINGS wait in `out`.
    pub fn new() -> H2 {
        let mut decoder = Decoder::new();
        // Our SETTINGS_HEADER_TABLE_SIZE is the default (4,096): a server's table size
        // update above it is an error, not memory it may make us hold.
        decoder.set_max_allowed_table_size(HEADER_TABLE);
        let mut h = H2 {
            decoder,
            out: PREFACE.to_vec(),
            rx: Vec::new(),
            next_id: 1,
            streams: Vec::new(),
            peer_max_streams: MAX_STREAMS,
            peer_frame: MAX_FRAME,
            peer_window: 65_535,
            conn_window: 65_535,
            preface_seen: false,
            block: None,
            goaway: None,
            events: Vec::new(),
        };
        // No server push, and no streams opened by the server.
        let mut s = Vec::with_capacity(12);
        for (id, v) in [(2u16, 0u32), (3, 0)] {
            s.extend_from_slice(&id.to_be_bytes());
            s.extend_from_slice(&v.to_be_bytes());
        }
        h.frame(SETTINGS, 0, 0, &s);
        h
    }

    fn frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let len = payload.len() as u32;
        self.out.extend_from_slice(&len.to_be_bytes()[1..]);
        self.out.push(kind);
        self.out.push(flags);
        self.out
            .extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        self.out.extend_from_slice(payload);
    }

    /// Streams waiting for their response.
    pub fn active(&self) -> usize {
        self.streams.len()
    }

    /// True when a request of `len` body bytes can start now: under both stream limits,
    /// no GOAWAY, and room for the whole body in the flow-control windows.
    pub fn can_open(&self, len: usize) -> bool {
        let len = len as i64;
        self.goaway.is_none()
            && self.streams.len() < self.peer_max_streams.min(MAX_STREAMS)
            && self.next_id < 0x7fff_ffff
            && len <= self.conn_window
            && len <= self.peer_window
    }

    /// Sends a POST of `body` on a new stream; its id (check [`H2::can_open`] first).
    pub fn open(&mut self, authority: &str, path: &str, body: &[u8]) -> u32 {
        let id = self.next_id;
        self.next_id += 2;
        let mut block = Vec::with_capacity(96 + authority.len() + path.len());
        // :method POST and :scheme https are in the static table (2, 7).
        block.extend_from_slice(&[0x83, 0x87]);
        literal(&mut block, 1, authority.as_bytes());
        literal(&mut block, 4, path.as_bytes());
        literal(&mut block, 31, DNS_MESSAGE.as_bytes());
        literal(&mut block, 19, DNS_MESSAGE.as_bytes());
        literal(&mut block, 28, body.len().to_string().as_bytes());
        let mut chunks = block.chunks(self.peer_frame).peekable();
        let mut first = true;
        while let Some(c) = chunks.next() {
            let last = if chunks.peek().is_none() {
                END_HEADERS
            } else {
                0
            };
            let kind = if first { HEADERS } else { CONTINUATION };
            self.frame(kind, last, id, c);
            first = false;
        }
        let mut data = body.chunks(self.peer_frame).peekable();
        while let Some(c) = data.next() {
            let last = if data.peek().is_none() { END_STREAM } else { 0 };
            self.frame(DATA, last, id, c);
        }
        let len = body.len() as i64;
        self.conn_window -= len;
        self.streams.push(Stream {
            id,
            window: self.peer_window - len,
            status: None,
            content_type: None,
            body: Vec::new(),
        });
        id
    }

    /// We no longer want stream `id`'s answer.
    pub fn cancel(&mut self, id: u32) {
        if let Some(i) = self.streams.iter().position(|s| s.id == id) {
            self.streams.swap_remove(i);
            self.frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes());
        }
    }

    /// The next answer, reset or bad response.
    pub fn next_event(&mut self) -> Option<H2Event> {
        self.events.pop()
    }

    /// Takes bytes from the server. An error ends the connection (a GOAWAY saying so
    /// is in `out`); the reason is for the log.
    pub fn receive(&mut self, data: &[u8]) -> Result<(), String> {
        self.rx.extend_from_slice(data);
        let r = self.frames();
        if r.is_err() {
            // Last stream 0: the server opened none (RFC 9113 6.8).
            let mut p = Vec::with_capacity(8);
            p.extend_from_slice(&0u32.to_be_bytes());
            p.extend_from_slice(&PROTOCOL_ERROR.to_be_bytes());
            self.frame(GOAWAY, 0, 0, &p);
            self.rx.clear();
        }
        r
    }

    fn frames(&mut self) -> Result<(), String> {
        let mut pos = 0;
        let result = loop {
            let Some(head) = self.rx.get(pos..pos + 9) else {
                break Ok(());
            };
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let (kind, flags) = (head[3], head[4]);
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            if !self.preface_seen && (kind != SETTINGS || flags & ACK != 0) {
                break Err("not an HTTP/2 server (no SETTINGS first)".into());
            }
            if len > MAX_FRAME {
                break Err(format!("HTTP/2 frame of {len} bytes, over {MAX_FRAME}"));
            }
            let Some(payload) = self.rx.get(pos + 9..pos + 9 + len) else {
                break Ok(());
            };
            let payload = payload.to_vec();
            pos += 9 + len;
            if let Err(e) = self.frame_in(kind, flags, stream, &payload) {
                break Err(e);
            }
        };
        self.rx.drain(..pos);
        result
    }

    fn frame_in(&mut self, kind: u8, flags: u8, stream: u32, p: &[u8]) -> Result<(), String> {
        self.preface_seen = true;
        if let Some(b) = &self.block {
            if kind != CONTINUATION || stream != b.stream {
                return Err("header block interrupted by another frame".into());
            }
        }
        match kind {
            SETTINGS => self.settings(flags, stream, p),
            PING => {
                if stream != 0 || p.len() != 8 {
                    return Err("malformed PING".into());
                }
                if flags & ACK == 0 {
                    self.frame(PING, ACK, 0, p);
                }
                Ok(())
            }
            GOAWAY => {
                if stream != 0 || p.len() < 8 {
                    return Err("malformed GOAWAY".into());
                }
                let last = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff;
                let last = self.goaway.map_or(last, |g| g.min(last));
                self.goaway = Some(last);
                // Streams above it were not processed: their queries stay with the
                // caller, to go out again on another connection.
                self.streams.retain(|s| s.id <= last);
                Ok(())
            }
            WINDOW_UPDATE => {
                if p.len() != 4 {
                    return Err("malformed WINDOW_UPDATE".into());
                }
                let inc = i64::from(u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff);
                if inc == 0 {
                    return Err("WINDOW_UPDATE of 0".into());
                }
                let w = if stream == 0 {
                    Some(&mut self.conn_window)
                } else {
                    self.streams
                        .iter_mut()
                        .find(|s| s.id == stream)
                        .map(|s| &mut s.window)
                };
                if let Some(w) = w {
                    *w += inc;
                    if *w > MAX_WINDOW {
                        return Err("flow-control window over 2^31-1".into());
                    }
                }
                Ok(())
            }
            RST_STREAM => {
                if stream == 0 || p.len() != 4 {
                    return Err("malformed RST_STREAM".into());
                }
                if let Some(i) = self.streams.iter().position(|s| s.id == stream) {
                    self.streams.swap_remove(i);
                    self.events.push(H2Event::Reset(stream));
                }
                Ok(())
            }
            PUSH_PROMISE => Err("PUSH_PROMISE although push is off".into()),
            HEADERS => {
                if stream == 0 || stream % 2 == 0 || stream >= self.next_id {
                    return Err(format!("HEADERS on stream {stream}, not one of ours"));
                }
                let mut p = unpad(flags, p)?;
                if flags & PRIORITY != 0 {
                    p = p.get(5..).ok_or("malformed HEADERS priority")?;
                }
                self.block = Some(Block {
                    stream,
                    data: p.to_vec(),
                    end_stream: flags & END_STREAM != 0,
                });
                self.block_part(flags)
            }
            CONTINUATION => {
                let Some(b) = &mut self.block else {
                    return Err("CONTINUATION without HEADERS".into());
                };
                b.data.extend_from_slice(p);
                self.block_part(flags)
            }
            DATA => self.data(flags, stream, p),
            // PRIORITY and unknown frame types are ignored (RFC 9113 4.1, 5.5).
            _ => Ok(()),
        }
    }

    fn settings(&mut self, flags: u8, stream: u32, p: &[u8]) -> Result<(), String> {
        if stream != 0 || p.len() % 6 != 0 || (flags & ACK != 0 && !p.is_empty()) {
            return Err("malformed SETTINGS".into());
        }
        if flags & ACK != 0 {
            return Ok(());
        }
        for s in p.chunks(6) {
            let id = u16::from_be_bytes([s[0], s[1]]);
            let v = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
            match id {
                3 => self.peer_max_streams = usize::try_from(v).unwrap_or(usize::MAX),
                4 => {
                    let v = i64::from(v);
                    if v > MAX_WINDOW {
                        return Err("SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1".into());
                    }
                    let delta = v - self.peer_window;
                    self.peer_window = v;
                    for st in self.streams.iter_mut() {
                        st.window += delta;
                        if st.window > MAX_WINDOW {
                            return Err("flow-control window over 2^31-1".into());
                        }
                    }
                }
                5 => {
                    if !(16_384..=16_777_215).contains(&v) {
                        return Err(format!("SETTINGS_MAX_FRAME_SIZE {v}"));
                    }
                    // Our frames are small: the default is enough, more is not used.
                    self.peer_frame = MAX_FRAME;
                }
                // Header table size: our encoder never indexes, nothing to change.
                // Push and header list size do not concern a client that sends little.
                _ => {}
            }
        }
        self.frame(SETTINGS, ACK, 0, &[]);
        Ok(())
    }

    fn block_part(&mut self, flags: u8) -> Result<(), String> {
        let Some(b) = &self.block else {
            return Ok(());
        };
        if b.data.len() > MAX_BLOCK {
            return Err(format!("header block over {MAX_BLOCK} bytes"));
        }
        if flags & END_HEADERS == 0 {
            return Ok(());
        }
        let Some(b) = self.block.take() else {
            return Ok(());
        };
        // Decoded even for a stream we cancelled: the decoder's table must follow.
        let mut status = None;
        let mut content_type = None;
        let mut content_length = None;
        let mut size = 0usize;
        let mut bad = None;
        self.decoder
            .decode_with_cb(&b.data, |n, v| {
                size += n.len() + v.len() + 32;
                match &*n {
                    b":status" => {
                        status = std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok())
                    }
                    b"content-type" => {
                        content_type = Some(String::from_utf8_lossy(&v).into_owned())
                    }
                    b"content-length" => {
                        content_length = std::str::from_utf8(&v)
                            .ok()
                            .and_then(|s| s.parse::<usize>().ok());
                        if content_length.is_none() {
                            bad = Some("bad content-length");
                        }
                    }
                    _ => {}
                }
            })
            .map_err(|e| format!("HPACK: {e:?}"))?;
        if size > MAX_HEADER_LIST {
            return Err(format!("header list over {MAX_HEADER_LIST} bytes"));
        }
        let Some(i) = self.streams.iter().position(|s| s.id == b.stream) else {
            return Ok(());
        };
        let st = &mut self.streams[i];
        let why = if let Some(b) = bad {
            Some(b.to_string())
        } else if st.status.is_none() {
            match status {
                None => Some("response without :status".to_string()),
                // Informational: the real response follows.
                Some(s) if (100..200).contains(&s) => return Ok(()),
                Some(200) => {
                    st.status = Some(200);
                    st.content_type = content_type;
                    let media = st
                        .content_type
                        .as_deref()
                        .map(|t| t.split(';').next().unwrap_or("").trim());
                    if !media.is_some_and(|m| m.eq_ignore_ascii_case(DNS_MESSAGE)) {
                        Some(format!(
                            "content type '{}', not {DNS_MESSAGE}",
                            st.content_type.as_deref().unwrap_or("")
                        ))
                    } else if content_length.is_some_and(|l| l > MAX_BODY) {
                        Some("body larger than a DNS message".to_string())
                    } else {
                        None
                    }
                }
                Some(s) => Some(format!("HTTP status {s}")),
            }
        } else {
            None
        };
        if let Some(why) = why {
            let id = st.id;
            self.streams.swap_remove(i);
            self.frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes());
            self.events.push(H2Event::Bad(id, why));
            return Ok(());
        }
        if b.end_stream {
            self.stream_end(i);
        }
        Ok(())
    }

    fn data(&mut self, flags: u8, stream: u32, p: &[u8]) -> Result<(), String> {
        if stream == 0 || stream >= self.next_id {
            return Err(format!("DATA on stream {stream}, not one of ours"));
        }
        // Every byte counts against the windows, padding included: give them back.
        if !p.is_empty() {
            let inc = (p.len() as u32).to_be_bytes();
            self.frame(WINDOW_UPDATE, 0, 0, &inc);
            if flags & END_STREAM == 0 && self.streams.iter().any(|s| s.id == stream) {
                self.frame(WINDOW_UPDATE, 0, stream, &inc);
            }
        }
        let body = unpad(flags, p)?;
        let Some(i) = self.streams.iter().position(|s| s.id == stream) else {
            return Ok(());
        };
        let st = &mut self.streams[i];
        if st.status.is_none() {
            return Err("DATA before the response headers".into());
        }
        if st.body.len() + body.len() > MAX_BODY {
            let id = st.id;
            self.streams.swap_remove(i);
            self.frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes());
            self.events
                .push(H2Event::Bad(id, "body larger than a DNS message".into()));
            return Ok(());
        }
        st.body.extend_from_slice(body);
        if flags & END_STREAM != 0 {
            self.stream_end(i);
        }
        Ok(())
    }

    fn stream_end(&mut self, i: usize) {
        let st = self.streams.swap_remove(i);
        if st.body.len() < 12 {
            let why = format!("{}-byte body, not a DNS message", st.body.len());
            self.events.push(H2Event::Bad(st.id, why));
        } else {
            self.events.push(H2Event::Answer(st.id, st.body));
        }
    }
}

/// The payload without its padding (PADDED flag: a length byte, then the padding).
fn unpad(flags: u8, p: &[u8]) -> Result<&[u8], String> {
    if flags & PADDED == 0 {
        return Ok(p);
    }
    let (&n, rest) = p.split_first().ok_or("malformed padding")?;
    rest.len()
        .checked_sub(usize::from(n))
        .map(|end| &rest[..end])
        .ok_or_else(|| "padding longer than the frame".to_string())
}

/// A literal header field without indexing, its name from the static table (RFC 7541
/// 6.2.2): a 4-bit-prefix index, then the value as a plain string (7-bit-prefix length).
fn literal(out: &mut Vec<u8>, name_index: u8, value: &[u8]) {
    integer(out, 0x00, 4, usize::from(name_index));
    integer(out, 0x00, 7, value.len());
    out.extend_from_slice(value);
}

/// An HPACK integer (RFC 7541 5.1) with `prefix` bits in the first byte.
fn integer(out: &mut Vec<u8>, first: u8, prefix: u32, mut v: usize) {
    let max = (1usize << prefix) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

#[cfg(test)]
#[path = "h2_tests.rs"]
mod tests;
