//! The DoT connection state machine against an in-memory rustls server, on a virtual
//! clock: pipelining and out-of-order answers, the in-flight limit, stray answers, bad
//! frames, a server that closes mid-pipeline, the handshake deadline and the idle
//! close. No sockets: bytes are handed across by the test.
#![cfg(feature = "tls")]

use crate::tls_support;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dproxy::clock_trust::ClockTrust;
use dproxy::tls::{client_config, load_roots, DotConn, DotError, DotLimits, DotState, SendError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};
use tls_support::{query, Certs, NAME};

struct Pair {
    client: DotConn,
    server: ServerConnection,
    /// Plaintext the server has read and not yet taken as frames.
    server_rx: Vec<u8>,
}

pub(crate) fn server_config(certs: &Certs) -> Arc<ServerConfig> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certs.path("good.pem"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(certs.path("good.key")).unwrap();
    Arc::new(
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    )
}

fn ids() -> impl FnMut() -> u16 {
    let mut n = 100u16;
    move || {
        n = n.wrapping_mul(31).wrapping_add(17);
        n
    }
}

impl Pair {
    fn new(certs: &Certs, limits: DotLimits, now: Instant) -> Pair {
        let roots = load_roots(&certs.path("ca.pem")).unwrap();
        let cfg = client_config(Arc::new(roots), Vec::new(), ClockTrust { synced: true }).unwrap();
        Pair {
            client: DotConn::new(cfg, NAME, limits, now).unwrap(),
            server: ServerConnection::new(server_config(certs)).unwrap(),
            server_rx: Vec::new(),
        }
    }

    /// Client bytes to the server.
    fn pass_to_server(&mut self) {
        let bytes = self.client.take_output();
        let mut s = &bytes[..];
        while !s.is_empty() {
            self.server.read_tls(&mut s).unwrap();
            self.server.process_new_packets().unwrap();
        }
        let mut buf = [0u8; 4096];
        loop {
            match self.server.reader().read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.server_rx.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
    }

    /// Server bytes to the client.
    fn pass_to_client(&mut self, now: Instant) -> Result<(), DotError> {
        let mut bytes = Vec::new();
        while self.server.wants_write() {
            self.server.write_tls(&mut bytes).unwrap();
        }
        self.client.receive(&bytes, now)
    }

    fn handshake(&mut self, now: Instant) {
        for _ in 0..4 {
            self.pass_to_server();
            self.pass_to_client(now).unwrap();
        }
        assert_eq!(self.client.state(), &DotState::Open);
    }

    /// Whole query frames the server received, as messages.
    fn server_queries(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while self.server_rx.len() >= 2 {
            let len = u16::from_be_bytes([self.server_rx[0], self.server_rx[1]]) as usize;
            if self.server_rx.len() < 2 + len {
                break;
            }
            out.push(self.server_rx[2..2 + len].to_vec());
            self.server_rx.drain(..2 + len);
        }
        out
    }

    fn server_send_frame(&mut self, msg: &[u8]) {
        let mut frame = (msg.len() as u16).to_be_bytes().to_vec();
        frame.extend_from_slice(msg);
        self.server.writer().write_all(&frame).unwrap();
    }
}

/// The server's answer to `q`: the query with QR set (enough for the matching logic).
pub(crate) fn answer_to(q: &[u8]) -> Vec<u8> {
    let mut a = q.to_vec();
    a[2] |= 0x80;
    a
}

/// A client and server with the TLS handshake done, at virtual time `t0`; the
/// certificates stay alive with the first element.
fn connected(tag: &str) -> (Certs, Pair, Instant) {
    let certs = Certs::make(tag);
    let t0 = Instant::now();
    let mut p = Pair::new(&certs, DotLimits::default(), t0);
    p.handshake(t0);
    (certs, p, t0)
}

#[test]
fn answers_out_of_order_are_matched_and_get_the_client_id_back() {
    let certs = Certs::make("core-order");
    let t0 = Instant::now();
    let mut p = Pair::new(&certs, DotLimits::default(), t0);
    let mut rnd = ids();
    p.client
        .send_query(&query(0xaaaa, "a.example.test"), 10, &mut rnd)
        .unwrap();
    p.client
        .send_query(&query(0xaaaa, "b.example.test"), 11, &mut rnd)
        .unwrap();
    p.client
        .send_query(&query(0xbbbb, "c.example.test"), 12, &mut rnd)
        .unwrap();
    p.handshake(t0);
    p.pass_to_server();
    let qs = p.server_queries();
    assert_eq!(qs.len(), 3);
    // The same client ID twice still gets two IDs on the wire.
    let wire_ids: Vec<u16> = qs
        .iter()
        .map(|q| u16::from_be_bytes([q[0], q[1]]))
        .collect();
    assert!(wire_ids[0] != wire_ids[1] && wire_ids[1] != wire_ids[2] && wire_ids[0] != wire_ids[2]);
    for q in qs.iter().rev() {
        p.server_send_frame(&answer_to(q));
    }
    p.pass_to_client(t0).unwrap();
    let answers = p.client.take_answers();
    let got: Vec<(u64, u16)> = answers
        .iter()
        .map(|a| (a.token, u16::from_be_bytes([a.message[0], a.message[1]])))
        .collect();
    assert_eq!(got, vec![(12, 0xbbbb), (11, 0xaaaa), (10, 0xaaaa)]);
    assert_eq!(answers[0].message[2..], answer_to(&qs[2])[2..]);
    assert_eq!(p.client.in_flight(), 0);
}

#[test]
fn frames_split_across_reads_are_reassembled() {
    let (_certs, mut p, t0) = connected("core-split");
    p.client
        .send_query(&query(7, "a.example.test"), 1, &mut ids())
        .unwrap();
    p.pass_to_server();
    let q = p.server_queries().remove(0);
    p.server_send_frame(&answer_to(&q));
    let mut bytes = Vec::new();
    while p.server.wants_write() {
        p.server.write_tls(&mut bytes).unwrap();
    }
    // One byte at a time: TLS records and DNS frames both arrive in pieces.
    for b in bytes.chunks(1) {
        p.client.receive(b, t0).unwrap();
    }
    let answers = p.client.take_answers();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].token, 1);
}

