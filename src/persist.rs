//! The persist file: the cache written to disk so it survives restarts and reboots.
//!
//! Layout (all integers big-endian):
//!   magic "DPROXYC\0" | version u16 | reserved u16 | written_at u64 (UNIX s) | count u32
//!   count × { expires_at u64 (UNIX s) | lifetime u32 | flags u8 | reserved u8 |
//!             key_len u16 | msg_len u16 | ttl_count u16 | key | msg | ttl offsets (u16 each) }
//!   crc32 u32 of everything before it
//! Written to a temporary file, synced, and renamed over the old one, so a crash or power
//! cut leaves either the old file or the new one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::cache::{flag, Cache};

const MAGIC: &[u8; 8] = b"DPROXYC\0";
pub const VERSION: u16 = 2;
/// Version 1 files were written before answers to DO queries kept their DNSSEC proofs;
/// they load, less those entries (a validator behind dproxy would find them bogus).
const VERSION_NO_PROOFS: u16 = 1;
const HEADER: usize = 8 + 2 + 2 + 8 + 4;
const ENTRY_HEADER: usize = 8 + 4 + 1 + 1 + 2 + 2 + 2;

/// CRC-32 (IEEE), table built at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

pub fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in data {
        c = CRC_TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// Serializes the cache. `clock_now` is the cache clock, `wall_now` UNIX seconds;
/// entries expired more than `stale_max` ago and failure entries are left out.
pub fn encode(cache: &Cache, clock_now: u32, wall_now: u64, stale_max: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + cache.bytes());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&wall_now.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    let mut count = 0u32;
    cache.for_each(|e| {
        if e.flags & flag::FAILURE != 0 || clock_now > e.expires.saturating_add(stale_max) {
            return;
        }
        let expires_at = (wall_now as i64 + e.expires as i64 - clock_now as i64).max(0) as u64;
        let ttls: Vec<usize> = e.ttl_positions().collect();
        out.extend_from_slice(&expires_at.to_be_bytes());
        out.extend_from_slice(&e.lifetime().to_be_bytes());
        out.push(e.flags);
        out.push(0);
        out.extend_from_slice(&(e.key.len() as u16).to_be_bytes());
        out.extend_from_slice(&(e.msg.len() as u16).to_be_bytes());
        out.extend_from_slice(&(ttls.len() as u16).to_be_bytes());
        out.extend_from_slice(e.key);
        out.extend_from_slice(e.msg);
        for p in ttls {
            out.extend_from_slice(&(p as u16).to_be_bytes());
        }
        count += 1;
    });
    out[20..24].copy_from_slice(&count.to_be_bytes());
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Why a persist file was not loaded.
#[derive(Debug, PartialEq, Eq)]
pub enum LoadError {
    Truncated,
    NotOurs,
    FutureVersion(u16),
    BadChecksum,
    Corrupt,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Truncated => write!(f, "file is truncated"),
            LoadError::NotOurs => write!(f, "not a dproxy cache file"),
            LoadError::FutureVersion(v) => write!(f, "written by a newer dproxy (format {v})"),
            LoadError::BadChecksum => write!(f, "checksum mismatch"),
            LoadError::Corrupt => write!(f, "entries are corrupt"),
        }
    }
}

/// What a load did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    pub fresh: usize,
    pub stale: usize,
    pub skipped: usize,
    /// The wall clock is earlier than the write time: everything was loaded as stale.
    pub clock_behind: bool,
}

fn be16(b: &[u8], p: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(p..p + 2)?.try_into().ok()?))
}
fn be32(b: &[u8], p: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(p..p + 4)?.try_into().ok()?))
}
fn be64(b: &[u8], p: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(p..p + 8)?.try_into().ok()?))
}

