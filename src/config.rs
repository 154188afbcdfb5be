//! Configuration: one UCI file (`config dproxy 'main'`) read with uci_rs, plus defaults.
//!
//! Every bad value is reported with the file, section and option it came from;
//! unknown options are warnings, so an older daemon keeps running on a newer config.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use uci_rs::UciCommand;

use crate::answer::TtlPolicy;

pub const DEFAULT_PORT: u16 = 1296;
pub const DEFAULT_RESOLVFILE: &str = "/etc/resolv.conf";
/// In a directory of its own, which the init scripts create for the daemon's user: a
/// daemon that procd starts as that user cannot create anything in root's /var/run.
pub const DEFAULT_CONTROL_SOCKET: &str = "/var/run/dproxy/dproxy.sock";

/// What to do with a query that cannot be forwarded while the link is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflinePolicy {
    Servfail,
    Hold,
}

/// What a refused client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseAction {
    Drop,
    Refused,
}

/// What a query for a blocked name gets (`block_answer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockAnswer {
    /// NXDOMAIN.
    Nxdomain,
    /// 0.0.0.0 for A, :: for AAAA, NODATA for other types.
    Null,
    /// REFUSED.
    Refused,
}

/// An address block, for `allow` / `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().ok().filter(|&p| p <= max)?,
            None => max,
        };
        Some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(_), IpAddr::V4(a)) => self.contains(IpAddr::V6(a.to_ipv6_mapped())),
            (IpAddr::V4(_), IpAddr::V6(a)) => match a.to_ipv4_mapped() {
                Some(v4) => self.contains(IpAddr::V4(v4)),
                None => false,
            },
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = (prefix / 8) as usize;
    let rest = prefix % 8;
    if a.get(..full) != b.get(..full) {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    match (a.get(full), b.get(full)) {
        (Some(x), Some(y)) => x & mask == y & mask,
        _ => false,
    }
}

/// The daemon's whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it came from, if any.
    pub file: Option<PathBuf>,
    pub listen: Vec<SocketAddr>,
    pub servers: Vec<SocketAddr>,
    pub resolvfile: Option<PathBuf>,
    pub cache_size_kib: u32,
    pub ttl: TtlPolicy,
    pub log_level: log::LevelFilter,
    pub trust_ad: bool,
    // Local names.
    pub hosts: Vec<PathBuf>,
    pub leasefiles: Vec<PathBuf>,
    pub domain: Option<String>,
    pub domain_needed: bool,
    pub bogus_priv: bool,
    pub local_ttl: u32,
    // Blocklists.
    pub blocklists: Vec<PathBuf>,
    pub block_allow: Vec<String>,
    pub block_answer: BlockAnswer,
    // Link loss.
    pub control_socket: Option<PathBuf>,
    pub stale_max: u32,
    pub stale_exclude: Vec<String>,
    pub offline_policy: OfflinePolicy,
    pub hold_timeout: u32,
    pub stale_timeout_ms: u32,
    pub prefetch: bool,
    pub persist_file: Option<PathBuf>,
    pub persist_interval: u32,
    // Hardening.
    pub local_service: bool,
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
    pub refuse_action: RefuseAction,
    pub rebind_protection: bool,
    pub rebind_domain: Vec<String>,
    pub rebind_localhost: bool,
    pub case_randomization: bool,
    pub rate_limit: u32,
    pub rate_burst: u32,
    pub memory_limit_kib: u32,
    pub user: Option<String>,
    pub chroot: Option<PathBuf>,
    /// DoT/DoH servers, bootstrap, CA file and pins (full build only).
    #[cfg(feature = "tls")]
    pub encrypted: crate::tls::spec::EncryptedUpstreams,
    /// DNSSEC validation options (full build only).
    #[cfg(feature = "dnssec")]
    pub dnssec: crate::dnssec::options::DnssecOptions,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            file: None,
            listen: vec![
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), DEFAULT_PORT),
            ],
            servers: Vec::new(),
            resolvfile: Some(PathBuf::from(DEFAULT_RESOLVFILE)),
            cache_size_kib: 1024,
            ttl: TtlPolicy::default(),
            log_level: log::LevelFilter::Info,
            trust_ad: false,
            hosts: vec![PathBuf::from("/etc/hosts")],
            leasefiles: Vec::new(),
            domain: None,
            domain_needed: false,
            bogus_priv: false,
            local_ttl: 60,
            blocklists: Vec::new(),
            block_allow: Vec::new(),
            block_answer: BlockAnswer::Nxdomain,
            control_socket: Some(PathBuf::from(DEFAULT_CONTROL_SOCKET)),
            stale_max: 86400,
            stale_exclude: Vec::new(),
            offline_policy: OfflinePolicy::Servfail,
            hold_timeout: 10,
            stale_timeout_ms: 1800,
            prefetch: true,
            persist_file: None,
            persist_interval: 0,
            local_service: true,
            allow: Vec::new(),
            deny: Vec::new(),
            refuse_action: RefuseAction::Refused,
            rebind_protection: true,
            rebind_domain: Vec::new(),
            rebind_localhost: false,
            case_randomization: true,
            rate_limit: 0,
            rate_burst: 0,
            memory_limit_kib: 0,
            user: None,
            chroot: None,
            #[cfg(feature = "tls")]
            encrypted: Default::default(),
            #[cfg(feature = "dnssec")]
            dnssec: Default::default(),
        }
    }
}

