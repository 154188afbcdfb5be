//! Domain blocklists (`list blocklist`, `list block_allow`): each listed domain is
//! blocked together with all its subdomains, unless an allow entry covers the name.
//!
//! Only fixed-size fingerprints are kept (keyed 64-bit hashes of each listed name, see
//! `hash.rs`), one sorted set per file (`set.rs`): about 7 bytes per domain, whatever the
//! names' length. A query name is looked up once per suffix. The false-positive rate
//! follows from the 64-bit fingerprints: at most k·n/2^64 for a name of k labels and n
//! listed domains (3·10^-13 for 5 labels and 1,000,000 domains); lists of under 131,072
//! domains keep fewer bits, and stay below k·4/2^48 (7·10^-14 for 5 labels).
//!
//! Files (or directories of them) are watched and re-read like hosts files (the same
//! code, `localnames::watch`), streamed line by line; a changed file is rebuilt alone,
//! while the others keep their sets, so a reload needs at most one new set beside the
//! old ones. Bad lines are counted and reported once per file read.

mod hash;
mod parse;
mod set;

use std::any::Any;
use std::io;
use std::path::{Path, PathBuf};

use crate::localnames::watch::{same_as, Content, Kind, LineReader, Source};

pub use parse::{is_domain, parse_line, Line};
pub use set::FpSet;

/// One blocklist file's set.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FileSet {
    set: FpSet,
    path: PathBuf,
    bad: u32,
    /// Bit k set: some listed name has k labels (63 for 63 or more).
    labels: u64,
}

impl FileSet {
    /// Reads a whole list from `src` (`path` names it in the log).
    pub fn read(src: Box<dyn io::Read>, path: &Path) -> io::Result<FileSet> {
        Self::parse(&mut LineReader::new(src, path), path)
    }

    /// True if `name` (lowercase, dotted, no final dot) or one of its parents is listed.
    pub fn blocks(&self, name: &[u8]) -> bool {
        hash::any_suffix(name, |fp, _| self.set.contains(fp))
    }

    /// Domains in the set.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// True if the set is empty.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Lines not understood.
    pub fn bad(&self) -> u32 {
        self.bad
    }

    /// Parses a list line by line.
    fn parse(r: &mut LineReader, path: &Path) -> io::Result<FileSet> {
        let mut fps = Vec::new();
        let mut bad = 0u32;
        let mut labels = 0u64;
        let mut first_bad: Option<(usize, Vec<u8>)> = None;
        while let Some((n, line)) = r.next_line()? {
            let kind = parse_line(line, |name| {
                fps.push(hash::fingerprint(name));
                labels |= 1 << label_count(name);
            });
            if kind == Line::Bad {
                bad = bad.saturating_add(1);
                if first_bad.is_none() {
                    first_bad = Some((n, line.get(..80).unwrap_or(line).to_vec()));
                }
            }
        }
        if let Some((n, line)) = first_bad {
            log::warn!(
                "{}: {} lines not understood and skipped, the first at line {}: {}",
                path.display(),
                bad,
                n,
                line.escape_ascii()
            );
        }
        Ok(FileSet {
            set: FpSet::from_vec(fps),
            path: path.to_path_buf(),
            bad,
            labels,
        })
    }
}

/// The parse function of blocklist sources.
fn parse_file(r: &mut LineReader, path: &Path, _kind: Kind) -> io::Result<Box<dyn Content>> {
    Ok(Box::new(FileSet::parse(r, path)?))
}

impl Content for FileSet {
    fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    fn counts(&self) -> (usize, u32) {
        (self.set.len(), self.bad)
    }

