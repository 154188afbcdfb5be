//! Domain names: reading with compression (RFC 1035 4.1.4), comparing, and converting.
//!
//! Compression pointers must point strictly backwards, which rules out loops;
//! labels over 63 bytes, reserved label types and names over 255 bytes are errors.

use super::{Error, Result, MAX_NAME_LEN};

/// An uncompressed name in wire form (length-prefixed labels ending with the root label).
#[derive(Clone)]
pub struct NameBuf {
    buf: [u8; MAX_NAME_LEN],
    len: u8,
}

impl Default for NameBuf {
    fn default() -> Self {
        NameBuf::root()
    }
}

impl core::fmt::Debug for NameBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.to_dotted())
    }
}

impl PartialEq for NameBuf {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for NameBuf {}

impl NameBuf {
    /// The root name ".".
    pub fn root() -> Self {
        NameBuf {
            buf: [0; MAX_NAME_LEN],
            len: 1,
        }
    }

    /// The wire form, root label included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Builds a name from its wire form (as produced by [`read_name`]).
    pub fn from_wire(wire: &[u8]) -> Result<Self> {
        let mut n = NameBuf::root();
        n.len = 0;
        let mut pos = 0;
        loop {
            let l = *wire.get(pos).ok_or(Error::Truncated)? as usize;
            if l > 63 {
                return Err(Error::BadLabel);
            }
            let label = wire.get(pos..pos + 1 + l).ok_or(Error::Truncated)?;
            n.push_raw(label)?;
            pos += 1 + l;
            if l == 0 {
                return Ok(n);
            }
        }
    }

    /// Parses a dotted presentation name ("nas.lan", "nas.lan.", "." ). No escapes.
    pub fn from_dotted(s: &str) -> Result<Self> {
        let mut n = NameBuf::root();
        n.len = 0;
        let s = s.strip_suffix('.').unwrap_or(s);
        if !s.is_empty() {
            for label in s.split('.') {
                let l = label.len();
                if l == 0 || l > 63 {
                    return Err(Error::BadLabel);
                }
                n.push_raw(&[l as u8])?;
                n.push_raw(label.as_bytes())?;
            }
        }
        n.push_raw(&[0])?;
        Ok(n)
    }

    fn push_raw(&mut self, bytes: &[u8]) -> Result<()> {
        let start = self.len as usize;
        let end = start + bytes.len();
        if end > MAX_NAME_LEN {
            return Err(Error::NameTooLong);
        }
        self.buf[start..end].copy_from_slice(bytes);
        self.len = end as u8;
        Ok(())
    }

    /// ASCII-lowercases the name in place.
    pub fn make_lowercase(&mut self) {
        let len = self.len as usize;
        self.buf[..len].make_ascii_lowercase();
    }

    /// Flips the case of letters at random (DNS 0x20), taking one bit per letter from `bit`.
    pub fn randomize_case(&mut self, mut bit: impl FnMut() -> bool) {
        let len = self.len as usize;
        let mut pos = 0;
        while pos < len {
            let l = self.buf[pos] as usize;
            if l == 0 {
                break;
            }
            for c in &mut self.buf[pos + 1..(pos + 1 + l).min(len)] {
                if c.is_ascii_alphabetic() {
                    *c = if bit() {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    };
                }
            }
            pos += 1 + l;
        }
    }

    /// Case-insensitive comparison (DNS names compare ASCII case-insensitively).
    pub fn eq_ignore_case(&self, other: &NameBuf) -> bool {
        eq_ignore_case(self.as_bytes(), other.as_bytes())
    }

    /// Number of labels, root excluded.
    pub fn label_count(&self) -> usize {
        self.labels().count()
    }

    /// Iterates over the labels (without length bytes), root excluded.
    pub fn labels(&self) -> Labels<'_> {
        Labels {
            wire: self.as_bytes(),
            pos: 0,
        }
    }

    /// True if `self` equals `zone` or lies below it (case-insensitively).
    pub fn is_subdomain_of(&self, zone: &NameBuf) -> bool {
        let (me, z) = (self.as_bytes(), zone.as_bytes());
        if z.len() > me.len() {
            return false;
        }
        // The suffix must start on a label boundary of self.
        let mut pos = 0;
        loop {
            if me.len() - pos == z.len() {
                return eq_ignore_case(&me[pos..], z);
            }
            let l = me[pos] as usize;
            if l == 0 {
                return false;
            }
            pos += 1 + l;
            if pos > me.len() {
                return false;
            }
        }
    }