#[test]
fn in_flight_limit_refuses_more_queries() {
    let certs = Certs::make("core-limit");
    let t0 = Instant::now();
    let limits = DotLimits {
        max_in_flight: 2,
        ..DotLimits::default()
    };
    let mut p = Pair::new(&certs, limits, t0);
    let mut rnd = ids();
    p.client
        .send_query(&query(1, "a.example.test"), 1, &mut rnd)
        .unwrap();
    p.client
        .send_query(&query(2, "b.example.test"), 2, &mut rnd)
        .unwrap();
    assert!(!p.client.accepts_queries());
    assert_eq!(
        p.client
            .send_query(&query(3, "c.example.test"), 3, &mut rnd),
        Err(SendError::Full)
    );
    assert_eq!(
        p.client.send_query(&[0u8; 5], 4, &mut rnd),
        Err(SendError::Full)
    );
    p.handshake(t0);
    p.pass_to_server();
    let q = p.server_queries().remove(0);
    p.server_send_frame(&answer_to(&q));
    p.pass_to_client(t0).unwrap();
    assert_eq!(p.client.take_answers().len(), 1);
    assert!(p.client.accepts_queries());
    assert_eq!(
        p.client.send_query(&[0u8; 5], 4, &mut rnd),
        Err(SendError::BadQuery)
    );
}

#[test]
fn answer_with_unknown_id_is_counted_and_dropped() {
    let (_certs, mut p, t0) = connected("core-stray");
    p.client
        .send_query(&query(9, "a.example.test"), 1, &mut ids())
        .unwrap();
    p.pass_to_server();
    let q = p.server_queries().remove(0);
    let mut forged = answer_to(&q);
    forged[0] ^= 0x55;
    p.server_send_frame(&forged);
    p.pass_to_client(t0).unwrap();
    assert!(p.client.take_answers().is_empty());
    assert_eq!(p.client.stray_answers(), 1);
    assert_eq!(p.client.in_flight(), 1);
}

