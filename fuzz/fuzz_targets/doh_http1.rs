//! The DoH HTTP/1.1 response reader: any bytes give an answer, "not yet" or an error,
//! never a panic. An answer takes no more bytes than there are and no more body than a
//! DNS message, and reading exactly the bytes it took gives the same answer (a response
//! ends where the reader says, whatever follows it on the connection).
#![no_main]

use dproxy::transport::https_http::{parse_response, MAX_BODY};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(r)) = parse_response(data) {
        assert!(r.consumed <= data.len());
        assert!(r.body.len() <= MAX_BODY);
        assert_eq!(parse_response(&data[..r.consumed]), Ok(Some(r)));
    }
});
