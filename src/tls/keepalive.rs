//! edns-tcp-keepalive (RFC 7828): the server's idle timeout, read from its answers.
//!
//! Queries carry the option empty (a client sends no value); a server that supports it
//! answers with the time, in units of 100 ms, it keeps an idle connection open. Closing
//! before the server does spares a close mid-query; the value is bounded so that a server
//! can neither keep a router's connection open longer than dproxy would, nor make it
//! reconnect after every answer.

use std::time::Duration;

/// The option code of edns-tcp-keepalive.
pub const OPTION_CODE: u16 = 11;

/// The shortest idle timeout a server can set: below it, a burst of queries would pay a
/// handshake each (a server that says 0 wants the connection closed once idle).
pub const FLOOR: Duration = Duration::from_secs(1);

/// The timeout a server announced in `msg` (an answer), if it did.
pub fn announced(msg: &[u8]) -> Option<Duration> {
    // Only the OPT is needed: no walk that keeps the records (this runs on every answer).
    let opt = crate::wire::message::find_opt(msg).ok()??;
    // Root name, type, class, TTL, RDLENGTH: the options follow.
    let rdata = msg.get(opt.start + 11..opt.end)?;
    let mut pos = 0;
    while let Some(h) = rdata.get(pos..pos + 4) {
        let code = u16::from_be_bytes([h[0], h[1]]);
        let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        let data = rdata.get(pos + 4..pos + 4 + len)?;
        if code == OPTION_CODE && len == 2 {
            let units = u64::from(u16::from_be_bytes([data[0], data[1]]));
            return Some(Duration::from_millis(units * 100));
        }
        pos += 4 + len;
    }
    None
}

/// The idle timeout to use after the server announced `server`, with `cap` ours.
pub fn bounded(server: Duration, cap: Duration) -> Duration {
    server.clamp(FLOOR.min(cap), cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer to a.test with an OPT carrying `options` (code, data).
    fn answer(options: &[(u16, &[u8])]) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 1];
        m.extend_from_slice(&[1, b'a', 4, b't', b'e', b's', b't', 0, 0, 1, 0, 1]);
        let mut rdata = Vec::new();
        for (code, data) in options {
            rdata.extend_from_slice(&code.to_be_bytes());
            rdata.extend_from_slice(&(data.len() as u16).to_be_bytes());
            rdata.extend_from_slice(data);
        }
        m.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0]);
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(&rdata);
        m
    }

    #[test]
    fn timeout_is_read_among_other_options() {
        let a = answer(&[(12, &[0, 0, 0]), (OPTION_CODE, &[0, 25])]);
        assert_eq!(announced(&a), Some(Duration::from_millis(2500)));
        assert_eq!(announced(&answer(&[(12, &[0; 8])])), None);
        // Empty (as a client sends it) or of the wrong length: no value.
        assert_eq!(announced(&answer(&[(OPTION_CODE, &[])])), None);
        assert_eq!(announced(&answer(&[(OPTION_CODE, &[0, 1, 2])])), None);
        // An option running past the record, or no OPT at all.
        let mut cut = answer(&[(OPTION_CODE, &[0, 25])]);
        let n = cut.len();
        cut[n - 5] = 9;
        assert_eq!(announced(&cut), None);
        assert_eq!(announced(&answer(&[])[..29]), None);
    }

    #[test]
    fn timeout_is_bounded_by_the_floor_and_our_own() {
        let cap = Duration::from_secs(10);
        assert_eq!(bounded(Duration::ZERO, cap), FLOOR);
        assert_eq!(bounded(Duration::from_secs(3), cap), Duration::from_secs(3));
        assert_eq!(bounded(Duration::from_secs(6553), cap), cap);
        assert_eq!(
            bounded(Duration::ZERO, Duration::from_millis(500)),
            Duration::from_millis(500)
        );
    }
}
