//! The DoH HTTP/2 codec: whatever a server sends, cut anywhere and mixed with new
//! requests, cancels and drained output, gives answers, resets or an error, never a
//! panic; an event names a stream that was opened, at most once, and the codec holds no
//! more than its stream limit.
//!
//! Input: a script of one-byte operations (op % 4): 0 opens a request when one may be
//! opened; 1 cancels the stream its next byte picks; 2 feeds the server bytes that
//! follow, as many as its next byte + 1; 3 drops what the codec wrote (TLS took it).
#![no_main]

use std::collections::HashSet;

use dproxy::transport::h2::{H2Event, H2, MAX_STREAMS};
use dproxy::transport::https_http::MAX_BODY;
use libfuzzer_sys::fuzz_target;

/// A query for example.test A, as the codec would carry it.
const MSG: &[u8] =
    b"\x00\x00\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x04test\x00\x00\x01\x00\x01";

fuzz_target!(|data: &[u8]| {
    let mut h = H2::new();
    let mut opened: Vec<u32> = Vec::new();
    let mut ended: HashSet<u32> = HashSet::new();
    // After an error the connection is closed: nothing more goes through it.
    let mut failed = false;
    let mut i = 0;
    while i < data.len() {
        let op = data[i];
        i += 1;
        match op % 4 {
            0 => {
                if !failed && h.can_open(MSG.len()) {
                    let id = h.open("dns.test", "/dns-query", MSG);
                    assert!(!opened.contains(&id), "stream {id} opened twice");
                    opened.push(id);
                }
            }
            1 => {
                if let Some(&b) = data.get(i) {
                    i += 1;
                    if !opened.is_empty() {
                        h.cancel(opened[b as usize % opened.len()]);
                    }
                }
            }
            2 => {
                let n = data.get(i).map_or(0, |&b| b as usize + 1);
                i += 1;
                let end = (i + n).min(data.len());
                if !failed && i < end && h.receive(&data[i..end]).is_err() {
                    failed = true;
                }
                i = end;
            }
            _ => h.out.clear(),
        }
        while let Some(ev) = h.next_event() {
            let id = match ev {
                H2Event::Answer(id, body) => {
                    assert!(body.len() <= MAX_BODY);
                    id
                }
                H2Event::Reset(id) | H2Event::Bad(id, _) => id,
            };
            assert!(
                opened.contains(&id),
                "an event for stream {id}, never opened"
            );
            assert!(ended.insert(id), "a second event for stream {id}");
        }
        assert!(h.active() <= MAX_STREAMS);
    }
});