/// Fills `cache` from a persist file image. Nothing is inserted unless the whole file checks out.
pub fn decode(
    data: &[u8],
    cache: &mut Cache,
    clock_now: u32,
    wall_now: u64,
    stale_max: u32,
) -> Result<Loaded, LoadError> {
    if data.len() < 8 || &data[..8] != MAGIC {
        return Err(if data.len() < 8 && MAGIC.starts_with(data) {
            LoadError::Truncated
        } else {
            LoadError::NotOurs
        });
    }
    if data.len() < HEADER + 4 {
        return Err(LoadError::Truncated);
    }
    let version = be16(data, 8).ok_or(LoadError::Truncated)?;
    if version > VERSION {
        return Err(LoadError::FutureVersion(version));
    }
    if version != VERSION && version != VERSION_NO_PROOFS {
        return Err(LoadError::NotOurs);
    }
    let body = &data[..data.len() - 4];
    let crc = be32(data, data.len() - 4).ok_or(LoadError::Truncated)?;
    if crc32(body) != crc {
        // A file cut short fails here too; say which it most likely was.
        return Err(LoadError::BadChecksum);
    }
    let written_at = be64(body, 12).ok_or(LoadError::Corrupt)?;
    let count = be32(body, 20).ok_or(LoadError::Corrupt)?;
    let clock_behind = wall_now < written_at;
    // Validate everything before touching the cache.
    let mut entries = Vec::new();
    let mut p = HEADER;
    for _ in 0..count {
        let expires_at = be64(body, p).ok_or(LoadError::Corrupt)?;
        let lifetime = be32(body, p + 8).ok_or(LoadError::Corrupt)?;
        let flags = *body.get(p + 12).ok_or(LoadError::Corrupt)?;
        let klen = be16(body, p + 14).ok_or(LoadError::Corrupt)? as usize;
        let mlen = be16(body, p + 16).ok_or(LoadError::Corrupt)? as usize;
        let tcount = be16(body, p + 18).ok_or(LoadError::Corrupt)? as usize;
        let k0 = p + ENTRY_HEADER;
        let m0 = k0 + klen;
        let t0 = m0 + mlen;
        let end = t0 + 2 * tcount;
        if end > body.len() || klen < 6 || mlen < 12 {
            return Err(LoadError::Corrupt);
        }
        let mut ttls = Vec::with_capacity(tcount);
        for i in 0..tcount {
            let pos = be16(body, t0 + 2 * i).ok_or(LoadError::Corrupt)?;
            if pos as usize + 4 > mlen {
                return Err(LoadError::Corrupt);
            }
            ttls.push(pos);
        }
        entries.push((expires_at, lifetime, flags, k0..m0, m0..t0, ttls));
        p = end;
    }
    if p != body.len() {
        return Err(LoadError::Corrupt);
    }
    let mut res = Loaded {
        clock_behind,
        ..Default::default()
    };
    // Oldest first, so the most recently used end up at the front again.
    for (expires_at, lifetime, flags, k, m, ttls) in entries.into_iter().rev() {
        if version == VERSION_NO_PROOFS && body[k.start] & crate::cache::KEY_DO != 0 {
            res.skipped += 1;
            continue;
        }
        let remaining: i64 = if clock_behind {
            // No trustworthy clock (a router without RTC before NTP): keep it, but stale.
            0
        } else {
            // i128: a forged expiry near 2^64 must not overflow.
            (expires_at as i128 - wall_now as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64
        };
        if remaining <= -(stale_max as i64) {
            res.skipped += 1;
            continue;
        }
        let remaining = remaining.min(lifetime as i64);
        let inserted = (clock_now as i64 - (lifetime as i64 - remaining)).max(0) as u32;
        let expires = (clock_now as i64 + remaining).max(0) as u32;
        let lifetime_now = expires.saturating_sub(inserted);
        if cache.insert(&body[k], &body[m], &ttls, inserted, lifetime_now, flags) {
            if remaining > 0 {
                res.fresh += 1;
            } else {
                res.stale += 1;
            }
        } else {
            res.skipped += 1;
        }
    }
    Ok(res)
}

/// Mode of the persist file and its temporary file: the cache is the LAN's browsing
/// history, so only the user dproxy runs as may read it.
pub const FILE_MODE: u32 = 0o600;

/// Creates `tmp` afresh with [`FILE_MODE`]: the mode is given to open(2), so the file is
/// never readable by others, whatever the umask, not even for a moment. A leftover from a
/// crash is removed first; O_EXCL means a symlink planted in its place is not followed.
fn create_private(tmp: &Path) -> io::Result<File> {
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(tmp)
    };
    match open() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(tmp)?;
            open()
        }
        r => r,
    }
}

