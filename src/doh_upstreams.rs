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
    // Replies that are not ours (wrong ID or question) are read past until the timeout.
    loop {
        let n = sock.recv(&mut buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => "no answer".into(),
            _ => e.to_string(),
        })?;
        if let Some(found) = answer_address(&buf[..n], id, name, qtype) {
            return found;
        }
    }
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
