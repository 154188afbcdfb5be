//! Encrypted upstreams in the config file: the plain build refuses them with one clear
//! error; the full build parses them, reports bad values under the option's name,
//! accepts DNS over TLS, and refuses DNS over HTTPS (not spoken yet) and plain servers
//! mixed with encrypted ones (unless `option allow_plain_fallback` says so) instead of
//! sending anything in plaintext.

use std::path::PathBuf;

use dproxy::config::{load, ConfigError};

#[cfg(feature = "tls")]
use crate::tls_support;

fn write_conf(tag: &str, body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dproxy-cfgenc-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dproxy");
    std::fs::write(&path, format!("config dproxy 'main'\n{body}")).unwrap();
    path
}

fn errors(tag: &str, body: &str) -> Vec<ConfigError> {
    let path = write_conf(tag, body);
    let loaded = load(&path);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
    match loaded.config {
        Ok(_) => Vec::new(),
        Err(e) => e,
    }
}

fn has(errs: &[ConfigError], place: &str, text: &str) -> bool {
    errs.iter()
        .any(|e| e.place == place && e.problem.contains(text))
}

#[test]
fn plain_servers_still_load() {
    assert!(errors(
        "plain",
        "\tlist server '192.0.2.1'\n\tlist server '192.0.2.2#5300'\n"
    )
    .is_empty());
}

