//! The identity (device and inode) of the file a file event names, so that
//! server-written-file-executed can recognise that file when it is executed under any name.
//!
//! Read with lstat(2) when the sensor takes the event from the ring, not by the kernel at the
//! write: the race this accepts is a writer that replaces the file at that path in the few
//! milliseconds between its syscall and the sensor's lstat (a rename over it, an unlink). Every
//! rename or link under a web root is itself an event, stamped in turn; what escapes is a file
//! first linked to a name outside the watched paths and then replaced at its watched name before
//! the sensor looked. The path is the host's view (see `File::path`), which lstat resolves in the
//! sensor's own mount namespace: for a writer in a container whose files the host cannot reach
//! at that path, the event stays without identity and execs of it are not matched.

use std::os::unix::{ffi::OsStrExt, fs::MetadataExt};

use crate::event::File;

/// Sets `file.dev` and `file.ino` from lstat(2) of its path when the syscall succeeded and the
/// path is whole. lstat never follows a symbolic link, so a link the writer made is known as
/// itself, never as what it points at.
pub fn stamp(file: &mut File) {
    if !file.succeeded() || file.path_truncated || !file.path.starts_with('/') {
        return;
    }
    let Ok(bytes) = crate::escape::unescape(&file.path) else {
        return;
    };
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(&bytes));
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        file.dev = Some(meta.dev());
        file.ino = Some(meta.ino());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::FileOp;

    fn event(path: &str, ret: i32) -> File {
        File {
            ts_ns: 1,
            pid: 1,
            tid: 1,
            uid: 0,
            op: FileOp::Open,
            path: path.into(),
            path_truncated: false,
            source: None,
            flags: File::O_CREAT,
            ret,
            dev: None,
            ino: None,
        }
    }

    #[test]
    fn the_file_itself_is_stamped_and_a_link_as_the_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("x");
        std::fs::write(&file, b"x").expect("write");
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        let meta = std::fs::metadata(&file).expect("stat");

        let mut e = event(file.to_str().expect("utf-8"), 3);
        stamp(&mut e);
        assert_eq!((e.dev, e.ino), (Some(meta.dev()), Some(meta.ino())));

        let mut l = event(link.to_str().expect("utf-8"), 0);
        stamp(&mut l);
        assert!(l.ino.is_some());
        assert_ne!(l.ino, e.ino, "a symlink is not its target");

        for mut none in [
            event(file.to_str().expect("utf-8"), -13),
            event(dir.path().join("gone").to_str().expect("utf-8"), 0),
            event("relative", 0),
        ] {
            stamp(&mut none);
            assert_eq!((none.dev, none.ino), (None, None), "{}", none.path);
        }
    }
}