    /// The name in presentation form without the final dot ("." for the root).
    /// Bytes outside printable ASCII, dots and backslashes inside labels are escaped as \DDD.
    pub fn to_dotted(&self) -> String {
        let mut out = String::with_capacity(self.len());
        for label in self.labels() {
            if !out.is_empty() {
                out.push('.');
            }
            for &c in label {
                if c.is_ascii_graphic() && c != b'.' && c != b'\\' {
                    out.push(c as char);
                } else {
                    out.push_str(&format!("\\{:03}", c));
                }
            }
        }
        if out.is_empty() {
            out.push('.');
        }
        out
    }
}

/// ASCII case-insensitive equality of two wire names. Most names come back in the case
/// they were asked in (always over TLS, and from most servers): one exact comparison
/// (`memcmp`) settles the usual call, and only bytes that differ are folded. Not
/// inlined: one copy serves every caller (the router binary is size-bound).
#[inline(never)]
fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    a == b
        || (a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x == y || x.eq_ignore_ascii_case(y)))
}

/// Iterator over the labels of a [`NameBuf`].
pub struct Labels<'a> {
    wire: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let l = *self.wire.get(self.pos)? as usize;
        if l == 0 {
            return None;
        }
        let label = self.wire.get(self.pos + 1..self.pos + 1 + l)?;
        self.pos += 1 + l;
        Some(label)
    }
}

/// Hard cap on pointers followed in one name; strictly backward pointers already bound it.
const MAX_POINTERS: usize = 64;

/// Reads the name at `pos` in `msg`, validating it fully.
///
/// Returns the offset just past the name's bytes at `pos` (after the first pointer, if any).
/// If `out` is given, the uncompressed wire form is written into it.
pub fn read_name(msg: &[u8], pos: usize, mut out: Option<&mut NameBuf>) -> Result<usize> {
    // Fast path, the common case in queries: no compression, so the name is one span.
    let mut cur = pos;
    loop {
        match msg.get(cur) {
            Some(0) => {
                let end = cur + 1;
                if end - pos > MAX_NAME_LEN {
                    return Err(Error::NameTooLong);
                }
                if let Some(o) = out.as_deref_mut() {
                    o.buf[..end - pos].copy_from_slice(&msg[pos..end]);
                    o.len = (end - pos) as u8;
                }
                return Ok(end);
            }
            Some(&l) if l & 0xc0 == 0 && cur - pos < MAX_NAME_LEN => cur += 1 + l as usize,
            _ => break,
        }
    }
    read_name_slow(msg, pos, out)
}

/// The general case: compression pointers, and every error.
fn read_name_slow(msg: &[u8], pos: usize, mut out: Option<&mut NameBuf>) -> Result<usize> {
    if let Some(o) = out.as_deref_mut() {
        o.len = 0;
    }
    let mut cur = pos;
    let mut end: Option<usize> = None;
    let mut total = 0usize;
    let mut jumps = 0;
    loop {
        let l = *msg.get(cur).ok_or(Error::Truncated)?;
        match l & 0xc0 {
            0x00 => {
                let l = l as usize;
                total += 1 + l;
                if total > MAX_NAME_LEN {
                    return Err(Error::NameTooLong);
                }
                let label = msg.get(cur..cur + 1 + l).ok_or(Error::Truncated)?;
                if let Some(o) = out.as_deref_mut() {
                    o.push_raw(label)?;
                }
                cur += 1 + l;
                if l == 0 {
                    return Ok(end.unwrap_or(cur));
                }
            }
            0xc0 => {
                let lo = *msg.get(cur + 1).ok_or(Error::Truncated)?;
                let target = (((l & 0x3f) as usize) << 8) | lo as usize;
                // Strictly backwards: no loops, no forward references.
                if target >= cur {
                    return Err(Error::BadPointer);
                }
                jumps += 1;
                if jumps > MAX_POINTERS {
                    return Err(Error::BadPointer);
                }
                if end.is_none() {
                    end = Some(cur + 2);
                }
                cur = target;
            }
            _ => return Err(Error::BadLabel),
        }
    }
}