#[test]
fn frame_too_short_for_a_dns_header_fails_the_connection() {
    let (_certs, mut p, t0) = connected("core-frame");
    p.server_send_frame(&[1, 2, 3]);
    assert_eq!(p.pass_to_client(t0), Err(DotError::BadFrame(3)));
    assert!(matches!(
        p.client.state(),
        DotState::Failed(DotError::BadFrame(3))
    ));
}

#[test]
fn server_closing_mid_pipeline_leaves_the_rest_to_resend() {
    let (_certs, mut p, t0) = connected("core-close");
    let mut rnd = ids();
    for t in 0..3u64 {
        p.client
            .send_query(&query(t as u16, "a.example.test"), t, &mut rnd)
            .unwrap();
    }
    p.pass_to_server();
    let qs = p.server_queries();
    p.server_send_frame(&answer_to(&qs[1]));
    p.server.send_close_notify();
    assert_eq!(p.pass_to_client(t0), Err(DotError::PeerClosed));
    let answers = p.client.take_answers();
    assert_eq!(
        answers.len(),
        1,
        "the answer sent before close_notify still counts"
    );
    assert_eq!(answers[0].token, 1);
    let mut rest = p.client.take_unanswered();
    rest.sort();
    assert_eq!(rest, vec![0, 2]);
    assert_eq!(
        p.client
            .send_query(&query(5, "a.example.test"), 5, &mut rnd),
        Err(SendError::Closed)
    );
}

#[test]
fn tcp_end_without_close_notify_is_peer_closed() {
    let (_certs, mut p, _) = connected("core-eof");
    p.client
        .send_query(&query(1, "a.example.test"), 1, &mut ids())
        .unwrap();
    assert_eq!(p.client.receive_eof(), DotError::PeerClosed);
    assert_eq!(p.client.take_unanswered(), vec![1]);
}

#[test]
fn handshake_deadline_on_a_virtual_clock() {
    let certs = Certs::make("core-hs");
    let t0 = Instant::now();
    let limits = DotLimits {
        handshake_timeout: Duration::from_secs(3),
        ..DotLimits::default()
    };
    let mut p = Pair::new(&certs, limits, t0);
    p.client
        .send_query(&query(1, "a.example.test"), 1, &mut ids())
        .unwrap();
    assert!(
        !p.client.take_output().is_empty(),
        "ClientHello is ready at once"
    );
    // The server never answers.
    assert_eq!(p.client.next_deadline(), Some(t0 + Duration::from_secs(3)));
    assert_eq!(p.client.tick(t0 + Duration::from_millis(2999)), Ok(()));
    assert_eq!(
        p.client.tick(t0 + Duration::from_secs(3)),
        Err(DotError::HandshakeTimeout)
    );
    assert_eq!(p.client.take_unanswered(), vec![1]);
}

#[test]
fn idle_connection_closes_with_close_notify_and_not_while_queries_wait() {
    let certs = Certs::make("core-idle");
    let t0 = Instant::now();
    let limits = DotLimits {
        idle_timeout: Duration::from_secs(10),
        ..DotLimits::default()
    };
    let mut p = Pair::new(&certs, limits, t0);
    p.handshake(t0);
    let t1 = t0 + Duration::from_secs(4);
    p.client
        .send_query(&query(1, "a.example.test"), 1, &mut ids())
        .unwrap();
    p.pass_to_server();
    // A query in flight: no idle deadline at all.
    assert_eq!(p.client.next_deadline(), None);
    assert_eq!(p.client.tick(t1 + Duration::from_secs(60)), Ok(()));
    assert_eq!(p.client.state(), &DotState::Open);
    let q = p.server_queries().remove(0);
    p.server_send_frame(&answer_to(&q));
    p.pass_to_client(t1).unwrap();
    assert_eq!(p.client.take_answers().len(), 1);
    assert_eq!(p.client.next_deadline(), Some(t1 + Duration::from_secs(10)));
    p.client.tick(t1 + Duration::from_millis(9999)).unwrap();
    assert_eq!(p.client.state(), &DotState::Open);
    p.client.tick(t1 + Duration::from_secs(10)).unwrap();
    assert_eq!(p.client.state(), &DotState::Closed);
    p.pass_to_server();
    // The server saw close_notify: its reader reports a clean end.
    let mut buf = [0u8; 16];
    assert_eq!(p.server.reader().read(&mut buf).unwrap(), 0);
}

