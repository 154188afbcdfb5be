//! The few system calls PID 1 needs before dproxy can run: mounts, loading a module,
//! interface addresses by ioctl, one route by rtnetlink, and powering off.
//!
//! Everything goes straight to the kernel (no ip, no busybox): the point is to see what
//! this kernel does with this architecture's structures.

use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in string"))
}

fn check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

/// Mounts `fstype` on `target` (created if missing).
pub fn mount(fstype: &str, target: &str) -> io::Result<()> {
    std::fs::create_dir_all(target)?;
    let (s, t, f) = (cstr(fstype)?, cstr(target)?, cstr(fstype)?);
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), 0, std::ptr::null()) };
    check(rc, &format!("mount {fstype} on {target}"))
}

/// Loads a kernel module from a file (finit_module), for kernels that have the driver
/// as a module (Debian's).
pub fn load_module(path: &str) -> io::Result<()> {
    let f = std::fs::File::open(path)?;
    let params = cstr("")?;
    // SAFETY: a valid fd and an empty parameter string.
    let rc = unsafe { libc::syscall(libc::SYS_finit_module, f.as_raw_fd(), params.as_ptr(), 0) };
    check(rc as libc::c_int, &format!("finit_module {path}"))
}

/// `struct ifreq`: the name, then a union (address, flags or index) at offset 16; 40
/// bytes covers the union's largest member on 64-bit targets too.
struct IfReq([u8; 40]);

impl IfReq {
    fn new(name: &str) -> io::Result<IfReq> {
        let mut r = IfReq([0; 40]);
        let b = name.as_bytes();
        if b.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "interface name too long",
            ));
        }
        r.0[..b.len()].copy_from_slice(b);
        Ok(r)
    }

    fn set_sockaddr(&mut self, a: Ipv4Addr) {
        // sockaddr_in: family in host order, port 0, address in network order.
        let fam = (libc::AF_INET as u16).to_ne_bytes();
        self.0[16..18].copy_from_slice(&fam);
        self.0[18..20].copy_from_slice(&[0, 0]);
        self.0[20..24].copy_from_slice(&a.octets());
    }

    fn flags(&self) -> libc::c_short {
        libc::c_short::from_ne_bytes([self.0[16], self.0[17]])
    }

    fn set_flags(&mut self, f: libc::c_short) {
        self.0[16..18].copy_from_slice(&f.to_ne_bytes());
    }

    fn index(&self) -> i32 {
        i32::from_ne_bytes([self.0[16], self.0[17], self.0[18], self.0[19]])
    }
}

fn inet_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check(fd, "socket")?;
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ioctl(fd: &OwnedFd, req: libc::c_ulong, r: &mut IfReq, what: &str) -> io::Result<()> {
    // SAFETY: r is a buffer at least as large as struct ifreq on every target. The request
    // type differs between libcs (int in musl), hence the cast.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, r.0.as_mut_ptr()) };
    check(rc, what)
}

/// Brings an interface up.
pub fn link_up(name: &str) -> io::Result<()> {
    let s = inet_socket()?;
    let mut r = IfReq::new(name)?;
    ioctl(&s, libc::SIOCGIFFLAGS as _, &mut r, "SIOCGIFFLAGS")?;
    let f = r.flags() | libc::IFF_UP as libc::c_short;
    r.set_flags(f);
    ioctl(
        &s,
        libc::SIOCSIFFLAGS as _,
        &mut r,
        &format!("SIOCSIFFLAGS {name}"),
    )
}

/// Gives an interface an IPv4 address and netmask.
pub fn set_addr(name: &str, addr: Ipv4Addr, mask: Ipv4Addr) -> io::Result<()> {
    let s = inet_socket()?;
    let mut r = IfReq::new(name)?;
    r.set_sockaddr(addr);
    ioctl(
        &s,
        libc::SIOCSIFADDR as _,
        &mut r,
        &format!("SIOCSIFADDR {name}"),
    )?;
    let mut r = IfReq::new(name)?;
    r.set_sockaddr(mask);
    ioctl(
        &s,
        libc::SIOCSIFNETMASK as _,
        &mut r,
        &format!("SIOCSIFNETMASK {name}"),
    )
}

