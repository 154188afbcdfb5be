//! The TCP framer: any byte stream splits into frames exactly as its length prefixes say,
//! and an incomplete frame is never returned.
#![no_main]

use dproxy::tcp::split_frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let mut frames = 0usize;
    loop {
        match split_frame(rest) {
            Some((msg, used)) => {
                let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                assert_eq!(msg.len(), len);
                assert_eq!(used, 2 + len);
                assert!(used <= rest.len());
                assert_eq!(msg, &rest[2..used]);
                rest = &rest[used..];
                frames += 1;
            }
            None => {
                // Incomplete: no prefix, or fewer bytes than it announces.
                if rest.len() >= 2 {
                    let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                    assert!(rest.len() < 2 + len);
                }
                break;
            }
        }
    }
    // Each frame takes at least its two length bytes.
    assert!(frames * 2 <= data.len());
    // Feeding the stream one byte at a time yields the same frames (the read loop's view).
    if data.len() <= 512 {
        let mut buf: Vec<u8> = Vec::new();
        let mut n = 0usize;
        for &b in data {
            buf.push(b);
            while let Some((_, used)) = split_frame(&buf) {
                buf.drain(..used);
                n += 1;
            }
        }
        assert_eq!(n, frames);
    }
});
