//! The resolver core: decisions without I/O. It takes answers, the time and random draws
//! as inputs and returns what to do; it opens no socket, reads no file, and neither reads
//! the clock nor the kernel's CSPRNG itself (`make lint` checks, scripts/check-layers.py).
//!
//! So far it holds link state with the down-detector, upstream selection and health,
//! retransmit timing, the serve-stale and prefetch rules, the table of questions in
//! flight with their timers (offline policy, hold, the stale client-response timer), and
//! the delivery policy (what an answer that ends a question becomes: cached with which
//! lifetime and flags, refused as rebinding, or given up for stale data); the query
//! pipeline and the execution of those decisions are still in the event loop's files
//! (`query`, `forward`, `link`).

pub mod delivery;
pub mod inflight;
pub mod link;
pub mod retry;
pub mod stale;
pub mod timers;
pub mod upstreams;
#[cfg(feature = "dnssec")]
pub mod validation;

#[cfg(test)]
mod tests;