/// What the command line says in place of the file (`-l`, `-u`, `-v`, `-q`). The
/// daemon keeps it and applies it again to every config it loads, at start and on reload.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Overrides {
    pub listen: Vec<SocketAddr>,
    pub servers: Vec<SocketAddr>,
    pub log_level: Option<log::LevelFilter>,
}

impl Overrides {
    /// Puts the command line's values over the file's.
    pub fn apply(&self, cfg: &mut Config) {
        if !self.listen.is_empty() {
            cfg.listen = self.listen.clone();
        }
        if !self.servers.is_empty() {
            cfg.servers = self.servers.clone();
        }
        if let Some(level) = self.log_level {
            cfg.log_level = level;
        }
    }
}

/// A problem with one option (or with the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// `main.port`, or empty for the whole file.
    pub place: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.place.is_empty() {
            write!(f, "{}: {}", self.file, self.problem)
        } else {
            write!(f, "{}: {}: {}", self.file, self.place, self.problem)
        }
    }
}

/// The result of reading a file: a config, or every problem found; warnings either way.
pub struct Loaded {
    pub config: Result<Config, Vec<ConfigError>>,
    pub warnings: Vec<ConfigError>,
}

/// Parses `addr`, `addr:port`, `[v6]:port` or a bare IPv6 address.
pub fn parse_sockaddr(s: &str, default_port: u16) -> Option<SocketAddr> {
    let s = s.trim();
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, default_port));
    }
    // dnsmasq style "addr#port" is what OpenWrt users type for servers.
    if let Some((a, p)) = s.split_once('#') {
        let ip: IpAddr = a.parse().ok()?;
        let port: u16 = p.parse().ok().filter(|&p| p != 0)?;
        return Some(SocketAddr::new(ip, port));
    }
    None
}

/// True if a `list server` entry names an encrypted upstream (`tls://`, `https://`,
/// unbound's `ADDR@PORT#NAME`): no plain entry has `://` or `@`.
pub fn is_encrypted_server(entry: &str) -> bool {
    let e = entry.trim();
    e.contains("://") || e.contains('@')
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "on" | "true" | "enabled" => Some(true),
        "0" | "no" | "off" | "false" | "disabled" => Some(false),
        _ => None,
    }
}

/// Options the shell scripts read; the daemon accepts them silently.
const SCRIPT_OPTIONS: &[&str] = &["enabled", "dnsmasq_integration", "wan_interface"];

