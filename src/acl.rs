//! Who may ask: loopback and on-link clients by default (`local_service`), `allow` and
//! `deny` blocks on top, and a per-client token bucket (`rate_limit`, `rate_burst`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::{Cidr, Config};

/// The access rules in force.
#[derive(Debug, Default)]
pub struct Acl {
    local_service: bool,
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
    /// Subnets of our own interfaces, read from the kernel.
    on_link: Vec<Cidr>,
}

fn netmask_prefix(mask: IpAddr) -> u8 {
    match mask {
        IpAddr::V4(m) => u32::from(m).count_ones() as u8,
        IpAddr::V6(m) => u128::from(m).count_ones() as u8,
    }
}

/// The subnets directly attached to this host's interfaces.
pub fn attached_subnets() -> Vec<Cidr> {
    let mut out = Vec::new();
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return out;
    };
    for ifa in addrs {
        let (Some(a), Some(m)) = (ifa.address, ifa.netmask) else {
            continue;
        };
        let pair = match (a.as_sockaddr_in(), m.as_sockaddr_in()) {
            (Some(a), Some(m)) => Some((IpAddr::V4(a.ip()), IpAddr::V4(m.ip()))),
            _ => match (a.as_sockaddr_in6(), m.as_sockaddr_in6()) {
                (Some(a), Some(m)) => Some((IpAddr::V6(a.ip()), IpAddr::V6(m.ip()))),
                _ => None,
            },
        };
        if let Some((ip, mask)) = pair {
            let c = Cidr {
                addr: ip,
                prefix: netmask_prefix(mask),
            };
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    out
}

impl Acl {
    pub fn new(cfg: &Config) -> Acl {
        let mut a = Acl {
            local_service: cfg.local_service,
            allow: cfg.allow.clone(),
            deny: cfg.deny.clone(),
            on_link: Vec::new(),
        };
        a.refresh();
        a
    }

    /// Re-reads the interfaces' subnets (after SIGHUP and link events).
    pub fn refresh(&mut self) {
        if self.local_service {
            self.on_link = attached_subnets();
        }
    }

    /// deny wins; then allow; then, with local_service, loopback and on-link clients;
    /// without it, everyone unless an allow list exists.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        if self.deny.iter().any(|c| c.contains(ip)) {
            return false;
        }
        if self.allow.iter().any(|c| c.contains(ip)) {
            return true;
        }
        if self.local_service {
            return ip.is_loopback() || self.on_link.iter().any(|c| c.contains(ip));
        }
        self.allow.is_empty()
    }
}

/// Per-client token buckets; bounded in size. Each bucket is kept as the time at which
/// it will be full again (the generic cell rate algorithm): exact at any spacing of a
/// client's queries, where counting whole tokens since the last refill dropped the part
/// of the interval that made no whole token (a client over the limit got about three
/// quarters of `rate_limit`).
pub struct RateLimiter {
    /// Tokens per second (0 = off).
    rate: u32,
    /// The time one token stands for.
    interval: Duration,
    /// How far ahead of now a bucket may be: `burst` - 1 tokens.
    tolerance: Duration,
    buckets: HashMap<IpAddr, Instant>,
}

/// Clients tracked at once; past this, idle ones are forgotten.
const MAX_TRACKED: usize = 8192;

impl RateLimiter {
    pub fn new(rate: u32, burst: u32) -> RateLimiter {
        let burst = if burst == 0 { rate.max(1) } else { burst };
        let interval = Duration::from_secs(1) / rate.max(1);
        RateLimiter {
            rate,
            interval,
            tolerance: interval * (burst - 1),
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for `ip`; false if the client is over its rate.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        if self.buckets.len() >= MAX_TRACKED && !self.buckets.contains_key(&ip) {
            // Forget clients whose bucket has refilled: they are indistinguishable from new.
            self.buckets.retain(|_, full_at| *full_at > now);
            if self.buckets.len() >= MAX_TRACKED {
                self.buckets.clear();
            }
        }
        let full_at = self.buckets.entry(ip).or_insert(now);
        let from = (*full_at).max(now);
        if from.saturating_duration_since(now) > self.tolerance {
            return false;
        }
        *full_at = from + self.interval;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg(local: bool, allow: &[&str], deny: &[&str]) -> Config {
        Config {
            local_service: local,
            allow: allow.iter().filter_map(|s| Cidr::parse(s)).collect(),
            deny: deny.iter().filter_map(|s| Cidr::parse(s)).collect(),
            ..Config::default()
        }
    }

    #[test]
    fn local_service_admits_loopback_and_on_link_only() {
        let mut a = Acl::new(&cfg(true, &[], &[]));
        a.on_link = vec![Cidr::parse("192.168.1.0/24").unwrap()];
        assert!(a.permits("127.0.0.1".parse().unwrap()));
        assert!(a.permits("::1".parse().unwrap()));
        assert!(a.permits("192.168.1.20".parse().unwrap()));
        assert!(a.permits("::ffff:192.168.1.20".parse().unwrap()));
        assert!(!a.permits("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn deny_beats_allow_beats_local() {
        let mut a = Acl::new(&cfg(
            true,
            &["203.0.113.0/24"],
            &["127.0.0.2", "203.0.113.66"],
        ));
        a.on_link.clear();
        assert!(a.permits("203.0.113.9".parse().unwrap()));
        assert!(!a.permits("203.0.113.66".parse().unwrap()));
        assert!(!a.permits("127.0.0.2".parse().unwrap()));
        assert!(a.permits("127.0.0.1".parse().unwrap()));
        let open = Acl::new(&cfg(false, &[], &[]));
        assert!(open.permits("198.51.100.1".parse().unwrap()));
        let listed = Acl::new(&cfg(false, &["10.0.0.0/8"], &[]));
        assert!(!listed.permits("198.51.100.1".parse().unwrap()));
    }

    #[test]
    fn attached_subnets_include_loopback() {
        let s = attached_subnets();
        assert!(
            s.iter().any(|c| c.contains("127.0.0.1".parse().unwrap())),
            "{s:?}"
        );
    }

    #[test]
    fn token_bucket_limits_and_refills() {
        let mut r = RateLimiter::new(10, 5);
        let t0 = Instant::now();
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let other: IpAddr = "127.0.0.3".parse().unwrap();
        let granted = (0..20).filter(|_| r.allow(ip, t0)).count();
        assert_eq!(granted, 5);
        assert!(r.allow(other, t0));
        assert!(r.allow(ip, t0 + Duration::from_millis(100)));
        assert!(!r.allow(ip, t0 + Duration::from_millis(100)));
        assert!(RateLimiter::new(0, 0).allow(ip, t0));
    }

    #[test]
    fn a_client_over_the_limit_gets_the_configured_rate() {
        // 100 per second asked every 7 ms (143/s): over 10 s the client gets its burst
        // and then 100 a second, whatever the spacing of its queries against the refill.
        let mut r = RateLimiter::new(100, 100);
        let t0 = Instant::now();
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let granted = (0..=10_000 / 7)
            .filter(|i| r.allow(ip, t0 + Duration::from_millis(i * 7)))
            .count();
        assert!((1_099..=1_101).contains(&granted), "{granted}");
    }

    #[test]
    fn tracked_clients_are_bounded() {
        let mut r = RateLimiter::new(1, 1);
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 100) {
            r.allow(IpAddr::V4(i.into()), t0);
        }
        assert!(r.buckets.len() <= MAX_TRACKED);
    }
}
