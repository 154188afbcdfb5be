//! When a DoT connection acknowledges the answers it reads: while queries flow (one
//! went out within `ACK_WAIT`), a query written within `ACK_WAIT` carries the ACK,
//! or the connection sends one of its own (TCP_QUICKACK) at that deadline, which the
//! event loop keeps through `Channel::next_deadline` and `Channel::tick`; otherwise
//! at once, as during the handshake. A real TLS connection over loopback to a rustls
//! server in a thread (a raw TCP peer for the handshake); deadlines on a virtual clock.
#![cfg(all(feature = "tls", target_os = "linux"))]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dproxy::clock_trust::ClockTrust;
use dproxy::tls::{client_config, load_roots};
use dproxy::transport::tls::{Channel, ACK_WAIT};
use dproxy::transport::{Event, Owner};
use rustls::{ServerConnection, StreamOwned};

use crate::dot_core::{answer_to, server_config};
use crate::tls_support::{query, Certs, NAME};

fn set_quickack(s: &mio::net::TcpStream, on: bool) {
    let v = libc::c_int::from(on);
    // SAFETY: a valid descriptor, an int option and its size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
}

/// Off: the socket is in delayed-ACK mode, as the kernel puts a connection that
/// sends right after it receives. On: an ACK of its own went out since it was set off.
fn quickack(s: &mio::net::TcpStream) -> bool {
    let mut v: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid descriptor, an int option and its size.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(r, 0);
    v != 0
}

/// A DoT server that answers the k-th query it received when told `k` (reading
/// queries until it has k), and ends when the sender is dropped.
fn server(certs: &Certs, listener: TcpListener, answer: mpsc::Receiver<usize>) -> impl FnOnce() {
    let cfg = server_config(certs);
    move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_nodelay(true).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut s = StreamOwned::new(ServerConnection::new(cfg).unwrap(), tcp);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock).unwrap();
        }
        let mut queries: Vec<Vec<u8>> = Vec::new();
        while let Ok(k) = answer.recv() {
            while queries.len() < k {
                let mut len = [0u8; 2];
                s.read_exact(&mut len).unwrap();
                let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                s.read_exact(&mut q).unwrap();
                queries.push(q);
            }
            let a = answer_to(&queries[k - 1]);
            let mut frame = (a.len() as u16).to_be_bytes().to_vec();
            frame.extend_from_slice(&a);
            s.write_all(&frame).unwrap();
            s.flush().unwrap();
        }
    }
}

