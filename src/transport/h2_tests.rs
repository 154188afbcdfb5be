//! Unit tests of the HTTP/2 client codec against frames a test server writes by hand.

use super::*;
use loona_hpack::Encoder;

const MSG: &[u8] = b"\0\0\x81\x80\0\x01\0\0\0\0\0\0";

type Frame = (u8, u8, u32, Vec<u8>);

fn frame(kind: u8, flags: u8, stream: u32, p: &[u8]) -> Vec<u8> {
    let mut f = (p.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(p);
    f
}

/// The frames the client wrote since the last call (the preface skipped).
fn sent(h: &mut H2) -> Vec<Frame> {
    let mut b = std::mem::take(&mut h.out);
    if b.starts_with(PREFACE) {
        b.drain(..PREFACE.len());
    }
    let mut v = Vec::new();
    while b.len() >= 9 {
        let len = u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize;
        let s = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
        v.push((b[3], b[4], s, b[9..9 + len].to_vec()));
        b.drain(..9 + len);
    }
    assert!(b.is_empty());
    v
}

fn server_settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for (id, v) in pairs {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &p)
}

fn headers(enc: &mut Encoder, stream: u32, status: &str, ctype: &str, end: bool) -> Vec<u8> {
    let block = enc.encode([
        (&b":status"[..], status.as_bytes()),
        (b"content-type", ctype.as_bytes()),
        (b"server", b"test"),
    ]);
    let flags = END_HEADERS | if end { END_STREAM } else { 0 };
    frame(HEADERS, flags, stream, &block)
}

fn answer(enc: &mut Encoder, stream: u32, body: &[u8]) -> Vec<u8> {
    let mut r = headers(enc, stream, "200", "application/dns-message", false);
    r.extend(frame(DATA, END_STREAM, stream, body));
    r
}

fn events(h: &mut H2) -> Vec<H2Event> {
    let mut v = Vec::new();
    while let Some(e) = h.next_event() {
        v.push(e);
    }
    v.sort_by_key(|e| match e {
        H2Event::Answer(i, _) | H2Event::Reset(i) | H2Event::Bad(i, _) => *i,
    });
    v
}

/// A connection past the server's SETTINGS, its own frames read.
fn open_conn(settings: &[(u16, u32)]) -> H2 {
    let mut h = H2::new();
    assert!(h.out.starts_with(PREFACE));
    let f = sent(&mut h);
    assert_eq!(f[0].0, SETTINGS);
    h.receive(&server_settings(settings)).unwrap();
    assert_eq!(sent(&mut h), vec![(SETTINGS, ACK, 0, vec![])]);
    h
}

#[test]
fn request_is_a_post_and_answers_come_in_any_order() {
    let mut h = open_conn(&[]);
    let a = h.open("dns.example:8443", "/dns-query", MSG);
    let b = h.open("dns.example:8443", "/dns-query", MSG);
    assert_eq!((a, b), (1, 3));
    let f = sent(&mut h);
    assert_eq!(f.len(), 4);
    assert_eq!((f[0].0, f[0].1, f[0].2), (HEADERS, END_HEADERS, 1));
    let mut dec = Decoder::new();
    let hs = dec.decode(&f[0].3).unwrap();
    let want: Vec<(Vec<u8>, Vec<u8>)> = [
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", "dns.example:8443"),
        (":path", "/dns-query"),
        ("content-type", "application/dns-message"),
        ("accept", "application/dns-message"),
        ("content-length", "12"),
    ]
    .iter()
    .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
    .collect();
    assert_eq!(hs, want);
    assert_eq!(f[1], (DATA, END_STREAM, 1, MSG.to_vec()));
    let mut enc = Encoder::new();
    let mut r = answer(&mut enc, 3, b"\0\0\x81\x80\0\x01\0\0\0\0\0\x03");
    r.extend(answer(&mut enc, 1, MSG));
    // Byte by byte: the same as whole.
    for byte in r {
        h.receive(&[byte]).unwrap();
    }
    assert_eq!(
        events(&mut h),
        vec![
            H2Event::Answer(1, MSG.to_vec()),
            H2Event::Answer(3, b"\0\0\x81\x80\0\x01\0\0\0\0\0\x03".to_vec())
        ]
    );
    assert_eq!(h.active(), 0);
    // The connection's window given back for both bodies.
    let f = sent(&mut h);
    assert_eq!(
        f,
        vec![(WINDOW_UPDATE, 0, 0, 12u32.to_be_bytes().to_vec()); 2]
    );
}

