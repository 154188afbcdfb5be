//! The control socket (`dproxy ctl`): stats (text or JSON), dump, flush, link up/down over a
//! Unix socket.
//!
//! One command per connection, one line; the answer is text and the connection closes.

use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Token};

use crate::server::{Conn, Listener, Server, CONN_BASE};

/// Longest command line accepted.
const MAX_COMMAND: usize = 256;

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

impl Server {
    pub(crate) fn ctl_accept(&mut self, li: usize) {
        for _ in 0..16 {
            let r = match &self.listeners[li] {
                Listener::Ctl(l, _) => l.accept(),
                _ => return,
            };
            match r {
                Ok((stream, _)) => {
                    let c = CtlConn {
                        stream,
                        rbuf: Vec::new(),
                        wbuf: Vec::new(),
                        wpos: 0,
                        answered: false,
                    };
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
        let mut chunk = [0u8; 256];
        let mut command = None;
        if let Some(Conn::Ctl(c)) = self.conns.get_mut(ci) {
            while !c.answered {
                match c.stream.read(&mut chunk) {
                    Ok(0) => {
                        command = Some(std::mem::take(&mut c.rbuf));
                        break;
                    }
                    Ok(n) => {
                        c.rbuf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = c.rbuf.iter().position(|&b| b == b'\n') {
                            c.rbuf.truncate(i);
                            command = Some(std::mem::take(&mut c.rbuf));
                            break;
                        }
                        if c.rbuf.len() > MAX_COMMAND {
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
        }
        if let Some(cmd) = command {
            let text = String::from_utf8_lossy(&cmd).trim().to_string();
            let answer = if text.split_whitespace().eq(["dump"])
                && !matches!(self.conns.get(ci), Some(Conn::Ctl(c)) if may_dump(&c.stream))
            {
                "error: dump is only for root and the user dproxy runs as\n".to_string()
            } else {
                self.ctl_execute(&text)
            };
            if let Some(Conn::Ctl(c)) = self.conns.get_mut(ci) {
                c.wbuf = answer.into_bytes();
                c.answered = true;
                let _ = self.poll.registry().reregister(
                    &mut c.stream,
                    Token(CONN_BASE + ci),
                    Interest::WRITABLE,
                );
            }
        }
        let mut done = false;
        if let Some(Conn::Ctl(c)) = self.conns.get_mut(ci) {
            if c.answered {
                while c.wpos < c.wbuf.len() {
                    match c.stream.write(&c.wbuf[c.wpos..]) {
                        Ok(n) if n > 0 => c.wpos += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        _ => {
                            c.wpos = c.wbuf.len();
                        }
                    }
                }
                done = c.wpos >= c.wbuf.len();
            }
        }
        if done {
            self.close_conn(ci);
        }
    }

    fn ctl_execute(&mut self, cmd: &str) -> String {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        match words.as_slice() {
            ["stats"] => self.stats_text(),
            ["stats", "--json"] => self.stats_json(),
            ["dump"] => {
                let now = self.now_secs();
                let mut out = String::new();
                self.cache
                    .for_each(|e| crate::dump::entry(&mut out, e, now));
                out
            }
            ["flush"] => {
                let n = self.cache.len();
                self.cache.clear();
                log::info!("cache flushed ({n} entries)");
                format!("flushed {n}\n")
            }
            ["link", "up"] => {
                self.link_up("control socket");
                "link up\n".into()
            }
            ["blocked", name] => self.ctl_blocked(name),
            ["link", "down"] => {
                self.link_down("control socket");
                "link down\n".into()
            }
            _ => format!("error: unknown command '{cmd}'\n"),
        }
    }

    pub(crate) fn stats_text(&self) -> String {
        use std::fmt::Write;
        let s = &self.stats;
        let mut o = String::new();
        let link = if self.link.told_down {
            "down"
        } else if self.link.auto_down {
            "down-auto"
        } else {
            "up"
        };
        let uptime = self.now.saturating_duration_since(self.start).as_secs();
        let rows = [
            ("uptime", uptime),
            ("queries", s.queries),
            ("replies", s.replies),
            ("hits", s.hits),
            ("misses", s.misses),
            ("merged", s.merged),
            ("local", s.local),
            ("blocked", s.blocked),
            ("stale", s.stale),
            ("prefetch", s.prefetch),
            ("servfail", s.servfail),
            ("truncated", s.truncated),
            ("upstream_queries", s.upstream_queries),
            ("upstream_answers", s.upstream_answers),
            ("tcp_clients", s.tcp_clients),
            ("cache_entries", self.cache.len() as u64),
            ("cache_bytes", self.cache.bytes() as u64),
            ("cache_budget", self.cache.budget() as u64),
            ("drop_malformed", s.drop_malformed),
            ("drop_mismatch", s.drop_mismatch),
            ("drop_upstream_malformed", s.drop_upstream_malformed),
            ("drop_tcp_full", s.drop_tcp_full),
            ("drop_overload", s.drop_overload),
            ("drop_case", s.drop_case),
            ("drop_rebind", s.drop_rebind),
            ("drop_refused", s.drop_refused),
            ("drop_ratelimit", s.drop_ratelimit),
        ];
        let _ = writeln!(o, "link={link}");
        for (k, v) in rows {
            let _ = writeln!(o, "{k}={v}");
        }
        for (k, v) in self.extra_stats() {
            let _ = writeln!(o, "{k}={v}");
        }
        self.config_status.write_text(&mut o);
        for (i, u) in self.upstreams.list.iter().enumerate() {
            let state = if u.is_up() { "up" } else { "down" };
            let _ = writeln!(o, "upstream.{i}.addr={}", u.addr);
            let _ = writeln!(o, "upstream.{i}.state={state}");
            let _ = writeln!(o, "upstream.{i}.srtt_ms={}", u.srtt_ms);
            let _ = writeln!(o, "upstream.{i}.queries={}", u.queries);
            let _ = writeln!(o, "upstream.{i}.answers={}", u.answers);
            let _ = writeln!(o, "upstream.{i}.timeouts={}", u.timeouts);
        }
        o
    }
}

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
    ];
    let blocked = matches!(words.as_slice(), ["blocked", _]);
    if !known.contains(&cmd.as_str()) && !blocked {
        eprintln!(
            "usage: dproxy ctl [--socket PATH] stats [--json]|dump|flush|link up|link down|blocked NAME"
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
