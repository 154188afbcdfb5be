//! Scratch directories for unit tests: unique per process and call, removed when
//! dropped, so a test run leaves nothing behind in the temp dir.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A directory under the system temp dir, removed with everything in it on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    /// A fresh empty directory `dproxy-<tag>-<pid>-<n>` (tests run in parallel threads).
    pub(crate) fn new(tag: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("dproxy-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.0
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub(crate) fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.path(name);
        fs::write(&p, data).expect("write temp file");
        p
    }

    /// Writes `name` the way daemons do: a temp file renamed over it.
    pub(crate) fn replace(&self, name: &str, data: &[u8]) -> PathBuf {
        let tmp = self.path(&format!(".{name}.tmp"));
        fs::write(&tmp, data).expect("write temp file");
        let p = self.path(name);
        fs::rename(&tmp, &p).expect("rename into place");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