/// UCI keywords must appear inside a section; uci_rs panics otherwise, so look first.
fn precheck(text: &str) -> Result<(), String> {
    let mut in_section = false;
    for (n, line) in text.lines().enumerate() {
        let word = line.split_whitespace().next().unwrap_or("");
        match word {
            "config" => in_section = true,
            "option" | "list" if !in_section => {
                return Err(format!(
                    "line {}: '{}' before any 'config' section",
                    n + 1,
                    word
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Larger config and resolv.conf files are refused: real ones are a few KiB, and
/// `-c /dev/zero` must not eat a router's memory.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Reads a whole file of at most `cap` bytes; a larger one is an InvalidData error.
pub(crate) fn read_capped(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(cap + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {} KiB", cap / 1024),
        ));
    }
    Ok(bytes)
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Loaded {
    let fname = path.display().to_string();
    let whole = |problem: String| ConfigError {
        file: fname.clone(),
        place: String::new(),
        problem,
    };
    let bytes = match read_capped(path, MAX_CONFIG_BYTES) {
        Ok(b) => b,
        Err(e) => {
            return Loaded {
                config: Err(vec![whole(format!("cannot read: {e}"))]),
                warnings: Vec::new(),
            }
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(_) => {
            return Loaded {
                config: Err(vec![whole("not valid UTF-8".into())]),
                warnings: Vec::new(),
            }
        }
    };
    // uci_rs 0.1.2 loops forever on a file that ends inside a keyword line
    // ("\tlist" with no newline): make sure every line is terminated.
    let mut text = text;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    if let Err(p) = precheck(&text) {
        return Loaded {
            config: Err(vec![whole(p)]),
            warnings: Vec::new(),
        };
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dproxy".into());
    let uci = match crate::uci_guard::parse(&name, text) {
        Ok(u) => u,
        Err(problem) => {
            return Loaded {
                config: Err(vec![whole(problem)]),
                warnings: Vec::new(),
            }
        }
    };
    let sections = uci.get_all_sections();
    let section = if sections.iter().any(|(t, n)| t == "dproxy" && n == "main") {
        "main".to_string()
    } else if let Some((_, n)) = uci.get_section_first("dproxy") {
        n
    } else {
        return Loaded {
            config: Err(vec![whole("no 'config dproxy' section".into())]),
            warnings: Vec::new(),
        };
    };
    let mut warnings = Vec::new();
    for (t, n) in &sections {
        if t != "dproxy" {
            warnings.push(whole(format!("section '{n}' of type '{t}' ignored")));
        }
    }
    let options: Vec<(String, Vec<String>)> = uci
        .get_all_options(&section)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.clone()))
        .collect();
    let mut b = Builder {
        file: fname,
        section,
        errors: Vec::new(),
        warnings,
    };
    let mut cfg = b.apply(&options);
    cfg.file = Some(path.to_path_buf());
    Loaded {
        config: if b.errors.is_empty() {
            Ok(cfg)
        } else {
            Err(b.errors)
        },
        warnings: b.warnings,
    }
}

/// Whole-number options: name, smallest and largest value, the field. One table
/// rather than a match arm each keeps the parser small on the router.
type NumberField = fn(&mut Config) -> &mut u32;
pub(crate) const NUMBERS: &[(&str, u32, u32, NumberField)] = &[
    ("cache_size", 0, 4 * 1024 * 1024, |c| &mut c.cache_size_kib),
    ("min_ttl", 0, 604_800, |c| &mut c.ttl.min_ttl),
    ("max_ttl", 0, 604_800, |c| &mut c.ttl.max_ttl),
    ("neg_ttl", 0, 604_800, |c| &mut c.ttl.neg_ttl),
    ("local_ttl", 0, 604_800, |c| &mut c.local_ttl),
    ("stale_max", 0, 30 * 86400, |c| &mut c.stale_max),
    ("hold_timeout", 1, 300, |c| &mut c.hold_timeout),
    ("stale_timeout", 0, 60_000, |c| &mut c.stale_timeout_ms),
    ("persist_interval", 0, 7 * 86400, |c| {
        &mut c.persist_interval
    }),
    ("rate_limit", 0, 1_000_000, |c| &mut c.rate_limit),
    ("rate_burst", 0, 1_000_000, |c| &mut c.rate_burst),
    ("memory_limit", 0, 4 * 1024 * 1024, |c| {
        &mut c.memory_limit_kib
    }),
];

/// Boolean options and their fields (a bad value is an error; the field is then moot).
type BoolField = fn(&mut Config) -> &mut bool;
pub(crate) const BOOLEANS: &[(&str, BoolField)] = &[
    ("trust_ad", |c| &mut c.trust_ad),
    ("domain_needed", |c| &mut c.domain_needed),
    ("bogus_priv", |c| &mut c.bogus_priv),
    ("prefetch", |c| &mut c.prefetch),
    ("local_service", |c| &mut c.local_service),
    ("rebind_protection", |c| &mut c.rebind_protection),
    ("rebind_localhost", |c| &mut c.rebind_localhost),
    ("case_randomization", |c| &mut c.case_randomization),
];

struct Builder {
    file: String,
    section: String,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigError>,
}

impl Builder {
    fn err(&mut self, opt: &str, problem: String) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            place: format!("{}.{}", self.section, opt),
            problem,
        });
    }

    fn num(&mut self, opt: &str, v: &str, min: u32, max: u32) -> Option<u32> {
        match v.trim().parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.err(
                    opt,
                    format!("'{v}' is not a whole number from {min} to {max}"),
                );
                None
            }
        }
    }

    fn boolean(&mut self, opt: &str, v: &str) -> Option<bool> {
        let b = parse_bool(v);
        if b.is_none() {
            self.err(opt, format!("'{v}' is not a boolean (0/1, yes/no, on/off)"));
        }
        b
    }

    /// One of `names`, given as its index; anything else is an error listing them.
    fn choice(&mut self, opt: &str, v: &str, names: &[&str]) -> Option<usize> {
        let i = names.iter().position(|n| *n == v);
        if i.is_none() {
            let all = names.join(", ");
            self.err(opt, format!("'{v}' is not one of {all}"));
        }
        i
    }

    /// The options of [`NUMBERS`] and [`BOOLEANS`]; false if `opt` is in neither.
    fn table_option(&mut self, opt: &str, v: &str, c: &mut Config) -> bool {
        if let Some(&(_, min, max, field)) = NUMBERS.iter().find(|e| e.0 == opt) {
            if let Some(n) = self.num(opt, v, min, max) {
                *field(c) = n;
            }
        } else if let Some(&(_, field)) = BOOLEANS.iter().find(|e| e.0 == opt) {
            if let Some(b) = self.boolean(opt, v) {
                *field(c) = b;
            }
        } else {
            return false;
        }
        true
    }

    fn apply(&mut self, options: &[(String, Vec<String>)]) -> Config {
        let mut c = Config::default();
        let last = |vals: &Vec<String>| vals.last().cloned().unwrap_or_default();
        // The port applies to every listen address without one, so read it first.
        let mut port = DEFAULT_PORT;
        if let Some((_, v)) = options.iter().find(|(k, _)| k == "port") {
            if let Some(p) = self.num("port", &last(v), 1, 65535) {
                port = p as u16;
            }
        }
        let mut listen = Vec::new();
        let mut listen_given = false;
        for (opt, vals) in options {
            let v = last(vals);
            let o = opt.as_str();
            match o {
                "port" => {}
                "listen" => {
                    listen_given = true;
                    for s in vals {
                        match parse_sockaddr(s, port) {
                            Some(sa) => listen.push(sa),
                            None => self.err(o, format!("'{s}' is not an address or address:port")),
                        }
                    }
                }
                "server" => {
                    for s in vals {
                        if is_encrypted_server(s) {
                            self.encrypted_server(o, s, &mut c);
                            continue;
                        }
                        match parse_sockaddr(s, 53) {
                            Some(sa) => c.servers.push(sa),
                            None => self.err(o, format!("'{s}' is not an address or address:port")),
                        }
                    }
                }
                "resolvfile" => c.resolvfile = non_empty(&v).map(PathBuf::from),
                "log_level" => match v.parse::<log::LevelFilter>() {
                    Ok(l) if l != log::LevelFilter::Off => c.log_level = l,
                    _ => self.err(o, format!("'{v}' is not one of error, warn, info, debug")),
                },
                "hosts" => c.hosts = paths(vals),
                "leasefile" => c.leasefiles = paths(vals),
                "domain" => {
                    let d = v.trim().trim_end_matches('.').to_ascii_lowercase();
                    if d.is_empty() {
                        c.domain = None;
                    } else if crate::wire::NameBuf::from_dotted(&d).is_ok() {
                        c.domain = Some(d);
                    } else {
                        self.err(o, format!("'{v}' is not a domain name"));
                    }
                }
                "blocklist" => c.blocklists = paths(vals),
                "block_allow" => {
                    let allow = names(vals);
                    for n in allow
                        .iter()
                        .filter(|n| !crate::blocklist::is_domain(n.as_bytes()))
                    {
                        self.err(o, format!("'{n}' is not a domain name"));
                    }
                    c.block_allow = allow;
                }
                "block_answer" => {
                    const ANSWERS: [BlockAnswer; 3] = [
                        BlockAnswer::Nxdomain,
                        BlockAnswer::Null,
                        BlockAnswer::Refused,
                    ];
                    if let Some(i) = self.choice(o, &v, &["nxdomain", "null", "refused"]) {
                        c.block_answer = ANSWERS[i];
                    }
                }
                "control_socket" => c.control_socket = non_empty(&v).map(PathBuf::from),
                "stale_exclude" => c.stale_exclude = names(vals),
                "offline_policy" => {
                    if let Some(i) = self.choice(o, &v, &["servfail", "hold"]) {
                        c.offline_policy = [OfflinePolicy::Servfail, OfflinePolicy::Hold][i];
                    }
                }
                "persist_file" => c.persist_file = non_empty(&v).map(PathBuf::from),
                "allow" | "deny" => {
                    let mut out = Vec::new();
                    for s in vals {
                        match Cidr::parse(s) {
                            Some(n) => out.push(n),
                            None => self.err(o, format!("'{s}' is not an address or CIDR block")),
                        }
                    }
                    if o == "allow" {
                        c.allow = out;
                    } else {
                        c.deny = out;
                    }
                }
                "refuse_action" => {
                    if let Some(i) = self.choice(o, &v, &["drop", "refused"]) {
                        c.refuse_action = [RefuseAction::Drop, RefuseAction::Refused][i];
                    }
                }
                "rebind_domain" => c.rebind_domain = names(vals),
                "user" => c.user = non_empty(&v),
                "chroot" => c.chroot = non_empty(&v).map(PathBuf::from),
                "bootstrap" | "ca_file" | "tls_pin" | "allow_plain_fallback" => {
                    self.encrypted_option(o, vals, &mut c)
                }
                "dnssec" | "dnssec_check_unsigned" | "trust_anchor_file" | "dnssec_sha1" => {
                    self.dnssec_option(o, &v, &mut c)
                }
                _ if SCRIPT_OPTIONS.contains(&o) => {}
                _ if self.table_option(o, &v, &mut c) => {}
                _ => self.warnings.push(ConfigError {
                    file: self.file.clone(),
                    place: format!("{}.{}", self.section, o),
                    problem: "unknown option, ignored".into(),
                }),
            }
        }
        if listen_given {
            c.listen = listen;
        } else {
            for l in &mut c.listen {
                l.set_port(port);
            }
        }
        #[cfg(feature = "tls")]
        self.check_encrypted(&c);
        #[cfg(feature = "dnssec")]
        for (opt, e) in c.dnssec.finish() {
            self.err(opt, e);
        }
        if c.ttl.min_ttl > c.ttl.max_ttl {
            self.err(
                "min_ttl",
                format!(
                    "min_ttl {} is larger than max_ttl {}",
                    c.ttl.min_ttl, c.ttl.max_ttl
                ),
            );
        }
        c
    }
}

