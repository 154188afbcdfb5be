//! The start-up check of which configured files the daemon could no longer read (or, for
//! the persist file, write in) once it runs as its unprivileged user. Apart from
//! `privs` so that the privilege code does not depend on the config.

use std::path::Path;

use crate::config::Config;
use crate::privs::{access_problem, RunAs, R, W, X};

/// One warning for each configured path the daemon would not be able to read (or, for
/// the persist file, write in) after switching to `who`: such a file is read once at
/// start as root and then never again.
pub fn access_warnings(cfg: &Config, who: &RunAs) -> Vec<String> {
    if who.uid == 0 {
        return Vec::new();
    }
    let inside = |p: &Path| match &cfg.chroot {
        Some(root) => root.join(p.strip_prefix("/").unwrap_or(p)),
        None => p.to_path_buf(),
    };
    let mut reads: Vec<(&str, &Path)> = Vec::new();
    if let Some(f) = &cfg.file {
        reads.push(("config", f));
    }
    reads.extend(cfg.hosts.iter().map(|p| ("hosts", p.as_path())));
    reads.extend(cfg.leasefiles.iter().map(|p| ("leasefile", p.as_path())));
    if cfg.servers.is_empty() {
        if let Some(r) = &cfg.resolvfile {
            reads.push(("resolvfile", r));
        }
    }
    let mut out = Vec::new();
    let name = &who.name;
    for (option, p) in reads {
        // The config file is re-read (SIGHUP) from inside the chroot too.
        if let Some(why) = access_problem(&inside(p), who, R) {
            out.push(format!(
                "{option} {}: user {name} cannot read it ({why}); changes will not be \
                 seen after the switch to {name}: make it readable by {name}, or set option user",
                p.display()
            ));
        }
    }
    if let Some(p) = &cfg.persist_file {
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if let Some(why) = access_problem(&inside(dir), who, W | X) {
            out.push(format!(
                "persist_file {}: user {name} cannot write in {} ({why}); the cache will not \
                 be saved: make the directory writable by {name}, or set option user",
                p.display(),
                dir.display()
            ));
        }
    }
    out
}
