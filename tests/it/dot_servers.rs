//! The DoT client core against real TLS servers from Debian on loopback: unbound as a
//! DNS-over-TLS server, and `openssl s_server -tls1_2` as a server that offers only
//! TLS 1.2. Certificates are made at test time. A small blocking driver moves bytes
//! between a std TcpStream and the sans-IO connection, and keeps every byte it wrote
//! so each test can check that no query left in plaintext.
#![cfg(feature = "tls")]

use crate::tls_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::server_start::start_on_free_port;
use dproxy::clock_trust::ClockTrust;
use dproxy::tls::{client_config, load_roots, Answer, DotConn, DotError, DotLimits, Pin};
use tls_support::{contains, first_a, query, wire_name, Certs, NAME};

/// A server process, killed when the test ends however it ends.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// Its output: shown when the test failed.
    out: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.out).unwrap_or_default();
            eprintln!("{} output:\n{text}", self.out.display());
        }
    }
}

/// True once a server accepts TCP connections on 127.0.0.1:`port`.
fn listening(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// A file for a server's output, appended to.
fn output_file(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

/// unbound serving DNS over TLS with `stem`.pem/.key, answering a.example.test and
/// b.example.test from local data.
fn unbound(certs: &Certs, stem: &str) -> Server {
    unbound_with(certs, stem, "")
}

/// unbound as in [`unbound`], with more `server:` lines.
fn unbound_with(certs: &Certs, stem: &str, extra: &str) -> Server {
    let dir = certs.path(&format!("unbound-{stem}"));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = |port: u16| {
        format!(
        "server:\n  interface: 127.0.0.1@{port}\n  tls-port: {port}\n  tls-service-key: {key}\n  \
         tls-service-pem: {pem}\n  username: \"\"\n  chroot: \"\"\n  directory: {dir}\n  \
         pidfile: {dir}/unbound.pid\n  use-syslog: no\n  do-daemonize: no\n  num-threads: 1\n  \
         do-ip6: no\n  so-reuseport: no\n  access-control: 127.0.0.0/8 allow\n  \
         module-config: \"iterator\"\n  local-zone: \"example.test.\" static\n  \
         local-data: \"a.example.test. 300 IN A 192.0.2.1\"\n  \
         local-data: \"b.example.test. 300 IN A 192.0.2.2\"\n  \
         local-data: \"c.example.test. 300 IN A 192.0.2.3\"\n{extra}",
        key = certs.path(&format!("{stem}.key")).display(),
        pem = certs.path(&format!("{stem}.pem")).display(),
        dir = dir.display(),
    )
    };
    let conf_path = dir.join("unbound.conf");
    // unbound logs to standard error here (no logfile), a failed bind too.
    let out = dir.join("unbound.out");
    let (child, port) = start_on_free_port(
        "unbound",
        std::slice::from_ref(&out),
        |port| {
            std::fs::write(&conf_path, conf(port)).unwrap();
            Command::new("unbound")
                .arg("-d")
                .arg("-c")
                .arg(&conf_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(output_file(&out))
                .spawn()
                .expect("start unbound (apt-get install unbound)")
        },
        listening,
    );
    Server {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        out,
    }
}

/// `openssl s_server` accepting TLS 1.2 only.
fn tls12_only_server(certs: &Certs) -> Server {
    let out = certs.path("s_server.out");
    let (child, port) = start_on_free_port(
        "openssl s_server",
        std::slice::from_ref(&out),
        |port| {
            Command::new("openssl")
                .args(["s_server", "-tls1_2", "-quiet", "-accept"])
                .arg(format!("127.0.0.1:{port}"))
                .arg("-cert")
                .arg(certs.path("good.pem"))
                .arg("-key")
                .arg(certs.path("good.key"))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(output_file(&out))
                .spawn()
                .unwrap()
        },
        listening,
    );
    Server {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        out,
    }
}

/// What one run of the driver saw.
struct Outcome {
    answers: Vec<Answer>,
    error: Option<DotError>,
    /// Every byte the client wrote to the socket.
    wire: Vec<u8>,
    resumed: bool,
    /// The connection's idle timeout once the answers were in.
    idle_timeout: Duration,
}

/// Sends `queries` (tokens 0, 1, ...) on a new connection and drives it until every
/// answer is in or the connection fails (bounded: 10 s).
fn run(config: &Arc<rustls::ClientConfig>, addr: SocketAddr, queries: &[Vec<u8>]) -> Outcome {
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut conn = DotConn::new(
        Arc::clone(config),
        NAME,
        DotLimits::default(),
        Instant::now(),
    )
    .unwrap();
    let mut next_id = 0x4000u16;
    let mut ids = || {
        next_id = next_id.wrapping_add(7919);
        next_id
    };
    // Queued before the handshake: they must wait for it, encrypted.
    for (i, q) in queries.iter().enumerate() {
        conn.send_query(q, i as u64, &mut ids).unwrap();
    }
    let mut out = Outcome {
        answers: Vec::new(),
        error: None,
        wire: Vec::new(),
        resumed: false,
        idle_timeout: Duration::ZERO,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 16384];
    loop {
        let bytes = conn.take_output();
        if !bytes.is_empty() {
            out.wire.extend_from_slice(&bytes);
            // The server may already have hung up after its alert.
            let _ = sock.write_all(&bytes);
        }
        if out.error.is_some() || out.answers.len() == queries.len() {
            break;
        }
        assert!(Instant::now() < deadline, "no answer or error within 10 s");
        match sock.read(&mut buf) {
            Ok(0) => out.error = Some(conn.receive_eof()),
            Ok(n) => {
                if let Err(e) = conn.receive(&buf[..n], Instant::now()) {
                    out.error = Some(e);
                }
                out.answers.extend(conn.take_answers());
            }
            // Interrupted: a read with a timeout fails with EINTR when the process is
            // stopped and continued, signal handler or not (signal(7)), as happens on a
            // loaded machine. The connection is fine: read again.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                if let Err(e) = conn.tick(Instant::now()) {
                    out.error = Some(e);
                }
            }
            Err(_) => out.error = Some(conn.receive_eof()),
        }
    }
    out.resumed = conn.resumed();
    out.idle_timeout = conn.idle_timeout();
    out
}

fn config(certs: &Certs, ca: &str, pins: Vec<Pin>) -> Arc<rustls::ClientConfig> {
    config_with_clock(certs, ca, pins, SYNCED)
}

const SYNCED: ClockTrust = ClockTrust { synced: true };
const UNSYNCED: ClockTrust = ClockTrust { synced: false };

fn config_with_clock(
    certs: &Certs,
    ca: &str,
    pins: Vec<Pin>,
    clock: ClockTrust,
) -> Arc<rustls::ClientConfig> {
    let roots = load_roots(&certs.path(ca)).unwrap();
    client_config(Arc::new(roots), pins, clock).unwrap()
}

fn queries() -> Vec<Vec<u8>> {
    vec![
        query(0x1111, "a.example.test"),
        query(0x2222, "b.example.test"),
        query(0x3333, "c.example.test"),
    ]
}

/// No query name in the bytes the client wrote: they were encrypted or never sent.
fn assert_no_plaintext(wire: &[u8]) {
    for name in ["a.example.test", "b.example.test", "c.example.test"] {
        assert!(
            !contains(wire, &wire_name(name)),
            "{name} went out in plaintext"
        );
    }
}

#[test]
fn pipelined_queries_are_answered_by_unbound() {
    let certs = Certs::make("ok");
    let server = unbound(&certs, "good");
    let cfg = config(&certs, "ca.pem", Vec::new());
    let out = run(&cfg, server.addr, &queries());
    assert_eq!(out.error, None);
    assert_eq!(out.answers.len(), 3);
    for a in &out.answers {
        let (id, addr) = match a.token {
            0 => (0x1111, [192, 0, 2, 1]),
            1 => (0x2222, [192, 0, 2, 2]),
            2 => (0x3333, [192, 0, 2, 3]),
            t => panic!("unknown token {t}"),
        };
        assert_eq!(
            u16::from_be_bytes([a.message[0], a.message[1]]),
            id,
            "client ID restored"
        );
        assert_eq!(first_a(&a.message), Some(addr));
    }
    assert_no_plaintext(&out.wire);
    assert!(!out.resumed, "a first connection cannot resume");

    // The shared configuration keeps the session: the next connection resumes.
    let again = run(&cfg, server.addr, &queries()[..1]);
    assert_eq!(again.error, None);
    assert_eq!(again.answers.len(), 1);
    assert!(again.resumed, "second connection did a full handshake");
}

#[test]
fn pin_of_the_server_key_is_accepted_and_computed_as_openssl_does() {
    let certs = Certs::make("pin");
    let server = unbound(&certs, "good");
    let pin = Pin::parse(&certs.openssl_pin("good")).unwrap();
    let der = std::fs::read(certs.path("good.pem")).unwrap();
    use rustls::pki_types::pem::PemObject;
    let cert = rustls::pki_types::CertificateDer::from_pem_slice(&der).unwrap();
    assert_eq!(Pin::of_certificate(cert.as_ref()), Some(pin));
    let out = run(
        &config(&certs, "ca.pem", vec![pin]),
        server.addr,
        &queries(),
    );
    assert_eq!(out.error, None);
    assert_eq!(out.answers.len(), 3);
}

fn assert_refused(certs: &Certs, server: &Server, ca: &str, pins: Vec<Pin>, want: DotError) {
    let out = run(&config(certs, ca, pins), server.addr, &queries());
    assert_eq!(out.error, Some(want));
    assert!(out.answers.is_empty());
    assert_no_plaintext(&out.wire);
}

#[test]
fn wrong_name_is_refused() {
    let certs = Certs::make("name");
    let server = unbound(&certs, "wrongname");
    assert_refused(
        &certs,
        &server,
        "ca.pem",
        Vec::new(),
        DotError::NameMismatch,
    );
}

#[test]
fn unknown_ca_is_refused() {
    let certs = Certs::make("ca");
    let server = unbound(&certs, "unknownca");
    assert_refused(&certs, &server, "ca.pem", Vec::new(), DotError::UnknownCa);
}

#[test]
fn expired_certificate_is_refused() {
    let certs = Certs::make("expired");
    let server = unbound(&certs, "expired");
    assert_refused(
        &certs,
        &server,
        "ca.pem",
        Vec::new(),
        DotError::CertificateExpired,
    );
}

#[test]
fn expired_certificate_is_refused_before_the_clock_is_synced_too() {
    let certs = Certs::make("expired-unsynced");
    let server = unbound(&certs, "expired");
    let out = run(
        &config_with_clock(&certs, "ca.pem", Vec::new(), UNSYNCED),
        server.addr,
        &queries(),
    );
    assert_eq!(out.error, Some(DotError::CertificateExpired));
    assert!(out.answers.is_empty());
    assert_no_plaintext(&out.wire);
}

#[test]
fn certificate_not_valid_yet_is_refused_once_the_clock_is_synced() {
    let certs = Certs::make("future-synced");
    let server = unbound(&certs, "future");
    assert_refused(
        &certs,
        &server,
        "ca.pem",
        Vec::new(),
        DotError::CertificateNotYetValid,
    );
}

#[test]
fn certificate_not_valid_yet_is_accepted_before_the_clock_is_synced() {
    let certs = Certs::make("future-unsynced");
    let server = unbound(&certs, "future");
    let out = run(
        &config_with_clock(&certs, "ca.pem", Vec::new(), UNSYNCED),
        server.addr,
        &queries(),
    );
    assert_eq!(out.error, None);
    assert_eq!(out.answers.len(), 3);
    // Still a real check: a wrong name is refused in this mode as well.
    let other = unbound(&certs, "wrongname");
    let out = run(
        &config_with_clock(&certs, "ca.pem", Vec::new(), UNSYNCED),
        other.addr,
        &queries(),
    );
    assert_eq!(out.error, Some(DotError::NameMismatch));
}

#[test]
fn pin_mismatch_is_refused() {
    let certs = Certs::make("pinbad");
    let server = unbound(&certs, "good");
    // The pin of another key of the same CA: chain and name are fine, the pin is not.
    let other = Pin::parse(&certs.openssl_pin("wrongname")).unwrap();
    assert_refused(
        &certs,
        &server,
        "ca.pem",
        vec![other],
        DotError::PinMismatch,
    );
}

#[cfg(not(feature = "tls12"))]
#[test]
fn tls12_only_server_is_refused() {
    let certs = Certs::make("tls12");
    let server = tls12_only_server(&certs);
    let out = run(
        &config(&certs, "ca.pem", Vec::new()),
        server.addr,
        &queries(),
    );
    match out.error {
        Some(DotError::ProtocolVersion(_)) => {}
        other => panic!("expected a protocol version error, got {other:?}"),
    }
    assert_no_plaintext(&out.wire);
}

#[test]
fn ca_file_errors_name_the_file() {
    let certs = Certs::make("cafile");
    let missing = load_roots(&certs.path("nope.pem")).unwrap_err();
    assert!(missing.contains("nope.pem"), "{missing}");
    std::fs::write(certs.path("empty.pem"), "no certificates here\n").unwrap();
    let empty = load_roots(&certs.path("empty.pem")).unwrap_err();
    assert!(
        empty.contains("empty.pem") && empty.contains("no usable CA"),
        "{empty}"
    );
    assert!(load_roots(Path::new(&certs.path("ca.pem"))).is_ok());
}

/// A query for `name` with an empty OPT, as the daemon sends it over TLS: with
/// edns-tcp-keepalive and padding added.
fn edns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = query(id, name);
    q[10..12].copy_from_slice(&1u16.to_be_bytes());
    q.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
    dproxy::transport::tls::pad(&q)
}