/// DNSSEC options: parsed in src/dnssec/options.rs; the plain build refuses to turn
/// validation on rather than pass answers it claims to check.
impl Builder {
    #[cfg(feature = "dnssec")]
    fn dnssec_option(&mut self, opt: &str, v: &str, c: &mut Config) {
        if let Err(e) = c.dnssec.set(opt, v) {
            self.err(opt, e);
        }
    }

    #[cfg(not(feature = "dnssec"))]
    fn dnssec_option(&mut self, opt: &str, v: &str, _c: &mut Config) {
        if opt == "dnssec" && self.boolean(opt, v) == Some(true) {
            self.err(opt, "DNSSEC validation needs dproxy-full".into());
        }
    }
}

/// Encrypted upstreams in the plain build: one clear error, never a plaintext fallback.
#[cfg(not(feature = "tls"))]
impl Builder {
    fn encrypted_server(&mut self, opt: &str, entry: &str, _c: &mut Config) {
        self.err(
            opt,
            format!(
                "'{entry}' is an encrypted upstream (DNS over TLS/HTTPS): it needs dproxy-full"
            ),
        );
    }

    fn encrypted_option(&mut self, opt: &str, _vals: &[String], _c: &mut Config) {
        self.err(
            opt,
            "is an option of encrypted upstreams (DNS over TLS/HTTPS): it needs dproxy-full".into(),
        );
    }
}

