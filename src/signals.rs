//! Signals delivered into the event loop through a signalfd.

use std::os::fd::AsRawFd;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// What a signal asks the daemon to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Exit,
    Reload,
    LinkUp,
    LinkDown,
}

pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Blocks the signals dproxy handles and opens a signalfd for them.
    pub fn new() -> std::io::Result<Signals> {
        let mut mask = SigSet::empty();
        for s in [
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
            Signal::SIGUSR1,
            Signal::SIGUSR2,
        ] {
            mask.add(s);
        }
        mask.thread_block()?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(Signals { fd })
    }

    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }

    /// The next pending signal, if any.
    pub fn pending(&mut self) -> Option<Action> {
        loop {
            let info = self.fd.read_signal().ok()??;
            let action = match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGTERM) | Ok(Signal::SIGINT) => Action::Exit,
                Ok(Signal::SIGHUP) => Action::Reload,
                Ok(Signal::SIGUSR1) => Action::LinkUp,
                Ok(Signal::SIGUSR2) => Action::LinkDown,
                _ => continue,
            };
            return Some(action);
        }
    }
}
