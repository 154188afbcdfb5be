//! The HTTP/1.1 side of DNS over HTTPS (RFC 8484), without I/O: the POST request that
//! carries a query, and the response read back with `httparse` (no HTTP parser of our
//! own). Only what a DoH answer may be is accepted: status 200, content type
//! `application/dns-message`, a body of known length (Content-Length, or chunked) no
//! longer than a DNS message can be.

/// The media type of DNS messages over HTTP (RFC 8484 6).
pub const DNS_MESSAGE: &str = "application/dns-message";
/// A response head longer than this is not a DoH server's.
pub const MAX_HEAD: usize = 8 * 1024;
/// A DNS message is at most 65,535 bytes.
pub const MAX_BODY: usize = u16::MAX as usize;
/// Response header lines looked at; more is refused.
const MAX_HEADERS: usize = 32;

/// The request for one query: `authority` is the URL's host (and port when not 443).
pub fn request(authority: &str, path: &str, query: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(160 + query.len());
    r.extend_from_slice(b"POST ");
    r.extend_from_slice(path.as_bytes());
    r.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    r.extend_from_slice(authority.as_bytes());
    r.extend_from_slice(b"\r\nContent-Type: application/dns-message\r\nAccept: application/dns-message\r\nContent-Length: ");
    r.extend_from_slice(query.len().to_string().as_bytes());
    r.extend_from_slice(b"\r\n\r\n");
    r.extend_from_slice(query);
    r
}

/// A whole response read from the start of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Bytes of the buffer it took.
    pub consumed: usize,
    pub body: Vec<u8>,
    /// The server closes the connection after it (`Connection: close`, HTTP/1.0).
    pub close: bool,
}

/// Reads one response from the start of `buf`: Ok(None) while it is incomplete, an
/// error (saying why, for the log) when it is not a DoH answer.
pub fn parse_response(buf: &[u8]) -> Result<Option<Response>, String> {
    let mut start = 0;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let head_len = match resp.parse(&buf[start..]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() - start > MAX_HEAD => {
                return Err(format!("HTTP response head longer than {MAX_HEAD} bytes"))
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(format!("not an HTTP/1.1 response ({e})")),
        };
        let code = resp.code.unwrap_or(0);
        // 1xx (but not 101) come before the real response: skip them.
        if (100..200).contains(&code) && code != 101 {
            start += head_len;
            continue;
        }
        if code != 200 {
            return Err(format!(
                "HTTP status {code} {}",
                resp.reason.unwrap_or("").trim()
            ));
        }
        let mut content_type = None;
        let mut length = None;
        let mut chunked = false;
        let mut close = resp.version == Some(0);
        for h in resp.headers.iter() {
            let v = std::str::from_utf8(h.value).unwrap_or("").trim();
            if h.name.eq_ignore_ascii_case("content-type") {
                content_type = Some(v);
            } else if h.name.eq_ignore_ascii_case("content-length") {
                let n: usize = v.parse().map_err(|_| format!("bad Content-Length '{v}'"))?;
                if length.is_some_and(|l| l != n) {
                    return Err("two different Content-Length headers".into());
                }
                length = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                if !v.eq_ignore_ascii_case("chunked") {
                    return Err(format!("transfer encoding '{v}' is not supported"));
                }
                chunked = true;
            } else if h.name.eq_ignore_ascii_case("connection") {
                close |= v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"));
            }
        }
        let media = content_type.map(|t| t.split(';').next().unwrap_or("").trim());
        if !media.is_some_and(|m| m.eq_ignore_ascii_case(DNS_MESSAGE)) {
            return Err(format!(
                "content type '{}', not {DNS_MESSAGE}",
                content_type.unwrap_or("")
            ));
        }
        let body_at = start + head_len;
        let (body, end) = if chunked {
            match dechunk(&buf[body_at..])? {
                Some((body, n)) => (body, body_at + n),
                None => return Ok(None),
            }
        } else {
            let Some(len) = length else {
                return Err("response without Content-Length".into());
            };
            if len > MAX_BODY {
                return Err(format!("{len}-byte body, larger than a DNS message"));
            }
            match buf.get(body_at..body_at + len) {
                Some(b) => (b.to_vec(), body_at + len),
                None => return Ok(None),
            }
        };
        if body.len() < 12 {
            return Err(format!("{}-byte body, not a DNS message", body.len()));
        }
        return Ok(Some(Response {
            consumed: end,
            body,
            close,
        }));
    }
}

