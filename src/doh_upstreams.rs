//! The daemon's side of DNS over HTTPS upstreams (full build only): the address each
//! DoH server is reached at, and its URL parts for the transport.
//!
//! The address is, in order: the one after `#` in the entry, the URL's host when it is
//! an IP literal, or else the host name resolved through the configured plain
//! `bootstrap` servers. Only those host names ever go to a bootstrap server; nothing
//! else is resolved in the clear. The lookup blocks (a second per bootstrap server at
//! most) and runs at start, on reload and at link up, so a router that boots offline
//! finds its DoH servers once the link comes up.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use crate::tls::spec::{EncryptedServer, EncryptedUpstreams, DOH_PORT};
use crate::tls::Pin;
use crate::transport::https::Target;
use crate::wire::message::{read_question, read_record, Section};
use crate::wire::{build, rtype, NameBuf};

/// How long one bootstrap server gets to answer.
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(1);

/// The DoH servers of the configuration that have an address: (address, URL parts,
/// pins). Those whose name no bootstrap server resolved are logged and left out.
pub(crate) fn doh_servers(enc: &EncryptedUpstreams) -> Vec<(SocketAddr, Target, Vec<Pin>)> {
    let mut out = Vec::new();
    for s in &enc.servers {
        let EncryptedServer::Https {
            host,
            port,
            path,
            addr,
        } = s
        else {
            continue;
        };
        let ip = match addr {
            Some(ip) => *ip,
            None => match bootstrap(host, &enc.bootstrap) {
                Ok(ip) => {
                    log::info!("DoH server {host} is at {ip} (bootstrap)");
                    ip
                }
                Err(e) => {
                    log::warn!("DoH server {host} left out: {e}");
                    continue;
                }
            },
        };
        let bracketed = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let authority = if *port == DOH_PORT {
            bracketed
        } else {
            format!("{bracketed}:{port}")
        };
        let target = Target {
            host: host.clone(),
            authority,
            path: path.clone(),
        };
        out.push((SocketAddr::new(ip, *port), target, enc.pins_for(s)));
    }
    out
}

/// Resolves `host` through the bootstrap servers, in order: its first IPv4 address,
/// else its first IPv6 address.
fn bootstrap(host: &str, servers: &[SocketAddr]) -> Result<IpAddr, String> {
    if servers.is_empty() {
        return Err("no bootstrap server configured".into());
    }
    let name = NameBuf::from_dotted(host).map_err(|_| format!("'{host}' is not a DNS name"))?;
    let mut rng = crate::rand::Rng::new().map_err(|e| format!("no random source: {e}"))?;
    let mut last = String::new();
    for qtype in [rtype::A, rtype::AAAA] {
        for &server in servers {
            match ask(server, &name, qtype, rng.u16()) {
                Ok(Some(ip)) => return Ok(ip),
                Ok(None) => last = format!("{server} knows no address for it"),
                Err(e) => last = format!("bootstrap server {server}: {e}"),
            }
        }
    }
    Err(last)
}

/// One query over UDP: the first address of type `qtype` in the answer, if any.
fn ask(server: SocketAddr, name: &NameBuf, qtype: u16, id: u16) -> Result<Option<IpAddr>, String> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(local).map_err(|e| e.to_string())?;
    sock.connect(server).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(BOOTSTRAP_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut q = Vec::new();
    build::query(&mut q, id, name, qtype, 1, true, false);
    sock.send(&q).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1500];
    // Replies that are not ours (wrong ID or question) are read past, a few at most.
    for _ in 0..8 {
        let n = sock.recv(&mut buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => "no answer".into(),
            _ => e.to_string(),
        })?;
        if let Some(found) = answer_address(&buf[..n], id, name, qtype) {
            return found;
        }
    }
    Err("no answer to the query".into())
}

/// The address in a reply to our query; None if it is not the reply to it.
fn answer_address(
    msg: &[u8],
    id: u16,
    name: &NameBuf,
    qtype: u16,
) -> Option<Result<Option<IpAddr>, String>> {
    if msg.len() < 12 || msg[..2] != id.to_be_bytes() || msg[2] & 0x80 == 0 {
        return None;
    }
    let q = read_question(msg, 12).ok()?;
    if q.qtype != qtype || !q.name.as_bytes().eq_ignore_ascii_case(name.as_bytes()) {
        return None;
    }
    let rcode = msg[3] & 0x0f;
    if rcode != 0 {
        return Some(Err(format!("answer code {rcode}")));
    }
    let ancount = u16::from_be_bytes([msg[6], msg[7]]);
    let mut pos = q.end;
    for _ in 0..ancount {
        let Ok(r) = read_record(msg, pos, Section::Answer) else {
            return Some(Err("malformed answer".into()));
        };
        pos = r.end;
        let data = &msg[r.rdata..r.end];
        if r.rtype != qtype || r.class != 1 {
            continue;
        }
        if let Ok(a) = <[u8; 4]>::try_from(data) {
            return Some(Ok(Some(IpAddr::from(a))));
        }
        if let Ok(a) = <[u8; 16]>::try_from(data) {
            return Some(Ok(Some(IpAddr::from(a))));
        }
    }
    Some(Ok(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply to `id` for doh.example with the given answer records (type, rdata),
    /// each owned by the question name (compression pointer to offset 12).
    fn reply(id: u16, rcode: u8, qtype: u16, answers: &[(u16, &[u8])]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&[0x81, 0x80 | rcode, 0, 1]);
        m.extend_from_slice(&(answers.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        m.extend_from_slice(b"\x03DoH\x07example\x00");
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        for (t, data) in answers {
            m.extend_from_slice(&[0xc0, 12]);
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            m.extend_from_slice(&(data.len() as u16).to_be_bytes());
            m.extend_from_slice(data);
        }
        m
    }

    #[test]
    fn addresses_are_taken_from_replies_to_our_query_only() {
        let name = NameBuf::from_dotted("doh.example").unwrap();
        let cname: &[u8] = b"\x01x\xc0\x0c";
        let a = reply(
            7,
            0,
            rtype::A,
            &[(rtype::CNAME, cname), (rtype::A, &[192, 0, 2, 9])],
        );
        assert_eq!(
            answer_address(&a, 7, &name, rtype::A),
            Some(Ok(Some("192.0.2.9".parse().unwrap())))
        );
        // Another ID, another type, or not a reply: not ours.
        assert_eq!(answer_address(&a, 8, &name, rtype::A), None);
        assert_eq!(answer_address(&a, 7, &name, rtype::AAAA), None);
        let other = NameBuf::from_dotted("other.example").unwrap();
        assert_eq!(answer_address(&a, 7, &other, rtype::A), None);
        let six = [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53];
        let aaaa = reply(7, 0, rtype::AAAA, &[(rtype::AAAA, &six)]);
        assert_eq!(
            answer_address(&aaaa, 7, &name, rtype::AAAA),
            Some(Ok(Some("2001:db8::53".parse().unwrap())))
        );
        assert_eq!(
            answer_address(&reply(7, 0, rtype::A, &[]), 7, &name, rtype::A),
            Some(Ok(None))
        );
        let refused = reply(7, 5, rtype::A, &[]);
        assert_eq!(
            answer_address(&refused, 7, &name, rtype::A),
            Some(Err("answer code 5".into()))
        );
        let mut cut = a.clone();
        cut.truncate(a.len() - 2);
        assert_eq!(
            answer_address(&cut, 7, &name, rtype::A),
            Some(Err("malformed answer".into()))
        );
    }
}
