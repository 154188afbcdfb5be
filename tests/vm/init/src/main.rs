//! PID 1 of the VM test (`make vm-test`): on a real kernel of the router's
//! architecture, sets up loopback and an on-link subnet, runs dproxy from the initramfs
//! against an upstream in this process, and prints one line per check on the console:
//!
//! ```text
//! VMTEST <check> ok <detail>
//! VMTEST <check> FAIL <detail>
//! VMTEST done
//! ```
//!
//! tests/vm/run.py boots the kernel, reads these lines and decides; this program only
//! reports and then powers the machine off.

mod dns;
mod sys;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use dns::{ask_tcp, ask_udp, Counts, Reply, RCODE_NOERROR, RCODE_REFUSED, RCODE_SERVFAIL};

const DPROXY: &str = "/bin/dproxy";
const CONF: &str = "/etc/dproxy.conf";
const STATE_DIR: &str = "/tmp/dproxy";
const CTL: &str = "/tmp/dproxy/ctl.sock";
const PERSIST: &str = "/tmp/dproxy/cache";
const HOSTS: &str = "/tmp/hosts";
/// The on-link subnet, on a dummy interface.
const LAN_IF: &str = "dummy0";
const LAN_ADDR: Ipv4Addr = Ipv4Addr::new(10, 53, 0, 1);
/// Local for routing (we may send from it) but on no interface: not on-link.
const FAR_NET: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 0);
const FAR_CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);
const UPSTREAM: &str = "127.0.0.1:5300";
/// `nobody` in the initramfs' /etc/passwd.
const NOBODY: u32 = 65534;
/// Longest wait for an answer; the emulated CPU is slow, but not this slow.
const WAIT: Duration = Duration::from_secs(3);
/// SIGUSR2 to the first offline answer (the issue's bound).
const OFFLINE_BOUND: Duration = Duration::from_millis(50);

type Check = Result<String, String>;

/// Prints each result as one line (stdout is line-buffered: one write per line).
struct Report {
    failed: usize,
}

impl Report {
    fn line(&mut self, name: &str, r: Check) {
        match r {
            Ok(d) => println!("VMTEST {name} ok {d}"),
            Err(d) => {
                self.failed += 1;
                println!("VMTEST {name} FAIL {d}");
            }
        }
    }
}

fn e2s<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{what}: {e}")
}

fn uptime() -> String {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn setup_system() -> Check {
    sys::mount("proc", "/proc").map_err(e2s("proc"))?;
    sys::mount("sysfs", "/sys").map_err(e2s("sysfs"))?;
    // Kernel messages would interleave with ours on the console.
    let _ = std::fs::write("/proc/sys/kernel/printk", "1");
    std::fs::create_dir_all(STATE_DIR).map_err(e2s("state dir"))?;
    // The daemon writes its persist file there after dropping to nobody.
    std::os::unix::fs::chown(STATE_DIR, Some(NOBODY), Some(NOBODY)).map_err(e2s("chown"))?;
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    Ok(format!("kernel {} up {} s", release.trim(), uptime()))
}

fn setup_network() -> Check {
    sys::link_up("lo").map_err(e2s("lo up"))?;
    // Debian's kernels have the dummy driver as a module; ours has it built in.
    let mut how = "built in";
    if std::path::Path::new("/lib/modules/dummy.ko").exists() {
        sys::load_module("/lib/modules/dummy.ko").map_err(e2s("dummy module"))?;
        how = "module";
    }
    sys::set_addr(LAN_IF, LAN_ADDR, Ipv4Addr::new(255, 255, 255, 0)).map_err(e2s("address"))?;
    sys::link_up(LAN_IF).map_err(e2s("dummy0 up"))?;
    let lo = sys::if_index("lo").map_err(e2s("lo index"))?;
    sys::add_local_route(FAR_NET, 24, lo).map_err(e2s("local route"))?;
    Ok(format!(
        "lo up, {LAN_IF} ({how}) {LAN_ADDR}/24, local route {FAR_NET}/24"
    ))
}

/// getifaddrs() in a thread: under qemu-user on big-endian MIPS it never returned.
fn check_getifaddrs() -> Check {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(sys::ipv4_ifaddrs());
    });
    let list = rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| "getifaddrs() did not return within 10 s".to_string())?
        .map_err(e2s("getifaddrs"))?;
    let want_lan = format!("{LAN_IF} {LAN_ADDR}/24");
    if !list.iter().any(|l| *l == "lo 127.0.0.1/8") || !list.contains(&want_lan) {
        return Err(format!(
            "lo 127.0.0.1/8 or {want_lan} missing: {}",
            list.join(", ")
        ));
    }
    Ok(list.join(", "))
}

