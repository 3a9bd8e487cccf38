//! The config file and the state directories must not be writable by anyone but root or the
//! user the sensor runs as: a sensor that reads its rules from a file others can edit can be
//! switched off by the people it watches. For its state (spool, incidents, a file sink) every
//! directory from / down counts, as sshd's StrictModes checks a user's home: whoever can write
//! any of them can swap a directory below for a symbolic link that the sensor, as root, follows.

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Component, Path, PathBuf},
};

use super::{Config, ConfigError};

const GROUP_OR_OTHER_WRITE: u32 = 0o022;

/// Refuses `path` (a file or directory; it need not exist yet) when it is writable by group or
/// others, or owned by someone other than root or the effective user. Symbolic links are
/// followed: what counts is what is read.
pub fn check_not_writable_by_others(path: &Path) -> Result<(), ConfigError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ConfigError::Unsafe {
                path: path.to_owned(),
                message: format!("cannot check its owner and mode: {source}"),
            });
        }
    };
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    verdict(meta.uid(), meta.mode(), euid).map_err(|message| ConfigError::Unsafe {
        path: path.to_owned(),
        message,
    })
}

/// Every place `run` writes to or reads back as its own: the spool directory (when a sink spools),
/// the incident and learned-destination state files, the file alerts waiting for their hash and
/// file sinks.
pub fn state_locations(config: &Config) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if config.output.sinks.iter().any(|s| s.spool_max_bytes() != 0) {
        paths.push(config.output.spool_dir.clone());
    }
    let incidents = &config.incidents.state_file;
    if !incidents.as_os_str().is_empty() {
        paths.push(incidents.clone());
        let mut pending = incidents.clone();
        pending.as_mut_os_string().push(".pending-hashes");
        paths.push(pending);
    }
    paths.extend(config.rules.server_outbound_unknown.state_file.clone());
    paths.extend(
        Some(&config.baseline.state_file)
            .filter(|p| !p.as_os_str().is_empty())
            .cloned(),
    );
    paths.extend(config.output.sinks.iter().filter_map(|s| s.path.clone()));
    if config.evidence.keeps_bundles() {
        paths.push(config.evidence.dir.clone());
    }
    paths
}

/// Refuses an existing `dir` that group or others may read, write or enter: evidence bundles hold
/// command lines, addresses and script contents. A missing one is created 0700 later.
pub fn check_private_dir(dir: &Path) -> Result<(), ConfigError> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() || !meta.is_dir() => Err(ConfigError::Unsafe {
            path: dir.to_owned(),
            message: "is not a directory (a symbolic link is not followed here)".into(),
        }),
        Ok(meta) if meta.mode() & 0o077 != 0 => Err(ConfigError::Unsafe {
            path: dir.to_owned(),
            message: format!(
                "mode {:o} lets group or others read or enter it; evidence bundles are private \
                 (chmod 0700)",
                meta.mode() & 0o7777
            ),
        }),
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(ConfigError::Unsafe {
            path: dir.to_owned(),
            message: format!("cannot check it: {err}"),
        }),
    }
}

/// Checks each state location and every directory above it (see [`check_chain`]).
pub fn check_state_locations(config: &Config) -> Result<(), ConfigError> {
    state_locations(config)
        .iter()
        .try_for_each(|path| check_chain(path))?;
    if config.evidence.keeps_bundles() {
        check_private_dir(&config.evidence.dir)?;
    }
    Ok(())
}