#[test]
fn stream_limits_and_window() {
    let mut h = open_conn(&[(3, 2)]);
    assert!(h.can_open(12));
    h.open("a", "/", MSG);
    h.open("a", "/", MSG);
    assert!(!h.can_open(12), "server allows 2");
    let mut h = open_conn(&[]);
    for _ in 0..MAX_STREAMS {
        assert!(h.can_open(12));
        h.open("a", "/", MSG);
    }
    assert!(!h.can_open(12), "our own bound");
    // A window too small for the body: wait for WINDOW_UPDATE.
    let mut h = open_conn(&[(4, 10)]);
    assert!(!h.can_open(12));
    h.receive(&frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 100]))
        .unwrap();
    assert!(h.can_open(12));
    let mut h = open_conn(&[]);
    let body = vec![0u8; 60_000];
    h.open("a", "/", &body);
    assert!(!h.can_open(6000), "connection window used up");
    h.receive(&frame(WINDOW_UPDATE, 0, 0, &10_000u32.to_be_bytes()))
        .unwrap();
    assert!(h.can_open(6000));
    // A body larger than a frame goes in several DATA frames.
    let f = sent(&mut h);
    assert_eq!(f.iter().filter(|f| f.0 == DATA).count(), 4);
    assert_eq!(f.iter().filter(|f| f.1 & END_STREAM != 0).count(), 1);
}

#[test]
fn ping_goaway_and_reset() {
    let mut h = open_conn(&[]);
    h.receive(&frame(PING, 0, 0, b"12345678")).unwrap();
    assert_eq!(sent(&mut h), vec![(PING, ACK, 0, b"12345678".to_vec())]);
    for _ in 0..4 {
        h.open("a", "/", MSG);
    }
    sent(&mut h);
    h.receive(&frame(RST_STREAM, 0, 1, &[0, 0, 0, 7])).unwrap();
    assert_eq!(events(&mut h), vec![H2Event::Reset(1)]);
    // Streams 5 and 7 were not processed: gone, the caller resends their queries.
    h.receive(&frame(GOAWAY, 0, 0, &[0, 0, 0, 3, 0, 0, 0, 0]))
        .unwrap();
    assert_eq!((h.goaway, h.active(), h.can_open(12)), (Some(3), 1, false));
    let mut enc = Encoder::new();
    h.receive(&answer(&mut enc, 3, MSG)).unwrap();
    assert_eq!(events(&mut h), vec![H2Event::Answer(3, MSG.to_vec())]);
    // A late frame for a stream given up is read past.
    h.receive(&answer(&mut enc, 5, MSG)).unwrap();
    assert_eq!(events(&mut h), vec![]);
}