/// A chunked body (RFC 9112 7.1): the body and the bytes it took, once complete.
fn dechunk(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let (n, size) = match httparse::parse_chunk_size(&buf[pos..]) {
            Ok(httparse::Status::Complete(c)) => c,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err("bad chunk size in the response".into()),
        };
        pos += n;
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size > MAX_BODY - body.len() {
            return Err("chunked body larger than a DNS message".into());
        }
        if size == 0 {
            // Trailer fields (usually none), then the empty line.
            let mut trailers = [httparse::EMPTY_HEADER; 4];
            return match httparse::parse_headers(&buf[pos..], &mut trailers) {
                Ok(httparse::Status::Complete((t, _))) => Ok(Some((body, pos + t))),
                Ok(httparse::Status::Partial) => Ok(None),
                Err(_) => Err("bad trailer in the chunked response".into()),
            };
        }
        let Some(data) = buf.get(pos..pos + size + 2) else {
            return Ok(None);
        };
        if &data[size..] != b"\r\n" {
            return Err("chunk not followed by CRLF".into());
        }
        body.extend_from_slice(&data[..size]);
        pos += size + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"\0\0\x81\x80\0\x01\0\0\0\0\0\0";

    fn ok(headers: &str, body: &[u8]) -> Vec<u8> {
        let mut r = format!("HTTP/1.1 200 OK\r\n{headers}\r\n").into_bytes();
        r.extend_from_slice(body);
        r
    }

    #[test]
    fn request_is_a_post_of_the_message() {
        let r = request("dns.example:8443", "/dns-query", MSG);
        let head = "POST /dns-query HTTP/1.1\r\nHost: dns.example:8443\r\n\
                    Content-Type: application/dns-message\r\nAccept: application/dns-message\r\n\
                    Content-Length: 12\r\n\r\n";
        assert_eq!(&r[..head.len()], head.as_bytes());
        assert_eq!(&r[head.len()..], MSG);
    }

    #[test]
    fn content_length_response_whole_and_in_pieces() {
        let r = ok(
            "Content-Type: application/dns-message\r\nContent-Length: 12\r\n",
            MSG,
        );
        for cut in 0..r.len() {
            assert_eq!(parse_response(&r[..cut]), Ok(None), "cut at {cut}");
        }
        let mut two = r.clone();
        two.extend_from_slice(b"HTTP/1.1 200");
        let got = parse_response(&two).unwrap().unwrap();
        assert_eq!(
            (got.consumed, &got.body[..], got.close),
            (r.len(), MSG, false)
        );
    }

    #[test]
    fn chunked_response_and_continue() {
        let mut r = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
        r.extend(ok(
            "content-type: Application/DNS-Message; charset=x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n",
            b"5\r\n\0\0\x81\x80\0\r\n7\r\n\x01\0\0\0\0\0\0\r\n0\r\n\r\n",
        ));
        for cut in 0..r.len() {
            assert_eq!(parse_response(&r[..cut]), Ok(None), "cut at {cut}");
        }
        let got = parse_response(&r).unwrap().unwrap();
        assert_eq!(
            (got.consumed, &got.body[..], got.close),
            (r.len(), MSG, true)
        );
    }

    #[test]
    fn what_is_not_a_doh_answer_says_why() {
        let cases: [(Vec<u8>, &str); 9] = [
            (
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
                "HTTP status 404 Not Found",
            ),
            (b"HTTP/1.1 503 Busy\r\n\r\n".to_vec(), "HTTP status 503"),
            (
                ok("Content-Type: text/html\r\nContent-Length: 12\r\n", MSG),
                "content type 'text/html'",
            ),
            (ok("Content-Length: 12\r\n", MSG), "content type ''"),
            (
                ok("Content-Type: application/dns-message\r\n", MSG),
                "without Content-Length",
            ),
            (
                ok(
                    "Content-Type: application/dns-message\r\nContent-Length: 70000\r\n",
                    b"",
                ),
                "larger than a DNS message",
            ),
            (
                ok(
                    "Content-Type: application/dns-message\r\nContent-Length: 3\r\n",
                    b"abc",
                ),
                "3-byte body",
            ),
            (
                b"SSH-2.0-OpenSSH\r\n\r\n".to_vec(),
                "not an HTTP/1.1 response",
            ),
            (
                ok(
                    "Content-Type: application/dns-message\r\nTransfer-Encoding: gzip\r\n",
                    b"",
                ),
                "not supported",
            ),
        ];
        for (r, why) in cases {
            let e = parse_response(&r).unwrap_err();
            assert!(e.contains(why), "{e} lacks {why}");
        }
        let long = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD));
        assert!(parse_response(long.as_bytes())
            .unwrap_err()
            .contains("head longer"));
        let big_chunk = ok(
            "Content-Type: application/dns-message\r\nTransfer-Encoding: chunked\r\n",
            b"10000\r\n",
        );
        assert!(parse_response(&big_chunk)
            .unwrap_err()
            .contains("larger than"));
    }
}