/// Waits (bounded) until the client's socket has bytes to read, then hands the
/// poller's event over and lets the connection read them.
fn read_arrival(c: &mut Channel, now: Instant) {
    let mut peek = [0u8; 1];
    for _ in 0..1000 {
        if c.stream.peek(&mut peek).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    c.readiness(true, false);
    c.drive(now);
    assert!(c.error.is_none(), "{:?}", c.error);
}

/// Reads as [`read_arrival`] until the connection holds an answer (bounded). One read
/// may not be enough: the session tickets that follow the handshake can arrive first,
/// and the answer after them, when the server thread runs late (a loaded machine).
fn read_answer(c: &mut Channel, now: Instant) {
    for _ in 0..20 {
        read_arrival(c, now);
        if c.has_answers() {
            return;
        }
    }
    panic!("no answer read");
}

/// A client configuration that trusts the test CA, its clock synced.
fn client(certs: &Certs) -> std::sync::Arc<rustls::ClientConfig> {
    let roots = load_roots(&certs.path("ca.pem")).unwrap();
    client_config(
        std::sync::Arc::new(roots),
        Vec::new(),
        ClockTrust { synced: true },
    )
    .unwrap()
}

fn owner(n: usize) -> Owner {
    Owner {
        pending: n,
        gen: 0,
        attempt: 0,
    }
}

#[test]
fn answers_are_acknowledged_by_the_next_query_or_at_the_deadline() {
    let certs = Certs::make("dot-ack");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tell, told) = mpsc::channel();
    let srv = std::thread::spawn(server(&certs, listener, told));

    let t0 = Instant::now();
    let mut c = Channel::connect(addr, client(&certs), NAME, t0).unwrap();
    let mut rng = dproxy::rand::Rng::new().unwrap();
    // The handshake (and the session tickets after it), driven as the loop would.
    for _ in 0..1000 {
        c.readiness(true, false);
        c.drive(t0);
        if c.was_open {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(c.was_open, "{:?} {:?}", c.error, c.socket_error);

    // Two queries in flight; the server answers the first while queries flow (the
    // last went out less than ACK_WAIT before).
    assert!(c.add(owner(1), &query(1, "a.example.test"), 0, &mut rng));
    assert!(c.add(owner(2), &query(2, "b.example.test"), 0, &mut rng));
    c.send_queued(t0);
    // What a connection that sends right after it reads is in: delayed ACKs.
    set_quickack(&c.stream, false);
    tell.send(1).unwrap();
    read_answer(&mut c, t0);
    let mut buf = Vec::new();
    assert!(matches!(c.next_event(&mut buf), Some(Event::Message(o, _)) if o == owner(1)));
    // The ACK waits for a query to carry it, ACK_WAIT at most.
    assert!(
        !quickack(&c.stream),
        "acknowledged at once while queries flow"
    );
    assert_eq!(c.next_deadline(), Some(t0 + ACK_WAIT));
    c.tick(t0 + ACK_WAIT / 2);
    assert!(!quickack(&c.stream), "acknowledged before the deadline");
    c.tick(t0 + ACK_WAIT);
    assert!(quickack(&c.stream), "no ACK at the deadline");
    assert_eq!(
        c.next_deadline(),
        None,
        "the query in flight holds no deadline"
    );

    // A query written after the read carries the ACK: nothing owed after it.
    let t1 = t0 + Duration::from_secs(1);
    assert!(c.add(owner(3), &query(3, "c.example.test"), 0, &mut rng));
    c.send_queued(t1);
    set_quickack(&c.stream, false);
    tell.send(2).unwrap();
    read_answer(&mut c, t1);
    assert!(matches!(c.next_event(&mut buf), Some(Event::Message(o, _)) if o == owner(2)));
    assert_eq!(c.next_deadline(), Some(t1 + ACK_WAIT));
    assert!(c.add(owner(4), &query(4, "d.example.test"), 0, &mut rng));
    c.send_queued(t1);
    assert_eq!(c.next_deadline(), None, "the query carried the ACK");
    c.tick(t1 + ACK_WAIT);
    assert!(
        !quickack(&c.stream),
        "an ACK of its own after a query carried it"
    );

    // No query for longer than ACK_WAIT (light use): acknowledged at once.
    let t2 = t1 + Duration::from_secs(1);
    tell.send(3).unwrap();
    read_answer(&mut c, t2);
    assert!(matches!(c.next_event(&mut buf), Some(Event::Message(o, _)) if o == owner(3)));
    assert!(quickack(&c.stream), "the read left the ACK delayed");
    assert_eq!(c.next_deadline(), None);

    // Nothing in flight after the last answer: nothing held back, nothing owed.
    tell.send(4).unwrap();
    read_answer(&mut c, t2);
    assert!(matches!(c.next_event(&mut buf), Some(Event::Message(o, _)) if o == owner(4)));
    assert!(c.owners().is_empty());
    let deadline = c.next_deadline().unwrap();
    assert!(deadline > t2 + ACK_WAIT, "only the idle close is left");
    drop(tell);
    srv.join().unwrap();
}

/// The handshake's reads are acknowledged at once, whatever the load: a reconnect
/// waits on the server's next flight, which a Nagle-on server would hold for the ACK.
#[test]
fn what_the_handshake_reads_is_acknowledged_at_once() {
    let certs = Certs::make("dot-ack-hs");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let now = Instant::now();
    let mut c = Channel::connect(addr, client(&certs), NAME, now).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    server
        .set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    // The client's hello reaches the server once the connect is done. One byte: a read
    // that times out part way would lose what it took.
    let mut hello = [0u8; 1];
    for _ in 0..500 {
        c.drive(now);
        if server.read_exact(&mut hello).is_ok() {
            break;
        }
    }
    assert_eq!(hello[0], 0x16, "a TLS handshake record");
    set_quickack(&c.stream, false);
    // The first bytes of the server's hello: a partial record, nothing to fail on yet.
    server.write_all(&[0x16, 0x03, 0x03]).unwrap();
    read_arrival(&mut c, now);
    assert!(quickack(&c.stream), "the read left the ACK delayed");
    assert_eq!(
        c.next_deadline(),
        Some(now + dproxy::tls::DotLimits::default().handshake_timeout),
        "no ACK owed: only the handshake deadline"
    );
}
