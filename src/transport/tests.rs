//! The transports against real loopback sockets: what comes back is delivered to the
//! attempt that asked, over UDP and pipelined TCP.

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::time::Duration;

use mio::{Events, Poll};

use super::*;

fn owner(attempt: usize) -> Owner {
    Owner {
        pending: 7,
        gen: 3,
        attempt,
    }
}

/// A query-shaped message: the id and a few bytes.
fn msg(id: u16, tag: u8) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[tag; 10]);
    m
}

/// Everything the transports say until `want` events are in (or 5 s pass).
fn collect(t: &mut Transports, poll: &mut Poll, want: usize) -> Vec<(Event, Vec<u8>)> {
    let mut got = Vec::new();
    let mut events = Events::with_capacity(16);
    let mut buf = Vec::new();
    for _ in 0..50 {
        if got.len() >= want {
            break;
        }
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        for ev in events.iter() {
            let slot = ev.token().0 - TOKEN_BASE;
            while let Some(e) = t.next_event(poll.registry(), slot, &mut buf, Instant::now()) {
                let body = match e {
                    Event::Message(_, n) => buf[..n].to_vec(),
                    _ => Vec::new(),
                };
                got.push((e, body));
            }
        }
    }
    got
}

fn read_frame(s: &mut std::net::TcpStream) -> Vec<u8> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut m = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut m).unwrap();
    m
}

