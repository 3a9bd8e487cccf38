//! Which filesystems the group marks: the one of each watched prefix (or of its nearest existing
//! parent) and every one mounted at or below a prefix, each once.

use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::Path,
};

use super::{FanotifyError, MASK_BASE, parse, resolve};
use resolve::Mount;

/// The filesystems marked so far.
pub struct Marks {
    fsids: Vec<[i32; 2]>,
    /// Marked but not yet handed to the resolver.
    new: Vec<Mount>,
    /// Where each mark was placed, for the log.
    pub shown: Vec<String>,
    /// FAN_RENAME is available (the first mark finds out).
    pub has_rename: bool,
}

impl Default for Marks {
    fn default() -> Self {
        Self {
            fsids: Vec::new(),
            new: Vec::new(),
            shown: Vec::new(),
            has_rename: true,
        }
    }
}

/// The directories to mark through: each prefix's nearest existing directory (`with_prefixes`)
/// and each mount point at or below a prefix (from /proc/self/mountinfo).
pub fn targets(prefixes: &[String], with_prefixes: bool) -> Vec<Vec<u8>> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for prefix in prefixes {
        let bytes = prefix.as_bytes();
        if with_prefixes {
            out.push(
                resolve::nearest_existing(bytes)
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            );
        }
        out.extend(resolve::mounts_under(bytes, &mountinfo));
    }
    out
}

impl Marks {
    /// Marks the filesystem of every target not marked yet. Stops at the first refusal.
    pub fn add(&mut self, group: &OwnedFd, targets: &[Vec<u8>]) -> Result<(), FanotifyError> {
        for target in targets {
            let path = Path::new(std::ffi::OsStr::from_bytes(target));
            let shown = path.display().to_string();
            let mark_err = |source: io::Error| FanotifyError::Mark {
                path: shown.clone(),
                source,
            };
            let fsid = fsid_of(&rustix::fs::statfs(path).map_err(|e| mark_err(e.into()))?);
            if self.fsids.contains(&fsid) {
                continue;
            }
            let mask = if self.has_rename {
                MASK_BASE | libc::FAN_RENAME
            } else {
                MASK_BASE | libc::FAN_MOVED_TO
            };
            match mark(group, path, mask) {
                Err(e) if self.has_rename && e.raw_os_error() == Some(libc::EINVAL) => {
                    // Before Linux 5.17: renames arrive as FAN_MOVED_TO, without the old name.
                    self.has_rename = false;
                    mark(group, path, MASK_BASE | libc::FAN_MOVED_TO)
                }
                other => other,
            }
            .map_err(mark_err)?;
            // Not O_PATH: open_by_handle_at(2) refuses an O_PATH descriptor as its mount.
            let dir = rustix::fs::open(
                path,
                rustix::fs::OFlags::RDONLY
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| mark_err(e.into()))?;
            check_handles(&dir, path, fsid).map_err(|source| FanotifyError::Handle {
                path: shown.clone(),
                source,
            })?;
            self.fsids.push(fsid);
            self.shown.push(shown);
            self.new.push(Mount { fsid, fd: dir });
        }
        Ok(())
    }

    pub fn take_new(&mut self) -> Vec<Mount> {
        std::mem::take(&mut self.new)
    }
}

fn fsid_of(s: &rustix::fs::StatFs) -> [i32; 2] {
    // SAFETY: __kernel_fsid_t is two ints; reading it as such is its defined layout.
    unsafe { std::mem::transmute_copy::<_, [i32; 2]>(&s.f_fsid) }
}

fn mark(group: &OwnedFd, path: &Path, mask: u64) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid group fd and NUL-terminated path for the duration of the call.
    let rc = unsafe {
        libc::fanotify_mark(
            group.as_raw_fd(),
            libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM,
            mask,
            libc::AT_FDCWD,
            c.as_ptr(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Turns the marked directory into a handle and back, the way every event is resolved: refused
/// without CAP_DAC_READ_SEARCH or on a filesystem that cannot decode handles.
fn check_handles(dir: &OwnedFd, path: &Path, fsid: [i32; 2]) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buf = vec![0u32; 2 + 128 / 4];
    buf[0] = 128;
    let mut mount_id: libc::c_int = 0;
    // SAFETY: a file_handle with room for 128 bytes, valid pointers for the call.
    let rc = unsafe {
        libc::name_to_handle_at(
            libc::AT_FDCWD,
            c.as_ptr(),
            buf.as_mut_ptr().cast(),
            &mut mount_id,
            0,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let len = (buf[0] as usize).min(128);
    let bytes: Vec<u8> = buf[2..]
        .iter()
        .flat_map(|w| w.to_ne_bytes())
        .take(len)
        .collect();
    let handle = parse::Handle {
        fsid,
        handle_type: buf[1] as i32,
        bytes,
    };
    resolve::open_by_handle(std::os::fd::AsFd::as_fd(dir), &handle).map(drop)
}
