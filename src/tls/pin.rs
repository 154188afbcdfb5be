//! SPKI pins (RFC 7469 style, as stubby's `tls_pubkey_pinset`): the SHA-256 of a
//! certificate's DER-encoded SubjectPublicKeyInfo, written as `sha256/<base64>`.
//!
//! The certificate is walked with a few lines of DER reading rather than a full X.509
//! parser: only the position of one field is needed, and webpki has already checked
//! the chain by the time a pin is compared.

use std::fmt;

/// One pin: the SHA-256 digest of a SubjectPublicKeyInfo.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Pin(pub [u8; 32]);

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256/{}", base64_encode(&self.0))
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Pin {
    /// Parses `sha256/<base64>` (the prefix may be left out); the error says what is wrong.
    pub fn parse(s: &str) -> Result<Pin, String> {
        let b64 = match s.split_once('/') {
            Some((alg, rest)) if alg.eq_ignore_ascii_case("sha256") => rest,
            Some((alg, _)) => {
                return Err(format!(
                    "pin '{s}': digest '{alg}' is not supported (only sha256)"
                ))
            }
            None => s,
        };
        let raw = base64_decode(b64).ok_or_else(|| format!("pin '{s}': not valid base64"))?;
        let digest: [u8; 32] = raw
            .try_into()
            .map_err(|v: Vec<u8>| format!("pin '{s}': {} bytes, a sha256 pin has 32", v.len()))?;
        Ok(Pin(digest))
    }

    /// The pin of a DER certificate, or None if its SubjectPublicKeyInfo cannot be found.
    pub fn of_certificate(cert_der: &[u8]) -> Option<Pin> {
        let spki = spki_of(cert_der)?;
        let d = ring::digest::digest(&ring::digest::SHA256, spki);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Some(Pin(out))
    }
}

/// One DER element read from the front of a buffer.
struct Element<'a> {
    tag: u8,
    /// Tag, length and contents.
    whole: &'a [u8],
    contents: &'a [u8],
    /// What follows the element.
    rest: &'a [u8],
}

fn der_element(der: &[u8]) -> Option<Element<'_>> {
    let tag = *der.first()?;
    let first = *der.get(1)?;
    let (len, hdr) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *der.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    let whole = der.get(..end)?;
    Some(Element {
        tag,
        whole,
        contents: &whole[hdr..],
        rest: &der[end..],
    })
}

/// The SubjectPublicKeyInfo element of an X.509 certificate (RFC 5280 4.1).
fn spki_of(cert: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    let cert = der_element(cert)?;
    if cert.tag != SEQUENCE {
        return None;
    }
    let tbs = der_element(cert.contents)?;
    if tbs.tag != SEQUENCE {
        return None;
    }
    let mut fields = tbs.contents;
    // [0] version (optional), serialNumber, signature, issuer, validity, subject.
    if fields.first() == Some(&0xa0) {
        fields = der_element(fields)?.rest;
    }
    for _ in 0..5 {
        fields = der_element(fields)?.rest;
    }
    let spki = der_element(fields)?;
    (spki.tag == SEQUENCE).then_some(spki.whole)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as openssl prints pins.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for c in s.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero and fewer than a whole character's worth.
    if bits >= 6 || acc != 0 {
        return None;
    }
    Some(out)
}

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(
                base64_decode(&base64_encode(&data)).as_deref(),
                Some(&data[..])
            );
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_decode("Zm9vYg==").as_deref(), Some(&b"foob"[..]));
        assert_eq!(base64_decode("Zm9v!"), None);
        // A stray trailing character (6 leftover bits) is not valid base64.
        assert_eq!(base64_decode("Zm9vY"), None);
    }

    #[test]
    fn pin_parse_checks_digest_and_length() {
        let good = "sha256/".to_string() + &base64_encode(&[7u8; 32]);
        assert_eq!(Pin::parse(&good), Ok(Pin([7u8; 32])));
        assert_eq!(Pin::parse(&base64_encode(&[7u8; 32])), Ok(Pin([7u8; 32])));
        let short = Pin::parse(&("sha256/".to_string() + &base64_encode(&[7u8; 20]))).unwrap_err();
        assert!(short.contains("20 bytes"), "{short}");
        assert!(Pin::parse("sha1/AAAA").unwrap_err().contains("only sha256"));
        assert!(Pin::parse("sha256/@@@@").unwrap_err().contains("base64"));
    }

    #[test]
    fn garbage_certificates_have_no_pin() {
        assert_eq!(Pin::of_certificate(&[]), None);
        assert_eq!(
            Pin::of_certificate(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            None
        );
        assert_eq!(Pin::of_certificate(&[0x30, 0x03, 0x02, 0x01, 0x00]), None);
        assert_eq!(Pin::of_certificate(&[0x04, 0x00]), None);
    }
}
