//! Random numbers from the kernel's CSPRNG (getrandom), buffered so a query costs no syscall.
//!
//! Query IDs and case randomization must be unpredictable (RFC 5452); a buffer of
//! getrandom output keeps that property while amortizing the syscall. Without a working
//! source there is no safe way to go on: the daemon refuses to start, and a source that
//! fails later ends it (an attacker who can predict query IDs can poison the cache).

use std::io::{self, Read};

pub struct Rng {
    buf: [u8; 512],
    pos: usize,
}

/// Fills `buf` from getrandom, or from /dev/urandom where the system call is refused
/// (old kernels, seccomp filters).
fn fill(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the pointer and length describe a live, writable slice.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n > 0 {
            filled += n as usize;
            continue;
        }
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut buf[filled..]))
            .map_err(|e| io::Error::new(e.kind(), format!("getrandom: {err}; /dev/urandom: {e}")));
    }
    Ok(())
}

impl Rng {
    /// A generator with its first buffer filled; an error if the kernel gives no randomness.
    pub fn new() -> io::Result<Rng> {
        let mut r = Rng {
            buf: [0; 512],
            pos: 0,
        };
        fill(&mut r.buf)?;
        Ok(r)
    }

    fn refill(&mut self) {
        if let Err(e) = fill(&mut self.buf) {
            // Going on would mean predictable query IDs: stop instead.
            log::error!("cannot read random numbers from the kernel ({e}); exiting");
            std::process::exit(1);
        }
        self.pos = 0;
    }

    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        if self.pos + N > self.buf.len() {
            self.refill();
        }
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[self.pos..self.pos + N]);
        self.pos += N;
        out
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_ne_bytes(self.bytes())
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_ne_bytes(self.bytes())
    }

    /// A number in `0..n` (n > 0); the tiny modulo bias does not matter for its uses.
    pub fn below(&mut self, n: u32) -> u32 {
        if n == 0 {
            0
        } else {
            self.u32() % n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_vary() {
        let mut r = Rng::new().unwrap();
        let ids: std::collections::HashSet<u16> = (0..1000).map(|_| r.u16()).collect();
        // 1000 draws from 65536 values: about 8 collisions expected; 40 would be
        // astronomically unlikely from a working source.
        assert!(ids.len() > 960, "only {} distinct IDs", ids.len());
        assert!((0..100).all(|_| r.below(7) < 7));
    }
}