    fn same(&self, other: &dyn Content) -> bool {
        same_as(self, other)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Labels in a dotted name, at most 63.
fn label_count(name: &[u8]) -> u32 {
    (name.iter().filter(|&&b| b == b'.').count() + 1).min(63) as u32
}

/// Why a name is blocked or not (`dproxy ctl blocked NAME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No list covers the name.
    NotListed,
    /// Blocked: the listed name that covers it, and the file that lists it.
    Blocked { listed: String, file: PathBuf },
    /// Listed, but an allow entry covers it.
    Allowed { listed: String, allowed: String },
}

/// Every configured blocklist and the allow list.
#[derive(Debug, Default)]
pub struct Blocklist {
    sources: Vec<Source>,
    allow: FpSet,
    /// Domains over all files (a domain in two files counts twice).
    domains: usize,
    /// Label counts of the listed names, as in [`FileSet`]: suffixes of other lengths
    /// are not looked up (most lists hold no top-level domain, for one).
    labels: u64,
}

impl Blocklist {
    /// Sets up the sources; nothing is read until [`refresh`](Self::refresh).
    pub fn new(files: &[PathBuf], allow: &[String]) -> Blocklist {
        let mut fps = Vec::new();
        for a in allow {
            if parse_line(a.as_bytes(), |n| fps.push(hash::fingerprint(n))) != Line::Names {
                log::warn!("block_allow '{a}' is not a domain name; ignored");
            }
        }
        Blocklist {
            sources: files
                .iter()
                .map(|p| Source::new(p.clone(), Kind::Blocklist, parse_file))
                .collect(),
            allow: FpSet::from_vec(fps),
            domains: 0,
            labels: 0,
        }
    }

    /// Re-reads the files that changed (all of them if `force`). Returns true if any
    /// set changed.
    pub fn refresh(&mut self, force: bool) -> bool {
        let mut changed = false;
        for s in &mut self.sources {
            changed |= s.refresh(force);
        }
        if changed || force {
            self.domains = self.sets().map(FileSet::len).sum();
            self.labels = self.sets().fold(0, |m, s| m | s.labels);
            if !self.sources.is_empty() {
                log::info!("blocklists: {} domains", self.domains);
            }
        }
        changed
    }

    fn sets(&self) -> impl Iterator<Item = &FileSet> {
        self.sources.iter().flat_map(|s| s.parsed::<FileSet>())
    }

    /// Domains loaded, over all files.
    pub fn len(&self) -> usize {
        self.domains
    }

    /// True if no domain is loaded.
    pub fn is_empty(&self) -> bool {
        self.domains == 0
    }

    /// True if `name` (lowercase, dotted, no final dot) is to be blocked.
    #[inline]
    pub fn blocks(&self, name: &[u8]) -> bool {
        if self.domains == 0 {
            return false;
        }
        let mut depth = 0u32;
        let listed = |fp: u64, _| {
            depth = (depth + 1).min(63);
            if self.labels & (1 << depth) == 0 {
                return false;
            }
            for src in &self.sources {
                for s in src.parsed::<FileSet>() {
                    if s.set.contains(fp) {
                        return true;
                    }
                }
            }
            false
        };
        hash::any_suffix(name, listed)
            && (self.allow.is_empty() || !hash::any_suffix(name, |fp, _| self.allow.contains(fp)))
    }

    /// Explains the decision for `name` (lowercase, dotted, no final dot).
    pub fn verdict(&self, name: &[u8]) -> Verdict {
        let text = |start: usize| {
            String::from_utf8_lossy(name.get(start..).unwrap_or_default()).into_owned()
        };
        let mut hit = None;
        hash::any_suffix(name, |fp, start| {
            hit = self
                .sets()
                .find(|s| s.set.contains(fp))
                .map(|s| (start, s.path.clone()));
            hit.is_some()
        });
        let Some((start, file)) = hit else {
            return Verdict::NotListed;
        };
        let mut allowed = None;
        hash::any_suffix(name, |fp, s| {
            allowed = self.allow.contains(fp).then_some(s);
            allowed.is_some()
        });
        match allowed {
            Some(a) => Verdict::Allowed {
                listed: text(start),
                allowed: text(a),
            },
            None => Verdict::Blocked {
                listed: text(start),
                file,
            },
        }
    }
}

#[cfg(test)]
mod tests;
