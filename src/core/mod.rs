//! The resolver core: decisions without I/O. It takes answers, the time and random draws
//! as inputs and returns what to do; it opens no socket, reads no file, and neither reads
//! the clock nor the kernel's CSPRNG itself (`make lint` checks, scripts/check-layers.py).
//!
//! So far it holds link state with the down-detector, upstream selection and health,
//! retransmit timing, the serve-stale and prefetch rules, and the table of questions in
//! flight; the query pipeline and delivery that drive them are still in the event
//! loop's files (`query`, `forward`, `link`).

pub mod inflight;
pub mod link;
pub mod retry;
pub mod stale;
pub mod upstreams;

#[cfg(test)]
mod tests;
