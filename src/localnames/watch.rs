//! Source files and directories: cheap change detection by `stat` and (re)reading.
//!
//! Each configured path is a [`Source`]. A file is re-read when its
//! signature — `(dev, ino, size, mtime, ctime)` with nanoseconds — changes, so
//! an in-place rewrite and a rename-into-place (new inode) are both seen. A
//! directory is re-listed when its own signature changes (entries added,
//! removed or renamed) and every regular file in it is checked as above;
//! dotfiles are skipped (odhcpd writes `.name` temporaries there) and files
//! are read in byte order of their names. A missing path is not an error:
//! it contributes nothing until it appears. Files are read through the
//! opened handle and its `fstat`, so what is read and the recorded signature
//! belong to the same inode.
//!
//! A path that cannot be read for lack of permission (EACCES, EPERM) is not
//! a deleted one: its last good content is kept, and one warning names the
//! file, the user and the fix (typically a daemon that read its files as root
//! at start and polls them after switching to an unprivileged user).
//!
//! File timestamps are coarse (kernel ticks), so a same-size rewrite right
//! after a read could keep the old signature. A file whose mtime was within
//! the last [`RACY_SECS`] seconds of the wall clock when it was read is
//! therefore read again on the next check even if its signature is
//! unchanged (only a real content change counts as a change); this stops by
//! itself a couple of seconds after the last write.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::table::Parsed;
use super::{hosts, leases};

/// Files larger than this are read only up to the last full line below it.
pub(crate) const MAX_FILE_BYTES: usize = 64 << 20;
/// A file modified this recently (seconds) when read is re-read on the next check.
pub(crate) const RACY_SECS: i64 = 2;
/// Most files read from one directory.
pub(crate) const MAX_DIR_FILES: usize = 4096;

/// What kind of content a source holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// hosts(5) syntax (`list hosts`).
    Hosts,
    /// A DHCP lease file, format detected per file (`list leasefile`).
    Leases,
}

/// Identity and version of a file as seen by `stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sig {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    ctime: i64,
    ctime_nsec: i64,
    is_dir: bool,
}

impl Sig {
    fn of(md: &fs::Metadata) -> Sig {
        Sig {
            dev: md.dev(),
            ino: md.ino(),
            size: md.size(),
            mtime: md.mtime(),
            mtime_nsec: md.mtime_nsec(),
            ctime: md.ctime(),
            ctime_nsec: md.ctime_nsec(),
            is_dir: md.is_dir(),
        }
    }
}

/// What `stat` says about a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stat {
    Found(Sig),
    /// Does not exist (or cannot be stat'ed for another reason than permission).
    Missing,
    /// Exists or not: we may not look (a directory on the way is not searchable).
    Denied,
}

fn denied(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied
}

/// `stat` (following symlinks).
fn stat(path: &Path) -> Stat {
    match fs::metadata(path) {
        Ok(md) => Stat::Found(Sig::of(&md)),
        Err(e) if denied(&e) => Stat::Denied,
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound {
                log::debug!("{}: {}", path.display(), e);
            }
            Stat::Missing
        }
    }
}

/// The one warning for a file or directory we may not read: what, who, and the fix.
fn warn_denied(path: &Path) {
    let user = crate::privs::current_user();
    log::warn!(
        "{}: permission denied for user {user}; keeping the names read before. \
         Make it (and every directory above it) readable by {user}, or set option user",
        path.display()
    );
}

/// One file and what was parsed from it.
#[derive(Debug)]
pub(crate) struct FileSlot {
    path: PathBuf,
    sig: Option<Sig>,
    /// Modified too recently at read time for the signature to be trusted.
    racy: bool,
    /// Hash of the bytes last parsed: an unchanged file is not parsed (or warned about) again.
    digest: Option<u64>,
    parsed: Parsed,
    /// The last read failed for lack of permission (warned once until it works again).
    denied: bool,
}

fn digest(data: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(data);
    h.finish()
}

impl FileSlot {
    fn new(path: PathBuf) -> Self {
        FileSlot {
            path,
            sig: None,
            racy: false,
            digest: None,
            parsed: Parsed::default(),
            denied: false,
        }
    }

    /// Permission denied while reading or checking: keep what was read, warn once.
    fn deny(&mut self) {
        if !self.denied {
            warn_denied(&self.path);
        }
        self.denied = true;
    }

