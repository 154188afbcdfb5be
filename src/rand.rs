//! Random numbers from the kernel's CSPRNG (getrandom), buffered so a query costs no syscall.
//!
//! Query IDs and case randomization must be unpredictable (RFC 5452); a buffer of
//! getrandom output keeps that property while amortizing the syscall.

pub struct Rng {
    buf: [u8; 512],
    pos: usize,
}

impl Default for Rng {
    fn default() -> Self {
        Rng::new()
    }
}

impl Rng {
    pub fn new() -> Rng {
        let mut r = Rng {
            buf: [0; 512],
            pos: 512,
        };
        r.refill();
        r
    }

    fn refill(&mut self) {
        let mut filled = 0;
        while filled < self.buf.len() {
            let rest = &mut self.buf[filled..];
            // SAFETY: the pointer and length describe a live, writable slice.
            let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
            if n > 0 {
                filled += n as usize;
            } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                // getrandom exists on every kernel dproxy supports (3.17+); if it fails
                // anyway, fall back to /dev/urandom rather than predictable numbers.
                if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
                    use std::io::Read;
                    if f.read_exact(&mut self.buf[filled..]).is_ok() {
                        break;
                    }
                }
                log::error!("no source of randomness; query IDs are weak");
                break;
            }
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
        let mut r = Rng::new();
        let ids: std::collections::HashSet<u16> = (0..1000).map(|_| r.u16()).collect();
        // 1000 draws from 65536 values: collisions are expected to be few.
        assert!(ids.len() > 980, "only {} distinct IDs", ids.len());
        assert!((0..100).all(|_| r.below(7) < 7));
    }
}