#[test]
fn what_is_not_a_doh_answer_fails_its_stream() {
    let mut h = open_conn(&[]);
    for _ in 0..5 {
        h.open("a", "/", MSG);
    }
    sent(&mut h);
    let mut enc = Encoder::new();
    let mut r = headers(&mut enc, 1, "500", "application/dns-message", true);
    r.extend(headers(&mut enc, 3, "200", "text/html", false));
    r.extend(headers(&mut enc, 5, "200", "application/dns-message", true));
    r.extend(headers(&mut enc, 7, "103", "x", false));
    r.extend(answer(&mut enc, 7, MSG));
    r.extend(headers(
        &mut enc,
        9,
        "200",
        "application/dns-message",
        false,
    ));
    r.extend(frame(DATA, 0, 9, &vec![0u8; 16_000]));
    r.extend(frame(DATA, 0, 9, &vec![0u8; 16_000]));
    r.extend(frame(DATA, 0, 9, &vec![0u8; 16_000]));
    r.extend(frame(DATA, 0, 9, &vec![0u8; 16_000]));
    r.extend(frame(DATA, END_STREAM, 9, &vec![0u8; 16_000]));
    h.receive(&r).unwrap();
    let ev = events(&mut h);
    let why = |i: usize| match &ev[i] {
        H2Event::Bad(_, w) => w.clone(),
        e => panic!("{e:?}"),
    };
    assert!(why(0).contains("HTTP status 500"));
    assert!(why(1).contains("content type 'text/html'"));
    assert!(why(2).contains("0-byte body"));
    assert_eq!(ev[3], H2Event::Answer(7, MSG.to_vec()));
    assert!(why(4).contains("larger than a DNS message"));
    assert_eq!(ev.len(), 5);
    assert_eq!(h.active(), 0);
}

#[test]
fn continuation_and_padding() {
    let mut h = open_conn(&[]);
    h.open("a", "/", MSG);
    let mut enc = Encoder::new();
    let block = enc.encode([
        (&b":status"[..], &b"200"[..]),
        (b"content-type", b"application/dns-message"),
    ]);
    let (x, y) = block.split_at(5);
    // HEADERS padded and with a priority, then CONTINUATION, then padded DATA.
    let mut p = vec![2, 0, 0, 0, 0, 9];
    p.extend_from_slice(x);
    p.extend_from_slice(&[0, 0]);
    let mut r = frame(HEADERS, PADDED | PRIORITY, 1, &p);
    r.extend(frame(CONTINUATION, END_HEADERS, 1, y));
    let mut d = vec![3];
    d.extend_from_slice(MSG);
    d.extend_from_slice(&[0, 0, 0]);
    r.extend(frame(DATA, PADDED | END_STREAM, 1, &d));
    h.receive(&r).unwrap();
    assert_eq!(events(&mut h), vec![H2Event::Answer(1, MSG.to_vec())]);
}

