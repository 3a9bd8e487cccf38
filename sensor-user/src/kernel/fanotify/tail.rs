//! The deepest part of a path too long for readlink(2) (more than a page): found by walking up
//! from the directory fanotify named, one `..` at a time, looking each directory's name up in its
//! parent by inode. Like the kernel walk of the tracepoints, it keeps at most PATH_MAX - 1 bytes
//! and the event goes out marked `path_truncated` (the rules then treat it as under a web root).

use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{Dir, Mode, OFlags};

/// The tracepoint buffer keeps this much of a path.
const KEEP: usize = 4095;
/// Levels walked at most (the name lookups read whole directories).
const LEVELS: usize = 256;

/// `/a/b/name`, ending at `name`, no longer than [`KEEP`]; `None` when not even the directory's
/// own name can be found.
pub fn tail(dir: &OwnedFd, name: &[u8]) -> Option<Vec<u8>> {
    let mut parts: Vec<Vec<u8>> = vec![name.to_vec()];
    let mut total = name.len() + 1;
    let mut walked: Option<OwnedFd> = None;
    for _ in 0..LEVELS {
        let cur = walked.as_ref().unwrap_or(dir);
        let parent = rustix::fs::openat(
            cur,
            "..",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let here = rustix::fs::fstat(cur).ok()?;
        let above = rustix::fs::fstat(&parent).ok()?;
        if (here.st_dev, here.st_ino) == (above.st_dev, above.st_ino) || here.st_dev != above.st_dev
        {
            // The root, or a mount crossing whose mountpoint name is not in the parent by this
            // inode: what was found is the tail.
            break;
        }
        let Some(part) = name_in(&parent, here.st_ino) else {
            break;
        };
        if total + part.len() + 1 > KEEP {
            break;
        }
        total += part.len() + 1;
        parts.push(part);
        walked = Some(parent);
    }
    if parts.len() == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(total);
    for part in parts.iter().rev() {
        out.push(b'/');
        out.extend_from_slice(part);
    }
    Some(out)
}

fn name_in(parent: &OwnedFd, ino: u64) -> Option<Vec<u8>> {
    let dir = Dir::read_from(parent.as_fd()).ok()?;
    for entry in dir.flatten() {
        let name = entry.file_name().to_bytes();
        if entry.ino() == ino && name != b"." && name != b".." {
            return Some(name.to_vec());
        }
    }
    None
}
