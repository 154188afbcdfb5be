//! DNS wire format: typed, bounds-checked views over byte slices (RFC 1035, 3597, 6891).
//!
//! Every reader takes the whole message and an offset, checks every bound, and
//! returns an [`Error`] instead of panicking: packets come from the network.

pub mod build;
pub mod header;
pub mod message;
pub mod name;
#[cfg(test)]
mod round_trip_tests;

pub use header::Header;
pub use message::{parse_query, scan_message, Opt, QueryView, Question, Record, Scan};
pub use name::NameBuf;

/// Why a message could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The message ends before a field it announces.
    Truncated,
    /// A compression pointer points forward, at itself, or past the end.
    BadPointer,
    /// A label is longer than 63 bytes or uses a reserved label type.
    BadLabel,
    /// The uncompressed name would be longer than 255 bytes.
    NameTooLong,
    /// The OPT record is malformed, repeated, or not owned by the root name.
    BadOpt,
    /// Bytes remain after the last record the header announces.
    TrailingData,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = match self {
            Error::Truncated => "message truncated",
            Error::BadPointer => "bad compression pointer",
            Error::BadLabel => "bad label",
            Error::NameTooLong => "name too long",
            Error::BadOpt => "bad OPT record",
            Error::TrailingData => "trailing data",
        };
        f.write_str(s)
    }
}

pub type Result<T> = core::result::Result<T, Error>;

/// Length of the fixed header.
pub const HEADER_LEN: usize = 12;
/// Longest name in wire form, root label included.
pub const MAX_NAME_LEN: usize = 255;
/// The UDP payload size dproxy advertises and accepts (DNS flag day 2020).
pub const EDNS_UDP_SIZE: u16 = 1232;
/// The largest answer a client without EDNS may receive over UDP.
pub const PLAIN_UDP_SIZE: u16 = 512;

pub const CLASS_IN: u16 = 1;
pub const CLASS_CH: u16 = 3;

/// Record types dproxy looks at; every other type passes through untouched (RFC 3597).
pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const PTR: u16 = 12;
    pub const HINFO: u16 = 13;
    pub const MX: u16 = 15;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const SRV: u16 = 33;
    pub const DNAME: u16 = 39;
    pub const OPT: u16 = 41;
    pub const DS: u16 = 43;
    pub const RRSIG: u16 = 46;
    pub const NSEC: u16 = 47;
    pub const NSEC3: u16 = 50;
    pub const TKEY: u16 = 249;
    pub const TSIG: u16 = 250;
    pub const IXFR: u16 = 251;
    pub const AXFR: u16 = 252;
    pub const MAILB: u16 = 253;
    pub const MAILA: u16 = 254;
    pub const ANY: u16 = 255;
}

pub mod rcode {
    pub const NOERROR: u8 = 0;
    pub const FORMERR: u8 = 1;
    pub const SERVFAIL: u8 = 2;
    pub const NXDOMAIN: u8 = 3;
    pub const NOTIMP: u8 = 4;
    pub const REFUSED: u8 = 5;
    /// Extended rcode 16 (RFC 6891): upper bits 1 in OPT, lower bits 0 in the header.
    pub const BADVERS: u16 = 16;
}

pub mod opcode {
    pub const QUERY: u8 = 0;
}

/// Extended DNS Error info codes (RFC 8914) that dproxy sends.
pub mod ede {
    pub const OTHER: u16 = 0;
    pub const STALE_ANSWER: u16 = 3;
    pub const BLOCKED: u16 = 15;
    pub const PROHIBITED: u16 = 18;
    pub const NO_REACHABLE_AUTHORITY: u16 = 22;
    pub const NETWORK_ERROR: u16 = 23;
    /// EDNS option code of an Extended DNS Error.
    pub const OPTION_CODE: u16 = 15;
}

/// Reads a big-endian u16 at `pos`.
#[inline]
pub fn read_u16(buf: &[u8], pos: usize) -> Result<u16> {
    match buf.get(pos..pos.wrapping_add(2)) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(Error::Truncated),
    }
}

/// Reads a big-endian u32 at `pos`.
#[inline]
pub fn read_u32(buf: &[u8], pos: usize) -> Result<u32> {
    match buf.get(pos..pos.wrapping_add(4)) {
        Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(Error::Truncated),
    }
}

/// Writes a big-endian u16 at `pos` if it fits; callers pass offsets they read from the same buffer.
#[inline]
pub fn write_u16(buf: &mut [u8], pos: usize, v: u16) {
    if let Some(b) = buf.get_mut(pos..pos.wrapping_add(2)) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}

/// Writes a big-endian u32 at `pos` if it fits.
#[inline]
pub fn write_u32(buf: &mut [u8], pos: usize, v: u32) {
    if let Some(b) = buf.get_mut(pos..pos.wrapping_add(4)) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}
