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
/// another socket can take the port (any process's client); a server that exits at
/// start saying so in one of its `logs` is started again on another port (bounded: 5
/// ports). Any other exit, or no answer within 60 s, panics with the logs.
pub fn start_on_free_port(
    what: &str,
    logs: &[PathBuf],
    mut spawn: impl FnMut(u16) -> Child,
    ready: impl Fn(u16) -> bool,
) -> (Child, u16) {
    let read_logs = || {
        logs.iter()
            .map(|l| std::fs::read_to_string(l).unwrap_or_default())
            .collect::<String>()
    };
    for _ in 0..5 {
        let port = free_port();
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
            if ready(port) {
                return (child, port);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{what} does not answer on port {port} within 60 s:\n{}",
                    read_logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("{what}: 5 free ports were taken before it could bind them");
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
