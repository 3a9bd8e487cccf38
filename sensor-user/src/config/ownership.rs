//! The config file and the state directories must not be writable by anyone but root or the
//! user the sensor runs as: a sensor that reads its rules from a file others can edit can be
//! switched off by the people it watches.

use std::{os::unix::fs::MetadataExt as _, path::Path};

use super::ConfigError;

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
    use super::verdict;

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