fn write_frame(s: &mut std::net::TcpStream, m: &[u8]) {
    let mut f = (m.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(m);
    s.write_all(&f).unwrap();
}

#[test]
fn udp_answer_goes_to_its_attempt_and_close_frees_the_socket() {
    let mut poll = Poll::new().unwrap();
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut t = Transports::default();
    let q = msg(0x1234, 1);
    t.send(
        poll.registry(),
        Proto::Udp,
        server.local_addr().unwrap(),
        owner(0),
        0x1234,
        &q,
    )
    .unwrap();
    let mut b = [0u8; 64];
    let (n, from) = server.recv_from(&mut b).unwrap();
    assert_eq!(&b[..n], &q[..]);
    server.send_to(&msg(0x1234, 9), from).unwrap();
    let got = collect(&mut t, &mut poll, 1);
    assert_eq!(got, vec![(Event::Message(owner(0), 12), msg(0x1234, 9))]);
    assert_eq!(t.len(), 1);
    t.close(poll.registry(), owner(0));
    assert!(t.is_empty());
}

#[test]
fn tcp_pipelines_attempts_to_one_server_and_matches_answers_by_id() {
    let mut poll = Poll::new().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut t = Transports::default();
    t.send(poll.registry(), Proto::Tcp, addr, owner(0), 1, &msg(1, 1))
        .unwrap();
    t.send(poll.registry(), Proto::Tcp, addr, owner(1), 2, &msg(2, 2))
        .unwrap();
    // One stream for both.
    assert_eq!(t.len(), 1);
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The queries go out when the stream is writable.
    let mut first = None;
    for _ in 0..50 {
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = Vec::new();
        for ev in events.iter() {
            assert_eq!(
                t.next_event(
                    poll.registry(),
                    ev.token().0 - TOKEN_BASE,
                    &mut buf,
                    Instant::now()
                ),
                None
            );
        }
        s.set_nonblocking(true).unwrap();
        let mut peek = [0u8; 1];
        let ready = s.peek(&mut peek).is_ok();
        s.set_nonblocking(false).unwrap();
        if ready {
            first = Some(read_frame(&mut s));
            break;
        }
    }
    assert_eq!(first, Some(msg(1, 1)));
    assert_eq!(read_frame(&mut s), msg(2, 2));
    // Answered in the other order: each answer goes to the attempt with its id.
    write_frame(&mut s, &msg(2, 20));
    write_frame(&mut s, &msg(1, 10));
    let got = collect(&mut t, &mut poll, 2);
    assert_eq!(
        got,
        vec![
            (Event::Message(owner(1), 12), msg(2, 20)),
            (Event::Message(owner(0), 12), msg(1, 10)),
        ]
    );
    // Nobody waits on it any more: closed.
    assert!(t.is_empty());
}

#[test]
fn tcp_answer_with_an_unknown_id_fails_the_stream() {
    let mut poll = Poll::new().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut t = Transports::default();
    t.send(poll.registry(), Proto::Tcp, addr, owner(0), 1, &msg(1, 1))
        .unwrap();
    t.send(poll.registry(), Proto::Tcp, addr, owner(1), 2, &msg(2, 2))
        .unwrap();
    let (mut s, _) = listener.accept().unwrap();
    write_frame(&mut s, &msg(99, 0));
    write_frame(&mut s, &msg(1, 10));
    let got: Vec<Event> = collect(&mut t, &mut poll, 3)
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    assert_eq!(
        got,
        vec![
            Event::Stray,
            Event::Failed(owner(1)),
            Event::Failed(owner(0))
        ]
    );
    assert!(t.is_empty());
}

#[test]
fn tcp_closed_by_the_server_fails_its_attempts_and_a_new_attempt_gets_a_new_stream() {
    let mut poll = Poll::new().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut t = Transports::default();
    t.send(poll.registry(), Proto::Tcp, addr, owner(0), 1, &msg(1, 1))
        .unwrap();
    let (s, _) = listener.accept().unwrap();
    drop(s);
    let got: Vec<Event> = collect(&mut t, &mut poll, 1)
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    assert_eq!(got, vec![Event::Failed(owner(0))]);
    assert!(t.is_empty());
    t.send(poll.registry(), Proto::Tcp, addr, owner(1), 1, &msg(1, 1))
        .unwrap();
    assert_eq!(t.len(), 1);
    t.close(poll.registry(), owner(1));
    assert!(t.is_empty());
}

/// A client configuration trusting a throwaway CA (nothing is verified by the tests
/// that use it: they never finish a handshake).
#[cfg(feature = "tls")]
pub(super) fn throwaway_roots(tag: &str) -> std::sync::Arc<rustls::RootCertStore> {
    let dir = std::env::temp_dir().join(format!("dproxy-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=throwaway test CA",
            "-keyout",
        ])
        .arg(dir.join("ca.key"))
        .arg("-out")
        .arg(&ca)
        .output()
        .unwrap();
    assert!(made.status.success(), "openssl: {made:?}");
    let roots = std::sync::Arc::new(crate::tls::load_roots(&ca).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    roots
}

#[cfg(feature = "tls")]
fn throwaway_config(tag: &str) -> std::sync::Arc<rustls::ClientConfig> {
    crate::tls::client_config(
        throwaway_roots(tag),
        Vec::new(),
        crate::clock_trust::ClockTrust { synced: true },
    )
    .unwrap()
}

/// A DoT connection writes each query as soon as it is made, not after the ACK of the
/// one before (Nagle): its socket has TCP_NODELAY from the start.
#[cfg(feature = "tls")]
#[test]
fn tls_connection_socket_has_nodelay() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let config = throwaway_config("nodelay");
    let c = tls::Channel::connect(addr, config, "dot.test", std::time::Instant::now()).unwrap();
    assert!(c.stream.nodelay().unwrap());
}

/// The connection an attempt waits on (the table has no lookup of its own).
#[cfg(feature = "tls")]
fn slot_of(t: &mut Transports, o: Owner) -> usize {
    let slot = t.open.remove(&o).unwrap();
    t.open.insert(o, slot);
    slot
}

/// The retransmission timer fired for a question whose attempt waits on a DoT
/// connection: the next attempt goes on another connection (a new one), never as a
/// duplicate behind the first on the same one; first attempts of other questions still
/// share the current connection.
#[cfg(feature = "tls")]
#[test]
fn a_later_attempt_of_a_question_does_not_go_on_the_connection_that_carries_it() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let poll = Poll::new().unwrap();
    let mut t = Transports::default();
    t.set_tls(
        poll.registry(),
        vec![(addr, "dot.test".into(), Vec::new())],
        throwaway_roots("retry"),
    )
    .unwrap();
    let q = msg(0x1234, 1);
    t.send_tls(poll.registry(), addr, owner(0), &q, 0).unwrap();
    let first = slot_of(&mut t, owner(0));
    // Another question shares the connection.
    let other = Owner {
        pending: 8,
        gen: 1,
        attempt: 0,
    };
    t.send_tls(poll.registry(), addr, other, &msg(0x4321, 2), 0)
        .unwrap();
    assert_eq!(slot_of(&mut t, other), first);
    // The retransmission of the first question: on a new connection.
    t.send_tls(poll.registry(), addr, owner(1), &q, 0).unwrap();
    let second = slot_of(&mut t, owner(1));
    assert_ne!(
        second, first,
        "the resend went on the connection that carries it"
    );
    // The next question's first attempt goes on the new (current) connection.
    let third = Owner {
        pending: 9,
        gen: 1,
        attempt: 0,
    };
    t.send_tls(poll.registry(), addr, third, &msg(0x5555, 3), 0)
        .unwrap();
    assert_eq!(slot_of(&mut t, third), second);
    // A third attempt of the first question finds both connections carrying it: a third one.
    t.send_tls(poll.registry(), addr, owner(2), &q, 0).unwrap();
    let third_conn = slot_of(&mut t, owner(2));
    assert!(third_conn != first && third_conn != second);
}