#[test]
fn huffman_coded_response_headers() {
    // RFC 7541 C.6.1: ":status 302" and three more, Huffman coded, indexed.
    let block: &[u8] = &[
        0x48, 0x82, 0x64, 0x02, 0x58, 0x85, 0xae, 0xc3, 0x77, 0x1a, 0x4b, 0x61, 0x96, 0xd0, 0x7a,
        0xbe, 0x94, 0x10, 0x54, 0xd4, 0x44, 0xa8, 0x20, 0x05, 0x95, 0x04, 0x0b, 0x81, 0x66, 0xe0,
        0x82, 0xa6, 0x2d, 0x1b, 0xff, 0x6e, 0x91, 0x9d, 0x29, 0xad, 0x17, 0x18, 0x63, 0xc7, 0x8f,
        0x0b, 0x97, 0xc8, 0xe9, 0xae, 0x82, 0xae, 0x43, 0xd3,
    ];
    let mut h = open_conn(&[]);
    h.open("a", "/", MSG);
    h.receive(&frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
        .unwrap();
    assert_eq!(
        events(&mut h),
        vec![H2Event::Bad(1, "HTTP status 302".into())]
    );
}

#[test]
fn protocol_breaches_end_the_connection() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (frame(DATA, 0, 1, &vec![0; MAX_FRAME + 1]), "frame of"),
        (
            frame(PUSH_PROMISE, END_HEADERS, 1, &[0, 0, 0, 2]),
            "PUSH_PROMISE",
        ),
        (frame(HEADERS, END_HEADERS, 2, &[0x88]), "not one of ours"),
        (frame(HEADERS, END_HEADERS, 99, &[0x88]), "not one of ours"),
        (frame(DATA, 0, 1, MSG), "DATA before"),
        (frame(PING, 0, 0, b"123"), "PING"),
        (frame(SETTINGS, 0, 0, &[0, 5, 0, 0, 0, 1]), "MAX_FRAME_SIZE"),
        (
            frame(SETTINGS, 0, 0, &[0, 4, 0x80, 0, 0, 0]),
            "INITIAL_WINDOW",
        ),
        (
            frame(WINDOW_UPDATE, 0, 0, &[0x7f, 0xff, 0xff, 0xff]),
            "over 2^31",
        ),
        (frame(WINDOW_UPDATE, 0, 1, &[0, 0, 0, 0]), "of 0"),
        (
            frame(HEADERS, END_HEADERS, 1, &[0xff, 0xff, 0xff, 0x0f]),
            "HPACK",
        ),
        (frame(HEADERS, 0, 1, &[0x88]), "interrupted"),
        (
            frame(CONTINUATION, END_HEADERS, 1, &[0x88]),
            "without HEADERS",
        ),
        (
            frame(HEADERS, PADDED | END_HEADERS, 1, &[9, 0x88]),
            "padding",
        ),
        // A dynamic table size update to 1,000,000 (5-bit prefix integer), then :status.
        (
            frame(HEADERS, END_HEADERS, 1, &[0x3f, 0xa1, 0x84, 0x3d, 0x88]),
            "InvalidMaxDynamicSize",
        ),
    ];
    for (bytes, why) in cases {
        let mut h = open_conn(&[]);
        h.open("a", "/", MSG);
        sent(&mut h);
        let mut all = bytes.clone();
        if why == "interrupted" {
            all.extend(frame(PING, 0, 0, b"12345678"));
        }
        let e = h.receive(&all).unwrap_err();
        assert!(e.contains(why), "{e} lacks {why}");
        assert_eq!(sent(&mut h).last().map(|f| f.0), Some(GOAWAY));
    }
    // The first frame must be the server's SETTINGS.
    let mut h = H2::new();
    let e = h.receive(b"HTTP/1.1 200 OK\r\n\r\n").unwrap_err();
    assert!(e.contains("not an HTTP/2 server"), "{e}");
    // A header block larger than the bound, over CONTINUATIONs.
    let mut h = open_conn(&[]);
    h.open("a", "/", MSG);
    let mut r = frame(HEADERS, 0, 1, &vec![0x40; 10_000]);
    r.extend(frame(CONTINUATION, 0, 1, &vec![0x40; 10_000]));
    assert!(h.receive(&r).unwrap_err().contains("header block over"));
    // A header list that decodes to more than the bound (indexed names, long values).
    let mut h = open_conn(&[]);
    h.open("a", "/", MSG);
    let mut enc = Encoder::new();
    let v = vec![b'x'; 3000];
    let hs: Vec<(&[u8], &[u8])> = vec![
        (b"x-a", &v),
        (b"x-a", &v),
        (b"x-a", &v),
        (b"x-a", &v),
        (b"x-a", &v),
        (b"x-a", &v),
    ];
    let block = enc.encode(hs);
    let e = h
        .receive(&frame(HEADERS, END_HEADERS, 1, &block))
        .unwrap_err();
    assert!(e.contains("header list over"), "{e}");
}

#[test]
fn garbage_never_panics() {
    // A small xorshift: deterministic bytes, frames with random headers and payloads.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..3000 {
        let mut h = open_conn(&[]);
        for _ in 0..4 {
            h.open("a", "/", MSG);
        }
        let mut bytes = Vec::new();
        for _ in 0..(next() % 6) {
            let len = (next() % 40) as usize;
            let kind = (next() % 11) as u8;
            let flags = next() as u8;
            let stream = (next() % 10) as u32;
            let p: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 2 == 0 {
                bytes.extend(frame(kind, flags, stream, &p));
            } else {
                bytes.extend(p);
            }
        }
        let _ = h.receive(&bytes);
        while h.next_event().is_some() {}
        assert!(h.active() <= 4);
    }
}