/// `q` answered with an OPT carrying edns-tcp-keepalive = `units` × 100 ms.
fn answer_with_keepalive(q: &[u8], units: u16) -> Vec<u8> {
    let mut a = answer_to(q);
    a[10..12].copy_from_slice(&1u16.to_be_bytes());
    a.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 6, 0, 11, 0, 2]);
    a.extend_from_slice(&units.to_be_bytes());
    a
}

#[test]
fn server_keepalive_sets_the_idle_close_within_bounds() {
    let certs = Certs::make("core-keepalive");
    let t0 = Instant::now();
    // (announced in 100 ms units, idle close that follows): as announced, raised to
    // the 1 s floor, lowered to our own 10 s.
    for (units, want) in [(25u16, 2500u64), (0, 1000), (6000, 10_000)] {
        let mut p = Pair::new(&certs, DotLimits::default(), t0);
        p.handshake(t0);
        assert_eq!(p.client.idle_timeout(), Duration::from_secs(10));
        p.client
            .send_query(&query(1, "a.example.test"), 1, &mut ids())
            .unwrap();
        p.pass_to_server();
        let q = p.server_queries().remove(0);
        p.server_send_frame(&answer_with_keepalive(&q, units));
        let t1 = t0 + Duration::from_secs(1);
        p.pass_to_client(t1).unwrap();
        assert_eq!(p.client.take_answers().len(), 1, "units {units}");
        let want = Duration::from_millis(want);
        assert_eq!(p.client.idle_timeout(), want, "units {units}");
        assert_eq!(p.client.next_deadline(), Some(t1 + want));
        p.client.tick(t1 + want - Duration::from_millis(1)).unwrap();
        assert_eq!(p.client.state(), &DotState::Open);
        p.client.tick(t1 + want).unwrap();
        assert_eq!(p.client.state(), &DotState::Closed, "units {units}");
    }
}

/// The server writes raw plaintext bytes (not a whole frame) to the client.
fn server_send_raw(p: &mut Pair, bytes: &[u8]) {
    p.server.writer().write_all(bytes).unwrap();
}

#[test]
fn length_prefix_followed_by_junk_fails_at_the_header() {
    // 65,535 announced, then junk: the header shows it is no answer, so the connection
    // fails at once instead of waiting for 64 KiB that may never come.
    for junk in [[0xffu8; 12], [0u8; 12]] {
        let (_certs, mut p, t0) = connected("core-oversize");
        p.client
            .send_query(&query(9, "a.example.test"), 1, &mut ids())
            .unwrap();
        p.pass_to_server();
        let mut bytes = vec![0xff, 0xff];
        bytes.extend_from_slice(&junk);
        server_send_raw(&mut p, &bytes);
        assert_eq!(p.pass_to_client(t0), Err(DotError::BadFrame(65535)));
        assert!(p.client.take_answers().is_empty());
        assert_eq!(p.client.take_unanswered(), vec![1]);
    }
}

#[test]
fn large_answer_frames_are_still_taken() {
    let (_certs, mut p, t0) = connected("core-large");
    p.client
        .send_query(&query(9, "a.example.test"), 1, &mut ids())
        .unwrap();
    p.pass_to_server();
    let q = p.server_queries().remove(0);
    let mut big = answer_to(&q);
    big.resize(40_000, 0x2a);
    p.server_send_frame(&big);
    // Delivered in pieces, as a slow link would.
    let mut bytes = Vec::new();
    while p.server.wants_write() {
        p.server.write_tls(&mut bytes).unwrap();
    }
    for part in bytes.chunks(1000) {
        p.client.receive(part, t0).unwrap();
    }
    let answers = p.client.take_answers();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].message.len(), 40_000);
}