fn write_config() -> Check {
    // local_service is left at its default (1): the point of the on-link checks.
    let conf = format!(
        "config dproxy 'main'\n\
         \tlist listen '127.0.0.1'\n\
         \tlist listen '{LAN_ADDR}'\n\
         \toption port '53'\n\
         \tlist server '{UPSTREAM}'\n\
         \toption resolvfile ''\n\
         \toption control_socket '{CTL}'\n\
         \toption persist_file '{PERSIST}'\n\
         \tlist hosts '{HOSTS}'\n\
         \toption log_level 'info'\n"
    );
    std::fs::write(CONF, conf).map_err(e2s("config"))?;
    std::fs::write(HOSTS, "192.0.2.1 router.lan\n").map_err(e2s("hosts"))?;
    Ok(String::new())
}

/// `dproxy ctl stats` over the control socket, as key=value pairs.
fn stats() -> Result<Vec<(String, String)>, String> {
    let mut s = UnixStream::connect(CTL).map_err(e2s("control socket"))?;
    s.set_read_timeout(Some(WAIT)).map_err(e2s("timeout"))?;
    s.write_all(b"stats\n").map_err(e2s("control write"))?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(e2s("control read"))?;
    Ok(out
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect())
}

fn stat(key: &str) -> Result<String, String> {
    stats()?
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .ok_or_else(|| format!("no {key} in the stats"))
}

