//! The daemon's log: one line per record on stderr, `dproxy: LEVEL: message`.
//!
//! procd and syslog take stderr line by line, so each record is formatted first and
//! written with a single call: lines of two records never mix. The level shown is
//! chosen by `log::set_max_level` (config `log_level`, `-v`, `-q`).

use std::io::Write;

struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, rec: &log::Record<'_>) {
        let level = match rec.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warn",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        let line = format!("dproxy: {level}: {}\n", rec.args());
        // Nothing useful can be done when stderr is gone; the daemon keeps serving.
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

static LOGGER: StderrLog = StderrLog;

/// Installs the logger (once; later calls change nothing) at level info.
pub fn init() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}
