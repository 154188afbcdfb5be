//! A small hand-written JSON writer for `dproxy ctl stats --json` (see `control::json`):
//! it keeps serde out of the router binary.

use std::fmt::Write;

/// Appends `s` as a JSON string literal (RFC 8259 escaping).
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let b = c as u8;
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes one JSON object member by member, with the commas in the right places.
pub struct Obj<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Obj<'a> {
    pub fn new(out: &'a mut String) -> Obj<'a> {
        out.push('{');
        Obj { out, first: true }
    }

    fn key(&mut self, k: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        write_str(self.out, k);
        self.out.push(':');
        self.out
    }

    pub fn num(&mut self, k: &str, v: u64) {
        let o = self.key(k);
        let _ = write!(o, "{v}");
    }

    pub fn opt_num(&mut self, k: &str, v: Option<u64>) {
        match v {
            Some(v) => self.num(k, v),
            None => self.key(k).push_str("null"),
        }
    }

    pub fn str(&mut self, k: &str, v: &str) {
        let o = self.key(k);
        write_str(o, v);
    }

    pub fn opt_str(&mut self, k: &str, v: Option<&str>) {
        match v {
            Some(v) => self.str(k, v),
            None => self.key(k).push_str("null"),
        }
    }

    pub fn boolean(&mut self, k: &str, v: bool) {
        self.key(k).push_str(if v { "true" } else { "false" });
    }

    /// A value already in JSON form (a number with a fraction, an array).
    pub fn raw(&mut self, k: &str, json: &str) {
        self.key(k).push_str(json);
    }

    pub fn end(self) {
        self.out.push('}');
    }
}

/// `part / whole` with four decimals ("0.7368"), 0 when `whole` is 0. Integer arithmetic:
/// float formatting would cost the router binary more than all of this file.
pub fn ratio(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0".into();
    }
    // Scaled down so that `* 10_000` cannot overflow (u128 would pull in its own code).
    let shift = 64 - (whole >> 32).leading_zeros().min(64);
    let (part, whole) = (part.min(whole) >> shift, (whole >> shift).max(1));
    let r = (part * 10_000 + whole / 2) / whole;
    if r >= 10_000 {
        return "1".into();
    }
    let mut s = String::from("0.");
    for div in [1000, 100, 10, 1] {
        s.push(char::from(b'0' + (r / div % 10) as u8));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios() {
        assert_eq!(ratio(0, 0), "0");
        assert_eq!(ratio(0, 5), "0.0000");
        assert_eq!(ratio(6, 11), "0.5455");
        assert_eq!(ratio(1, 3), "0.3333");
        assert_eq!(ratio(2, 3), "0.6667");
        assert_eq!(ratio(5, 5), "1");
        assert_eq!(ratio(99_999, 100_000), "1");
        assert_eq!(ratio(u64::MAX, u64::MAX), "1");
        assert_eq!(ratio(u64::MAX / 2, u64::MAX), "0.5000");
        assert_eq!(ratio(1 << 40, 3 << 40), "0.3333");
    }

    #[test]
    fn strings_are_escaped() {
        let mut s = String::new();
        write_str(&mut s, "a\"b\\c\nd\te\u{1}\u{7f}é\u{2028}");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\te\\u0001\\u007fé\u{2028}\"");
    }

    #[test]
    fn object_members_are_separated() {
        let mut s = String::new();
        let mut o = Obj::new(&mut s);
        o.num("a", 1);
        o.opt_num("b", None);
        o.str("c", "x");
        o.opt_str("d", None);
        o.boolean("e", true);
        o.raw("f", "[]");
        o.end();
        assert_eq!(
            s,
            "{\"a\":1,\"b\":null,\"c\":\"x\",\"d\":null,\"e\":true,\"f\":[]}"
        );
    }

    #[test]
    fn empty_object() {
        let mut s = String::new();
        Obj::new(&mut s).end();
        assert_eq!(s, "{}");
    }
}
