//! Dropping root after the listeners are bound.

use std::path::Path;

use anyhow::{Context, bail};
use nix::unistd::{Gid, Uid, User, getuid, setgid, setgroups, setuid};

/// When running as root with `run_as` set, hands the data directory to that
/// user and switches to it for good. Without `run_as`, root keeps running
/// with a warning (the newcomer default on a development machine).
pub fn drop_if_root(run_as: Option<&str>, data_dir: &Path) -> anyhow::Result<()> {
    if !getuid().is_root() {
        return Ok(());
    }
    let Some(name) = run_as else {
        tracing::warn!(
            "running as root: set [server] run_as to an unprivileged user, and Rampart switches to it after binding its ports"
        );
        return Ok(());
    };
    let user = User::from_name(name)
        .with_context(|| format!("cannot look up server.run_as user {name:?}"))?
        .with_context(|| format!("server.run_as = {name:?}: no such user on this machine (create it, e.g. `useradd --system {name}`)"))?;
    // Hand the directory over once, when it is not the user's yet (first start
    // as root); afterwards every file is created by that user already.
    use std::os::unix::fs::MetadataExt;
    if data_dir.exists() && data_dir.metadata()?.uid() != user.uid.as_raw() {
        chown_tree(data_dir, user.uid, user.gid)?;
    }
    setgroups(&[user.gid]).context("setgroups failed while dropping root")?;
    setgid(user.gid).context("setgid failed while dropping root")?;
    setuid(user.uid).context("setuid failed while dropping root")?;
    if setuid(Uid::from_raw(0)).is_ok() {
        bail!("dropping root failed: the process could regain uid 0");
    }
    tracing::info!(
        "switched to user {name} (uid {}, gid {})",
        user.uid,
        user.gid
    );
    Ok(())
}

/// Gives `dir` and everything below it to `uid:gid` (no symlinks followed).
fn chown_tree(dir: &Path, uid: Uid, gid: Gid) -> anyhow::Result<()> {
    let chown = |p: &Path| {
        std::os::unix::fs::lchown(p, Some(uid.as_raw()), Some(gid.as_raw()))
            .with_context(|| format!("cannot hand {} to the run_as user", p.display()))
    };
    chown(dir)?;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let ty = entry.file_type()?;
        if ty.is_dir() {
            chown_tree(&entry.path(), uid, gid)?;
        } else {
            chown(&entry.path())?;
        }
    }
    Ok(())
}