/// Where the uncompressed name at `start` ends: None for a compression pointer, a bad
/// label, a name longer than 255 bytes or one that runs past `b`. Reads nothing but the
/// length bytes (a cache key's name, the question of a rebuilt answer).
pub fn plain_name_end(b: &[u8], start: usize) -> Option<usize> {
    let mut p = start;
    loop {
        let l = *b.get(p)? as usize;
        if l == 0 {
            let end = p + 1;
            return (end - start <= MAX_NAME_LEN).then_some(end);
        }
        if l > 63 {
            return None;
        }
        p += 1 + l;
    }
}

/// Skips the name at `pos`, validating it; returns the offset just past it.
pub fn skip_name(msg: &[u8], pos: usize) -> Result<usize> {
    read_name(msg, pos, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(s: &str) -> Vec<u8> {
        NameBuf::from_dotted(s).unwrap().as_bytes().to_vec()
    }

    /// A name of 255 bytes, the longest: three labels of 63 bytes and one of 61.
    fn longest_name() -> Vec<u8> {
        let mut n = Vec::new();
        for len in [63, 63, 63, 61] {
            n.push(len);
            n.extend(std::iter::repeat_n(b'a', len as usize));
        }
        n.push(0);
        assert_eq!(n.len(), 255);
        n
    }

    #[test]
    fn plain_name_end_takes_only_uncompressed_names() {
        let w = wire("www.example.test");
        let mut m = vec![7u8];
        m.extend_from_slice(&w);
        m.extend_from_slice(&[0, 1]);
        assert_eq!(plain_name_end(&m, 1), Some(1 + w.len()));
        assert_eq!(plain_name_end(b"\x00", 0), Some(1));
        // A pointer, a reserved label type, a name cut short.
        assert_eq!(plain_name_end(b"\x03www\xc0\x00", 0), None);
        assert_eq!(plain_name_end(b"\x03www\x40", 0), None);
        assert_eq!(plain_name_end(&w[..w.len() - 1], 0), None);
        // 255 bytes is the longest name; one more label byte is too long.
        let mut long = longest_name();
        assert_eq!(plain_name_end(&long, 0), Some(255));
        long[192] = 62;
        long.insert(193, b'a');
        assert_eq!(plain_name_end(&long, 0), None);
    }

    #[test]
    fn plain_name_round_trips() {
        let w = wire("www.Example.test");
        assert_eq!(w, b"\x03www\x07Example\x04test\x00");
        let mut n = NameBuf::root();
        assert_eq!(read_name(&w, 0, Some(&mut n)), Ok(w.len()));
        assert_eq!(n.to_dotted(), "www.Example.test");
        assert_eq!(NameBuf::from_dotted(".").unwrap().as_bytes(), b"\x00");
        assert_eq!(NameBuf::root().to_dotted(), ".");
    }

    #[test]
    fn compressed_name_is_followed() {
        let mut msg = vec![0u8; 12];
        msg.extend_from_slice(b"\x07example\x04test\x00");
        let second = msg.len();
        msg.extend_from_slice(b"\x03www\xc0\x0c");
        let mut n = NameBuf::root();
        assert_eq!(read_name(&msg, second, Some(&mut n)), Ok(msg.len()));
        assert_eq!(n.to_dotted(), "www.example.test");
    }

    #[test]
    fn pointer_loops_and_forward_pointers_are_rejected() {
        // Points at itself.
        let msg = b"\xc0\x00";
        assert_eq!(read_name(msg, 0, None), Err(Error::BadPointer));
        // Two pointers pointing at each other.
        let msg = b"\x01a\xc0\x04\xc0\x00";
        assert_eq!(read_name(msg, 4, None), Err(Error::BadPointer));
        // Forward pointer.
        let msg = b"\xc0\x02\x00";
        assert_eq!(read_name(msg, 0, None), Err(Error::BadPointer));
        // Out of bounds pointer is also forward.
        let msg = b"\x00\xc0\xff";
        assert_eq!(read_name(msg, 1, None), Err(Error::BadPointer));
        // Truncated pointer.
        assert_eq!(read_name(b"\xc0", 0, None), Err(Error::Truncated));
    }

    #[test]
    fn bad_labels_are_rejected() {
        assert_eq!(read_name(b"\x40abc\x00", 0, None), Err(Error::BadLabel));
        assert_eq!(read_name(b"\x80abc\x00", 0, None), Err(Error::BadLabel));
        assert_eq!(read_name(b"\x05abc", 0, None), Err(Error::Truncated));
        assert_eq!(read_name(b"", 0, None), Err(Error::Truncated));
        assert_eq!(read_name(b"\x03abc", 0, None), Err(Error::Truncated));
        assert!(NameBuf::from_dotted(&"a".repeat(64)).is_err());
        assert!(NameBuf::from_dotted("a..b").is_err());
    }

    #[test]
    fn names_over_255_bytes_are_rejected() {
        // 4 labels of 63 = 256 bytes with lengths, plus root = 257.
        let mut msg = Vec::new();
        for _ in 0..4 {
            msg.push(63);
            msg.extend_from_slice(&[b'a'; 63]);
        }
        msg.push(0);
        assert_eq!(read_name(&msg, 0, None), Err(Error::NameTooLong));
        // Exactly 255 is fine: 3*64 + 62 + 1.
        assert_eq!(read_name(&longest_name(), 0, None), Ok(255));
        // Long through compression: many pointer hops that add up past 255.
        let mut msg = vec![63];
        msg.extend_from_slice(&[b'b'; 63]);
        msg.push(0);
        for i in 0..4 {
            let prev = if i == 0 { 0 } else { 65 + (i - 1) * 66 };
            msg.push(63);
            msg.extend_from_slice(&[b'c'; 63]);
            msg.push(0xc0 | (prev >> 8) as u8);
            msg.push(prev as u8);
        }
        assert_eq!(read_name(&msg, 65 + 3 * 66, None), Err(Error::NameTooLong));
    }

    #[test]
    fn subdomain_and_case() {
        let a = NameBuf::from_dotted("www.Example.TEST").unwrap();
        let z = NameBuf::from_dotted("example.test").unwrap();
        assert!(a.is_subdomain_of(&z));
        assert!(z.is_subdomain_of(&z));
        assert!(!z.is_subdomain_of(&a));
        assert!(!NameBuf::from_dotted("xexample.test")
            .unwrap()
            .is_subdomain_of(&z));
        assert!(a.is_subdomain_of(&NameBuf::root()));
        assert!(a.eq_ignore_case(&NameBuf::from_dotted("WWW.example.test").unwrap()));
        assert_eq!(a.label_count(), 3);
    }

    #[test]
    fn case_randomization_keeps_the_name() {
        let mut n = NameBuf::from_dotted("www.example-1.test").unwrap();
        let orig = n.clone();
        let mut flip = false;
        n.randomize_case(|| {
            flip = !flip;
            flip
        });
        assert_eq!(n.to_dotted(), "WwW.eXaMpLe-1.TeSt");
        assert!(n.eq_ignore_case(&orig));
        assert_eq!(n.len(), orig.len());
    }

    #[test]
    fn case_insensitive_equality_with_and_without_exact_bytes() {
        let n = |s: &str| NameBuf::from_dotted(s).unwrap();
        // Same bytes, different case, different names of the same and other lengths.
        assert!(n("www.example.test").eq_ignore_case(&n("www.example.test")));
        assert!(n("www.example.test").eq_ignore_case(&n("WWW.eXample.tesT")));
        assert!(!n("www.example.test").eq_ignore_case(&n("www.exbmple.test")));
        assert!(!n("www.example.test").eq_ignore_case(&n("ww.example.test")));
        // Folding is ASCII only: '@' (0x40) and '`' (0x60) differ by the case bit.
        assert!(!n("a@b.test").eq_ignore_case(&n("a`b.test")));
        assert!(n("sub.Example.TEST").is_subdomain_of(&n("example.test")));
        assert!(n("sub.example.test").is_subdomain_of(&n("example.test")));
        assert!(!n("sub.example.test").is_subdomain_of(&n("exbmple.test")));
    }

    #[test]
    fn odd_bytes_are_escaped_for_display() {
        let n = NameBuf::from_wire(b"\x03a.b\x02\x00\\\x00").unwrap();
        assert_eq!(n.to_dotted(), "a\\046b.\\000\\092");
    }
}
