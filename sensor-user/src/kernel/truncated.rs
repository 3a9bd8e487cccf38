//! Completing a path the kernel walk could not resolve to its start (more levels than the
//! verifier lets it walk, or longer than its buffer). The kernel sends such a file event without
//! its prefix check, carrying the deepest part of the path it found; here the full path is
//! looked up while the writer may still hold the file open.

use std::os::unix::ffi::OsStrExt;

use crate::event::{File, FileOp};

/// Replaces `file.path` by the full path and clears `path_truncated` when the writer's open
/// descriptor still names a file whose path ends with the kernel's tail (so a descriptor closed
/// and reused since is never taken for it). Returns whether it did. A path too long for
/// readlink(2), a closed descriptor or a rename/link stay truncated: the rules then treat the
/// path as under a web root rather than miss it.
pub fn complete(file: &mut File) -> bool {
    if file.op != FileOp::Open || file.ret < 0 {
        return false;
    }
    let link = format!("/proc/{}/fd/{}", file.pid, file.ret);
    let Ok(full) = std::fs::read_link(link) else {
        return false;
    };
    let full = crate::escape::escape_bytes(full.as_os_str().as_bytes());
    if full.len() <= file.path.len() || !full.ends_with(file.path.as_str()) {
        return false;
    }
    file.path = full;
    file.path_truncated = false;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_event(pid: u32, fd: i32, path: &str) -> File {
        File {
            ts_ns: 1,
            pid,
            tid: pid,
            uid: 0,
            op: FileOp::Open,
            path: path.into(),
            path_truncated: true,
            source: None,
            flags: File::O_CREAT,
            ret: fd,
            dev: None,
            ino: None,
        }
    }

    #[test]
    fn an_open_descriptor_completes_the_tail_and_a_mismatch_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let deep = dir.path().join("a/b/c");
        std::fs::create_dir_all(&deep).expect("dirs");
        let f = std::fs::File::create(deep.join("x.php")).expect("create");
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
        let mut ok = open_event(std::process::id(), fd, "/b/c/x.php");
        assert!(complete(&mut ok));
        assert!(!ok.path_truncated);
        assert_eq!(ok.path, deep.join("x.php").to_string_lossy());
        // The descriptor now names another file: the tail does not match, nothing changes.
        let mut other = open_event(std::process::id(), fd, "/b/c/y.php");
        assert!(!complete(&mut other));
        assert!(other.path_truncated);
        assert_eq!(other.path, "/b/c/y.php");
    }
}
