//! Creating sockets: listeners on our addresses, and one fresh socket per upstream query.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
    SockaddrStorage,
};

fn family(addr: &SocketAddr) -> AddressFamily {
    if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

fn new_socket(addr: &SocketAddr, ty: SockType) -> io::Result<OwnedFd> {
    let fd = socket(
        family(addr),
        ty,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    if addr.is_ipv6() {
        // IPv6 listeners carry IPv6 only, so [::]:port and 0.0.0.0:port can both be bound.
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    Ok(fd)
}

/// A UDP socket bound to a listen address.
pub fn udp_listener(addr: SocketAddr) -> io::Result<mio::net::UdpSocket> {
    let fd = new_socket(&addr, SockType::Datagram)?;
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    let std = std::net::UdpSocket::from(fd);
    Ok(mio::net::UdpSocket::from_std(std))
}

/// A TCP listener on a listen address.
pub fn tcp_listener(addr: SocketAddr) -> io::Result<mio::net::TcpListener> {
    let fd = new_socket(&addr, SockType::Stream)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    listen(&fd, Backlog::new(128).unwrap_or(Backlog::MAXCONN))?;
    let std = std::net::TcpListener::from(fd);
    Ok(mio::net::TcpListener::from_std(std))
}

/// A UDP socket for one upstream query, connected to the upstream so that only its
/// answers are delivered to it. Connecting an unbound socket binds it to an ephemeral
/// port the kernel picks at random (RFC 6056), one syscall cheaper than binding first.
pub fn upstream_udp(to: SocketAddr) -> io::Result<mio::net::UdpSocket> {
    let fd = socket(
        family(&to),
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let sock = mio::net::UdpSocket::from_std(std::net::UdpSocket::from(fd));
    sock.connect(to)?;
    Ok(sock)
}
