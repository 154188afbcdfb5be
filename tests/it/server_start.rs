//! Starting a test's servers (nsd, unbound, openssl s_server, dproxy) on a port of
//! 127.0.0.1 that is free, again on another if the port was taken before the server
//! bound it, and waiting until they answer: bounded, with the server's log on failure.

use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

/// A port of 127.0.0.1 free for both UDP and TCP at this moment. Free for UDP alone is
/// not enough: a TCP socket on the port, such as a client's in TIME_WAIT (every short
/// loopback connection leaves one for a minute), makes nsd and unbound fail to bind.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port of 127.0.0.1 free for both UDP and TCP in 100 tries");
}

/// Starts `what` on a free port and waits until it serves: `spawn(port)` starts it,
/// `ready(port)` is true once it answers. Between the port check and the server's bind
/// another socket can take the port (any process's client, or another test's server
/// that got the same port at the same moment); a server that exits at start saying so
/// in one of its `logs` is started again on another port (bounded: 5 ports). An answer
/// counts only when the child holds the port itself: another test's server on that
/// port answers too, and a test that took it for its own talks to the wrong zones.
/// Any other exit, or no answer within 60 s, panics with the logs.
pub fn start_on_free_port(
    what: &str,
    logs: &[PathBuf],
    spawn: impl FnMut(u16) -> Child,
    ready: impl Fn(u16) -> bool,
) -> (Child, u16) {
    start_on_ports(what, logs, free_port, spawn, ready)
}

/// `start_on_free_port` with the ports taken from `next_port`.
fn start_on_ports(
    what: &str,
    logs: &[PathBuf],
    mut next_port: impl FnMut() -> u16,
    mut spawn: impl FnMut(u16) -> Child,
    ready: impl Fn(u16) -> bool,
) -> (Child, u16) {
    let read_logs = || {
        logs.iter()
            .map(|l| std::fs::read_to_string(l).unwrap_or_default())
            .collect::<String>()
    };
    for _ in 0..5 {
        let port = next_port();
        // Only this start's lines: the retry decision reads them.
        for l in logs {
            std::fs::write(l, "").unwrap();
        }
        let mut child = spawn(port);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let text = read_logs();
                if text.contains("Address already in use") {
                    break;
                }
                panic!("{what} exited at start ({status}):\n{text}");
            }
            // Unreadable descriptors (a child running as another user) leave only
            // the answer to go by.
            if ready(port) && holds_port(child.id(), port) != Some(false) {
                return (child, port);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let whose = if ready(port) {
                    " (another process serves that port)"
                } else {
                    ""
                };
                panic!(
                    "{what} does not answer on port {port} within 60 s{whose}:\n{}",
                    read_logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("{what}: 5 free ports were taken before it could bind them");
}

/// Whether process `pid` holds a socket on `port` (UDP, or TCP listening; any local
/// address), from /proc. None when its descriptors cannot be read.
pub fn holds_port(pid: u32, port: u16) -> Option<bool> {
    let mut inodes = Vec::new();
    for (table, listening) in [
        ("udp", None),
        ("udp6", None),
        ("tcp", Some("0A")),
        ("tcp6", Some("0A")),
    ] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let on_port = local
                .rsplit_once(':')
                .is_some_and(|(_, p)| u16::from_str_radix(p, 16) == Ok(port));
            if on_port && listening.map_or(true, |l| *state == l) {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    }))
}

/// SIGUSR1 gets a handler that does nothing, without SA_RESTART: sent to a thread
/// (`pthread_kill`), it interrupts that thread's blocking read with EINTR, as a stop and
/// continue of the process does on a loaded machine, and nothing else.
pub fn sigusr1_interrupts_reads() {
    extern "C" fn ignore(_: libc::c_int) {}
    // SAFETY: sigaction with a zeroed struct, an empty mask and a handler that does nothing.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = ignore as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
}

/// Another process's server on the port answers the readiness check too: that is no
/// start. The child, which cannot bind the port, is started again on another, and the
/// port returned is the one it holds.
#[test]
fn an_answer_from_another_process_on_the_port_is_no_start() {
    let dir = crate::test_dir::TempDir::new("portowner");
    let log = dir.path("server.out");
    // This process holds the first port, as another test's server would.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let taken = stranger.local_addr().unwrap().port();
    let mut ports = vec![taken];
    let (mut child, port) = start_on_ports(
        "python3 UDP server",
        std::slice::from_ref(&log),
        || match ports.pop() {
            Some(p) => p,
            None => free_port(),
        },
        |port| {
            let out = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&log)
                .unwrap();
            std::process::Command::new("python3")
                .args([
                    "-c",
                    "import socket, sys\n\
                     s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                     s.bind(('127.0.0.1', int(sys.argv[1])))\n\
                     while True: s.recv(512)\n",
                ])
                .arg(port.to_string())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .unwrap()
        },
        // Every port answers, as the stranger's does.
        |_| true,
    );
    let holds = holds_port(child.id(), port);
    let _ = child.kill();
    let _ = child.wait();
    assert_ne!(port, taken, "the stranger's port was taken for the child's");
    assert_eq!(holds, Some(true));
    assert_eq!(holds_port(std::process::id(), taken), Some(true));
}