#[cfg(not(feature = "tls"))]
#[test]
fn plain_build_refuses_encrypted_upstreams_with_one_clear_error() {
    for entry in [
        "tls://1.1.1.1#cloudflare-dns.com",
        "1.1.1.1@853#cloudflare-dns.com",
        "https://dns.quad9.net/dns-query",
    ] {
        let errs = errors(
            "plainenc",
            &format!("\tlist server '192.0.2.1'\n\tlist server '{entry}'\n"),
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(has(&errs, "main.server", "needs dproxy-full"), "{errs:?}");
        assert!(errs[0].problem.contains(entry));
    }
    for opt in [
        "option ca_file '/etc/ssl/certs/ca-certificates.crt'",
        "list bootstrap '9.9.9.9'",
        "list tls_pin 'a.b sha256/AAAA'",
        "option allow_plain_fallback '1'",
    ] {
        let errs = errors("plainopt", &format!("\t{opt}\n"));
        let name = opt.split_whitespace().nth(1).unwrap();
        assert!(
            has(&errs, &format!("main.{name}"), "needs dproxy-full"),
            "{errs:?}"
        );
    }
}

#[cfg(feature = "tls")]
mod full {
    use super::*;
    use tls_support::Certs;

    #[cfg(not(feature = "doh"))]
    const NO_DOH: &str = "DNS over HTTPS is not available in this version";

    #[test]
    fn dot_servers_are_accepted() {
        let certs = Certs::ca_only("cfg-dot");
        let ca = certs.path("ca.pem");
        let pin = "sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let errs = errors(
            "fulldot",
            &format!(
                "\tlist server 'tls://1.1.1.1#cloudflare-dns.com'\n\tlist server '9.9.9.9@853#dns.quad9.net'\n\
                 \toption ca_file '{}'\n\tlist tls_pin 'dns.quad9.net {pin}'\n",
                ca.display()
            ),
        );
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[cfg(not(feature = "doh"))]
    #[test]
    fn valid_doh_config_is_parsed_then_refused_naming_doh() {
        let certs = Certs::ca_only("cfg-ok");
        let ca = certs.path("ca.pem");
        let pin = "sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let errs = errors(
            "fullok",
            &format!(
                "\tlist server 'tls://1.1.1.1#cloudflare-dns.com'\n\tlist server '9.9.9.9@853#dns.quad9.net'\n\
                 \tlist server 'https://dns.example/dns-query'\n\tlist bootstrap '192.0.2.53'\n\
                 \toption ca_file '{}'\n\tlist tls_pin 'dns.quad9.net {pin}'\n",
                ca.display()
            ),
        );
        // Everything parsed: the one error is that DoH is not spoken yet.
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(has(&errs, "main.server", NO_DOH), "{errs:?}");
        assert!(errs[0].problem.contains("https://dns.example/dns-query"));
    }

    #[test]
    fn plain_servers_mixed_with_encrypted_ones_are_refused() {
        let certs = Certs::ca_only("cfg-mix");
        let ca = certs.path("ca.pem");
        let errs = errors(
            "fullmix",
            &format!(
                "\tlist server 'tls://1.1.1.1#cloudflare-dns.com'\n\tlist server '192.0.2.1'\n\
                 \toption ca_file '{}'\n",
                ca.display()
            ),
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(has(&errs, "main.server", "plaintext"), "{errs:?}");
        assert!(
            has(&errs, "main.server", "allow_plain_fallback"),
            "{errs:?}"
        );
    }

    #[test]
    fn plain_servers_mix_only_with_allow_plain_fallback() {
        let certs = Certs::ca_only("cfg-fallback");
        let ca = certs.path("ca.pem");
        let body = |v: &str| {
            format!(
                "\tlist server 'tls://1.1.1.1#cloudflare-dns.com'\n\tlist server '192.0.2.1'\n\
                 \toption ca_file '{}'\n\toption allow_plain_fallback '{v}'\n",
                ca.display()
            )
        };
        assert_eq!(errors("fallback-on", &body("1")), Vec::new());
        let errs = errors("fallback-off", &body("0"));
        assert!(has(&errs, "main.server", "plaintext"), "{errs:?}");
        let errs = errors("fallback-bad", &body("maybe"));
        assert!(
            has(&errs, "main.allow_plain_fallback", "not a boolean"),
            "{errs:?}"
        );
    }

    #[test]
    fn bad_values_name_their_option() {
        let certs = Certs::ca_only("cfg-bad");
        let ca = certs.path("ca.pem");
        let ca_line = format!("\toption ca_file '{}'\n", ca.display());
        let cases = [
            ("\tlist server 'tls://dns.google#dns.google'\n".to_string(), "main.server", "not an IP address"),
            ("\tlist server 'https://a.b/?x'\n".to_string(), "main.server", "query string"),
            (format!("\tlist server 'tls://1.1.1.1'\n{ca_line}\tlist tls_pin '1.1.1.1 sha256/AAAA'\n"), "main.tls_pin", "3 bytes"),
            (format!("\tlist server 'tls://1.1.1.1'\n{ca_line}\tlist tls_pin 'other.name sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='\n"), "main.tls_pin", "not the name of a configured"),
            ("\tlist server 'tls://1.1.1.1'\n\toption ca_file '/nonexistent/ca.pem'\n".to_string(), "main.ca_file", "/nonexistent/ca.pem"),
            (format!("\tlist server 'https://dns.example/q'\n{ca_line}"), "main.bootstrap", "dns.example"),
            (format!("\tlist server 'https://dns.example/q'\n{ca_line}\tlist bootstrap 'nope'\n"), "main.bootstrap", "'nope'"),
        ];
        for (body, place, text) in cases {
            let errs = errors("fullbad", &body);
            assert!(has(&errs, place, text), "{body}: {errs:?}");
        }
        // An inline address needs no bootstrap.
        let errs = errors(
            "fullinline",
            &format!("\tlist server 'https://dns.example/q#192.0.2.9'\n{ca_line}"),
        );
        #[cfg(not(feature = "doh"))]
        {
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert!(has(&errs, "main.server", NO_DOH));
        }
        #[cfg(feature = "doh")]
        assert!(errs.is_empty(), "{errs:?}");
    }

    /// With DoH in the build, DoH servers (by inline address, IP literal, or name with
    /// bootstrap servers) are accepted next to DoT ones.
    #[cfg(feature = "doh")]
    #[test]
    fn doh_servers_are_accepted() {
        let certs = Certs::ca_only("cfg-doh");
        let ca = certs.path("ca.pem");
        let pin = "sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let errs = errors(
            "fulldoh",
            &format!(
                "\tlist server 'tls://1.1.1.1#cloudflare-dns.com'\n\tlist server 'https://dns.example/dns-query'\n\
                 \tlist server 'https://dns.quad9.net/dns-query#9.9.9.9'\n\tlist server 'https://[2620:fe::fe]:8443/q'\n\
                 \tlist bootstrap '192.0.2.53'\n\tlist bootstrap '[2001:db8::53]:5353'\n\
                 \toption ca_file '{}'\n\tlist tls_pin 'dns.example {pin}'\n",
                ca.display()
            ),
        );
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn options_without_encrypted_servers_do_not_stop_a_plain_setup() {
        let errs = errors(
            "fullplain",
            "\tlist server '192.0.2.1'\n\toption ca_file '/nonexistent/ca.pem'\n\tlist bootstrap '192.0.2.53'\n",
        );
        assert!(errs.is_empty(), "{errs:?}");
    }
}

/// The table of `list server` entries that the LuCI form's test reads too
/// (tests/data/server-entries.txt): the daemon's parsers agree with every line, so
/// the form and the daemon accept the same entries.
#[cfg(feature = "tls")]
#[test]
fn server_entries_table_matches_the_parsers() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/server-entries.txt");
    let text = std::fs::read_to_string(path).unwrap();
    let mut n = 0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (verdict, entry) = line.split_once(' ').unwrap();
        assert!(verdict == "good" || verdict == "bad", "{line}");
        let accepted = if dproxy::config::is_encrypted_server(entry) {
            dproxy::tls::spec::parse_server(entry).is_ok()
        } else {
            dproxy::config::parse_sockaddr(entry, 53).is_some()
        };
        assert_eq!(
            accepted,
            verdict == "good",
            "the daemon disagrees with: {line}"
        );
        n += 1;
    }
    assert!(n >= 35, "only {n} entries read from {path}");
}
