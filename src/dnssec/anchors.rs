//! Trust anchors in DS form (`option trust_anchor_file`): the file shipped as
//! /usr/share/dproxy/root-anchors.ds holds the root's KSK-2017 and KSK-2024.

use super::keys::DsView;

/// Where the packages install the root anchors.
pub const DEFAULT_FILE: &str = "/usr/share/dproxy/root-anchors.ds";

/// One anchor: the zone it vouches for (wire form, lowercase) and a DS RDATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub owner: Vec<u8>,
    pub ds: Vec<u8>,
}

impl Anchor {
    pub fn key_tag(&self) -> u16 {
        DsView::parse(&self.ds).map_or(0, |d| d.key_tag)
    }
}

/// A presentation-form name (absolute, no escapes) in wire form, lowercased.
fn name_to_wire(s: &str) -> Result<Vec<u8>, String> {
    if !s.ends_with('.') {
        return Err(format!("owner {s:?} must be absolute (end with a dot)"));
    }
    let mut out = Vec::new();
    let labels = &s[..s.len() - 1];
    for label in labels.split('.').filter(|_| !labels.is_empty()) {
        if label.is_empty() || label.len() > 63 || label.contains('\\') {
            return Err(format!("bad owner name {s:?}"));
        }
        out.push(label.len() as u8);
        out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    out.push(0);
    if out.len() > 255 {
        return Err(format!("owner name {s:?} is too long"));
    }
    Ok(out)
}

fn hex_digest(s: &str) -> Result<Vec<u8>, String> {
    if s.len() % 2 != 0 || s.is_empty() {
        return Err("digest must be an even number of hex digits".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(s.get(i..i + 2).unwrap_or(""), 16)
                .map_err(|_| format!("digest is not hex: {s:?}"))
        })
        .collect()
}

fn parse_line(line: &str) -> Result<Anchor, String> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let owner = name_to_wire(f[0])?;
    // Skip an optional TTL and class before the type.
    let mut i = 1;
    if f.get(i)
        .is_some_and(|t| t.bytes().all(|b| b.is_ascii_digit()))
    {
        i += 1;
    }
    if f.get(i).is_some_and(|c| c.eq_ignore_ascii_case("IN")) {
        i += 1;
    }
    match f.get(i) {
        Some(t) if t.eq_ignore_ascii_case("DS") => {}
        Some(t) => {
            return Err(format!(
                "record type {t} is not DS (only DS anchors are read)"
            ))
        }
        None => return Err("no record type".into()),
    }
    let field = |n: usize, what: &str| {
        f.get(i + n)
            .copied()
            .ok_or_else(|| format!("missing {what}"))
    };
    let tag: u16 = field(1, "key tag")?
        .parse()
        .map_err(|_| "key tag must be 0-65535".to_string())?;
    let alg: u8 = field(2, "algorithm")?
        .parse()
        .map_err(|_| "algorithm must be 0-255".to_string())?;
    let dt: u8 = field(3, "digest type")?
        .parse()
        .map_err(|_| "digest type must be 0-255".to_string())?;
    field(4, "digest")?;
    let digest = hex_digest(&f[i + 4..].concat())?;
    let want = match dt {
        1 => Some(20),
        2 => Some(32),
        4 => Some(48),
        _ => None,
    };
    if let Some(n) = want {
        if digest.len() != n {
            return Err(format!(
                "digest type {dt} needs {n} bytes, the digest has {}",
                digest.len()
            ));
        }
    }
    let mut ds = tag.to_be_bytes().to_vec();
    ds.extend([alg, dt]);
    ds.extend(digest);
    Ok(Anchor { owner, ds })
}

/// Reads anchors from the text of a trust anchor file. Errors name the line.
pub fn parse(text: &str) -> Result<Vec<Anchor>, String> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split([';', '#']).next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        out.push(parse_line(line).map_err(|e| format!("line {}: {e}", n + 1))?);
    }
    if out.is_empty() {
        return Err("no DS trust anchor in it".into());
    }
    Ok(out)
}

/// Reads the trust anchor file at `path`; the error names the file.
pub fn load(path: &str) -> Result<Vec<Anchor>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    parse(&text).map_err(|e| format!("{path}: {e}"))
}

/// The anchors for `zone` (wire form), as DS RDATAs for [`super::verify_dnskey_rrset`].
pub fn for_zone<'a>(anchors: &'a [Anchor], zone: &[u8]) -> Vec<&'a [u8]> {
    anchors
        .iter()
        .filter(|a| a.owner.eq_ignore_ascii_case(zone))
        .map(|a| a.ds.as_slice())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_root_anchors() {
        let a = parse(include_str!("../../files/root-anchors.ds")).unwrap();
        let tags: Vec<u16> = a.iter().map(Anchor::key_tag).collect();
        assert_eq!(tags, [20326, 38696]);
        assert!(a
            .iter()
            .all(|x| x.owner == [0] && x.ds[2] == 8 && x.ds[3] == 2));
        assert_eq!(for_zone(&a, &[0]).len(), 2);
        assert!(for_zone(&a, b"\x04test\0").is_empty());
    }

    #[test]
    fn forms_and_errors() {
        let ok = parse(
            "# comment\nExample.Test. 3600 IN DS 1 13 2 \
             AABBCCDDEEFF00112233445566778899 AABBCCDDEEFF00112233445566778899 ; two parts\n",
        )
        .unwrap();
        assert_eq!(ok[0].owner, b"\x07example\x04test\0");
        assert_eq!(ok[0].ds.len(), 4 + 32);
        for (text, want) in [
            ("", "no DS trust anchor"),
            (
                ". IN DNSKEY 257 3 8 AwEAAa",
                "line 1: record type DNSKEY is not DS",
            ),
            ("example.test IN DS 1 8 2 00", "must be absolute"),
            (". IN DS 70000 8 2 00", "line 1: key tag"),
            (". IN DS 1 8 2 0g", "not hex"),
            (". IN DS 1 8 2 abc", "even number"),
            ("\n. IN DS 1 8 2 00", "line 2: digest type 2 needs 32 bytes"),
            (". IN DS 1 8", "missing digest type"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let e = load("/nonexistent/anchors.ds").unwrap_err();
        assert!(e.starts_with("/nonexistent/anchors.ds: "), "{e}");
    }
}
