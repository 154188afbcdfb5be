//! dproxy: a DNS caching proxy for routers and gateways.
//!
//! The data path: socket (`server`) → parse (`wire`) → cache / local names / upstream
//! (`cache`, `forward`) → reply (`answer`).

pub mod acl;
// The heap of the static router builds (host builds keep the system one).
mod allocator;
pub mod answer;
pub mod batch;
pub mod blocklist;
pub mod cache;
pub mod cli;
#[cfg(any(feature = "tls", feature = "dnssec"))]
pub mod clock_trust;
pub mod config;
pub mod control;
pub mod core;
#[cfg(feature = "dnssec")]
pub mod dnssec;
#[cfg(feature = "doh")]
mod doh_upstreams;
#[cfg(feature = "tls")]
mod dot_upstreams;
pub mod dump;
pub mod file_access;
pub mod forward;
pub mod link;
pub mod local;
pub mod localnames;
pub mod logger;
pub mod options_help;
pub mod persist;
pub mod privs;
pub mod query;
pub mod rand;
pub mod sanitize;
pub mod server;
pub mod server_ctl;
pub mod signals;
pub mod slab;
pub mod sockets;
pub mod stats;
pub mod stats_json;
pub mod tcp;
pub mod tcp_client;
#[cfg(test)]
mod test_dir;
#[cfg(feature = "tls")]
pub mod tls;
pub mod transport;
pub mod uci_guard;
pub mod wire;
