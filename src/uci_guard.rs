//! Runs the uci_rs parser so that a panic or a hang inside it cannot take the daemon down.
//!
//! uci_rs 0.1.2 unwraps in places a config file can reach (two sections both named
//! `'@a'` panic it) and has looped forever on input `config::load` now fixes up first.
//! With unwinding (unit tests, fuzzing, builds that force panic=unwind) its panics are
//! caught. The release profile aborts on panic to save flash, so there the file is first
//! parsed by a short-lived child process: if the child dies or overruns its alarm, the
//! file is reported as unparseable and the daemon goes on with its old config.

use uci_rs::Uci;

/// How long the trial parse may take before it counts as a hang.
#[cfg(panic = "abort")]
const TRIAL_SECONDS: u32 = 10;

/// Parses `text` (named `name` in messages) with uci_rs.
pub fn parse(name: &str, text: String) -> Result<Uci, String> {
    #[cfg(panic = "abort")]
    trial_in_child(name, &text)?;
    let parsed = std::panic::catch_unwind(move || uci_parse(name, text));
    match parsed {
        Ok(Ok(u)) => Ok(u),
        Ok(Err(e)) => Err(e.message),
        Err(_) => Err("cannot parse as UCI".into()),
    }
}

/// One call site for the parser, so that it is not inlined twice.
#[inline(never)]
fn uci_parse(name: &str, text: String) -> uci_rs::Result<Uci> {
    uci_rs::parse_raw_to_uci(name, text)
}

/// Parses once in a forked child. Parsing is deterministic, so a child that exits
/// cleanly means the parent's own parse cannot panic or hang.
#[cfg(panic = "abort")]
fn trial_in_child(name: &str, text: &str) -> Result<(), String> {
    // SAFETY: plain libc calls; the daemon is single-threaded, and the child only parses
    // (allocating on a copy of the heap) and leaves with _exit, running no destructors.
    unsafe {
        // An inherited SIG_IGN for SIGCHLD would reap the child before waitpid sees it.
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        let pid = libc::fork();
        if pid < 0 {
            log::warn!("cannot fork to check {name}; parsing it in place");
            return Ok(());
        }
        if pid == 0 {
            let mut alarm = std::mem::zeroed::<libc::sigset_t>();
            libc::sigemptyset(&mut alarm);
            libc::sigaddset(&mut alarm, libc::SIGALRM);
            libc::sigprocmask(libc::SIG_UNBLOCK, &alarm, std::ptr::null_mut());
            libc::signal(libc::SIGALRM, libc::SIG_DFL);
            libc::alarm(TRIAL_SECONDS);
            // A crash here is expected on bad input: no core file for it.
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &none);
            // The panic message would only repeat what the parent reports.
            std::panic::set_hook(Box::new(|_| {}));
            let _ = uci_parse(name, text.to_string());
            libc::_exit(0);
        }
        let mut status = 0;
        loop {
            let r = libc::waitpid(pid, &mut status, 0);
            if r == pid {
                break;
            }
            if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            log::warn!("lost the child checking {name}; parsing it in place");
            return Ok(());
        }
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            Ok(())
        } else if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGALRM {
            Err(format!(
                "cannot parse as UCI (the parser ran for over {TRIAL_SECONDS} s)"
            ))
        } else {
            Err("cannot parse as UCI".into())
        }
    }
}
