//! The upstream answer path: `scan_message` on arbitrary bytes; for every answer it
//! accepts, `prepare` it for the cache and `write_reply` it to a client who asked the
//! same question (in another spelling, with or without EDNS, over UDP or TCP), then
//! check the reply re-scans, keeps ID and spelling, never raises a TTL and never
//! exceeds the client's UDP limit. The first 8 bytes are the knobs, the rest the answer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        let _ = dproxy::wire::scan_message(data);
        return;
    }
    let (ctl, msg) = data.split_at(8);
    // Nothing longer than a TCP frame ever reaches the scanner.
    let msg = &msg[..msg.len().min(65535)];
    let ctl: &[u8; 8] = ctl.try_into().unwrap();
    dproxy_fuzz::answer_path(ctl, msg);
});
