//! Batched UDP I/O: recvmmsg and sendmmsg, so that a burst of queries costs a few
//! syscalls instead of two per query.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams per syscall.
pub const BATCH: usize = 32;
/// Largest query read; longer datagrams are dropped (MSG_TRUNC).
pub const SLOT: usize = 2048;
/// Reply bytes buffered before a flush is forced.
const OUT_BYTES: usize = 64 * 1024;

fn to_sockaddr(a: &SocketAddr, st: &mut libc::sockaddr_storage) -> libc::socklen_t {
    // SAFETY: sockaddr_storage is large and aligned enough for either family.
    unsafe {
        match a {
            SocketAddr::V4(v4) => {
                let sin = &mut *(st as *mut libc::sockaddr_storage as *mut libc::sockaddr_in);
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = v4.port().to_be();
                sin.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
                size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(v6) => {
                let sin6 = &mut *(st as *mut libc::sockaddr_storage as *mut libc::sockaddr_in6);
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = v6.port().to_be();
                sin6.sin6_addr.s6_addr = v6.ip().octets();
                sin6.sin6_flowinfo = v6.flowinfo();
                sin6.sin6_scope_id = v6.scope_id();
                size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
    }
}

fn from_sockaddr(st: &libc::sockaddr_storage) -> Option<SocketAddr> {
    // SAFETY: the family field says which structure the kernel wrote.
    unsafe {
        match st.ss_family as libc::c_int {
            libc::AF_INET => {
                let sin = &*(st as *const libc::sockaddr_storage as *const libc::sockaddr_in);
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 => {
                let sin6 = &*(st as *const libc::sockaddr_storage as *const libc::sockaddr_in6);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// The syscall's header arrays, kept between calls: filling them costs a few stores per
/// datagram, while building (zeroing) them anew costs kilobytes per call.
struct Headers {
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    addrs: Vec<libc::sockaddr_storage>,
}

impl Headers {
    fn new() -> Headers {
        // SAFETY: all-zero is a valid value of these C structures.
        Headers {
            iovs: vec![unsafe { zeroed() }; BATCH],
            msgs: vec![unsafe { zeroed() }; BATCH],
            addrs: vec![unsafe { zeroed() }; BATCH],
        }
    }
}

/// Buffers for receiving up to BATCH datagrams at once.
#[derive(Default)]
pub struct RecvBatch {
    data: Vec<u8>,
    hdr: Option<Headers>,
    lens: Vec<usize>,
    peers: Vec<Option<SocketAddr>>,
    count: usize,
    /// Headers to fill before the next receive: all of them at first, then those the last
    /// receive wrote to (the kernel leaves the others as they were). A LAN sends a query
    /// or two per wake-up; filling all BATCH headers cost about 300 instructions each time.
    stale: usize,
}

impl RecvBatch {
    /// Receives what is queued on `fd` (non-blocking); returns how many datagrams.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        if self.data.len() < BATCH * SLOT {
            self.data = vec![0u8; BATCH * SLOT];
            self.lens = vec![0; BATCH];
            self.peers = vec![None; BATCH];
            self.stale = BATCH;
        }
        let h = self.hdr.get_or_insert_with(Headers::new);
        for i in 0..self.stale.min(BATCH) {
            h.iovs[i].iov_base = self.data[i * SLOT..].as_mut_ptr().cast();
            h.iovs[i].iov_len = SLOT;
            let m = &mut h.msgs[i].msg_hdr;
            m.msg_name = (&mut h.addrs[i] as *mut libc::sockaddr_storage).cast();
            m.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            m.msg_iov = &mut h.iovs[i];
            m.msg_iovlen = 1;
            m.msg_control = std::ptr::null_mut();
            m.msg_controllen = 0;
            m.msg_flags = 0;
        }
        // SAFETY: msgs describes BATCH valid, writable buffers owned by self.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                h.msgs.as_mut_ptr(),
                BATCH as _,
                libc::MSG_DONTWAIT as _,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.count = 0;
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        self.stale = n;
        for (i, m) in h.msgs.iter().enumerate().take(n) {
            let truncated = m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            self.lens[i] = if truncated { 0 } else { m.msg_len as usize };
            self.peers[i] = from_sockaddr(&h.addrs[i]);
        }
        self.count = n;
        Ok(n)
    }

    /// Datagram `i` of the last receive: its bytes and sender (empty if it was too long).
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.count {
            return None;
        }
        let peer = self.peers[i]?;
        Some((&self.data[i * SLOT..i * SLOT + self.lens[i]], peer))
    }
}

/// Replies waiting to be sent with sendmmsg.
#[derive(Default)]
pub struct SendBatch {
    data: Vec<u8>,
    /// (listener, peer, start, end) into `data`.
    items: Vec<(usize, SocketAddr, usize, usize)>,
    hdr: Option<Headers>,
}

impl SendBatch {
    pub fn push(&mut self, listener: usize, peer: SocketAddr, msg: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(msg);
        self.items.push((listener, peer, start, self.data.len()));
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// True when a flush should happen before more is queued.
    pub fn full(&self) -> bool {
        self.items.len() >= BATCH || self.data.len() >= OUT_BYTES
    }

    /// Sends everything; `fd_of` maps a listener index to its socket. Returns (sent, failed).
    pub fn flush(&mut self, fd_of: impl Fn(usize) -> Option<RawFd>) -> (usize, usize) {
        let (mut sent, mut failed) = (0, 0);
        let h = self.hdr.get_or_insert_with(Headers::new);
        let mut i = 0;
        while i < self.items.len() {
            // Consecutive replies on the same listener go in one call.
            let li = self.items[i].0;
            let mut j = i;
            while j < self.items.len() && j - i < BATCH && self.items[j].0 == li {
                j += 1;
            }
            let Some(fd) = fd_of(li) else {
                failed += j - i;
                i = j;
                continue;
            };
            let n = j - i;
            for k in 0..n {
                let (_, peer, s, e) = self.items[i + k];
                let len = to_sockaddr(&peer, &mut h.addrs[k]);
                h.iovs[k].iov_base = self.data[s..].as_mut_ptr().cast();
                h.iovs[k].iov_len = e - s;
                let m = &mut h.msgs[k].msg_hdr;
                m.msg_name = (&mut h.addrs[k] as *mut libc::sockaddr_storage).cast();
                m.msg_namelen = len;
                m.msg_iov = &mut h.iovs[k];
                m.msg_iovlen = 1;
                m.msg_control = std::ptr::null_mut();
                m.msg_controllen = 0;
                m.msg_flags = 0;
            }
            let mut done = 0;
            while done < n {
                // SAFETY: msgs[done..n] were filled above and point into live buffers.
                let r = unsafe {
                    libc::sendmmsg(
                        fd,
                        h.msgs[done..].as_mut_ptr(),
                        (n - done) as _,
                        libc::MSG_DONTWAIT as _,
                    )
                };
                if r <= 0 {
                    let e = io::Error::last_os_error();
                    if r < 0 && e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    // One bad destination (or a full buffer) fails the call: skip that reply.
                    failed += 1;
                    done += 1;
                    continue;
                }
                sent += r as usize;
                done += r as usize;
            }
            i = j;
        }
        self.items.clear();
        self.data.clear();
        (sent, failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn batch_round_trip_over_loopback() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let mut out = SendBatch::default();
        for i in 0..40u8 {
            out.push(0, ba, &[i; 10]);
        }
        assert!(out.full());
        let (sent, failed) = out.flush(|_| Some(a.as_raw_fd()));
        assert_eq!((sent, failed), (40, 0));
        b.set_nonblocking(true).unwrap();
        let mut rb = RecvBatch::default();
        let mut got = Vec::new();
        for _ in 0..100 {
            match rb.recv(b.as_raw_fd()) {
                Ok(n) => {
                    for i in 0..n {
                        let (m, p) = rb.get(i).unwrap();
                        assert_eq!(p, aa);
                        got.push(m[0]);
                    }
                }
                Err(_) => {
                    if got.len() == 40 {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        }
        assert_eq!(got, (0..40).collect::<Vec<u8>>());
    }

    /// The headers a receive wrote are filled again before the next one, the others kept:
    /// batches of changing sizes from changing senders, a datagram too long for its slot
    /// among them, each read as sent.
    #[test]
    fn headers_refilled_after_each_receive() {
        let r = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        r.set_nonblocking(true).unwrap();
        let senders: Vec<_> = (0..3)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let to = r.local_addr().unwrap();
        let mut rb = RecvBatch::default();
        let mut k = 0u8;
        for (round, &count) in [5usize, 1, 3, BATCH, 2, 1].iter().enumerate() {
            let mut want = Vec::new();
            for j in 0..count {
                let s = &senders[(round + j) % senders.len()];
                // The first datagram of every other round is too long for a slot.
                let long = round % 2 == 1 && j == 0;
                let msg = if long {
                    vec![k; SLOT + 1]
                } else {
                    vec![k; 1 + j]
                };
                s.send_to(&msg, to).unwrap();
                want.push((if long { Vec::new() } else { msg }, s.local_addr().unwrap()));
                k = k.wrapping_add(1);
            }
            let n = rb.recv(r.as_raw_fd()).unwrap();
            assert_eq!(n, count, "round {round}");
            for (i, (msg, from)) in want.iter().enumerate() {
                let (m, p) = rb.get(i).unwrap();
                assert_eq!((m, p), (&msg[..], *from), "round {round}, datagram {i}");
            }
            assert!(rb.get(n).is_none());
        }
    }

    #[test]
    fn v6_addresses_convert() {
        let a: SocketAddr = "[2001:db8::1]:53".parse().unwrap();
        let mut st: libc::sockaddr_storage = unsafe { zeroed() };
        to_sockaddr(&a, &mut st);
        assert_eq!(from_sockaddr(&st), Some(a));
        let a: SocketAddr = "192.0.2.7:5300".parse().unwrap();
        to_sockaddr(&a, &mut st);
        assert_eq!(from_sockaddr(&st), Some(a));
    }
}
