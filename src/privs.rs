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
