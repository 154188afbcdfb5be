//! Helpers shared by the property and differential tests.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::test_runner::Config;

/// proptest settings: `cases` cases, and no failure files written into the tree.
pub fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

static N: AtomicUsize = AtomicUsize::new(0);

/// Writes `data` to a fresh file `<prefix>-<pid>-<n><suffix>` in the temp dir (the
/// tests run in parallel threads).
#[allow(dead_code)] // Only the crates that load files call it.
pub fn write_temp(prefix: &str, suffix: &str, data: &[u8]) -> PathBuf {
    let n = N.fetch_add(1, Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("{prefix}-{}-{n}{suffix}", std::process::id()));
    std::fs::File::create(&p)
        .and_then(|mut f| f.write_all(data))
        .unwrap();
    p
}
