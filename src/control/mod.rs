//! The control socket (`dproxy ctl`): stats (text or JSON), dump, flush, link up/down over a
//! Unix socket.
//!
//! One command per connection, one line; the answer is text and the connection closes.
//! This module holds the socket I/O, the commands and their rendering from a
//! [`crate::stats::Snapshot`]; the daemon executes the commands.

use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

pub mod json;
pub mod text;

/// Longest command line accepted.
const MAX_COMMAND: usize = 256;

/// One client of the control socket.
pub struct CtlConn {
    pub stream: UnixStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    answered: bool,
}

/// Binds the control socket with mode 0600, replacing a stale socket file left by a crash.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if m.file_type().is_socket() {
            // A live daemon would answer; a dead one's socket file is just in the way.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another dproxy is using it",
                ));
            }
            std::fs::remove_file(path)?;
        } else {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a socket",
            ));
        }
    }
    // The socket file takes its mode from the umask at bind(2): make that 0600 already,
    // so that nobody can connect in the moment before the chmod. One thread: no race.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let l = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let l = l?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// `dump` shows the LAN's browsing history: only root and the user dproxy runs as may
/// have it, whatever the socket file's mode has been changed to. Checked on the
/// connection itself (SO_PEERCRED), which a client cannot forge.
fn may_dump(stream: &UnixStream) -> bool {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    match getsockopt(stream, PeerCredentials) {
        Ok(c) => c.uid() == 0 || c.uid() == nix::unistd::geteuid().as_raw(),
        Err(_) => false,
    }
}

impl CtlConn {
    pub fn new(stream: UnixStream) -> CtlConn {
        CtlConn {
            stream,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            wpos: 0,
            answered: false,
        }
    }

    /// Reads what the client sent; the command once its line is complete (or the client
    /// stopped writing). A line too long or a read error is an empty (unknown) command.
    pub fn read_command(&mut self) -> Option<String> {
        let mut chunk = [0u8; 256];
        let mut command = None;
        while !self.answered {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    command = Some(std::mem::take(&mut self.rbuf));
                    break;
                }
                Ok(n) => {
                    self.rbuf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = self.rbuf.iter().position(|&b| b == b'\n') {
                        self.rbuf.truncate(i);
                        command = Some(std::mem::take(&mut self.rbuf));
                        break;
                    }
                    if self.rbuf.len() > MAX_COMMAND {
                        command = Some(Vec::new());
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    command = Some(Vec::new());
                    break;
                }
            }
        }
        command.map(|c| String::from_utf8_lossy(&c).trim().to_string())
    }

    /// May this client have `dump`?
    pub fn may_dump(&self) -> bool {
        may_dump(&self.stream)
    }

    /// Sets the answer; the connection now waits to be writable.
    pub fn answer(&mut self, reg: &Registry, token: Token, text: String) {
        self.wbuf = text.into_bytes();
        self.answered = true;
        let _ = reg.reregister(&mut self.stream, token, Interest::WRITABLE);
    }

    /// Writes what it can of the answer; true once all is written (or the client is gone).
    pub fn write_answer(&mut self) -> bool {
        if !self.answered {
            return false;
        }
        while self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(n) if n > 0 => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                _ => {
                    self.wpos = self.wbuf.len();
                }
            }
        }
        self.wpos >= self.wbuf.len()
    }
}

/// A command line of the control socket.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Stats,
    StatsJson,
    Dump,
    Flush,
    LinkUp,
    LinkDown,
    Blocked(&'a str),
    TimeSynced,
    Unknown,
}

impl Command<'_> {
    pub fn parse(line: &str) -> Command<'_> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["stats"] => Command::Stats,
            ["stats", "--json"] => Command::StatsJson,
            ["dump"] => Command::Dump,
            ["flush"] => Command::Flush,
            ["link", "up"] => Command::LinkUp,
            ["link", "down"] => Command::LinkDown,
            ["blocked", name] => Command::Blocked(name),
            ["time-synced"] => Command::TimeSynced,
            _ => Command::Unknown,
        }
    }
}

/// The answer to a command nobody knows.
pub fn unknown(line: &str) -> String {
    format!("error: unknown command '{line}'\n")
}

/// The answer to `dump` from a client that may not have it.
pub const DUMP_REFUSED: &str = "error: dump is only for root and the user dproxy runs as\n";

/// `dproxy ctl [--socket PATH] COMMAND...`: returns the exit status.
pub fn ctl_main(args: &[String]) -> i32 {
    let mut socket = PathBuf::from(crate::config::DEFAULT_CONTROL_SOCKET);
    let mut words = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--socket" | "-s" => match it.next() {
                Some(p) => socket = PathBuf::from(p),
                None => {
                    eprintln!("dproxy ctl: --socket needs a path");
                    return 2;
                }
            },
            _ => words.push(a.as_str()),
        }
    }
    let cmd = words.join(" ");
    let known = [
        "stats",
        "stats --json",
        "dump",
        "flush",
        "link up",
        "link down",
        "time-synced",
    ];
    let blocked = matches!(words.as_slice(), ["blocked", _]);
    if !known.contains(&cmd.as_str()) && !blocked {
        eprintln!(
            "usage: dproxy ctl [--socket PATH] stats [--json]|dump|flush|link up|link down|blocked NAME|time-synced"
        );
        return 2;
    }
    let mut s = match std::os::unix::net::UnixStream::connect(&socket) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dproxy ctl: {}: {e}", socket.display());
            return 1;
        }
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    if let Err(e) = s.write_all(format!("{cmd}\n").as_bytes()) {
        eprintln!("dproxy ctl: {e}");
        return 1;
    }
    let mut out = Vec::new();
    if let Err(e) = s.read_to_end(&mut out) {
        eprintln!("dproxy ctl: {e}");
        return 1;
    }
    let _ = io::stdout().write_all(&out);
    if out.starts_with(b"error:") {
        1
    } else {
        0
    }
}
