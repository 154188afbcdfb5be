//! Just enough DNS for the checks: A queries over UDP and TCP, reading the rcode and
//! the first address of an answer, and a scripted upstream that counts what it is asked.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const TYPE_A: u16 = 1;
pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_REFUSED: u8 = 5;

/// The upstream's answer for names outside the batch: TEST-NET-2.
pub const UPSTREAM_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
pub const UPSTREAM_TTL: u32 = 300;

/// A fresh query id (the checks run one after the other; ids only need to differ).
pub fn next_id() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0x1000);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// An A query for `name` with recursion desired.
pub fn query(id: u16, name: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(12 + name.len() + 6);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&TYPE_A.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m
}

/// What a reply said.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub id: u16,
    pub rcode: u8,
    pub addr: Option<Ipv4Addr>,
    /// TTL of that address record.
    pub ttl: u32,
}

fn skip_name(m: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let len = *m.get(i)? as usize;
        if len & 0xC0 == 0xC0 {
            return Some(i + 2);
        }
        if len == 0 {
            return Some(i + 1);
        }
        i += 1 + len;
    }
}

fn be16(m: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*m.get(i)?, *m.get(i + 1)?]))
}

/// The question name of a message, lower-cased, and where the question ends.
fn qname(m: &[u8]) -> Option<(String, usize)> {
    let mut i = 12;
    let mut name = String::new();
    loop {
        let len = *m.get(i)? as usize;
        if len == 0 {
            return Some((name, i + 1));
        }
        if len & 0xC0 != 0 {
            return None;
        }
        let label = m.get(i + 1..i + 1 + len)?;
        if !name.is_empty() {
            name.push('.');
        }
        name.push_str(&String::from_utf8_lossy(label).to_ascii_lowercase());
        i += 1 + len;
    }
}

pub fn parse(m: &[u8]) -> Option<Reply> {
    let id = be16(m, 0)?;
    let flags = be16(m, 2)?;
    if flags & 0x8000 == 0 {
        return None;
    }
    let ancount = be16(m, 6)?;
    let (_, mut i) = qname(m)?;
    i += 4;
    let mut addr = None;
    let mut ttl = 0;
    for _ in 0..ancount {
        i = skip_name(m, i)?;
        let rtype = be16(m, i)?;
        let rdlen = be16(m, i + 8)? as usize;
        let rdata = m.get(i + 10..i + 10 + rdlen)?;
        if rtype == TYPE_A && rdlen == 4 && addr.is_none() {
            addr = Some(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]));
            ttl = u32::from_be_bytes([m[i + 4], m[i + 5], m[i + 6], m[i + 7]]);
        }
        i += 10 + rdlen;
    }
    Some(Reply {
        id,
        rcode: (flags & 0x000F) as u8,
        addr,
        ttl,
    })
}

/// One UDP query from `from` (port 0 = any) to `to`; None on timeout.
pub fn ask_udp(from: SocketAddr, to: SocketAddr, name: &str, wait: Duration) -> io::Result<Reply> {
    let s = UdpSocket::bind(from)?;
    s.set_read_timeout(Some(wait))?;
    let id = next_id();
    s.send_to(&query(id, name), to)?;
    let mut buf = [0u8; 1500];
    loop {
        let (n, peer) = s.recv_from(&mut buf)?;
        if peer != to {
            continue;
        }
        match parse(&buf[..n]) {
            Some(r) if r.id == id => return Ok(r),
            _ => continue,
        }
    }
}

/// One query over a new TCP connection.
pub fn ask_tcp(to: SocketAddr, name: &str, wait: Duration) -> io::Result<Reply> {
    let mut s = TcpStream::connect_timeout(&to, wait)?;
    s.set_read_timeout(Some(wait))?;
    let q = query(next_id(), name);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    s.write_all(&framed)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut m = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut m)?;
    parse(&m).ok_or_else(|| io::Error::other("unparsable TCP reply"))
}

/// What the upstream has been asked, by name.
#[derive(Clone, Default)]
pub struct Counts(Arc<Mutex<HashMap<String, u32>>>);

impl Counts {
    pub fn get(&self, name: &str) -> u32 {
        self.0
            .lock()
            .map(|m| m.get(name).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn bump(&self, name: &str) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(name.to_string()).or_insert(0) += 1;
        }
    }
}

/// The address the upstream gives `name`: `nN.batch.example` (N < 100) gets
/// 198.51.100.(100 + N), so that a reply sent to the wrong client or with another's
/// payload shows; everything else gets [`UPSTREAM_ADDR`]. Public addresses: dproxy's
/// rebinding protection refuses private ones.
pub fn addr_for(name: &str) -> Ipv4Addr {
    if let Some(n) = name
        .strip_suffix(".batch.example")
        .and_then(|h| h.strip_prefix('n'))
        .and_then(|n| n.parse::<u8>().ok())
        .filter(|n| *n < 100)
    {
        return Ipv4Addr::new(198, 51, 100, 100 + n);
    }
    UPSTREAM_ADDR
}

/// The upstream's reply to a query; names ending in `.silent.example` get none.
fn answer(q: &[u8], counts: &Counts) -> Option<Vec<u8>> {
    let (name, end) = qname(q)?;
    counts.bump(&name);
    if name.ends_with(".silent.example") {
        return None;
    }
    let qtype = be16(q, end)?;
    let mut r = q.get(..end + 4)?.to_vec();
    // QR, RD copied, RA; one question; no authority; no additional (drops EDNS).
    r[2] = 0x80 | (q[2] & 0x01);
    r[3] = 0x80;
    r[4..12].copy_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    if qtype == TYPE_A {
        r[7] = 1;
        r.extend_from_slice(&[0xC0, 0x0C]);
        r.extend_from_slice(&TYPE_A.to_be_bytes());
        r.extend_from_slice(&1u16.to_be_bytes());
        r.extend_from_slice(&UPSTREAM_TTL.to_be_bytes());
        r.extend_from_slice(&4u16.to_be_bytes());
        r.extend_from_slice(&addr_for(&name).octets());
    }
    Some(r)
}

/// Starts the upstream on `addr` (UDP and TCP) in two threads.
pub fn start_upstream(addr: SocketAddr) -> io::Result<Counts> {
    let counts = Counts::default();
    let udp = UdpSocket::bind(addr)?;
    let tcp = TcpListener::bind(addr)?;
    let c = counts.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, peer)) = udp.recv_from(&mut buf) {
            if let Some(r) = answer(&buf[..n], &c) {
                let _ = udp.send_to(&r, peer);
            }
        }
    });
    let c = counts.clone();
    std::thread::spawn(move || {
        for mut s in tcp.incoming().flatten() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut len = [0u8; 2];
            while s.read_exact(&mut len).is_ok() {
                let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                if s.read_exact(&mut q).is_err() {
                    break;
                }
                if let Some(r) = answer(&q, &c) {
                    let mut framed = (r.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&r);
                    if s.write_all(&framed).is_err() {
                        break;
                    }
                }
            }
        }
    });
    Ok(counts)
}
