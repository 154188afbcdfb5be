//! Least privilege: after the sockets are bound, switch to `option user` (and optionally
//! chroot), and refuse to go on if the switch did not take.

use std::path::Path;

use nix::unistd::{chdir, chroot, getgid, getuid, setgid, setgroups, setuid, Uid, User};

/// Errors read as std's: libc's messages, without a second errno table in the binary.
fn os_err(e: nix::errno::Errno) -> std::io::Error {
    e.into()
}

/// The user a root-started daemon becomes when the config names none.
pub const DEFAULT_USER: &str = "nobody";

/// Who to become: looked up before any socket is bound, so that a wrong `user` stops the
/// daemon before it is visible on the network. None: stay as we are.
pub struct Target {
    name: String,
    user: User,
}

/// Resolves `option user` (default [`DEFAULT_USER`]) when started as root.
pub fn resolve(user: Option<&str>) -> Result<Option<Target>, String> {
    if !Uid::effective().is_root() {
        // procd may start us as the configured user already: nothing to do then.
        if let Some(u) = user {
            let already = matches!(User::from_name(u), Ok(Some(t)) if t.uid == getuid());
            if !already {
                log::warn!(
                    "not started as root: staying uid {} instead of switching to '{u}'",
                    getuid()
                );
            }
        }
        return Ok(None);
    }
    let name = user.unwrap_or(DEFAULT_USER);
    match User::from_name(name) {
        Ok(Some(u)) => Ok(Some(Target {
            name: name.to_string(),
            user: u,
        })),
        Ok(None) => Err(format!("user '{name}' does not exist")),
        Err(e) => Err(format!("cannot look up user '{name}': {}", os_err(e))),
    }
}

/// Switches to the resolved user (after the sockets are bound), chrooting first if asked,
/// and checks that root cannot be regained. `user 'root'` keeps root, explicitly.
pub fn drop_privileges(
    target: Option<Target>,
    chroot_dir: Option<&Path>,
    persist_file: Option<&Path>,
) -> Result<(), String> {
    let Some(Target { name, user: target }) = target else {
        return Ok(());
    };
    if let Some(dir) = chroot_dir {
        chroot(dir).map_err(|e| format!("chroot {}: {}", dir.display(), os_err(e)))?;
        chdir("/").map_err(|e| format!("chdir / in chroot: {}", os_err(e)))?;
        log::info!("chrooted to {}", dir.display());
    }
    if target.uid.is_root() {
        log::warn!("running as root (option user 'root')");
        return Ok(());
    }
    // The cache file written at exit must stay writable after the switch.
    if let Some(p) = persist_file {
        if p.exists() {
            let _ = nix::unistd::chown(p, Some(target.uid), Some(target.gid));
        }
    }
    setgroups(&[target.gid]).map_err(|e| format!("setgroups: {}", os_err(e)))?;
    setgid(target.gid).map_err(|e| format!("setgid {}: {}", target.gid, os_err(e)))?;
    setuid(target.uid).map_err(|e| format!("setuid {}: {}", target.uid, os_err(e)))?;
    // Verify: the ids changed and root cannot be regained.
    if getuid() != target.uid || Uid::effective() != target.uid || getgid() != target.gid {
        return Err("privilege drop did not take".into());
    }
    if setuid(Uid::from_raw(0)).is_ok() {
        return Err("root could be regained after the drop".into());
    }
    log::info!(
        "running as user {name} (uid {}, gid {})",
        target.uid,
        target.gid
    );
    Ok(())
}

/// The name of the user we run as now (the uid if it has no name), for messages.
pub fn current_user() -> String {
    let uid = Uid::effective();
    match User::from_uid(uid) {
        Ok(Some(u)) => u.name,
        _ => format!("uid {uid}"),
    }
}

/// Who the daemon will run as once started: for checking its files beforehand.
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl RunAs {
    /// The user `option user` switches to, or else the current one.
    /// For `--check-config`: the user a start as root would switch to, without the
    /// warnings of [`resolve`]; the current user if not root or if it does not exist.
    pub fn configured(user: Option<&str>) -> RunAs {
        if Uid::effective().is_root() {
            let name = user.unwrap_or(DEFAULT_USER);
            if let Ok(Some(u)) = User::from_name(name) {
                return RunAs::of(Some(&Target {
                    name: name.to_string(),
                    user: u,
                }));
            }
        }
        RunAs::of(None)
    }

    pub fn of(target: Option<&Target>) -> RunAs {
        match target {
            Some(t) => RunAs {
                name: t.name.clone(),
                uid: t.user.uid.as_raw(),
                gid: t.user.gid.as_raw(),
            },
            None => RunAs {
                name: current_user(),
                uid: Uid::effective().as_raw(),
                gid: nix::unistd::Gid::effective().as_raw(),
            },
        }
    }
}

/// Read, write and search bits as in a mode's "other" triple.
pub const R: u32 = 4;
pub const W: u32 = 2;
pub const X: u32 = 1;

/// Would `who` get `want` on a file with this metadata, by its mode bits? ACLs and
/// capabilities are not looked at; root may do anything. The daemon keeps only its
/// primary group after the switch, so that is the only group that counts.
fn mode_allows(md: &std::fs::Metadata, who: &RunAs, want: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    if who.uid == 0 {
        return true;
    }
    let m = md.mode();
    let bits = if md.uid() == who.uid {
        m >> 6
    } else if md.gid() == who.gid {
        m >> 3
    } else {
        m
    } & 7;
    bits & want == want
}

/// Why `who` could not use `path` as wanted, if it could not. A path that does not
/// exist (yet) is fine as long as the directories above it that exist can be searched.
pub fn access_problem(path: &Path, who: &RunAs, want: u32) -> Option<String> {
    let mut dirs: Vec<&Path> = path.ancestors().skip(1).collect();
    dirs.reverse();
    for d in dirs {
        if d.as_os_str().is_empty() {
            continue;
        }
        match std::fs::metadata(d) {
            Ok(md) if md.is_dir() && !mode_allows(&md, who, X) => {
                return Some(format!("directory {} is not searchable", d.display()));
            }
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    let md = std::fs::metadata(path).ok()?;
    // A directory of hosts files must be listed as well as entered.
    let want = if md.is_dir() && want == R {
        R | X
    } else {
        want
    };
    if mode_allows(&md, who, want) {
        return None;
    }
    Some(if want & W != 0 {
        "it is not writable".to_string()
    } else {
        "it is not readable".to_string()
    })
}
