//! Encrypted upstreams as the configuration names them, parsed into typed specs:
//! `list server` entries for DNS over TLS (`tls://ADDR[:PORT][#NAME]`, or unbound's
//! `ADDR@PORT[#NAME]`) and DNS over HTTPS (`https://HOST[:PORT]/PATH[#ADDR]`), plus
//! `list bootstrap`, `option ca_file` and `list tls_pin`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use super::pin::Pin;

pub const DOT_PORT: u16 = 853;
pub const DOH_PORT: u16 = 443;

/// One encrypted upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncryptedServer {
    /// DNS over TLS to `addr`; the certificate must be valid for `auth_name` (also the
    /// SNI). Without a configured name it is the address itself (certificates of
    /// public resolvers carry their IP addresses).
    Tls { addr: SocketAddr, auth_name: String },
    /// DNS over HTTPS. `addr` is the inline address of `host`; without one the host
    /// name is resolved through the bootstrap servers, and only that name.
    Https {
        host: String,
        port: u16,
        path: String,
        addr: Option<IpAddr>,
    },
}

impl EncryptedServer {
    /// The name a pin for this server is written under.
    pub fn pin_name(&self) -> &str {
        match self {
            EncryptedServer::Tls { auth_name, .. } => auth_name,
            EncryptedServer::Https { host, .. } => host,
        }
    }
}

/// Everything about encrypted upstreams in one config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedUpstreams {
    pub servers: Vec<EncryptedServer>,
    /// Plain servers used only to resolve the host names of DoH upstreams.
    pub bootstrap: Vec<SocketAddr>,
    pub ca_file: PathBuf,
    /// (server name, pin): a server with pins must match one of its own.
    pub pins: Vec<(String, Pin)>,
    /// `option allow_plain_fallback`: plain `list server` entries may be mixed in; they
    /// are asked only after every encrypted server failed a query.
    pub allow_plain_fallback: bool,
}

impl Default for EncryptedUpstreams {
    fn default() -> Self {
        EncryptedUpstreams {
            servers: Vec::new(),
            bootstrap: Vec::new(),
            ca_file: PathBuf::from(super::DEFAULT_CA_FILE),
            pins: Vec::new(),
            allow_plain_fallback: false,
        }
    }
}

impl EncryptedUpstreams {
    /// The pins configured for one server.
    pub fn pins_for(&self, server: &EncryptedServer) -> Vec<Pin> {
        let name = server.pin_name();
        self.pins
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, p)| *p)
            .collect()
    }
}

/// Checks a host name: letters, digits, hyphens and dots, labels of 1 to 63 bytes.
fn valid_host_name(name: &str) -> bool {
    let n = name.trim_end_matches('.');
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `ADDR`, `ADDR:PORT`, `[V6]` or `[V6]:PORT`.
fn parse_addr_port(s: &str, default_port: u16) -> Option<SocketAddr> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return (sa.port() != 0).then_some(sa);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, default_port));
    }
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    let ip: IpAddr = inner.parse().ok()?;
    ip.is_ipv6().then_some(SocketAddr::new(ip, default_port))
}

fn auth_name(name: Option<&str>, addr: SocketAddr, entry: &str) -> Result<String, String> {
    match name {
        None => Ok(addr.ip().to_string()),
        Some(n) if valid_host_name(n) => Ok(n.trim_end_matches('.').to_ascii_lowercase()),
        Some(n) => Err(format!("'{entry}': '{n}' is not a valid server name")),
    }
}