/// Refuses `path` when it, or any existing directory from / down to it, is owned by someone other
/// than root or the sensor's user, or writable by group or others. A world-writable directory
/// with the sticky bit (/tmp) is accepted when it is owned by root and the next directory down
/// exists (and passes): others cannot rename or remove what they do not own there. Symbolic links
/// on the way are judged by where they lead, and by the directory holding them.
pub fn check_chain(path: &Path) -> Result<(), ConfigError> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let unsafe_at = |at: &Path, message: String| ConfigError::Unsafe {
        path: at.to_owned(),
        message: format!("{message} (a directory above {})", path.display()),
    };
    let mut prefixes: Vec<PathBuf> = Vec::new();
    let mut current = PathBuf::new();
    for component in path.components() {
        match component {
            Component::RootDir => current.push("/"),
            Component::Normal(name) => current.push(name),
            // `..` and `.` would let a path leave the chain checked: refuse them.
            Component::ParentDir | Component::CurDir | Component::Prefix(_) => {
                return Err(unsafe_at(
                    path,
                    "relative components are not allowed".into(),
                ));
            }
        }
        prefixes.push(current.clone());
    }
    if !path.is_absolute() {
        return Err(ConfigError::Unsafe {
            path: path.to_owned(),
            message: "must be an absolute path".into(),
        });
    }
    for (i, dir) in prefixes.iter().enumerate() {
        let meta = match std::fs::symlink_metadata(dir) {
            Ok(meta) => meta,
            // Created later by the sensor, below directories that passed.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(unsafe_at(dir, format!("cannot check it: {err}"))),
        };
        let last = i + 1 == prefixes.len();
        if meta.file_type().is_symlink() {
            // The link's directory passed already; the place it leads to must pass as a whole.
            let target = std::fs::canonicalize(dir)
                .map_err(|err| unsafe_at(dir, format!("cannot resolve the link: {err}")))?;
            check_chain(&target)?;
            continue;
        }
        if last && !meta.is_dir() {
            // The file itself: the rule of check_not_writable_by_others.
            return verdict(meta.uid(), meta.mode(), euid).map_err(|message| ConfigError::Unsafe {
                path: dir.clone(),
                message,
            });
        }
        let sticky_ok = meta.mode() & 0o1000 != 0
            && meta.uid() == 0
            && !last
            && prefixes
                .get(i + 1)
                .is_some_and(|next| std::fs::symlink_metadata(next).is_ok());
        if sticky_ok {
            continue;
        }
        verdict(meta.uid(), meta.mode(), euid).map_err(|message| unsafe_at(dir, message))?;
    }
    Ok(())
}

fn verdict(owner: u32, mode: u32, euid: u32) -> Result<(), String> {
    if owner != 0 && owner != euid {
        return Err(format!(
            "owned by uid {owner}, not by root or the sensor's user (uid {euid}); \
             chown it to root"
        ));
    }
    if mode & GROUP_OR_OTHER_WRITE != 0 {
        return Err(format!(
            "mode {:04o} lets group or other users write it; chmod go-w it",
            mode & 0o7777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::{check_chain, verdict};

    #[test]
    fn a_directory_others_can_write_anywhere_above_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = dir.path().join("open");
        let state = open.join("a/b/state.json");
        std::fs::create_dir_all(state.parent().expect("parent")).expect("mkdir");
        assert!(check_chain(&state).is_ok(), "all private");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let err = check_chain(&state).expect_err("two levels up").to_string();
        assert!(err.starts_with(&format!("{}:", open.display())), "{err}");
        // A link on the way leads into the open directory: refused as well.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let public = dir.path().join("public");
        std::fs::create_dir(&public).expect("mkdir");
        std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o757)).expect("chmod");
        std::os::unix::fs::symlink(&public, dir.path().join("via")).expect("symlink");
        let err = check_chain(&dir.path().join("via/spool"))
            .expect_err("link")
            .to_string();
        assert!(err.contains("public"), "{err}");
        assert!(check_chain(std::path::Path::new("relative/x")).is_err());
    }

    #[test]
    fn only_the_owner_root_or_self_may_write() {
        assert!(verdict(0, 0o100644, 0).is_ok());
        assert!(verdict(1000, 0o100600, 1000).is_ok());
        assert!(verdict(0, 0o040700, 1000).is_ok());
        assert!(verdict(0, 0o100664, 0).is_err());
        assert!(verdict(0, 0o100646, 0).is_err());
        assert!(verdict(1000, 0o100644, 0).is_err());
        assert!(verdict(0, 0o041777, 0).is_err());
    }
}