pub fn if_index(name: &str) -> io::Result<i32> {
    let s = inet_socket()?;
    let mut r = IfReq::new(name)?;
    ioctl(
        &s,
        libc::SIOCGIFINDEX as _,
        &mut r,
        &format!("SIOCGIFINDEX {name}"),
    )?;
    Ok(r.index())
}

/// `ip route add local <net>/<len> dev <ifindex> table local`: every address of `net`
/// becomes ours for routing (we can bind and send from it) without being an interface
/// address, so getifaddrs() does not list it: a client that is local but not on-link.
pub fn add_local_route(net: Ipv4Addr, len: u8, ifindex: i32) -> io::Result<()> {
    // SAFETY: plain socket(2); the fd is owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    check(fd, "netlink socket")?;
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };

    // nlmsghdr (16) + rtmsg (12) + RTA_DST (8) + RTA_OIF (8), all in host byte order
    // except the address itself.
    let mut m = Vec::with_capacity(44);
    m.extend_from_slice(&44u32.to_ne_bytes());
    m.extend_from_slice(&libc::RTM_NEWROUTE.to_ne_bytes());
    let flags =
        (libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
    m.extend_from_slice(&[
        libc::AF_INET as u8,
        len,
        0,
        0,
        libc::RT_TABLE_LOCAL,
        libc::RTPROT_BOOT,
        libc::RT_SCOPE_HOST,
        libc::RTN_LOCAL,
    ]);
    m.extend_from_slice(&0u32.to_ne_bytes()); // rtm_flags
    m.extend_from_slice(&8u16.to_ne_bytes());
    m.extend_from_slice(&libc::RTA_DST.to_ne_bytes());
    m.extend_from_slice(&net.octets());
    m.extend_from_slice(&8u16.to_ne_bytes());
    m.extend_from_slice(&libc::RTA_OIF.to_ne_bytes());
    m.extend_from_slice(&ifindex.to_ne_bytes());

    // SAFETY: a zeroed sockaddr_nl addresses the kernel.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: m and kernel outlive the call; lengths are theirs.
    let n = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            m.as_ptr().cast(),
            m.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    check(n as libc::c_int, "netlink sendto")?;
    let mut buf = [0u8; 512];
    // SAFETY: buf outlives the call.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    check(n as libc::c_int, "netlink recv")?;
    let n = n as usize;
    if n < 20 {
        return Err(io::Error::other(format!(
            "netlink: short answer of {n} bytes"
        )));
    }
    let kind = u16::from_ne_bytes([buf[4], buf[5]]);
    let err = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
    if kind != libc::NLMSG_ERROR as u16 {
        return Err(io::Error::other(format!(
            "netlink: answer of type {kind}, not an ack"
        )));
    }
    if err != 0 {
        return Err(io::Error::other(format!(
            "RTM_NEWROUTE: {}",
            io::Error::from_raw_os_error(-err)
        )));
    }
    Ok(())
}

/// The IPv4 addresses and prefix lengths getifaddrs() reports, as "name addr/len".
pub fn ipv4_ifaddrs() -> io::Result<Vec<String>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: head receives a list freed below.
    check(unsafe { libc::getifaddrs(&mut head) }, "getifaddrs")?;
    let mut out = Vec::new();
    let mut p = head;
    while !p.is_null() {
        // SAFETY: p walks the list getifaddrs returned, which stays valid until freed.
        let ifa = unsafe { &*p };
        p = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_netmask.is_null() {
            continue;
        }
        // SAFETY: non-null sockaddrs from the kernel; the family says which kind.
        unsafe {
            if (*ifa.ifa_addr).sa_family as i32 != libc::AF_INET {
                continue;
            }
            let a = &*(ifa.ifa_addr as *const libc::sockaddr_in);
            let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
            let name = std::ffi::CStr::from_ptr(ifa.ifa_name).to_string_lossy();
            let addr = Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes());
            let len = u32::from_ne_bytes(m.sin_addr.s_addr.to_ne_bytes()).count_ones();
            out.push(format!("{name} {addr}/{len}"));
        }
    }
    // SAFETY: head came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// Powers the machine off (qemu exits); falls back to a reboot, which `-no-reboot`
/// also turns into an exit.
pub fn power_off() -> ! {
    // SAFETY: plain system calls; we are PID 1 and done.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
        libc::reboot(libc::RB_AUTOBOOT);
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}
