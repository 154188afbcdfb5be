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
//! belong to the same inode. Files are read line by line through a bounded
//! buffer ([`LineReader`]), so a large file is never held whole in memory next
//! to what is parsed from it. What a file is parsed into ([`Content`]: local-name
//! records, or a blocklist's set) is a trait object chosen by the source's parse
//! function, not a type parameter: the watching code is compiled once for both, which
//! keeps it out of the router binary twice.
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

use std::any::Any;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::parsed::Parsed;

/// What one file of a source was parsed into.
pub(crate) trait Content: Any + std::fmt::Debug {
    /// True if the file contributes nothing.
    fn is_empty(&self) -> bool;
    /// Entries parsed and lines skipped, for the debug log.
    fn counts(&self) -> (usize, u32);
    /// True if `other` is the same content (then nothing needs rebuilding).
    fn same(&self, other: &dyn Content) -> bool;
    /// For [`Source::parsed`], which hands out the concrete type.
    fn as_any(&self) -> &dyn Any;
}

/// Parses one file, read line by line from the reader (`kind` as configured).
pub(crate) type ParseFn = fn(&mut LineReader, &Path, Kind) -> io::Result<Box<dyn Content>>;

/// [`Content::same`] for a type with `==`.
pub(crate) fn same_as<P: Content + PartialEq>(a: &P, b: &dyn Content) -> bool {
    b.as_any().downcast_ref::<P>() == Some(a)
}

impl Content for Parsed {
    fn is_empty(&self) -> bool {
        Parsed::is_empty(self)
    }
    fn counts(&self) -> (usize, u32) {
        (self.len(), self.bad)
    }
    fn same(&self, other: &dyn Content) -> bool {
        same_as(self, other)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// What a file holds: nothing (missing, unreadable, not read yet) or what it was parsed into.
type Held = Option<Box<dyn Content>>;

fn held_empty(h: &Held) -> bool {
    h.as_ref().map_or(true, |c| c.is_empty())
}

/// True if `a` and `b` contribute the same (nothing counts as any empty content).
fn held_same(a: &Held, b: &Held) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => x.same(y.as_ref()),
        (Some(x), None) | (None, Some(x)) => x.is_empty(),
        (None, None) => true,
    }
}

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
    /// A domain blocklist, format detected per line (`list blocklist`).
    Blocklist,
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
    parsed: Held,
    /// The last read failed for lack of permission (warned once until it works again).
    denied: bool,
}

