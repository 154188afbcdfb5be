//! The daemon's side of DNS over HTTPS upstreams (full build only): the DoH servers of
//! the configuration for the transport, and the bootstrap lookups' turn on the loop.
//!
//! A server's address is, in order: the one after `#` in the entry, the URL's host when
//! it is an IP literal, or else the host name looked up through the configured plain
//! `bootstrap` servers (see `transport::https_boot`). Only those host names ever go to a
//! bootstrap server; nothing else is resolved in the clear. The lookups run on the
//! event loop: the daemon starts, and answers from its cache, while they are pending.

use std::net::SocketAddr;

use crate::tls::spec::{EncryptedServer, EncryptedUpstreams, DOH_PORT};
use crate::tls::Pin;
use crate::transport::https::Target;
use crate::transport::https_boot::Named;
use crate::wire::build::Ede;
use crate::wire::ede;

/// The answer to a question that waited for a DoH server's first address lookup longer
/// than `hold_timeout`: the link is up, there is just no server to ask yet.
pub(crate) const EDE_LOOKUP_PENDING: Ede = Ede {
    code: ede::NO_REACHABLE_AUTHORITY,
    text: "DoH server address still being looked up",
};

/// The DoH servers of the configuration: those with an address (address, URL parts,
/// pins), and those given by host name, to be looked up.
#[allow(clippy::type_complexity)]
pub(crate) fn doh_servers(
    enc: &EncryptedUpstreams,
) -> (Vec<(SocketAddr, Target, Vec<Pin>)>, Vec<Named>) {
    let mut known = Vec::new();
    let mut named = Vec::new();
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
        match addr {
            Some(ip) => known.push((SocketAddr::new(*ip, *port), target, enc.pins_for(s))),
            None => named.push(Named {
                port: *port,
                target,
                pins: enc.pins_for(s),
            }),
        }
    }
    (known, named)
}

impl crate::server::Server {
    /// The bootstrap lookups' turn of the loop (cheap when nothing is due): queries sent
    /// and timed out; when an address changed or a first lookup ended, the upstream list
    /// follows, and questions that waited for it go out (or fail) now.
    pub(crate) fn doh_bootstrap(&mut self) {
        if !self.transports.boot_due(self.now) {
            return;
        }
        if self.transports.boot_tick(self.poll.registry(), self.now) {
            self.set_encrypted_upstreams(true);
            if !self.offline() {
                self.release_held();
            }
        }
    }
}