#[cfg(feature = "tls")]
impl Builder {
    fn encrypted_server(&mut self, opt: &str, entry: &str, c: &mut Config) {
        match crate::tls::spec::parse_server(entry) {
            Ok(s) => c.encrypted.servers.push(s),
            Err(e) => self.err(opt, e),
        }
    }

    fn encrypted_option(&mut self, opt: &str, vals: &[String], c: &mut Config) {
        match opt {
            "bootstrap" => {
                for s in vals {
                    match parse_sockaddr(s, 53) {
                        Some(sa) => c.encrypted.bootstrap.push(sa),
                        None => self.err(opt, format!("'{s}' is not an address or address:port")),
                    }
                }
            }
            "ca_file" => {
                if let Some(v) = vals.last().and_then(|v| non_empty(v)) {
                    c.encrypted.ca_file = PathBuf::from(v);
                }
            }
            "allow_plain_fallback" => self.plain_fallback_option(opt, vals, c),
            _ => {
                for s in vals {
                    match crate::tls::spec::parse_pin(s) {
                        Ok(p) => c.encrypted.pins.push(p),
                        Err(e) => self.err(opt, e),
                    }
                }
            }
        }
    }

    /// What can only be judged with every option read: the CA file, bootstrap servers
    /// for DoH host names, pins that name no server.
    fn check_encrypted(&mut self, c: &Config) {
        use crate::tls::spec::EncryptedServer;
        let enc = &c.encrypted;
        if enc.servers.is_empty() {
            return;
        }
        if let Err(e) = crate::tls::load_roots(&enc.ca_file) {
            self.err("ca_file", e);
        }
        for s in &enc.servers {
            if let EncryptedServer::Https {
                host, addr: None, ..
            } = s
            {
                if enc.bootstrap.is_empty() {
                    self.err(
                        "bootstrap",
                        format!("the DoH server {host} is a name: give its address after # or set list bootstrap"),
                    );
                }
            }
        }
        for (name, _) in &enc.pins {
            if !enc
                .servers
                .iter()
                .any(|s| s.pin_name().eq_ignore_ascii_case(name))
            {
                self.err(
                    "tls_pin",
                    format!("'{name}' is not the name of a configured encrypted server"),
                );
            }
        }
        // A build without DoH refuses it rather than leave it unused.
        #[cfg(not(feature = "doh"))]
        for s in &enc.servers {
            if let EncryptedServer::Https { host, path, .. } = s {
                self.err(
                    "server",
                    format!(
                        "'https://{host}{path}': DNS over HTTPS is not available in this version \
                         of dproxy-full; use a DNS over TLS server (tls://ADDR#NAME)"
                    ),
                );
            }
        }
        self.check_plain_fallback(c);
    }