#[test]
fn unbound_keepalive_timeout_becomes_the_idle_close() {
    let certs = Certs::make("keepalive");
    let server = unbound_with(
        &certs,
        "good",
        "  edns-tcp-keepalive: yes\n  edns-tcp-keepalive-timeout: 2500\n",
    );
    let cfg = config(&certs, "ca.pem", Vec::new());
    let out = run(&cfg, server.addr, &[edns_query(0x1111, "a.example.test")]);
    assert_eq!(out.error, None);
    assert_eq!(out.answers.len(), 1);
    assert_eq!(out.idle_timeout, Duration::from_millis(2500));
    // Without the option in the query, unbound announces nothing: our own timeout.
    let out = run(&cfg, server.addr, &[query(0x2222, "b.example.test")]);
    assert_eq!(out.answers.len(), 1);
    assert_eq!(out.idle_timeout, DotLimits::default().idle_timeout);
}

/// A read that a signal interrupts (EINTR, as a stop and continue of the process on a
/// loaded machine does to every read with a timeout) is no closed connection: the
/// driver reads again, and against a server that never answers the handshake times out.
#[test]
fn an_interrupted_read_is_read_again() {
    crate::server_start::sigusr1_interrupts_reads();
    let certs = Certs::ca_only("eintr");
    let cfg = config(&certs, "ca.pem", Vec::new());
    // Connections wait in its backlog, unanswered.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    // Five signals, 0.3 s apart, while `run` reads: it reads for 5 s (the handshake
    // timeout), and is joined before this thread can end.
    let kicker = std::thread::spawn(move || {
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(300));
            // SAFETY: the test thread lives until this thread is joined.
            unsafe { libc::pthread_kill(me, libc::SIGUSR1) };
        }
    });
    let out = run(&cfg, silent.local_addr().unwrap(), &queries()[..1]);
    kicker.join().unwrap();
    assert_eq!(out.error, Some(DotError::HandshakeTimeout));
    assert!(out.answers.is_empty());
}
