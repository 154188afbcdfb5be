//! The daemon's side of the control socket: accepts clients, executes their commands
//! and takes the stats snapshot that `control` renders.

use std::io;

use mio::{Interest, Token};

use crate::control::{self, Command, CtlConn};
use crate::server::{Conn, Listener, Server, CONN_BASE};
use crate::stats::{Snapshot, UpstreamRow};

impl Server {
    pub(crate) fn ctl_accept(&mut self, li: usize) {
        for _ in 0..16 {
            let r = match &self.listeners[li] {
                Listener::Ctl(l, _) => l.accept(),
                _ => return,
            };
            match r {
                Ok((stream, _)) => {
                    let c = CtlConn::new(stream);
                    if let Err(e) = self.register_conn(Conn::Ctl(c), Interest::READABLE) {
                        log::debug!("control: {e}");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    log::debug!("control accept: {e}");
                    return;
                }
            }
        }
    }

    pub(crate) fn ctl_ready(&mut self, ci: usize) {
        let command = match self.conns.get_mut(ci) {
            Some(Conn::Ctl(c)) => c.read_command(),
            _ => return,
        };
        if let Some(line) = command {
            let may_dump = || matches!(self.conns.get(ci), Some(Conn::Ctl(c)) if c.may_dump());
            let answer = match Command::parse(&line) {
                Command::Dump if !may_dump() => control::DUMP_REFUSED.to_string(),
                cmd => self.ctl_execute(cmd, &line),
            };
            if let Some(Conn::Ctl(c)) = self.conns.get_mut(ci) {
                c.answer(self.poll.registry(), Token(CONN_BASE + ci), answer);
            }
        }
        let done = match self.conns.get_mut(ci) {
            Some(Conn::Ctl(c)) => c.write_answer(),
            _ => false,
        };
        if done {
            self.close_conn(ci);
        }
    }

    fn ctl_execute(&mut self, cmd: Command, line: &str) -> String {
        match cmd {
            Command::Stats => control::text::stats(&self.snapshot()),
            Command::StatsJson => control::json::stats(&self.snapshot()),
            Command::Dump => {
                let now = self.now_secs();
                let mut out = String::new();
                self.cache
                    .for_each(|e| crate::dump::entry(&mut out, e, now));
                out
            }
            Command::Flush => {
                let n = self.cache.len();
                self.cache.clear();
                log::info!("cache flushed ({n} entries)");
                format!("flushed {n}\n")
            }
            Command::LinkUp => {
                self.link_up("control socket");
                "link up\n".into()
            }
            Command::Blocked(name) => self.ctl_blocked(name),
            Command::LinkDown => {
                self.link_down("control socket");
                "link down\n".into()
            }
            Command::TimeSynced => self.time_synced(),
            Command::Unknown => control::unknown(line),
        }
    }

    /// `ctl time-synced`: NTP set the clock, validity dates are checked in full from now
    /// on. A build without certificates or signatures has nothing to change.
    fn time_synced(&mut self) -> String {
        #[cfg(any(feature = "tls", feature = "dnssec"))]
        if !self.clock.synced {
            self.clock.synced = true;
            log::info!("clock synced: certificate validity dates are checked in full");
            #[cfg(feature = "tls")]
            self.transports.set_clock(self.poll.registry(), self.clock);
            self.write_clock_marker();
        }
        "clock=synced\n".into()
    }

    /// Leaves the marker that lets a restart in this boot start synced (see
    /// `crate::clock_trust`). Without it a restart starts unsynced: logged, no error.
    #[cfg(any(feature = "tls", feature = "dnssec"))]
    fn write_clock_marker(&self) {
        let (Some(sock), Some(boot)) = (&self.cfg.control_socket, crate::clock_trust::boot_secs())
        else {
            return;
        };
        let path = crate::clock_trust::marker_path(sock);
        let text = crate::clock_trust::marker_text(self.wall_secs(), boot);
        if let Err(e) = crate::persist::write_atomic(&path, text.as_bytes()) {
            log::warn!(
                "{}: {e}; a restart will start with the clock unsynced",
                path.display()
            );
        }
    }

    /// At start: synced if this boot's sync left its marker (see `crate::clock_trust`).
    #[cfg(any(feature = "tls", feature = "dnssec"))]
    pub(crate) fn restore_clock(&mut self) {
        let (Some(sock), Some(boot)) = (&self.cfg.control_socket, crate::clock_trust::boot_secs())
        else {
            return;
        };
        let path = crate::clock_trust::marker_path(sock);
        let Ok(text) = crate::config::read_capped(&path, 256) else {
            return;
        };
        let text = String::from_utf8_lossy(&text);
        if crate::clock_trust::marker_holds(&text, self.wall_secs(), boot) {
            self.clock.synced = true;
            log::info!(
                "clock synced in this boot before the restart ({}): certificate validity dates are checked in full",
                path.display()
            );
            #[cfg(feature = "tls")]
            self.transports.set_clock(self.poll.registry(), self.clock);
        } else {
            log::info!(
                "{}: from an earlier boot or a clock reset; the clock counts as unsynced",
                path.display()
            );
        }
    }

    /// What `ctl stats` shows, as of this loop turn.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let link = if self.link.told_down {
            "down"
        } else if self.link.auto_down {
            "down-auto"
        } else {
            "up"
        };
        Snapshot {
            link,
            link_auto: self.link.auto_down,
            link_since: self.wall_of(self.link.since.unwrap_or(self.start)),
            started: self.wall_of(self.start),
            uptime: self.now.saturating_duration_since(self.start).as_secs(),
            counters: self.stats.clone(),
            cache_entries: self.cache.len() as u64,
            cache_bytes: self.cache.bytes() as u64,
            cache_budget: self.cache.budget() as u64,
            cache_inserted: self.cache.inserted,
            cache_live_freed: self.cache.live_freed,
            extra: self.extra_stats(),
            config_file: self
                .cfg
                .file
                .as_deref()
                .and_then(|p| p.to_str())
                .map(str::to_string),
            config: self.config_status.clone(),
            upstreams: self
                .upstreams
                .list
                .iter()
                .map(|u| UpstreamRow {
                    addr: u.addr,
                    up: u.is_up(),
                    srtt_ms: u.srtt_ms,
                    failures: u.fails,
                    queries: u.queries,
                    answers: u.answers,
                    timeouts: u.timeouts,
                })
                .collect(),
            #[cfg(feature = "tls")]
            tls_upstreams: self.transports.tls_status(),
            #[cfg(any(feature = "tls", feature = "dnssec"))]
            clock: self.clock.mode(),
        }
    }

    /// UNIX seconds of a moment of this loop's monotonic clock.
    fn wall_of(&self, t: std::time::Instant) -> u64 {
        self.wall_secs()
            .saturating_sub(self.now.saturating_duration_since(t).as_secs())
    }
}