    /// Re-reads the file if `now_sig` differs from what was read last (or
    /// `force`). Returns true if the parsed content changed.
    fn refresh(&mut self, now_sig: Option<Sig>, kind: Kind, force: bool) -> bool {
        if !force && !self.racy && now_sig == self.sig {
            return false;
        }
        let (parsed, sig) = match now_sig {
            None => {
                self.digest = None;
                (Parsed::default(), None)
            }
            Some(_) => match read_capped(&self.path) {
                Err(e) if denied(&e) => {
                    // Checked again on the next poll (the signature stays unknown).
                    self.deny();
                    self.sig = None;
                    return false;
                }
                Ok((data, sig)) if !force && self.digest == Some(digest(&data)) => {
                    self.denied = false;
                    // Same bytes (a timestamp-only change or a re-check of a racy read).
                    self.sig = Some(sig);
                    self.racy = false;
                    return false;
                }
                Ok((data, sig)) => {
                    self.denied = false;
                    self.digest = Some(digest(&data));
                    let p = match kind {
                        Kind::Hosts => hosts::parse(&data, &self.path),
                        Kind::Leases => leases::parse(&data, &self.path),
                    };
                    log::debug!(
                        "{}: {} local name records ({} skipped)",
                        self.path.display(),
                        p.recs.len(),
                        p.bad
                    );
                    (p, Some(sig))
                }
                Err(e) => {
                    self.digest = None;
                    if e.kind() == io::ErrorKind::NotFound {
                        log::debug!("{}: {}", self.path.display(), e);
                    } else {
                        log::warn!("{}: {}", self.path.display(), e);
                    }
                    (Parsed::default(), None)
                }
            },
        };
        self.racy = sig.is_some_and(|s| {
            // A future mtime (clock set back, no RTC yet) does not count, so a
            // wrong clock cannot make every check re-read the file.
            let now = wall_secs();
            s.mtime >= now.saturating_sub(RACY_SECS) && s.mtime <= now
        });
        self.sig = sig;
        if parsed == self.parsed {
            false
        } else {
            self.parsed = parsed;
            true
        }
    }
}

/// Current wall-clock time in UNIX seconds (0 if the clock is before 1970).
fn wall_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Reads a file (at most [`MAX_FILE_BYTES`]) and returns it with the
/// signature of the very inode read.
fn read_capped(path: &Path) -> io::Result<(Vec<u8>, Sig)> {
    let f = File::open(path)?;
    let md = f.metadata()?;
    if md.is_dir() {
        return Err(io::Error::other("is a directory"));
    }
    let sig = Sig::of(&md);
    let hint = usize::try_from(md.len())
        .unwrap_or(MAX_FILE_BYTES)
        .min(MAX_FILE_BYTES);
    let mut buf = Vec::with_capacity(hint.saturating_add(1));
    f.take(MAX_FILE_BYTES as u64 + 1).read_to_end(&mut buf)?;
    if buf.len() > MAX_FILE_BYTES {
        log::warn!(
            "{}: larger than {} MiB, only the beginning is used",
            path.display(),
            MAX_FILE_BYTES >> 20
        );
        buf.truncate(MAX_FILE_BYTES);
        let keep = buf.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        buf.truncate(keep);
    }
    Ok((buf, sig))
}

#[derive(Debug)]
enum State {
    Missing,
    File(FileSlot),
    Dir { sig: Sig, files: Vec<FileSlot> },
}

/// One configured path (file or directory).
#[derive(Debug)]
pub(crate) struct Source {
    path: PathBuf,
    kind: Kind,
    state: State,
    /// The path itself could not be looked at last time (warned once).
    denied: bool,
}

impl Source {
    pub(crate) fn new(path: PathBuf, kind: Kind) -> Self {
        Source {
            path,
            kind,
            state: State::Missing,
            denied: false,
        }
    }

