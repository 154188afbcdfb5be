//! Least privilege: after the sockets are bound, switch to `option user` (and optionally
//! chroot), and refuse to go on if the switch did not take.

use std::path::Path;

use nix::unistd::{chdir, chroot, getgid, getuid, setgid, setgroups, setuid, Uid, User};

/// The user a root-started daemon becomes when the config names none.
pub const DEFAULT_USER: &str = "nobody";

/// Drops root. Does nothing when not started as root (beyond a warning if a user was asked).
/// `user` = "root" keeps root, explicitly.
pub fn drop_privileges(
    user: Option<&str>,
    chroot_dir: Option<&Path>,
    persist_file: Option<&Path>,
) -> Result<(), String> {
    if !Uid::effective().is_root() {
        if let Some(u) = user {
            log::warn!(
                "not started as root: staying uid {} instead of switching to '{u}'",
                getuid()
            );
        }
        return Ok(());
    }
    let name = user.unwrap_or(DEFAULT_USER);
    let target = match User::from_name(name) {
        Ok(Some(u)) => u,
        Ok(None) => return Err(format!("user '{name}' does not exist")),
        Err(e) => return Err(format!("cannot look up user '{name}': {e}")),
    };
    if let Some(dir) = chroot_dir {
        chroot(dir).map_err(|e| format!("chroot {}: {e}", dir.display()))?;
        chdir("/").map_err(|e| format!("chdir / in chroot: {e}"))?;
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
    setgroups(&[target.gid]).map_err(|e| format!("setgroups: {e}"))?;
    setgid(target.gid).map_err(|e| format!("setgid {}: {e}", target.gid))?;
    setuid(target.uid).map_err(|e| format!("setuid {}: {e}", target.uid))?;
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
