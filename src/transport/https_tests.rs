//! The DoH connection pool against loopback listeners that accept and never finish a
//! handshake: which connection each attempt goes on, and where the queries of a server
//! that moved go. (The connections stay before their handshake, where one takes
//! queries as an HTTP/2 one would; `tests/integration/test_doh.py` has the servers.)

use std::net::{SocketAddr, TcpListener};
use std::time::Instant;

use mio::Poll;

use super::super::tests::throwaway_roots;
use super::*;

fn target() -> Target {
    Target {
        host: "doh.test".into(),
        authority: "doh.test".into(),
        path: "/dns-query".into(),
    }
}

fn owner(pending: usize, attempt: usize) -> Owner {
    Owner {
        pending,
        gen: 1,
        attempt,
    }
}

/// A query-shaped message with this id.
fn query(id: u16) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    m
}

/// The connection an attempt waits on (the table has no lookup of its own).
fn slot_of(t: &mut Transports, o: Owner) -> Option<usize> {
    let slot = t.open.remove(&o)?;
    t.open.insert(o, slot);
    Some(slot)
}

fn https_addr(t: &Transports, slot: usize) -> Option<SocketAddr> {
    match t.channels.get(slot) {
        Some(Channel::Https(c)) => Some(c.addr),
        _ => None,
    }
}

fn with_server(poll: &Poll, addr: SocketAddr, tag: &str) -> Transports {
    let mut t = Transports::default();
    t.set_https(
        poll.registry(),
        vec![(addr, target(), Vec::new())],
        Vec::new(),
        Vec::new(),
        throwaway_roots(tag),
    );
    t
}

/// The retransmission timer fired for a question whose attempt waits on a DoH
/// connection: the next attempt goes on another connection of the pool (a new one),
/// never behind the first on the same one; when every connection carries the
/// question, one more opens past the pool.
#[test]
fn a_later_attempt_of_a_question_does_not_go_on_the_connection_that_carries_it() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let poll = Poll::new().unwrap();
    let mut t = with_server(&poll, addr, "doh-retry");
    let reg = poll.registry();
    t.send_https(reg, addr, owner(7, 0), &query(1), 0).unwrap();
    let first = slot_of(&mut t, owner(7, 0)).unwrap();
    // Another question shares the connection (it may speak HTTP/2: no second
    // handshake for it).
    t.send_https(reg, addr, owner(8, 0), &query(2), 0).unwrap();
    assert_eq!(slot_of(&mut t, owner(8, 0)), Some(first));
    // The retransmission of the first question: on a new connection.
    t.send_https(reg, addr, owner(7, 1), &query(3), 0).unwrap();
    let second = slot_of(&mut t, owner(7, 1)).unwrap();
    assert_ne!(
        second, first,
        "the resend went on the connection that carries it"
    );
    // The other question's resend: not on the first connection either.
    t.send_https(reg, addr, owner(8, 1), &query(4), 0).unwrap();
    assert_eq!(slot_of(&mut t, owner(8, 1)), Some(second));
    // A third attempt of the first question finds both connections carrying it: a
    // third one, past the pool of two.
    t.send_https(reg, addr, owner(7, 2), &query(5), 0).unwrap();
    let third = slot_of(&mut t, owner(7, 2)).unwrap();
    assert!(third != first && third != second);
    assert_eq!(t.https_slots_to(addr).len(), 3);
    // A first attempt still keeps to the pool's connections.
    t.send_https(reg, addr, owner(9, 0), &query(6), 0).unwrap();
    assert_eq!(t.https_slots_to(addr).len(), 3);
}

/// A bootstrap lookup moved the server to a new address: the queries waiting on the
/// connections to the old one go out at once on a connection to the new one, not
/// after their retransmission timers.
#[test]
fn queries_on_the_old_address_go_to_the_new_one_at_once() {
    let old_l = TcpListener::bind("127.0.0.1:0").unwrap();
    let old = old_l.local_addr().unwrap();
    let new_l = TcpListener::bind("127.0.0.2:0").unwrap();
    let new = new_l.local_addr().unwrap();
    let poll = Poll::new().unwrap();
    let mut t = with_server(&poll, old, "doh-moved");
    let reg = poll.registry();
    let asked = [owner(7, 0), owner(8, 0), owner(9, 1)];
    for (i, &o) in asked.iter().enumerate() {
        t.send_https(reg, old, o, &query(i as u16), 0).unwrap();
    }
    let before = slot_of(&mut t, asked[0]).unwrap();
    assert_eq!(https_addr(&t, before), Some(old));
    t.https.boot.changes.push(Change::Moved {
        old: Some(old),
        new,
        named: Named {
            port: new.port(),
            target: target(),
            pins: Vec::new(),
        },
    });
    assert!(t.boot_tick(reg, Instant::now()));
    assert!(t.is_https(new) && !t.is_https(old));
    assert!(t.https_slots_to(old).is_empty());
    for o in asked {
        let slot = slot_of(&mut t, o).expect("the query was dropped with the old connection");
        assert_eq!(https_addr(&t, slot), Some(new), "{o:?}");
    }
    // One connection to the new address carries them all.
    assert_eq!(t.https_slots_to(new).len(), 1);
    new_l.set_nonblocking(false).unwrap();
    assert!(new_l.accept().is_ok());
}