/// Starts dproxy as root (it drops to nobody itself) and waits for its control socket.
fn start_dproxy() -> Result<(Child, Duration), String> {
    let t0 = Instant::now();
    let mut child = Command::new(DPROXY)
        .args(["-c", CONF])
        .spawn()
        .map_err(e2s("spawn dproxy"))?;
    while t0.elapsed() < Duration::from_secs(30) {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("dproxy exited at start: {st}"));
        }
        if stats().is_ok() {
            return Ok((child, t0.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    Err("dproxy did not open its control socket within 30 s".into())
}

fn signal(child: &Child, sig: libc::c_int) -> Result<(), String> {
    // SAFETY: kill(2) on our own child's pid.
    if unsafe { libc::kill(child.id() as libc::pid_t, sig) } != 0 {
        return Err(format!("kill: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn wait_exit(child: &mut Child, limit: Duration) -> Result<(ExitStatus, Duration), String> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Some(st) = child.try_wait().map_err(e2s("wait"))? {
            return Ok((st, t0.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    Err(format!(
        "still running {} s after the signal",
        limit.as_secs()
    ))
}

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 53))
}

fn any_port(ip: Ipv4Addr) -> SocketAddr {
    SocketAddr::from((ip, 0))
}

/// Addresses for messages (the cross builds compile Debug formatting to nothing).
fn show(a: Option<Ipv4Addr>) -> String {
    a.map_or_else(|| "no address".to_string(), |a| a.to_string())
}

fn expect(r: std::io::Result<Reply>, rcode: u8, addr: Option<Ipv4Addr>) -> Result<Reply, String> {
    let r = r.map_err(e2s("no reply"))?;
    if r.rcode != rcode || r.addr != addr {
        return Err(format!(
            "got rcode {} {}, want rcode {rcode} {}",
            r.rcode,
            show(r.addr),
            show(addr)
        ));
    }
    Ok(r)
}

/// A cached answer's TTL counts down from the upstream's by the monotonic clock: a
/// misread clock shows as 0 or more than the original.
fn ttl_sane(r: &Reply) -> Result<(), String> {
    if r.ttl == 0 || r.ttl > dns::UPSTREAM_TTL {
        return Err(format!("TTL {} outside 1..={}", r.ttl, dns::UPSTREAM_TTL));
    }
    Ok(())
}

fn asked(counts: &Counts, name: &str, want: u32) -> Result<(), String> {
    let n = counts.get(name);
    if n != want {
        return Err(format!("upstream asked {n} times for {name}, want {want}"));
    }
    Ok(())
}

fn udp_answer(name: &str, counts: &Counts, upstream_times: u32) -> Check {
    let t0 = Instant::now();
    let r = ask_udp(any_port(Ipv4Addr::LOCALHOST), loopback(), name, WAIT);
    let ms = t0.elapsed().as_millis();
    let r = expect(r, RCODE_NOERROR, Some(dns::UPSTREAM_ADDR))?;
    asked(counts, name, upstream_times)?;
    ttl_sane(&r)?;
    Ok(format!(
        "{name} in {ms} ms, TTL {}, upstream asked {upstream_times}x",
        r.ttl
    ))
}

fn tcp_answer(name: &str, counts: &Counts, upstream_times: u32) -> Check {
    let t0 = Instant::now();
    let r = ask_tcp(loopback(), name, WAIT);
    let ms = t0.elapsed().as_millis();
    let r = expect(r, RCODE_NOERROR, Some(dns::UPSTREAM_ADDR))?;
    asked(counts, name, upstream_times)?;
    ttl_sane(&r)?;
    Ok(format!(
        "{name} over TCP in {ms} ms, TTL {}, upstream asked {upstream_times}x",
        r.ttl
    ))
}

/// A hosts file replaced by write-and-rename is picked up through inotify.
fn hosts_change() -> Check {
    let new_name = "added.lan";
    let new_addr = Ipv4Addr::new(192, 0, 2, 55);
    expect(
        ask_udp(
            any_port(Ipv4Addr::LOCALHOST),
            loopback(),
            "router.lan",
            WAIT,
        ),
        RCODE_NOERROR,
        Some(Ipv4Addr::new(192, 0, 2, 1)),
    )?;
    let tmp = format!("{HOSTS}.new");
    std::fs::write(
        &tmp,
        format!("192.0.2.1 router.lan\n{new_addr} {new_name}\n"),
    )
    .map_err(e2s("write hosts"))?;
    let t0 = Instant::now();
    std::fs::rename(&tmp, HOSTS).map_err(e2s("rename hosts"))?;
    while t0.elapsed() < Duration::from_secs(10) {
        let r = ask_udp(any_port(Ipv4Addr::LOCALHOST), loopback(), new_name, WAIT)
            .map_err(e2s("no reply"))?;
        if r.addr == Some(new_addr) {
            return Ok(format!(
                "{new_name} answered {} ms after the rename",
                t0.elapsed().as_millis()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("{new_name} not answered 10 s after the rename"))
}

/// A client on the dummy interface's subnet is answered.
fn on_link_client() -> Check {
    let to = SocketAddr::from((LAN_ADDR, 53));
    expect(
        ask_udp(any_port(LAN_ADDR), to, "a.example", WAIT),
        RCODE_NOERROR,
        Some(dns::UPSTREAM_ADDR),
    )?;
    Ok(format!("{LAN_ADDR} -> {LAN_ADDR}:53 answered"))
}

/// A client that is neither loopback nor on-link gets REFUSED, and it is counted.
fn off_link_client() -> Check {
    let before: u64 = stat("drop_refused")?.parse().map_err(e2s("drop_refused"))?;
    let to = SocketAddr::from((LAN_ADDR, 53));
    expect(
        ask_udp(any_port(FAR_CLIENT), to, "a.example", WAIT),
        RCODE_REFUSED,
        None,
    )?;
    let after: u64 = stat("drop_refused")?.parse().map_err(e2s("drop_refused"))?;
    if after != before + 1 {
        return Err(format!("drop_refused went from {before} to {after}"));
    }
    Ok(format!(
        "{FAR_CLIENT} refused, drop_refused {before} -> {after}"
    ))
}

/// 64 queries from 8 sockets sent back to back, so that dproxy reads them in batches
/// (recvmmsg) and answers in batches (sendmmsg): every reply must reach its own socket
/// with its own id and its own name's address.
fn batch(counts: &Counts, upstream_times: u32) -> Check {
    const SOCKETS: usize = 8;
    const PER: usize = 8;
    let mut socks = Vec::new();
    for _ in 0..SOCKETS {
        let s = UdpSocket::bind(any_port(Ipv4Addr::LOCALHOST)).map_err(e2s("bind"))?;
        s.set_read_timeout(Some(WAIT)).map_err(e2s("timeout"))?;
        socks.push(s);
    }
    let mut expected = vec![Vec::new(); SOCKETS];
    for j in 0..PER {
        for (k, s) in socks.iter().enumerate() {
            let n = k * PER + j;
            let name = format!("n{n}.batch.example");
            let id = dns::next_id();
            s.send_to(&dns::query(id, &name), loopback())
                .map_err(e2s("send"))?;
            expected[k].push((id, dns::addr_for(&name)));
        }
    }
    let t0 = Instant::now();
    let mut buf = [0u8; 1500];
    for (k, s) in socks.iter().enumerate() {
        let mut want = expected[k].clone();
        while !want.is_empty() {
            let n = s
                .recv(&mut buf)
                .map_err(|e| format!("socket {k}: {} replies missing: {e}", want.len()))?;
            let r = dns::parse(&buf[..n]).ok_or_else(|| format!("socket {k}: unparsable reply"))?;
            let Some(pos) = want.iter().position(|(id, _)| *id == r.id) else {
                return Err(format!(
                    "socket {k}: reply with id {} that it never sent",
                    r.id
                ));
            };
            let (_, addr) = want.swap_remove(pos);
            if r.rcode != RCODE_NOERROR || r.addr != Some(addr) {
                return Err(format!(
                    "socket {k}: id {} got rcode {} {}, want {addr}",
                    r.id,
                    r.rcode,
                    show(r.addr)
                ));
            }
        }
    }
    for n in 0..SOCKETS * PER {
        asked(counts, &format!("n{n}.batch.example"), upstream_times)?;
    }
    Ok(format!(
        "{} replies to {SOCKETS} sockets correct in {} ms",
        SOCKETS * PER,
        t0.elapsed().as_millis()
    ))
}

/// The daemon's user, groups and capabilities from /proc after it dropped root: nobody,
/// with nobody's group as its only group, and no capabilities left.
fn privilege_drop(child: &Child) -> Check {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .map_err(e2s("/proc status"))?;
    let field = |k: &str| -> String {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    let ids = format!("{NOBODY} {NOBODY} {NOBODY} {NOBODY}");
    let (uid, gid, groups, cap) = (
        field("Uid:"),
        field("Gid:"),
        field("Groups:"),
        field("CapEff:"),
    );
    if uid != ids
        || gid != ids
        || groups != NOBODY.to_string()
        || cap.is_empty()
        || !cap.trim_start_matches('0').is_empty()
    {
        return Err(format!(
            "Uid {uid}, Gid {gid}, Groups '{groups}', CapEff {cap}"
        ));
    }
    Ok(format!("uid/gid {NOBODY}, groups '{groups}', CapEff {cap}"))
}

fn sighup(child: &Child, counts: &Counts) -> Check {
    signal(child, libc::SIGHUP)?;
    // The signal is pending before the control connection arrives, so the daemon has
    // handled it by the time it answers.
    stats()?;
    udp_answer("a.example", counts, 1).map(|d| format!("after SIGHUP: {d}"))
}

/// SIGUSR2 (link down): a miss is answered SERVFAIL at once, without upstream traffic,
/// and cached names still answer.
fn sigusr2(child: &Child, counts: &Counts) -> Check {
    let t0 = Instant::now();
    signal(child, libc::SIGUSR2)?;
    let link = stat("link")?;
    if link != "down" {
        return Err(format!("link={link} after SIGUSR2"));
    }
    let r = ask_udp(
        any_port(Ipv4Addr::LOCALHOST),
        loopback(),
        "offline.example",
        WAIT,
    );
    let took = t0.elapsed();
    expect(r, RCODE_SERVFAIL, None)?;
    asked(counts, "offline.example", 0)?;
    if took > OFFLINE_BOUND {
        return Err(format!(
            "offline answer {} ms after SIGUSR2, bound {} ms",
            took.as_millis(),
            OFFLINE_BOUND.as_millis()
        ));
    }
    expect(
        ask_udp(any_port(Ipv4Addr::LOCALHOST), loopback(), "a.example", WAIT),
        RCODE_NOERROR,
        Some(dns::UPSTREAM_ADDR),
    )?;
    Ok(format!(
        "SERVFAIL for a miss {} us after SIGUSR2, cached name still answered",
        took.as_micros()
    ))
}

fn sigterm(child: &mut Child) -> Check {
    signal(child, libc::SIGTERM)?;
    let (st, took) = wait_exit(child, Duration::from_secs(10))?;
    if st.code() != Some(0) {
        return Err(format!("exit {st}"));
    }
    let size = std::fs::metadata(PERSIST)
        .map_err(e2s("persist file"))?
        .len();
    Ok(format!(
        "status 0 in {} ms, persist file {size} bytes",
        took.as_millis()
    ))
}

fn run(rep: &mut Report) -> Result<(), String> {
    rep.line("system", setup_system());
    let net = setup_network();
    let net_ok = net.is_ok();
    rep.line("network", net);
    if !net_ok {
        return Err("no network".into());
    }
    rep.line("getifaddrs", check_getifaddrs());
    rep.line("config", write_config());
    let counts =
        dns::start_upstream(UPSTREAM.parse().map_err(e2s("upstream"))?).map_err(e2s("upstream"))?;

    let (mut child, took) = start_dproxy()?;
    rep.line(
        "start",
        Ok(format!(
            "control socket up {} ms after exec",
            took.as_millis()
        )),
    );
    rep.line("privdrop", privilege_drop(&child));
    rep.line("udp_forward", udp_answer("a.example", &counts, 1));
    rep.line("udp_cache", udp_answer("a.example", &counts, 1));
    rep.line("tcp_forward", tcp_answer("b.example", &counts, 1));
    rep.line("tcp_cache", tcp_answer("b.example", &counts, 1));
    rep.line("hosts_inotify", hosts_change());
    rep.line("local_onlink", on_link_client());
    rep.line("local_refused", off_link_client());
    rep.line("batch_miss", batch(&counts, 1));
    rep.line("batch_hit", batch(&counts, 1));
    rep.line("sighup", sighup(&child, &counts));
    rep.line("sigusr2", sigusr2(&child, &counts));
    rep.line("sigterm", sigterm(&mut child));

    // The cache comes back from the persist file: no upstream query for either name.
    let (mut child, _) = start_dproxy()?;
    let persisted = udp_answer("a.example", &counts, 1)
        .and_then(|a| tcp_answer("b.example", &counts, 1).map(|b| format!("{a}; {b}")));
    rep.line("persist", persisted.map(|d| format!("after restart: {d}")));
    rep.line("sigterm_again", sigterm(&mut child));
    Ok(())
}

fn main() {
    let mut rep = Report { failed: 0 };
    if let Err(e) = run(&mut rep) {
        rep.line("fatal", Err(e));
    }
    println!("VMTEST done failed={} uptime={}", rep.failed, uptime());
    let _ = std::io::stdout().flush();
    sys::power_off();
}
