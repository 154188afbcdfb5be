//! Retransmission and failover timing of a question in flight (the core: the time of
//! sending is an input).

use std::time::{Duration, Instant};

/// Give up on a question after this long.
pub const QUERY_DEADLINE: Duration = Duration::from_millis(4000);
/// Attempts per question, across all upstreams.
pub const MAX_ATTEMPTS: usize = 8;
/// Attempts kept listening for a late answer.
pub const MAX_OPEN_ATTEMPTS: usize = 3;
/// The longest wait for one attempt.
const MAX_WAIT: Duration = Duration::from_millis(2000);

/// When the attempt sent at `now`, the `attempts`-th of its question, times out:
/// exponential backoff over the server's retransmission timeout, at most [`MAX_WAIT`],
/// and never past the question's deadline.
pub fn next_timeout(now: Instant, rto: Duration, attempts: usize, deadline: Instant) -> Instant {
    let n = attempts.clamp(1, 4) as u32 - 1;
    let wait = (rto * (1 << n)).min(MAX_WAIT);
    (now + wait).min(deadline)
}

/// The least an attempt over an encrypted stream (DoT, DoH) waits.
#[cfg(feature = "tls")]
const ENCRYPTED_MIN_WAIT: Duration = Duration::from_millis(1000);

/// When the attempt sent at `now` over an encrypted stream times out. A query written
/// on a live TLS connection is not lost the way a datagram is: what holds it is queueing
/// behind the connection's other queries, or a new connection's TCP and TLS handshakes
/// before it (three round trips with the query). Resending it after a datagram's
/// timeout only doubles the server's work, so it waits four retransmission timeouts,
/// at least [`ENCRYPTED_MIN_WAIT`], at most [`MAX_WAIT`] and never past the deadline;
/// by then the connection counts as stalled, and the transport sends the next attempt
/// on another connection, never on the one that still carries the question.
#[cfg(feature = "tls")]
pub fn next_encrypted_timeout(now: Instant, rto: Duration, deadline: Instant) -> Instant {
    let wait = (rto * 4).clamp(ENCRYPTED_MIN_WAIT, MAX_WAIT);
    (now + wait).min(deadline)
}

/// What an upstream reply to an attempt asks for, before it is prepared for clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnReply {
    /// FORMERR to a query with EDNS (RFC 6891 7): the same server again, without EDNS.
    RetryWithoutEdns,
    /// Truncated over UDP: the same server again, over TCP.
    RetryOverTcp,
    /// An answer to prepare for the clients.
    Use,
}

/// Classifies a reply by its `rcode` and TC bit, given whether the query carried an OPT
/// record and went over UDP.
#[inline]
pub fn on_reply(rcode: u8, tc: bool, sent_edns: bool, over_udp: bool) -> OnReply {
    if rcode == crate::wire::rcode::FORMERR && sent_edns {
        OnReply::RetryWithoutEdns
    } else if tc && over_udp {
        OnReply::RetryOverTcp
    } else {
        OnReply::Use
    }
}
