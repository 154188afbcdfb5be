//! The integration tests of the library: property, differential, DNSSEC and DoT tests,
//! one module each, in one test binary. Each file used to be a crate of its own, which
//! compiled proptest's, hickory's and rustls's generic code and linked the library and
//! every dev-dependency once per file; one crate does that once. A test's name is its
//! module and function: `cargo test --test it prop_wire::` runs one former file.
//!
//! The tests run in parallel threads of one process: nothing here may set environment
//! variables, change the current directory or install a process-wide default (a test
//! binary of its own, `tests/localnames_mem.rs`, counts the heap with a global allocator).

// The scratch directory guard of the unit tests (removed on drop, also when a test
// panics): the same file, included once so that all modules share its counter. The
// tests here use a part of it.
#[allow(dead_code)]
#[path = "../../src/test_dir.rs"]
mod test_dir;

mod common;
#[cfg(feature = "dnssec")]
mod dnssec_support;
#[cfg(feature = "tls")]
mod tls_support;
// Starting nsd, unbound and openssl on a port free for UDP and TCP (the DNSSEC and DoT tests).
#[cfg(any(feature = "dnssec", feature = "tls"))]
mod server_start;

mod config_encrypted;
mod differential;
mod dnssec_chain;
mod dnssec_core;
mod dnssec_denial;
mod dnssec_options;
mod dot_ack;
mod dot_core;
mod dot_servers;
mod prop_blocklist;
mod prop_cache;
mod prop_config;
mod prop_localnames;
mod prop_persist;
mod prop_wire;
