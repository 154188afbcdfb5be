//! Whether the system clock can be trusted for certificate (and signature) validity.
//!
//! Routers without a real-time clock boot with the time of the newest file in /etc, often
//! months behind. Until something says the time is right (an NTP sync reported through
//! `dproxy ctl time-synced`), a check of a validity window ignores its start and
//! compares its end with the later of the system time and the time dproxy was built:
//! a clock in the past must not lock the router out of its encrypted upstreams, and no
//! router runs a build from the future. Once synced, the checks are the full ones.
//!
//! The sync outlives a restart of the daemon (package upgrade, respawn) but not a reboot:
//! `ctl time-synced` leaves a marker next to the control socket holding the wall time
//! and the time since boot at the sync; at start the mode is synced again only if the
//! wall clock has since moved exactly as the boot clock did, which fails after a reboot
//! (the boot clock starts again, the wall clock is the RTC-less guess) or a clock reset,
//! even where the file is not on a tmpfs.

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

/// How far the wall clock may have drifted from the boot clock since the sync for the
/// marker to still count (NTP slews a few ms per second at most).
const MARKER_SLACK: u64 = 60;

/// The marker file that belongs to a control socket.
pub fn marker_path(control_socket: &std::path::Path) -> std::path::PathBuf {
    let mut p = control_socket.as_os_str().to_owned();
    p.push(".clock-synced");
    p.into()
}

/// Seconds since boot (suspend included), None where the kernel has no such clock.
pub fn boot_secs() -> Option<u64> {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).ok()?;
    u64::try_from(t.tv_sec()).ok()
}

/// The marker's text for a sync at wall time `wall` and boot time `boot`.
pub fn marker_text(wall: u64, boot: u64) -> String {
    format!("{wall} {boot}\n")
}

/// Whether a marker says the clock was synced in this boot and has not been reset
/// since: the wall clock moved on by the same amount as the boot clock.
pub fn marker_holds(text: &str, wall_now: u64, boot_now: u64) -> bool {
    let mut it = text.split_ascii_whitespace().map(str::parse::<u64>);
    let (Some(Ok(wall)), Some(Ok(boot)), None) = (it.next(), it.next(), it.next()) else {
        return false;
    };
    if boot_now < boot || wall_now < wall {
        return false;
    }
    (wall_now - wall).abs_diff(boot_now - boot) <= MARKER_SLACK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_holds_in_the_same_boot_only() {
        let m = marker_text(1_800_000_000, 500);
        // Restarted an hour later, same boot: synced.
        assert!(marker_holds(&m, 1_800_003_600, 4_100));
        // Rebooted: the boot clock is behind the marker's.
        assert!(!marker_holds(&m, 1_800_003_600, 30));
        // Rebooted long ago with the clock in the past (no RTC), or set back or on.
        assert!(!marker_holds(&m, 1_700_000_000, 9_000));
        assert!(!marker_holds(&m, 1_800_010_000, 4_100));
        // Within the slack of drift.
        assert!(marker_holds(&m, 1_800_003_650, 4_100));
        assert!(!marker_holds("", 1, 1));
        assert!(!marker_holds("1 2 3", 1, 2));
        assert!(!marker_holds("x 2", 1, 2));
        assert_eq!(
            marker_path(std::path::Path::new("/var/run/dproxy/dproxy.sock")),
            std::path::PathBuf::from("/var/run/dproxy/dproxy.sock.clock-synced")
        );
        assert!(boot_secs().is_some());
    }

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