impl FileSlot {
    fn new(path: PathBuf) -> Self {
        FileSlot {
            path,
            sig: None,
            racy: false,
            digest: None,
            parsed: None,
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
    /// `force`). Returns true if the parsed content changed. When the bytes
    /// differ, what was parsed before is freed and `before_parse` called
    /// before the new parse, so the old and the new content are never held
    /// together.
    fn refresh(
        &mut self,
        now_sig: Option<Sig>,
        kind: Kind,
        parse: ParseFn,
        force: bool,
        before_parse: &mut dyn FnMut(),
    ) -> bool {
        if !force && !self.racy && now_sig == self.sig {
            return false;
        }
        let mut had = false;
        let (parsed, sig) = match now_sig {
            None => {
                self.digest = None;
                (None, None)
            }
            Some(_) => match read_parsed(
                &self.path,
                kind,
                parse,
                self.digest.filter(|_| !force),
                &mut || {
                    had |= !held_empty(&self.parsed);
                    self.parsed = None;
                    before_parse();
                },
            ) {
                Err(e) if denied(&e) => {
                    // Checked again on the next poll (the signature stays unknown).
                    self.deny();
                    self.sig = None;
                    return false;
                }
                Ok(Outcome::Same(sig)) => {
                    self.denied = false;
                    // Same bytes (a timestamp-only change or a re-check of a racy read).
                    self.sig = Some(sig);
                    self.racy = false;
                    return false;
                }
                Ok(Outcome::New(p, d, sig)) => {
                    self.denied = false;
                    self.digest = Some(d);
                    let (n, bad) = p.counts();
                    log::debug!("{}: {} entries ({} skipped)", self.path.display(), n, bad);
                    (Some(p), Some(sig))
                }
                Err(e) => {
                    self.digest = None;
                    if e.kind() == io::ErrorKind::NotFound {
                        log::debug!("{}: {}", self.path.display(), e);
                    } else {
                        log::warn!("{}: {}", self.path.display(), e);
                    }
                    (None, None)
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
        let changed = had || !held_same(&parsed, &self.parsed);
        // Replaced even when the same: the old content is freed before a next read.
        self.parsed = parsed;
        changed
    }
}

/// Current wall-clock time in UNIX seconds (0 if the clock is before 1970).
fn wall_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The result of reading a file.
enum Outcome {
    /// The same bytes as the digest given: nothing parsed.
    Same(Sig),
    /// Parsed content, the digest of the bytes and the signature of the inode read.
    New(Box<dyn Content>, u64, Sig),
}

/// Reads and parses a file. With `known`, the file is first only hashed (no parse and
/// no warnings if it still has that digest).
fn read_parsed(
    path: &Path,
    kind: Kind,
    parse: ParseFn,
    known: Option<u64>,
    before_parse: &mut dyn FnMut(),
) -> io::Result<Outcome> {
    if let Some(d) = known {
        let (mut r, sig) = LineReader::open(path)?;
        r.quiet = true;
        while r.next_line()?.is_some() {}
        if r.digest() == d {
            return Ok(Outcome::Same(sig));
        }
    }
    let (mut r, sig) = LineReader::open(path)?;
    before_parse();
    let p = parse(&mut r, path, kind)?;
    while r.next_line()?.is_some() {}
    Ok(Outcome::New(p, r.digest(), sig))
}

/// Size of the read buffer; a longer line makes it grow (up to the file cap).
const READ_CHUNK: usize = 64 << 10;

/// A file read line by line through a bounded buffer: at most [`MAX_FILE_BYTES`] (up to
/// the last whole line below it), hashing every line so an unchanged file is recognised.
pub(crate) struct LineReader {
    src: Box<dyn io::Read>,
    path: PathBuf,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// Bytes handed out as lines so far (newlines included).
    used: usize,
    lineno: usize,
    /// Digest of the lines so far (change detection only: unkeyed, fast).
    hash: u64,
    /// No warning about the size cap (a hashing-only pass).
    quiet: bool,
    /// The size cap: [`MAX_FILE_BYTES`] (smaller only in tests, which cannot afford to
    /// stream 64 MiB through an unoptimised build under an emulator).
    pub(crate) cap: usize,
}

impl LineReader {
    /// Reads from any reader (tests, fuzzing); `path` only names it in warnings.
    pub(crate) fn new(src: Box<dyn io::Read>, path: &Path) -> Self {
        LineReader {
            src,
            path: path.to_path_buf(),
            // A zeroed allocation (calloc). Growing from empty with `resize` instead fills
            // the 64 KiB byte by byte when std is not optimised (the unit tests under an
            // emulator): about 1 ms per reader on x86, far more under qemu.
            buf: vec![0u8; READ_CHUNK],
            start: 0,
            end: 0,
            eof: false,
            used: 0,
            lineno: 0,
            hash: 0,
            quiet: false,
            cap: MAX_FILE_BYTES,
        }
    }

    #[cfg(test)]
    pub(crate) fn with_cap(mut self, cap: usize) -> Self {
        self.cap = cap;
        self
    }

    /// Opens a file and returns the reader with the signature of the very inode opened.
    fn open(path: &Path) -> io::Result<(LineReader, Sig)> {
        let f = File::open(path)?;
        let md = f.metadata()?;
        if md.is_dir() {
            return Err(io::Error::other("is a directory"));
        }
        Ok((LineReader::new(Box::new(f), path), Sig::of(&md)))
    }

    /// The next line as `(line_number, line)`, 1-based, without its newline or a
    /// trailing `\r`; `None` at the end (or at the size cap).
    pub(crate) fn next_line(&mut self) -> io::Result<Option<(usize, &[u8])>> {
        loop {
            let pending = self.buf.get(self.start..self.end).unwrap_or(&[]);
            let nl = pending.iter().position(|&b| b == b'\n');
            if nl.is_some() || (self.eof && !pending.is_empty()) {
                let len = nl.unwrap_or(pending.len());
                let next = self.used + len + usize::from(nl.is_some());
                if next > self.cap {
                    self.over_cap();
                    return Ok(None);
                }
                let s = self.start;
                self.used = next;
                self.start = (s + len + 1).min(self.end);
                self.lineno += 1;
                let line = self.buf.get(s..s + len).unwrap_or(&[]);
                self.hash = super::table::hash_bytes(self.hash.rotate_left(17), line);
                return Ok(Some((
                    self.lineno,
                    line.strip_suffix(b"\r").unwrap_or(line),
                )));
            }
            if self.eof {
                return Ok(None);
            }
            // Keep the partial line, and make room for more after it.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.end == self.buf.len() {
                if self.end > self.cap {
                    self.over_cap();
                    return Ok(None);
                }
                let grow = self.buf.len().max(READ_CHUNK);
                self.buf.resize(self.buf.len() + grow, 0);
            }
            let room = self.buf.get_mut(self.end..).unwrap_or(&mut []);
            match self.src.read(room) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Stops at the size cap: the rest of the file is not used.
    fn over_cap(&mut self) {
        if !self.quiet {
            log::warn!(
                "{}: larger than {} MiB, only the beginning is used",
                self.path.display(),
                self.cap >> 20
            );
        }
        self.eof = true;
        self.start = self.end;
    }

    /// Hash of every line handed out so far.
    fn digest(&self) -> u64 {
        self.hash
    }
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
    parse: ParseFn,
    state: State,
    /// The path itself could not be looked at last time (warned once).
    denied: bool,
}

impl Source {
    pub(crate) fn new(path: PathBuf, kind: Kind, parse: ParseFn) -> Self {
        Source {
            path,
            kind,
            parse,
            state: State::Missing,
            denied: false,
        }
    }

    /// Checks the source and re-reads what changed (everything if `force`).
    /// Returns true if any parsed content changed.
    pub(crate) fn refresh(&mut self, force: bool) -> bool {
        self.refresh_then(force, &mut || {})
    }

    /// [`refresh`](Self::refresh), calling `before_parse` before a file is
    /// parsed again (its old content already freed): the caller can free what
    /// it built from the old content first.
    pub(crate) fn refresh_then(&mut self, force: bool, before_parse: &mut dyn FnMut()) -> bool {
        let (kind, parse) = (self.kind, self.parse);
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
                let had = !self.is_empty();
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
                    State::File(slot) => (Vec::new(), true, !held_empty(&slot.parsed)),
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
                    if old_files.iter().any(|s| !held_empty(&s.parsed)) {
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
                    changed |= slot.refresh(s, kind, parse, force, before_parse);
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
                    let had = !self.is_empty();
                    self.state = State::File(FileSlot::new(self.path.clone()));
                    if let State::File(slot) = &mut self.state {
                        return slot.refresh(Some(sig), kind, parse, true, before_parse) | had;
                    }
                }
                match &mut self.state {
                    State::File(slot) => slot.refresh(Some(sig), kind, parse, force, before_parse),
                    _ => false,
                }
            }
        }
    }

    fn slots(&self) -> &[FileSlot] {
        match &self.state {
            State::Missing => &[],
            State::File(slot) => std::slice::from_ref(slot),
            State::Dir { files, .. } => files,
        }
    }

    /// True if no file of this source contributes anything.
    fn is_empty(&self) -> bool {
        self.slots().iter().all(|s| held_empty(&s.parsed))
    }

    /// The parsed content of every file of this source, in order (of the type its
    /// parse function makes; files with nothing parsed are left out).
    pub(crate) fn parsed<P: Content>(&self) -> impl Iterator<Item = &P> {
        self.slots()
            .iter()
            .filter_map(|s| s.parsed.as_deref()?.as_any().downcast_ref::<P>())
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
    super::table::sort_by(&mut out, |a, b| {
        a.as_os_str().as_bytes() < b.as_os_str().as_bytes()
    });
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
