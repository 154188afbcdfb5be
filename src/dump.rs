//! Readable text for `dproxy ctl dump`: each cache entry and its records.

use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::cache::{flag, Cached, Key};
use crate::wire::message::Section;
use crate::wire::name::read_name;
use crate::wire::{read_u16, rtype, scan_message, NameBuf};

pub fn type_name(t: u16) -> String {
    let s = match t {
        rtype::A => "A",
        rtype::NS => "NS",
        rtype::CNAME => "CNAME",
        rtype::SOA => "SOA",
        rtype::PTR => "PTR",
        rtype::HINFO => "HINFO",
        rtype::MX => "MX",
        rtype::TXT => "TXT",
        rtype::AAAA => "AAAA",
        rtype::SRV => "SRV",
        rtype::ANY => "ANY",
        _ => return format!("TYPE{t}"),
    };
    s.to_string()
}

fn name_at(msg: &[u8], pos: usize) -> String {
    let mut n = NameBuf::root();
    match read_name(msg, pos, Some(&mut n)) {
        Ok(_) => format!("{}.", n.to_dotted().trim_end_matches('.')),
        Err(_) => "?".into(),
    }
}

fn rdata_text(msg: &[u8], t: u16, rd: &[u8], start: usize) -> String {
    match (t, rd.len()) {
        (rtype::A, 4) => Ipv4Addr::new(rd[0], rd[1], rd[2], rd[3]).to_string(),
        (rtype::AAAA, 16) => {
            let mut b = [0u8; 16];
            b.copy_from_slice(rd);
            Ipv6Addr::from(b).to_string()
        }
        (rtype::CNAME | rtype::NS | rtype::PTR, _) => name_at(msg, start),
        (rtype::MX, n) if n >= 3 => {
            let pref = read_u16(msg, start).unwrap_or(0);
            format!("{pref} {}", name_at(msg, start + 2))
        }
        (rtype::TXT, _) => {
            let mut out = String::new();
            let mut i = 0;
            while let Some(&l) = rd.get(i) {
                let s = rd.get(i + 1..i + 1 + l as usize).unwrap_or(&[]);
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push('"');
                for &c in s {
                    if c.is_ascii_graphic() && c != b'"' && c != b'\\' || c == b' ' {
                        out.push(c as char);
                    } else {
                        let _ = write!(out, "\\{c:03}");
                    }
                }
                out.push('"');
                i += 1 + l as usize;
            }
            out
        }
        _ => {
            // RFC 3597 generic form.
            let mut out = format!("\\# {}", rd.len());
            if !rd.is_empty() {
                out.push(' ');
                for b in rd {
                    let _ = write!(out, "{b:02x}");
                }
            }
            out
        }
    }
}

/// Appends one entry: a header line, then its records with the TTLs they would be served with.
pub fn entry(out: &mut String, e: &Cached<'_>, now: u32) {
    let Some(key) = Key::from_bytes(e.key) else {
        return;
    };
    let name = NameBuf::from_wire(key.name_wire())
        .map(|n| n.to_dotted())
        .unwrap_or_else(|_| "?".into());
    let left = e.expires as i64 - now as i64;
    let mut flags = Vec::new();
    if e.flags & flag::NEGATIVE != 0 {
        flags.push("negative");
    }
    if e.flags & flag::FAILURE != 0 {
        flags.push("failure");
    }
    if e.flags & flag::OFFLINE != 0 {
        flags.push("offline");
    }
    if left <= 0 {
        flags.push("expired");
    }
    if key.flags() & crate::cache::KEY_DO != 0 {
        flags.push("do");
    }
    if key.flags() & crate::cache::KEY_CD != 0 {
        flags.push("cd");
    }
    let _ = writeln!(
        out,
        ";; {name} {} class={} ttl={left} hits={} {}",
        type_name(key.qtype()),
        key.qclass(),
        e.hits,
        flags.join(",")
    );
    // Entries are stored without their question: put the key's back to read them.
    let mut whole = Vec::with_capacity(e.msg.len() + key.name_wire().len() + 4);
    whole.extend_from_slice(e.msg.get(..12).unwrap_or(&[]));
    whole.extend_from_slice(key.name_wire());
    whole.extend_from_slice(&key.qtype().to_be_bytes());
    whole.extend_from_slice(&key.qclass().to_be_bytes());
    whole.extend_from_slice(e.msg.get(12..).unwrap_or(&[]));
    let msg = &whole[..];
    let Ok(scan) = scan_message(msg) else {
        return;
    };
    let elapsed = now.saturating_sub(e.inserted);
    for r in &scan.records {
        let sect = match r.section {
            Section::Answer => "",
            Section::Authority => " ;authority",
            Section::Additional => " ;additional",
        };
        let rd = msg.get(r.rdata..r.end).unwrap_or(&[]);
        let _ = writeln!(
            out,
            "{} {} {} {} {}{sect}",
            name_at(msg, r.start),
            r.ttl.saturating_sub(elapsed),
            if r.class == 1 {
                "IN".to_string()
            } else {
                format!("CLASS{}", r.class)
            },
            type_name(r.rtype),
            rdata_text(msg, r.rtype, rd, r.rdata)
        );
    }
}
