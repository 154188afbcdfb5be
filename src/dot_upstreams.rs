//! The daemon's side of DNS over TLS upstreams (full build only): turns the configured
//! encrypted servers into the upstream list and the transport's TLS servers.
//!
//! With encrypted servers configured, the resolv file and plain servers are not used:
//! if the CA file cannot be read, the list stays empty and misses get SERVFAIL rather
//! than leave in the clear.

use std::sync::Arc;

use crate::tls::spec::EncryptedServer;

impl crate::server::Server {
    pub(crate) fn load_tls_servers(&mut self) {
        // The resolv file names no server here, but its change still means new
        // addresses: connections and sessions start afresh (see set_tls).
        self.resolv_stamp = self
            .cfg
            .resolvfile
            .as_deref()
            .and_then(crate::server::FileStamp::of);
        let enc = &self.cfg.encrypted;
        let mut tls = Vec::new();
        for s in &enc.servers {
            if let EncryptedServer::Tls { addr, auth_name } = s {
                tls.push((*addr, auth_name.clone(), enc.pins_for(s)));
            }
        }
        #[cfg(feature = "doh")]
        let (https, named) = crate::doh_upstreams::doh_servers(enc);
        #[cfg(feature = "doh")]
        let bootstrap = enc.bootstrap.clone();
        let loaded = crate::tls::load_roots(&enc.ca_file).and_then(|roots| {
            let roots = Arc::new(roots);
            #[cfg(feature = "doh")]
            self.transports.set_https(
                self.poll.registry(),
                https,
                named,
                bootstrap,
                Arc::clone(&roots),
            );
            self.transports
                .set_tls(self.poll.registry(), tls, roots)
                .map_err(|e| e.to_string())
        });
        let ok = match loaded {
            Ok(()) => true,
            Err(e) => {
                log::error!("{e}: no encrypted upstreams, misses are answered SERVFAIL");
                #[cfg(feature = "doh")]
                self.transports.clear_https(self.poll.registry());
                false
            }
        };
        self.set_encrypted_upstreams(ok);
    }

    /// The upstream list: the DoT servers, then the DoH servers whose address is known
    /// (none if `ok` is false: the CA file could not be read), then the plain ones
    /// if the user allowed them.
    pub(crate) fn set_encrypted_upstreams(&mut self, ok: bool) {
        let enc = &self.cfg.encrypted;
        #[allow(unused_mut)]
        let mut servers: Vec<std::net::SocketAddr> = Vec::new();
        if ok {
            for s in &enc.servers {
                if let EncryptedServer::Tls { addr, .. } = s {
                    servers.push(*addr);
                }
            }
            #[cfg(feature = "doh")]
            servers.extend(self.transports.https_addrs());
        }
        // Plain servers only with the user's say-so, after the encrypted ones.
        let plain: &[std::net::SocketAddr] = if enc.allow_plain_fallback {
            &self.cfg.servers
        } else {
            &[]
        };
        servers.extend(
            plain
                .iter()
                .filter(|a| !servers.contains(a))
                .collect::<Vec<_>>(),
        );
        if servers != self.upstreams.addrs() {
            let list: Vec<String> = servers.iter().map(|s| s.to_string()).collect();
            log::info!("encrypted upstream servers: {}", list.join(" "));
            if !plain.is_empty() {
                let list: Vec<String> = plain.iter().map(|s| s.to_string()).collect();
                log::warn!(
                    "allow_plain_fallback: when no encrypted server answers, queries go \
                     in plaintext to {}",
                    list.join(" ")
                );
            }
            self.upstreams.set(&servers);
        }
        self.upstreams.set_fallback(plain);
    }
}
