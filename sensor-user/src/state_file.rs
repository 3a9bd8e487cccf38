//! The files the sensor keeps for itself (open incidents, learned destinations, alerts waiting
//! for their hash). It runs as root in directories an attacker may reach, so these are never
//! opened through a symbolic link, never readable by others, and replaced whole (temporary
//! file, then rename) so that a crash leaves the old or the new content, not a mix.

use std::{
    fs::{File, OpenOptions},
    io::{Read as _, Write as _},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

/// Opens `path` for reading; a symbolic link in its place is refused (ELOOP) and a FIFO does
/// not block the open.
pub fn open_no_follow(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

/// The whole content of `path`, opened as [`open_no_follow`] does.
pub fn read_no_follow(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open_no_follow(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Replaces `path` with `bytes`, readable by the owner only. A link planted in place of the
/// temporary file is not followed.
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = PathBuf::from(path);
    tmp.as_mut_os_string().push(".tmp");
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .and_then(|mut file| file.write_all(bytes))?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn replaces_privately_and_refuses_links() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        replace(&path, b"one").expect("first write");
        replace(&path, b"two").expect("second write");
        assert_eq!(read_no_follow(&path).expect("read"), b"two");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"root only").expect("secret");
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&secret, &link).expect("symlink");
        assert!(read_no_follow(&link).is_err(), "a link is not read through");
        // A link where the temporary file goes is not written through either.
        std::os::unix::fs::symlink(&secret, dir.path().join("other.json.tmp")).expect("symlink");
        assert!(replace(&dir.path().join("other.json"), b"x").is_err());
        assert_eq!(std::fs::read(&secret).expect("secret"), b"root only");
    }
}