/// The readiness event for the DoT connection (token 1), handed over as the loop does;
/// None if none comes within 5 s.
#[cfg(all(feature = "tls", target_os = "linux"))]
fn dot_event(poll: &mut Poll, c: &mut tls::Channel) -> Option<(bool, bool)> {
    let mut events = Events::with_capacity(8);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        if let Some(ev) = events.iter().find(|e| e.token() == mio::Token(1)) {
            let flags = (ev.is_readable(), ev.is_read_closed() || ev.is_error());
            c.readiness(flags.0, flags.1);
            return Some(flags);
        }
    }
    None
}

/// Until the client's end of the socket satisfies `poll(2)` for `what` (a level-triggered
/// look that neither reads nor touches epoll); false after 5 s.
#[cfg(all(feature = "tls", target_os = "linux"))]
fn socket_shows(s: &mio::net::TcpStream, what: libc::c_short) -> bool {
    use std::os::fd::AsRawFd;
    for _ in 0..5000 {
        let mut p = libc::pollfd {
            fd: s.as_raw_fd(),
            events: what,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no timeout.
        if unsafe { libc::poll(&mut p, 1, 0) } == 1 && p.revents & what != 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// A DoT connection whose read came back short (the receive queue emptied) reads again
/// only when the poller reports the socket, saving the read that would find nothing; and
/// it misses nothing: bytes arriving later (the rest of a TLS record split over reads)
/// raise their own event, and an end of file queued behind the last data, which raises
/// none of its own, is read in the same turn because the event says the read side closed.
#[cfg(all(feature = "tls", target_os = "linux"))]
#[test]
fn a_dot_connection_reads_after_events_only_and_misses_no_data_or_end_of_file() {
    use mio::{Interest, Token};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let now = std::time::Instant::now();
    let mut poll = Poll::new().unwrap();
    let mut c =
        tls::Channel::connect(addr, throwaway_config("shortread"), "dot.test", now).unwrap();
    poll.registry()
        .register(
            &mut c.stream,
            Token(1),
            Interest::READABLE | Interest::WRITABLE,
        )
        .unwrap();
    let (mut server, _) = listener.accept().unwrap();
    // The client's hello goes out once the connect is reported done.
    let mut hello = [0u8; 1];
    server
        .set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    for _ in 0..500 {
        if server.peek(&mut hello).is_ok() {
            break;
        }
        if dot_event(&mut poll, &mut c).is_some() {
            c.drive(now);
        }
    }
    assert_eq!(hello[0], 0x16, "a TLS handshake record");
    let queued = |c: &tls::Channel| {
        let mut b = [0u8; 1];
        c.stream.peek(&mut b).is_ok()
    };
    // The start of a record header: a short read takes it all.
    server.write_all(&[0x16, 0x03, 0x03]).unwrap();
    assert!(socket_shows(&c.stream, libc::POLLIN));
    assert!(dot_event(&mut poll, &mut c).is_some());
    c.drive(now);
    assert!(c.error.is_none(), "{:?}", c.error);
    assert!(!queued(&c), "the event's data was not read");
    // The rest of the header arrives after that read: the connection does not look
    // without an event (no read that could only find the queue empty) ...
    server.write_all(&[0x00, 0x40]).unwrap();
    assert!(socket_shows(&c.stream, libc::POLLIN));
    c.drive(now);
    assert!(queued(&c), "read without an event");
    // ... and the arrival raised one, so it is read.
    assert!(
        dot_event(&mut poll, &mut c).is_some(),
        "no event for data that came after a short read"
    );
    c.drive(now);
    assert!(c.error.is_none(), "{:?}", c.error);
    assert!(!queued(&c), "the later data was not read");
    // Data with the server's FIN behind it, both queued before the poller looks: one
    // event, which says the read side closed; the short read of the data must not end
    // the turn, or the end of file would wait for an event that never comes.
    server.write_all(&[0x02, 0x00]).unwrap();
    server.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(socket_shows(&c.stream, libc::POLLRDHUP));
    let (_, read_closed) = dot_event(&mut poll, &mut c).expect("no event for data and FIN");
    assert!(read_closed);
    c.drive(now);
    assert!(c.is_done(), "the end of file behind the data was not seen");
}