    /// Checks the source and re-reads what changed (everything if `force`).
    /// Returns true if any parsed content changed.
    pub(crate) fn refresh(&mut self, force: bool) -> bool {
        let kind = self.kind;
        let st = stat(&self.path);
        if st == Stat::Denied {
            // Not gone: we may not look. What was read stays.
            if !self.denied {
                warn_denied(&self.path);
            }
            self.denied = true;
            return false;
        }
        let was_denied = std::mem::replace(&mut self.denied, false);
        match st {
            Stat::Denied => false,
            Stat::Missing => {
                let had = self.parsed().any(|p| !p.recs.is_empty());
                if !matches!(self.state, State::Missing) {
                    log::info!("{}: gone; its names are dropped", self.path.display());
                } else if force {
                    log::debug!("{}: does not exist (yet)", self.path.display());
                }
                self.state = State::Missing;
                had
            }
            Stat::Found(sig) if sig.is_dir => {
                let old = std::mem::replace(&mut self.state, State::Missing);
                let (mut files, relist, mut changed) = match old {
                    State::Dir {
                        sig: old_sig,
                        files,
                    } => (files, force || old_sig != sig, false),
                    State::File(slot) => (Vec::new(), true, !slot.parsed.recs.is_empty()),
                    State::Missing => (Vec::new(), true, false),
                };
                let listed = if relist {
                    list_dir(&self.path)
                } else {
                    Ok(Vec::new())
                };
                let listed = match listed {
                    Ok(names) => Some(names),
                    Err(e) if denied(&e) => {
                        // Keep the files known from the last listing (and their names);
                        // listed again on the next poll.
                        if !was_denied {
                            warn_denied(&self.path);
                        }
                        self.denied = true;
                        None
                    }
                    Err(e) => {
                        log::warn!("{}: {}", self.path.display(), e);
                        Some(Vec::new())
                    }
                };
                if let (true, Some(names)) = (relist, listed) {
                    let mut old_files = files;
                    files = Vec::with_capacity(names.len());
                    for p in names {
                        match old_files.iter().position(|s| s.path == p) {
                            Some(i) => files.push(old_files.swap_remove(i)),
                            None => files.push(FileSlot::new(p)),
                        }
                    }
                    // Files that left the directory.
                    if old_files.iter().any(|s| !s.parsed.recs.is_empty()) {
                        changed = true;
                    }
                }
                for slot in &mut files {
                    let s = match stat(&slot.path) {
                        Stat::Found(s) if !s.is_dir => Some(s),
                        Stat::Found(_) | Stat::Missing => None,
                        Stat::Denied => {
                            slot.deny();
                            continue;
                        }
                    };
                    changed |= slot.refresh(s, kind, force);
                }
                // A directory we could not list is listed again on the next poll.
                let sig = if self.denied {
                    Sig { ino: 0, ..sig }
                } else {
                    sig
                };
                self.state = State::Dir { sig, files };
                changed
            }
            Stat::Found(sig) => {
                if !matches!(self.state, State::File(_)) {
                    let had = self.parsed().any(|p| !p.recs.is_empty());
                    self.state = State::File(FileSlot::new(self.path.clone()));
                    if let State::File(slot) = &mut self.state {
                        return slot.refresh(Some(sig), kind, true) | had;
                    }
                }
                match &mut self.state {
                    State::File(slot) => slot.refresh(Some(sig), kind, force),
                    _ => false,
                }
            }
        }
    }

    /// The parsed content of every file of this source, in order.
    pub(crate) fn parsed(&self) -> impl Iterator<Item = &Parsed> {
        let slice: &[FileSlot] = match &self.state {
            State::Missing => &[],
            State::File(slot) => std::slice::from_ref(slot),
            State::Dir { files, .. } => files,
        };
        slice.iter().map(|s| &s.parsed)
    }
}

/// Regular files (symlinks followed) of `dir`, dotfiles excluded, sorted by name.
fn list_dir(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let rd = fs::read_dir(dir)?;
    let mut out: Vec<PathBuf> = Vec::new();
    for ent in rd.flatten() {
        let name = ent.file_name();
        if name.as_bytes().first() == Some(&b'.') {
            continue;
        }
        let p = ent.path();
        if !fs::metadata(&p).map(|m| m.is_file()).unwrap_or(false) {
            continue;
        }
        out.push(p);
    }
    out.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
    if out.len() > MAX_DIR_FILES {
        log::warn!(
            "{}: more than {} files, {} ignored",
            dir.display(),
            MAX_DIR_FILES,
            out.len() - MAX_DIR_FILES
        );
        out.truncate(MAX_DIR_FILES);
    }
    Ok(out)
}