#[test]
fn the_default_limit_takes_128_queries_in_flight_and_refuses_the_129th() {
    let certs = Certs::make("core-default-limit");
    let t0 = Instant::now();
    let mut p = Pair::new(&certs, DotLimits::default(), t0);
    let mut n = 0u16;
    let mut rnd = move || {
        n += 1;
        n
    };
    for t in 0..128u64 {
        assert!(p.client.accepts_queries(), "refused query {t}");
        p.client
            .send_query(&query(t as u16, "a.example.test"), t, &mut rnd)
            .unwrap();
    }
    assert!(!p.client.accepts_queries());
    assert_eq!(
        p.client
            .send_query(&query(200, "a.example.test"), 200, &mut rnd),
        Err(SendError::Full)
    );
}

/// The TLS records in `bytes` (whole records only): (content type, length) each.
fn records(bytes: &[u8]) -> Vec<(u8, usize)> {
    let mut out = Vec::new();
    let mut p = 0;
    while p + 5 <= bytes.len() {
        let len = u16::from_be_bytes([bytes[p + 3], bytes[p + 4]]) as usize;
        out.push((bytes[p], len));
        p += 5 + len;
    }
    out
}

#[test]
fn queries_sent_before_one_take_output_go_out_in_one_record() {
    let (_certs, mut p, _) = connected("core-coalesce");
    let mut rnd = ids();
    for t in 0..5u64 {
        p.client
            .send_query(&query(t as u16, "a.example.test"), t, &mut rnd)
            .unwrap();
    }
    let bytes = p.client.take_output();
    // One application-data record (type 23) for the five queries: one AEAD pass and one
    // write on the socket, not five.
    assert_eq!(records(&bytes).len(), 1, "{:?}", records(&bytes));
    assert_eq!(records(&bytes)[0].0, 23);
    let mut s = &bytes[..];
    while !s.is_empty() {
        p.server.read_tls(&mut s).unwrap();
        p.server.process_new_packets().unwrap();
    }
    let mut buf = [0u8; 4096];
    while let Ok(n) = p.server.reader().read(&mut buf) {
        if n == 0 {
            break;
        }
        p.server_rx.extend_from_slice(&buf[..n]);
    }
    assert_eq!(p.server_queries().len(), 5);
    assert!(p.client.take_output().is_empty());
}

#[test]
fn queries_queued_when_the_server_closes_are_left_to_resend_not_sealed() {
    let (_certs, mut p, t0) = connected("core-queued-close");
    p.client
        .send_query(&query(3, "a.example.test"), 7, &mut ids())
        .unwrap();
    assert!(p.client.has_queued());
    p.server.send_close_notify();
    assert_eq!(p.pass_to_client(t0), Err(DotError::PeerClosed));
    let out = p.client.take_output();
    // At most the client's own close_notify: a sealed query would be over 128 bytes.
    assert!(out.len() < 64, "{} bytes after the close", out.len());
    assert!(!p.client.has_queued());
    assert_eq!(p.client.take_unanswered(), vec![7]);
}

#[test]
fn answers_copied_into_given_back_buffers_are_whole() {
    let (_certs, mut p, t0) = connected("core-recycle");
    let mut rnd = ids();
    for (i, name) in ["a.example.test", "longer-name.b.example.test"]
        .iter()
        .enumerate()
    {
        // A used buffer, longer than the answer, given back before the answer comes.
        p.client.recycle(vec![0xee; 200]);
        p.client
            .send_query(&query(0x100 + i as u16, name), i as u64, &mut rnd)
            .unwrap();
        p.pass_to_server();
        let q = p.server_queries().remove(0);
        p.server_send_frame(&answer_to(&q));
        p.pass_to_client(t0).unwrap();
        let mut answers = p.client.take_answers();
        assert_eq!(answers.len(), 1);
        let a = answers.remove(0);
        assert_eq!(a.message[..2], (0x100 + i as u16).to_be_bytes());
        assert_eq!(a.message[2..], answer_to(&q)[2..], "{name}");
        p.client.recycle(a.message);
    }
    // A buffer given back is handed out empty.
    assert!(p.client.spare_buffer().is_empty());
}