/// Parses one encrypted `list server` entry; the error quotes the entry and says why.
pub fn parse_server(entry: &str) -> Result<EncryptedServer, String> {
    let e = entry.trim();
    if let Some(rest) = e.strip_prefix("tls://") {
        let (addr, name) = match rest.split_once('#') {
            Some((a, n)) => (a, Some(n)),
            None => (rest, None),
        };
        let addr = parse_addr_port(addr, DOT_PORT).ok_or_else(|| {
            format!("'{entry}': '{addr}' is not an IP address or address:port (tls:// takes an address, the name goes after #)")
        })?;
        return Ok(EncryptedServer::Tls {
            addr,
            auth_name: auth_name(name, addr, entry)?,
        });
    }
    if let Some(rest) = e.strip_prefix("https://") {
        return parse_https(rest, entry);
    }
    if let Some((scheme, _)) = e.split_once("://") {
        return Err(format!(
            "'{entry}': scheme '{scheme}://' is not supported (tls:// or https://)"
        ));
    }
    // unbound's forward-addr syntax: ADDR@PORT#NAME.
    if let Some((ip, rest)) = e.split_once('@') {
        let (port, name) = match rest.split_once('#') {
            Some((p, n)) => (p, Some(n)),
            None => (rest, None),
        };
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("'{entry}': '{ip}' is not an IP address"))?;
        let port: u16 = if port.is_empty() {
            DOT_PORT
        } else {
            port.parse()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("'{entry}': '{port}' is not a port"))?
        };
        let addr = SocketAddr::new(ip, port);
        return Ok(EncryptedServer::Tls {
            addr,
            auth_name: auth_name(name, addr, entry)?,
        });
    }
    Err(format!("'{entry}' is not an encrypted upstream"))
}

fn parse_https(rest: &str, entry: &str) -> Result<EncryptedServer, String> {
    let (rest, inline) = match rest.split_once('#') {
        Some((r, a)) => (r, Some(a)),
        None => (rest, None),
    };
    if rest.contains('?') {
        return Err(format!(
            "'{entry}': a query string is not supported (POST is used)"
        ));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/dns-query"),
    };
    if authority.contains('@') {
        return Err(format!(
            "'{entry}': user information in the URL is not supported"
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("'{entry}': unclosed '['"))?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => DOH_PORT,
        Some(p) => p
            .parse()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("'{entry}': '{p}' is not a port"))?,
    };
    let literal = host.parse::<IpAddr>().ok();
    if literal.is_none() && !valid_host_name(host) {
        return Err(format!(
            "'{entry}': '{host}' is not a host name or IP address"
        ));
    }
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!(
            "'{entry}': the path has spaces or control characters"
        ));
    }
    let addr = match inline {
        None => literal,
        Some(a) => Some(a.parse::<IpAddr>().map_err(|_| {
            format!("'{entry}': '{a}' after # is not an IP address (the address of {host})")
        })?),
    };
    Ok(EncryptedServer::Https {
        host: host.trim_end_matches('.').to_ascii_lowercase(),
        port,
        path: path.to_string(),
        addr,
    })
}

