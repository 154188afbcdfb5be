//! DNS over TLS (RFC 7858), full build only: the parts that do no I/O.
//!
//! `conn` is one connection as a state machine (bytes in, bytes out, time as an input),
//! `client_config` builds the rustls configuration (CA file, TLS versions, SPKI pins),
//! `pin` reads and computes pins, `keepalive` reads a server's edns-tcp-keepalive, `id_map`
//! is the hash map for keys dproxy chose itself. The event loop that owns sockets drives these.

pub mod client_config;
pub mod conn;
pub mod id_map;
pub mod keepalive;
pub mod pin;
pub mod spec;

pub use client_config::{client_config, load_roots, DEFAULT_CA_FILE};
pub use conn::{Answer, DotConn, DotError, DotLimits, DotState, SendError};
pub use pin::Pin;