    /// `option allow_plain_fallback`: plain `list server` entries next to encrypted ones.
    fn plain_fallback_option(&mut self, opt: &str, vals: &[String], c: &mut Config) {
        if let Some(b) = vals.last().and_then(|v| self.boolean(opt, v)) {
            c.encrypted.allow_plain_fallback = b;
        }
    }

    /// Mixed with plain servers, queries may leave in the clear: only when the user
    /// said so, and then only after every encrypted server failed them.
    fn check_plain_fallback(&mut self, c: &Config) {
        if !c.servers.is_empty() && !c.encrypted.allow_plain_fallback {
            self.err(
                "server",
                "plain and encrypted servers are mixed: with encrypted servers configured, \
                 every server must be encrypted (nothing is sent in plaintext), unless \
                 option allow_plain_fallback '1' lets the plain ones answer when no \
                 encrypted server does"
                    .into(),
            );
        }
    }
}

fn non_empty(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

fn paths(vals: &[String]) -> Vec<PathBuf> {
    vals.iter()
        .filter_map(|v| non_empty(v))
        .map(PathBuf::from)
        .collect()
}

fn names(vals: &[String]) -> Vec<String> {
    vals.iter()
        .filter_map(|v| non_empty(v))
        .map(|v| v.trim_end_matches('.').to_ascii_lowercase())
        .collect()
}

/// Reads upstream servers from a resolv.conf-style file, skipping our own listen addresses.
pub fn read_resolvfile(path: &Path, own: &[SocketAddr]) -> std::io::Result<Vec<SocketAddr>> {
    let text = read_capped(path, MAX_CONFIG_BYTES)?;
    let text = String::from_utf8_lossy(&text);
    let mut out = Vec::new();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        if w.next() != Some("nameserver") {
            continue;
        }
        let Some(a) = w.next() else { continue };
        // A scoped address ("fe80::1%eth0") cannot be represented in SocketAddr parsing here.
        let Ok(ip) = a.parse::<IpAddr>() else {
            continue;
        };
        let sa = SocketAddr::new(ip, 53);
        let is_us = own.iter().any(|l| {
            l.port() == 53 && (l.ip() == ip || (l.ip().is_unspecified() && ip.is_loopback()))
        });
        if !is_us && !out.contains(&sa) {
            out.push(sa);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_entries_are_not_encrypted() {
        for plain in ["1.1.1.1", "1.1.1.1:53", "[::1]:53", "192.0.2.1#5300", "::1"] {
            assert!(!is_encrypted_server(plain), "{plain}");
        }
        for enc in ["tls://1.1.1.1", "https://a.b/", "1.1.1.1@853"] {
            assert!(is_encrypted_server(enc), "{enc}");
        }
    }

    /// The config text as the file `dproxy` in a scratch dir (removed when the guard drops).
    fn write_tmp(name: &str, text: &str) -> (crate::test_dir::TempDir, PathBuf) {
        let d = crate::test_dir::TempDir::new(&format!("cfg-{name}"));
        let p = d.write("dproxy", text.as_bytes());
        (d, p)
    }

    #[test]
    fn full_file_is_read() {
        let (_d, p) = write_tmp(
            "full",
            "config dproxy 'main'\n\toption port '5353'\n\tlist listen '127.0.0.1'\n\tlist listen '[::1]:53'\n\
             \tlist server '192.0.2.1'\n\tlist server '192.0.2.2#5300'\n\toption cache_size '64'\n\
             \toption min_ttl '10'\n\toption log_level 'debug'\n\toption domain 'LAN'\n\
             \toption offline_policy 'hold'\n\tlist allow '10.0.0.0/8'\n\toption enabled '1'\n",
        );
        let l = load(&p);
        let c = l.config.unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        assert_eq!(
            c.listen,
            vec![
                "127.0.0.1:5353".parse().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        assert_eq!(
            c.servers,
            vec![
                "192.0.2.1:53".parse().unwrap(),
                "192.0.2.2:5300".parse().unwrap()
            ]
        );
        assert_eq!(c.cache_size_kib, 64);
        assert_eq!(c.ttl.min_ttl, 10);
        assert_eq!(c.log_level, log::LevelFilter::Debug);
        assert_eq!(c.domain.as_deref(), Some("lan"));
        assert_eq!(c.offline_policy, OfflinePolicy::Hold);
        assert!(c.allow[0].contains("10.1.2.3".parse().unwrap()));
    }

    #[test]
    fn bad_values_name_file_section_and_option() {
        let (_d, p) = write_tmp(
            "bad",
            "config dproxy 'main'\n\toption port 'abc'\n\toption prefetch 'maybe'\n",
        );
        let errs = load(&p).config.unwrap_err();
        assert_eq!(errs.len(), 2);
        let line = errs[0].to_string();
        assert!(
            line.contains(&p.display().to_string()) && line.contains("main.port"),
            "{line}"
        );
        assert!(errs[1].to_string().contains("main.prefetch"));
    }

    #[test]
    fn blocklist_options() {
        let (_d, p) = write_tmp(
            "block",
            "config dproxy 'main'\n\tlist blocklist '/etc/dproxy/blocklists'\n\
             \tlist block_allow 'OK.Example.'\n\toption block_answer 'null'\n",
        );
        let c = load(&p).config.unwrap();
        assert_eq!(c.blocklists, [PathBuf::from("/etc/dproxy/blocklists")]);
        assert_eq!(c.block_allow, ["ok.example"]);
        assert_eq!(c.block_answer, BlockAnswer::Null);
        // A bad allow entry or answer is an error naming it, not a silent no-op.
        let (_d, p) = write_tmp(
            "block-bad",
            "config dproxy 'main'\n\tlist block_allow 'ok.example'\n\
             \tlist block_allow 'not a name'\n\toption block_answer 'drop'\n",
        );
        let errs = load(&p).config.unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].to_string().contains("'not a name'"), "{}", errs[0]);
        assert!(
            errs[1].to_string().contains("main.block_answer"),
            "{}",
            errs[1]
        );
    }

    #[test]
    fn unknown_option_is_a_warning() {
        let (_d, p) = write_tmp("unknown", "config dproxy 'main'\n\toption frobnicate '1'\n");
        let l = load(&p);
        assert!(l.config.is_ok());
        assert_eq!(l.warnings.len(), 1);
        assert!(l.warnings[0].to_string().contains("main.frobnicate"));
    }

    #[test]
    fn broken_files_are_errors_not_panics() {
        for (n, text) in [
            ("orphan", "option port '1'\n"),
            ("quote", "config dproxy 'main'\n\toption port '1\n"),
            ("nosection", "config other 'x'\n"),
            ("garbage", "\u{0}\u{1}zzz"),
            // uci_rs unwraps an error on two sections both named '@a'.
            ("parser-panic", "config dproxy '@a'\nconfig dproxy '@a'\n"),
        ] {
            let (_d, p) = write_tmp(n, text);
            assert!(load(&p).config.is_err(), "{n}");
        }
        let (_d, p) = write_tmp("binary", "");
        std::fs::write(&p, [0xff, 0xfe, 0x00]).unwrap();
        assert!(load(&p).config.is_err());
        let endless = load(Path::new("/dev/zero"));
        let problem = &endless.config.unwrap_err()[0].problem;
        assert!(problem.contains("larger than 1024 KiB"), "{problem}");
        assert!(load(Path::new("/nonexistent/dproxy")).config.is_err());
    }

    #[test]
    fn file_ending_inside_a_keyword_line_does_not_hang() {
        for (n, text, want) in [
            (
                "eoflist",
                "config dproxy 'main'\n\tlist",
                Some("expected option name"),
            ),
            (
                "eofopt",
                "config dproxy 'main'\n\toption port",
                Some("expected option value"),
            ),
            // A bare section header is a complete file: every option at its default.
            ("eofcfg", "config dproxy", None),
        ] {
            let (_d, p) = write_tmp(n, text);
            // The parser once looped at the end of such a file: a verdict must come in
            // bounded time, and it must be the right one.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(load(&p).config.map(|c| c.listen));
            });
            let verdict = rx
                .recv_timeout(std::time::Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("{n}: no verdict within 10 s"));
            match (verdict, want) {
                (Err(errs), Some(w)) => assert!(errs[0].problem.contains(w), "{n}: {errs:?}"),
                (Ok(listen), None) => assert_eq!(listen, Config::default().listen, "{n}"),
                (v, w) => panic!("{n}: got {v:?}, wanted {w:?}"),
            }
        }
    }

    #[test]
    fn anonymous_section_and_default_port() {
        let (_d, p) = write_tmp("anon", "config dproxy\n\toption port '5300'\n");
        let c = load(&p).config.unwrap();
        assert!(c.listen.iter().all(|l| l.port() == 5300));
        assert_eq!(c.listen.len(), 2);
    }

    #[test]
    fn resolvfile_skips_ourselves() {
        let (_d, p) = write_tmp("resolv", "");
        std::fs::write(
            &p,
            "# comment\nnameserver 127.0.0.1\nnameserver 192.0.2.9\nnameserver ::1\nnameserver bogus\nsearch lan\n",
        )
        .unwrap();
        let own = ["127.0.0.1:53".parse().unwrap()];
        let s = read_resolvfile(&p, &own).unwrap();
        assert_eq!(
            s,
            vec!["192.0.2.9:53".parse().unwrap(), "[::1]:53".parse().unwrap()]
        );
        let endless = read_resolvfile(Path::new("/dev/zero"), &own).unwrap_err();
        assert_eq!(endless.kind(), std::io::ErrorKind::InvalidData);
    }

    #[test]
    fn number_boolean_and_choice_options_are_read_and_checked() {
        let mut good = String::from("config dproxy 'main'\n");
        let mut bad = good.clone();
        for (name, min, max, _) in NUMBERS {
            good.push_str(&format!("\toption {name} '{max}'\n"));
            bad.push_str(&format!("\toption {name} '{}'\n", max + 1));
            if *min > 0 {
                bad.push_str(&format!("\toption {name} '{}'\n", min - 1));
            }
        }
        for (name, _) in BOOLEANS {
            good.push_str(&format!("\toption {name} 'off'\n"));
            bad.push_str(&format!("\toption {name} 'maybe'\n"));
        }
        good.push_str("\toption block_answer 'refused'\n\toption refuse_action 'drop'\n");
        bad.push_str("\toption offline_policy 'wait'\n");
        let (_d, p) = write_tmp("tables", &good);
        let c = load(&p).config.unwrap();
        assert_eq!(
            (
                c.cache_size_kib,
                c.ttl.neg_ttl,
                c.hold_timeout,
                c.stale_timeout_ms
            ),
            (4 * 1024 * 1024, 604_800, 300, 60_000)
        );
        assert_eq!(
            (c.persist_interval, c.rate_burst, c.memory_limit_kib),
            (604_800, 1_000_000, 4 * 1024 * 1024)
        );
        assert!(!c.prefetch && !c.local_service && !c.case_randomization && !c.rebind_protection);
        assert_eq!(c.block_answer, BlockAnswer::Refused);
        assert_eq!(c.refuse_action, RefuseAction::Drop);
        // uci keeps the last value of an option given twice: hold_timeout is '0' there.
        let (_d, p) = write_tmp("tables-bad", &bad);
        let errs = load(&p).config.unwrap_err();
        let texts: Vec<String> = errs
            .iter()
            .map(|e| format!("{}: {}", e.place, e.problem))
            .collect();
        assert!(
            texts.contains(
                &"main.cache_size: '4194305' is not a whole number from 0 to 4194304".to_string()
            ),
            "{texts:?}"
        );
        assert!(
            texts.contains(
                &"main.hold_timeout: '0' is not a whole number from 1 to 300".to_string()
            ),
            "{texts:?}"
        );
        assert!(
            texts.contains(
                &"main.trust_ad: 'maybe' is not a boolean (0/1, yes/no, on/off)".to_string()
            ),
            "{texts:?}"
        );
        assert!(
            texts.contains(&"main.offline_policy: 'wait' is not one of servfail, hold".to_string()),
            "{texts:?}"
        );
        assert_eq!(errs.len(), NUMBERS.len() + BOOLEANS.len() + 1, "{texts:?}");
    }

    #[test]
    fn cidr_matching() {
        let c = Cidr::parse("192.168.1.0/24").unwrap();
        assert!(c.contains("192.168.1.77".parse().unwrap()));
        assert!(!c.contains("192.168.2.1".parse().unwrap()));
        assert!(c.contains("::ffff:192.168.1.5".parse().unwrap()));
        let c = Cidr::parse("fd00::/8").unwrap();
        assert!(c.contains("fd12::1".parse().unwrap()));
        assert!(!c.contains("fe80::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("x").is_none());
        assert!(Cidr::parse("10.0.0.1")
            .unwrap()
            .contains("10.0.0.1".parse().unwrap()));
    }
}