/// Parses one `list tls_pin` value: `NAME sha256/BASE64`.
pub fn parse_pin(value: &str) -> Result<(String, Pin), String> {
    let mut words = value.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(name), Some(pin), None) => {
            if !valid_host_name(name) && name.parse::<IpAddr>().is_err() {
                return Err(format!(
                    "'{value}': '{name}' is not a server name or address"
                ));
            }
            Ok((
                name.trim_end_matches('.').to_ascii_lowercase(),
                Pin::parse(pin)?,
            ))
        }
        _ => Err(format!("'{value}' is not 'NAME sha256/BASE64'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(addr: &str, name: &str) -> EncryptedServer {
        EncryptedServer::Tls {
            addr: addr.parse().unwrap(),
            auth_name: name.into(),
        }
    }

    #[test]
    fn dot_entries_in_both_syntaxes() {
        assert_eq!(
            parse_server("tls://1.1.1.1#cloudflare-dns.com"),
            Ok(tls("1.1.1.1:853", "cloudflare-dns.com"))
        );
        assert_eq!(
            parse_server("tls://1.1.1.1:8853#Cloudflare-DNS.com."),
            Ok(tls("1.1.1.1:8853", "cloudflare-dns.com"))
        );
        assert_eq!(
            parse_server("tls://[2606:4700::1111]#one.one"),
            Ok(tls("[2606:4700::1111]:853", "one.one"))
        );
        assert_eq!(
            parse_server("tls://[2606:4700::1111]:9#x.y"),
            Ok(tls("[2606:4700::1111]:9", "x.y"))
        );
        assert_eq!(
            parse_server("1.1.1.1@853#cloudflare-dns.com"),
            Ok(tls("1.1.1.1:853", "cloudflare-dns.com"))
        );
        assert_eq!(
            parse_server("9.9.9.9@#dns.quad9.net"),
            Ok(tls("9.9.9.9:853", "dns.quad9.net"))
        );
        assert_eq!(
            parse_server("2620:fe::fe@853#dns.quad9.net"),
            Ok(tls("[2620:fe::fe]:853", "dns.quad9.net"))
        );
        // Without a name the certificate must carry the address.
        assert_eq!(
            parse_server("tls://1.1.1.1"),
            Ok(tls("1.1.1.1:853", "1.1.1.1"))
        );
        assert_eq!(
            parse_server("1.1.1.1@853"),
            Ok(tls("1.1.1.1:853", "1.1.1.1"))
        );
    }

    #[test]
    fn bad_dot_entries_say_why() {
        for (entry, why) in [
            ("tls://dns.google#dns.google", "not an IP address"),
            ("tls://1.1.1.1:0#a.b", "not an IP address"),
            ("tls://1.1.1.1#bad_name!", "not a valid server name"),
            ("tls://1.1.1.1#", "not a valid server name"),
            ("1.1.1.1@x#a.b", "not a port"),
            ("one@853#a.b", "not an IP address"),
            ("quic://1.1.1.1", "not supported"),
        ] {
            let e = parse_server(entry).unwrap_err();
            assert!(e.contains(why) && e.contains(entry), "{entry}: {e}");
        }
    }

    #[test]
    fn doh_urls() {
        assert_eq!(
            parse_server("https://dns.quad9.net/dns-query"),
            Ok(EncryptedServer::Https {
                host: "dns.quad9.net".into(),
                port: 443,
                path: "/dns-query".into(),
                addr: None
            })
        );
        assert_eq!(
            parse_server("https://dns.quad9.net:8443/q#9.9.9.9"),
            Ok(EncryptedServer::Https {
                host: "dns.quad9.net".into(),
                port: 8443,
                path: "/q".into(),
                addr: Some("9.9.9.9".parse().unwrap())
            })
        );
        assert_eq!(
            parse_server("https://[2620:fe::fe]"),
            Ok(EncryptedServer::Https {
                host: "2620:fe::fe".into(),
                port: 443,
                path: "/dns-query".into(),
                addr: Some("2620:fe::fe".parse().unwrap())
            })
        );
        for (entry, why) in [
            ("https://dns.quad9.net/dns-query?dns=AAAA", "query string"),
            ("https://user@dns.quad9.net/", "user information"),
            ("https://dns..net/", "not a host name"),
            ("https://a.b:99999/", "not a port"),
            ("https://a.b/x#not-an-ip", "not an IP address"),
            ("https://a.b/x y", "spaces"),
            ("https://[::1/", "unclosed"),
        ] {
            let e = parse_server(entry).unwrap_err();
            assert!(e.contains(why), "{entry}: {e}");
        }
    }

    #[test]
    fn pins_per_server() {
        let b64 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let (name, pin) = parse_pin(&format!("Dns.Quad9.net sha256/{b64}")).unwrap();
        assert_eq!((name.as_str(), pin), ("dns.quad9.net", Pin([0; 32])));
        assert!(parse_pin("dns.quad9.net")
            .unwrap_err()
            .contains("NAME sha256/BASE64"));
        assert!(parse_pin("dns.quad9.net sha256/AAAA")
            .unwrap_err()
            .contains("3 bytes"));
        let up = EncryptedUpstreams {
            pins: vec![(name, pin)],
            ..EncryptedUpstreams::default()
        };
        let https = parse_server("https://dns.quad9.net/dns-query").unwrap();
        assert_eq!(up.pins_for(&https), vec![Pin([0; 32])]);
        assert!(up.pins_for(&tls("1.1.1.1:853", "one.one")).is_empty());
    }
}
