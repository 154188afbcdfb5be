//! The option reference printed by `dproxy --help-config`.
//!
//! `uci commit` rewrites /etc/config/dproxy without its comments, so the shipped file's
//! explanations vanish at the first change; the binary carries its own short copy.

/// One line per option: name, default, meaning. Kept in step with the README's table
/// (a unit test checks that every option the parser knows is listed in both).
pub const OPTIONS: &str = "\
Options of config dproxy 'main' (uci set dproxy.main.OPTION=VALUE):
option          default            meaning
listen (list)   127.0.0.1, ::1     addresses to answer on: ADDR, ADDR:PORT, [V6]:PORT
port            1296               port for listen addresses without one
server (list)   -                  upstream servers (port 53 unless given); dproxy-full
                                   also tls://ADDR[:PORT][#NAME], ADDR@PORT[#NAME]
                                   and https://HOST[:PORT]/PATH[#ADDR]
bootstrap (list) -                 dproxy-full: plain servers for DoH host names only
ca_file         /etc/ssl/certs/ca-certificates.crt
                                   dproxy-full: CA bundle (PEM) for TLS upstreams
tls_pin (list)  -                  dproxy-full: 'NAME sha256/BASE64' SPKI pin of a server
allow_plain_fallback 0             dproxy-full: plain servers may be mixed with encrypted
                                   ones, asked only when no encrypted server answers
resolvfile      /etc/resolv.conf   upstreams from this file when no server is set
dnssec          0                  dproxy-full: validate DNSSEC (1 refused for now)
dnssec_check_unsigned 1            dproxy-full: unsigned answers need a DS denial
trust_anchor_file /usr/share/dproxy/root-anchors.ds
                                   dproxy-full: DS trust anchors
dnssec_sha1     0                  dproxy-full: RSASHA1 signatures count as secure
cache_size      1024               cache budget in KiB
min_ttl         0                  raise shorter TTLs to this (s)
max_ttl         86400              lower longer TTLs to this (s)
neg_ttl         3600               cap on negative caching (s)
trust_ad        0                  pass the upstream's AD bit on
log_level       info               error, warn, info or debug
hosts (list)    /etc/hosts         hosts files, or directories of them
leasefile (list) -                 DHCP lease files
domain          -                  local domain: host nas also answers as nas.DOMAIN
domain_needed   0                  never forward names without a dot
bogus_priv      0                  never forward private reverse lookups
local_ttl       60                 TTL of local answers (s)
blocklist (list) -                 domain blocklists: files, or directories of them
block_allow (list) -               domains (and subdomains) never blocked
block_answer    nxdomain           blocked names get nxdomain, null or refused
control_socket  /var/run/dproxy/dproxy.sock
                                   socket of dproxy ctl; empty = none
stale_max       86400              serve expired answers this long past expiry (s)
stale_exclude (list) -             names never served stale
offline_policy  servfail           a miss while the link is down: servfail or hold
hold_timeout    10                 with hold, how long a miss waits (s)
stale_timeout   1800               answer stale if the upstream is slower (ms)
prefetch        1                  refresh popular entries before they expire
persist_file    -                  keep the cache in this file across restarts
persist_interval 0                 also save every N s (0 = only at exit)
local_service   1                  answer only loopback and on-link clients
allow (list)    -                  CIDR blocks let in
deny (list)     -                  CIDR blocks kept out (deny wins)
refuse_action   refused            refused client gets refused or drop
rebind_protection 1                refuse private addresses for public names
rebind_domain (list) -             domains allowed private addresses
rebind_localhost 0                 allow 127.0.0.0/8 in answers
case_randomization 1               DNS 0x20 towards upstreams
rate_limit      0                  queries/s per client (0 = off)
rate_burst      rate_limit         bucket size for rate_limit
memory_limit    0                  KiB for the whole daemon (0 = cache_size only)
user            nobody             user to become after binding, if started as root
chroot          -                  chroot here after binding
OpenWrt init and hotplug scripts only:
enabled         0                  1 = start the service
dnsmasq_integration off            off, forward (dnsmasq forwards to dproxy) or
                                   replace (dproxy takes port 53)
wan_interface (list) wan, wan6     interfaces whose ifup/ifdown mean link up/down
Booleans: 0/1, yes/no, on/off, true/false.
";

#[cfg(test)]
mod tests {
    use super::OPTIONS;

    /// Every option name the parser knows: the `"name" =>` arms of config.rs and its tables.
    fn parser_options() -> Vec<String> {
        let src = include_str!("config.rs");
        let start = src.find("fn apply(&mut self").unwrap_or(0);
        let body = &src[start..];
        let end = body.find("\n    }\n").unwrap_or(body.len());
        let mut names = Vec::new();
        for line in body[..end].lines() {
            let t = line.trim_start();
            // Option arms sit at one indentation and start with a quoted name.
            if !(line.starts_with("                \"") && t.contains("=>")) {
                continue;
            }
            for part in t.split("=>").next().unwrap_or("").split('|') {
                let n = part.trim().trim_matches('"');
                if !n.is_empty() && n.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    names.push(n.to_string());
                }
            }
        }
        names.extend(["enabled", "dnsmasq_integration", "wan_interface"].map(String::from));
        // Number and boolean options are read through tables rather than arms.
        names.extend(crate::config::NUMBERS.iter().map(|e| e.0.to_string()));
        names.extend(crate::config::BOOLEANS.iter().map(|e| e.0.to_string()));
        names
    }

    #[test]
    fn every_option_is_documented_in_help_and_readme() {
        let names = parser_options();
        assert!(names.len() > 30, "parser options not found: {names:?}");
        let readme = include_str!("../README.md");
        let help_names: Vec<&str> = OPTIONS
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        for n in &names {
            assert!(
                help_names.contains(&n.as_str()),
                "option '{n}' missing from --help-config"
            );
            assert!(
                readme.contains(&format!("`option {n}`"))
                    || readme.contains(&format!("`list {n}`")),
                "option '{n}' missing from the README's table"
            );
        }
    }

    #[test]
    fn every_option_of_the_shipped_config_is_documented() {
        let shipped = include_str!("../files/dproxy.config");
        for line in shipped.lines() {
            let t = line.trim_start().trim_start_matches('#');
            let mut w = t.split_whitespace();
            if let (Some("option" | "list"), Some(name)) = (w.next(), w.next()) {
                assert!(
                    OPTIONS
                        .lines()
                        .any(|l| l.split_whitespace().next().is_some_and(|f| f == name)),
                    "shipped option '{name}' missing from --help-config"
                );
            }
        }
    }
}
