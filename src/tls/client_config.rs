//! The rustls client configuration of a DoT upstream: ring as the only crypto provider,
//! TLS 1.3 (1.2 only in builds with the `tls12` feature), the CA roots from a PEM file,
//! and an optional SPKI pin set checked after the usual chain and name checks.
//!
//! Until the clock is known to be right, the validity dates are checked as
//! `crate::clock_trust` says: the start of a certificate's validity is not held against
//! it, its end is compared with the later of the system time and the build time.
//!
//! Pins are an addition, not a replacement: a pinned server must still present a chain
//! to a trusted root for its name (RFC 8310 strict profile, as stubby with
//! `tls_authentication: GETDNS_AUTHENTICATION_REQUIRED`).

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore,
    SignatureScheme,
};

use super::pin::Pin;
use crate::clock_trust::{CheckTime, ClockTrust, BUILD_TIME};

/// Where the system's CA bundle lives on OpenWrt (package ca-bundle) and Debian.
pub const DEFAULT_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Loads every certificate of a PEM file as a trust anchor. A missing or unreadable
/// file, a broken PEM block, or a file without any usable certificate is an error that
/// names the file: a DoT client without roots could authenticate nothing.
pub fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let data = std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
    let mut roots = RootCertStore::empty();
    let mut rejected = 0usize;
    for cert in CertificateDer::pem_slice_iter(&data) {
        let cert = cert.map_err(|e| format!("ca_file {}: bad PEM: {e}", path.display()))?;
        // A bundle may carry a certificate webpki cannot use as an anchor; the
        // others stay usable, as with every TLS client that reads the bundle.
        if roots.add(cert).is_err() {
            rejected += 1;
        }
    }
    if roots.is_empty() {
        return Err(format!(
            "ca_file {}: no usable CA certificate in it ({rejected} rejected)",
            path.display()
        ));
    }
    Ok(roots)
}

/// Why a server's certificate was refused although its chain and name were fine.
#[derive(Debug)]
pub struct PinMismatch;

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no certificate of the chain matches a configured SPKI pin")
    }
}

impl std::error::Error for PinMismatch {}

/// webpki's verifier at the time the clock policy says, followed by the pin check.
#[derive(Debug)]
struct PinnedVerifier {
    inner: Arc<WebPkiServerVerifier>,
    pins: Vec<Pin>,
    clock: ClockTrust,
}

impl PinnedVerifier {
    /// The chain checked at `secs`, and again at the start of a certificate's validity
    /// when that is later: only the ends of the validity windows count. Each retry is
    /// at a strictly later time and a chain has few certificates, so a few suffice.
    fn verify_end_only(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        mut secs: u64,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut tries = 0;
        loop {
            let at = UnixTime::since_unix_epoch(Duration::from_secs(secs));
            let r = self.inner.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                at,
            );
            tries += 1;
            match r {
                Err(rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext {
                    not_before,
                    ..
                })) if not_before.as_secs() > secs && tries < 5 => secs = not_before.as_secs(),
                r => return r,
            }
        }
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = match self.clock.verify_time(now.as_secs(), BUILD_TIME) {
            CheckTime::Full(_) => self.inner.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            )?,
            CheckTime::EndOnly(secs) => {
                self.verify_end_only(end_entity, intermediates, server_name, ocsp_response, secs)?
            }
        };
        if self.pins.is_empty() {
            return Ok(verified);
        }
        // As stubby: a pin may name the leaf or any certificate the server sent.
        let matched = std::iter::once(end_entity)
            .chain(intermediates)
            .filter_map(|c| Pin::of_certificate(c.as_ref()))
            .any(|p| self.pins.contains(&p));
        if matched {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch)),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A client configuration for DoT upstreams trusting `roots`, requiring one of `pins`
/// when any are given. One configuration is meant to be shared by every connection to
/// an upstream: it holds the session cache that lets a reconnect resume (one round trip
/// instead of a full handshake). `clock` decides how validity dates are checked; a
/// change of it needs a new configuration.
pub fn client_config(
    roots: Arc<RootCertStore>,
    pins: Vec<Pin>,
    clock: ClockTrust,
) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
        .build()
        .map_err(|e| format!("TLS verifier: {e}"))?;
    let verifier = Arc::new(PinnedVerifier { inner, pins, clock });
    let config = ClientConfig::builder_with_provider(Arc::clone(&provider) as Arc<CryptoProvider>)
        // TLS 1.3, plus 1.2 when rustls is built with it (our "tls12" feature).
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| format!("TLS configuration: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // No ALPN: RFC 7858 does not ask for it, and a server that knows other protocols
    // only may refuse a client offering "dot" (RFC 7301 3.2).
    Ok(Arc::new(config))
}
