//! The 12-byte DNS message header as a typed view over a byte slice.

use super::{Error, Result, HEADER_LEN};

/// A view of a DNS header at the start of `buffer`.
#[derive(Debug)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

const QR: u8 = 0x80;
const AA: u8 = 0x04;
const TC: u8 = 0x02;
const RD: u8 = 0x01;
const RA: u8 = 0x80;
const AD: u8 = 0x20;
const CD: u8 = 0x10;

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps a buffer that holds at least a header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Header { buffer })
    }

    fn b(&self, i: usize) -> u8 {
        self.buffer.as_ref()[i]
    }

    fn u16_at(&self, i: usize) -> u16 {
        u16::from_be_bytes([self.b(i), self.b(i + 1)])
    }

    pub fn id(&self) -> u16 {
        self.u16_at(0)
    }
    pub fn qr(&self) -> bool {
        self.b(2) & QR != 0
    }
    pub fn opcode(&self) -> u8 {
        (self.b(2) >> 3) & 0x0f
    }
    pub fn aa(&self) -> bool {
        self.b(2) & AA != 0
    }
    pub fn tc(&self) -> bool {
        self.b(2) & TC != 0
    }
    pub fn rd(&self) -> bool {
        self.b(2) & RD != 0
    }
    pub fn ra(&self) -> bool {
        self.b(3) & RA != 0
    }
    pub fn ad(&self) -> bool {
        self.b(3) & AD != 0
    }
    pub fn cd(&self) -> bool {
        self.b(3) & CD != 0
    }
    pub fn rcode(&self) -> u8 {
        self.b(3) & 0x0f
    }
    pub fn qdcount(&self) -> u16 {
        self.u16_at(4)
    }
    pub fn ancount(&self) -> u16 {
        self.u16_at(6)
    }
    pub fn nscount(&self) -> u16 {
        self.u16_at(8)
    }
    pub fn arcount(&self) -> u16 {
        self.u16_at(10)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    fn set_bit(&mut self, i: usize, mask: u8, on: bool) {
        let b = &mut self.buffer.as_mut()[i];
        if on {
            *b |= mask;
        } else {
            *b &= !mask;
        }
    }

    fn set_u16(&mut self, i: usize, v: u16) {
        self.buffer.as_mut()[i..i + 2].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_id(&mut self, v: u16) {
        self.set_u16(0, v)
    }
    pub fn set_qr(&mut self, on: bool) {
        self.set_bit(2, QR, on)
    }
    pub fn set_opcode(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[2];
        *b = (*b & !0x78) | ((v & 0x0f) << 3);
    }
    pub fn set_aa(&mut self, on: bool) {
        self.set_bit(2, AA, on)
    }
    pub fn set_tc(&mut self, on: bool) {
        self.set_bit(2, TC, on)
    }
    pub fn set_rd(&mut self, on: bool) {
        self.set_bit(2, RD, on)
    }
    pub fn set_ra(&mut self, on: bool) {
        self.set_bit(3, RA, on)
    }
    pub fn set_ad(&mut self, on: bool) {
        self.set_bit(3, AD, on)
    }
    pub fn set_cd(&mut self, on: bool) {
        self.set_bit(3, CD, on)
    }
    /// Sets the rcode and clears the reserved Z bit.
    pub fn set_rcode(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[3];
        *b = (*b & 0xb0) | (v & 0x0f);
    }
    pub fn set_qdcount(&mut self, v: u16) {
        self.set_u16(4, v)
    }
    pub fn set_ancount(&mut self, v: u16) {
        self.set_u16(6, v)
    }
    pub fn set_nscount(&mut self, v: u16) {
        self.set_u16(8, v)
    }
    pub fn set_arcount(&mut self, v: u16) {
        self.set_u16(10, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_buffer_is_rejected() {
        assert_eq!(
            Header::new_checked(&[0u8; 11][..]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn fields_round_trip() {
        let mut buf = [0u8; 12];
        let mut h = Header::new_checked(&mut buf[..]).unwrap();
        h.set_id(0xbeef);
        h.set_qr(true);
        h.set_opcode(5);
        h.set_tc(true);
        h.set_rd(true);
        h.set_ra(true);
        h.set_cd(true);
        h.set_rcode(3);
        h.set_qdcount(1);
        h.set_arcount(0x0102);
        assert_eq!(buf, [0xbe, 0xef, 0xab, 0x93, 0, 1, 0, 0, 0, 0, 1, 2]);
        let h = Header::new_checked(&buf[..]).unwrap();
        assert_eq!(h.id(), 0xbeef);
        assert!(h.qr() && h.tc() && h.rd() && h.ra() && h.cd());
        assert!(!h.aa() && !h.ad());
        assert_eq!(
            (h.opcode(), h.rcode(), h.qdcount(), h.arcount()),
            (5, 3, 1, 0x0102)
        );
    }
}