/// A persist file left readable by others (written by an older dproxy, or copied in by
/// hand) is made 0600 when it is loaded, rather than only at the next write. Returns the
/// old mode when it changed.
pub fn make_private(path: &Path) -> io::Result<Option<u32>> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::symlink_metadata(path)?;
    let mode = meta.permissions().mode() & 0o7777;
    // Never chmod through a symlink: that would change whatever it points at.
    if !meta.file_type().is_file() || mode & 0o077 == 0 {
        return Ok(None);
    }
    fs::set_permissions(path, fs::Permissions::from_mode(FILE_MODE))?;
    Ok(Some(mode))
}

/// Writes `data` to `path` atomically: temporary file, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    // The error names the step and file that failed (usually the temporary file in a
    // directory the daemon's user may not write to).
    fn at(what: &'static str, p: &Path) -> impl FnOnce(io::Error) -> io::Error {
        let p = p.display().to_string();
        move |e| io::Error::new(e.kind(), format!("{what} {p}: {e}"))
    }
    let r = (|| {
        let mut f = create_private(&tmp).map_err(at("creating", &tmp))?;
        f.write_all(data).map_err(at("writing", &tmp))?;
        f.sync_all().map_err(at("writing", &tmp))?;
        fs::rename(&tmp, path).map_err(at("renaming to", path))?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Key;
    use std::os::unix::fs::PermissionsExt;

    fn filled() -> Cache {
        let mut c = Cache::new(1 << 20);
        for i in 0..50u32 {
            let k = Key::new(format!("\x03n{:02}\x04test\x00", i).as_bytes(), 1, 1, 0);
            let mut msg = vec![0u8; 40];
            msg[30..34].copy_from_slice(&300u32.to_be_bytes());
            c.insert(k.as_bytes(), &msg, &[30], 1000, 300, 0);
        }
        c
    }

    #[test]
    fn crc_matches_reference() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn round_trip_ages_entries() {
        let c = filled();
        let data = encode(&c, 1100, 50_000, 86400);
        let mut d = Cache::new(1 << 20);
        // 100 s of the 300 had passed at write; another 50 pass before the load.
        let r = decode(&data, &mut d, 1 << 30, 50_050, 86400).unwrap();
        assert_eq!(
            (r.fresh, r.stale, r.skipped, r.clock_behind),
            (50, 0, 0, false)
        );
        let k = Key::new(b"\x03n07\x04test\x00", 1, 1, 0);
        let e = d.peek(k.as_bytes()).unwrap();
        assert_eq!(e.remaining(1 << 30), 150);
        assert_eq!(e.lifetime(), 300);
    }

    #[test]
    fn clock_behind_loads_stale() {
        let data = encode(&filled(), 1100, 50_000, 86400);
        let mut d = Cache::new(1 << 20);
        let r = decode(&data, &mut d, 5000, 10, 86400).unwrap();
        assert!(r.clock_behind);
        assert_eq!((r.fresh, r.stale), (0, 50));
        let k = Key::new(b"\x03n07\x04test\x00", 1, 1, 0);
        assert_eq!(d.peek(k.as_bytes()).unwrap().remaining(5000), 0);
    }

    #[test]
    fn too_old_entries_are_skipped() {
        let data = encode(&filled(), 1100, 50_000, 86400);
        let mut d = Cache::new(1 << 20);
        let r = decode(&data, &mut d, 0, 50_000 + 200 + 86400, 86400).unwrap();
        assert_eq!((r.fresh, r.stale, r.skipped), (0, 0, 50));
    }

    #[test]
    fn version_1_files_load_without_their_do_answers() {
        let mut c = filled();
        let k = Key::new(b"\x03sig\x04test\x00", 1, 1, crate::cache::KEY_DO);
        let mut msg = vec![0u8; 40];
        msg[30..34].copy_from_slice(&300u32.to_be_bytes());
        assert!(c.insert(k.as_bytes(), &msg, &[30], 1000, 300, 0));
        let mut data = encode(&c, 1100, 50_000, 86400);
        // The same image as version 1 wrote it (the layout did not change).
        data[8..10].copy_from_slice(&1u16.to_be_bytes());
        let n = data.len() - 4;
        let crc = crc32(&data[..n]);
        data[n..].copy_from_slice(&crc.to_be_bytes());
        let mut d = Cache::new(1 << 20);
        let r = decode(&data, &mut d, 1 << 30, 50_050, 86400).unwrap();
        assert_eq!((r.fresh, r.skipped), (50, 1));
        assert!(d.peek(k.as_bytes()).is_none());
        // Written now, the DO answer holds its proofs and is kept.
        let data = encode(&c, 1100, 50_000, 86400);
        let mut d = Cache::new(1 << 20);
        let r = decode(&data, &mut d, 1 << 30, 50_050, 86400).unwrap();
        assert_eq!((r.fresh, r.skipped), (51, 0));
    }

    #[test]
    fn damaged_files_are_refused_whole() {
        let data = encode(&filled(), 1100, 50_000, 86400);
        let mut d = Cache::new(1 << 20);
        for cut in [0, 4, 20, data.len() / 2, data.len() - 1] {
            assert!(
                decode(&data[..cut], &mut d, 0, 50_000, 86400).is_err(),
                "cut at {cut}"
            );
        }
        let mut bad = data.clone();
        bad[100] ^= 1;
        assert_eq!(
            decode(&bad, &mut d, 0, 50_000, 86400),
            Err(LoadError::BadChecksum)
        );
        assert_eq!(
            decode(b"#!/bin/sh\necho hi\n", &mut d, 0, 0, 0),
            Err(LoadError::NotOurs)
        );
        let mut future = data.clone();
        future[9] = 9;
        assert_eq!(
            decode(&future, &mut d, 0, 0, 0),
            Err(LoadError::FutureVersion(9))
        );
        // A valid checksum over nonsense entries.
        let mut forged = data[..HEADER].to_vec();
        forged[20..24].copy_from_slice(&1u32.to_be_bytes());
        forged.extend_from_slice(&[0xff; 30]);
        let crc = crc32(&forged);
        forged.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(decode(&forged, &mut d, 0, 0, 0), Err(LoadError::Corrupt));
        assert!(d.is_empty());
    }

    #[test]
    fn atomic_write_replaces() {
        let d = crate::test_dir::TempDir::new("persist");
        let dir = d.dir();
        let p = dir.join("cache");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir).unwrap().count(), 1);
    }

    fn mode_of(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn files_holding_names_are_private_from_creation() {
        // The usual umask, which alone would give 0644.
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
        let d = crate::test_dir::TempDir::new("private");
        let dir = d.dir();
        let p = dir.join("cache");
        let tmp = dir.join(".cache.tmp");
        // The temporary file is 0600 as soon as it exists, before any byte is written.
        drop(create_private(&tmp).unwrap());
        assert_eq!(mode_of(&tmp), 0o600);
        // A leftover temporary file (a crash mid-write) is replaced, not reused.
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&p, b"one").unwrap();
        assert_eq!(mode_of(&p), 0o600);
        assert!(!tmp.exists());
        // A symlink planted as the temporary file is neither followed nor written through.
        let target = dir.join("elsewhere");
        fs::write(&target, b"keep").unwrap();
        std::os::unix::fs::symlink(&target, &tmp).unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(mode_of(&p), 0o600);
    }
}
