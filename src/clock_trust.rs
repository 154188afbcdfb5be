//! Whether the system clock can be trusted for certificate (and signature) validity.
//!
//! Routers without a real-time clock boot with the time of the newest file in /etc, often
//! months behind. Until something says the time is right (an NTP sync reported through
//! `dproxy ctl time-synced`), a check of a validity window ignores its start and
//! compares its end with the later of the system time and the time dproxy was built:
//! a clock in the past must not lock the router out of its encrypted upstreams, and no
//! router runs a build from the future. Once synced, the checks are the full ones.

/// UNIX seconds of the build: `SOURCE_DATE_EPOCH` when set (reproducible builds), the
/// time of the build otherwise (see build.rs).
pub const BUILD_TIME: u64 = parse_secs(env!("DPROXY_BUILD_TIME"));

const fn parse_secs(s: &str) -> u64 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut n: u64 = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        n = n.saturating_mul(10).saturating_add((b[i] - b'0') as u64);
        i += 1;
    }
    n
}

/// What is known of the system clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClockTrust {
    /// The time was set by NTP (or the operator said so) since dproxy started.
    pub synced: bool,
}

/// The moment a validity window is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckTime {
    /// Both ends of the window count.
    Full(u64),
    /// Only the end counts: the start may be after this moment.
    EndOnly(u64),
}

impl ClockTrust {
    /// How to check a validity window at system time `now` (UNIX seconds).
    pub fn verify_time(self, now: u64, build_time: u64) -> CheckTime {
        if self.synced {
            CheckTime::Full(now)
        } else {
            CheckTime::EndOnly(now.max(build_time))
        }
    }

    /// The word `ctl stats` shows.
    pub fn mode(self) -> &'static str {
        if self.synced {
            "synced"
        } else {
            "unsynced"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_checks_the_end_against_the_later_of_now_and_the_build() {
        let c = ClockTrust { synced: false };
        assert_eq!(c.verify_time(100, 500), CheckTime::EndOnly(500));
        assert_eq!(c.verify_time(900, 500), CheckTime::EndOnly(900));
        let s = ClockTrust { synced: true };
        assert_eq!(s.verify_time(100, 500), CheckTime::Full(100));
        assert_eq!(c.mode(), "unsynced");
        assert_eq!(s.mode(), "synced");
    }

    #[test]
    fn build_time_is_a_plausible_unix_time() {
        assert_eq!(parse_secs("1700000000\n"), 1_700_000_000);
        assert_eq!(parse_secs("x"), 0);
        // The build script wrote it, and the build is not in the future.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        assert!(BUILD_TIME > 0 && BUILD_TIME <= now, "{BUILD_TIME} {now}");
    }
}
