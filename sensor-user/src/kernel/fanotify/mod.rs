//! File writes under the watched prefixes seen through fanotify instead of syscall tracepoints:
//! no program runs on any syscall, so a host's syscalls pay nothing for it.
//!
//! One group in FAN_REPORT_DFID_NAME mode holds a filesystem mark (FAN_MARK_FILESYSTEM) on each
//! filesystem a watched prefix lives on, and on each filesystem mounted below one, for
//! FAN_CREATE, FAN_CLOSE_WRITE and FAN_RENAME (FAN_MOVED_TO on kernels without it). Filesystem
//! marks rather than one mark per directory: a directory created and filled before its mark is
//! placed cannot slip through (no rescan race), and nothing has to be pinned per directory of a
//! large web root; the price is that every create, write-close and rename on those filesystems
//! reaches this process, which resolves the directory handle and drops what is outside every
//! prefix (docs/events.md). Each event becomes the [`File`] the tracepoints would have sent.

mod parse;
mod resolve;
mod tail;

use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::Path,
};

use tokio::io::unix::AsyncFd;

use crate::event::File;
use resolve::{Clock, Mount, Resolver};

/// Filesystem events the file rules need; FAN_ONDIR so that renamed directories are seen.
const MASK_BASE: u64 = libc::FAN_CREATE | libc::FAN_CLOSE_WRITE | libc::FAN_ONDIR;
/// One read(2) takes this much at most; events are small (about 60 bytes with a short name).
const READ_BYTES: usize = 64 * 1024;
/// Events taken in one drain, so that one batch stays bounded.
const DRAIN_MAX: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum FanotifyError {
    #[error("fanotify_init: {0} (needs CAP_SYS_ADMIN and Linux 5.9 for FAN_REPORT_DFID_NAME)")]
    Init(io::Error),
    #[error("fanotify mark on {path}: {source}")]
    Mark { path: String, source: io::Error },
    #[error(
        "opening {path} by file handle: {source} (fanotify needs CAP_DAC_READ_SEARCH to turn \
         handles into paths)"
    )]
    Handle { path: String, source: io::Error },
    #[error("watched path {0:?} is not an absolute path")]
    NotAbsolute(String),
}

/// The group and what turns its events into [`File`]s.
pub struct FileWatch {
    fd: AsyncFd<OwnedFd>,
    resolver: Resolver,
    /// FAN_RENAME (with both names) is available; otherwise FAN_MOVED_TO.
    pub has_rename: bool,
    buf: Vec<u8>,
    raw: Vec<parse::RawEvent>,
    /// Queue overflows seen: events the kernel dropped.
    pub overflows: u64,
}

impl FileWatch {
    /// Creates the group and marks every filesystem under the watched prefixes. Must be called
    /// inside a tokio runtime.
    pub fn open(prefixes: &[String]) -> Result<Self, FanotifyError> {
        let flags = libc::FAN_CLASS_NOTIF
            | libc::FAN_CLOEXEC
            | libc::FAN_NONBLOCK
            | libc::FAN_REPORT_DFID_NAME;
        // SAFETY: plain flags; the result is checked.
        let raw = unsafe {
            libc::fanotify_init(flags, (libc::O_RDONLY | libc::O_CLOEXEC) as libc::c_uint)
        };
        if raw < 0 {
            return Err(FanotifyError::Init(io::Error::last_os_error()));
        }
        // SAFETY: a new descriptor that nothing else owns.
        let group = unsafe { OwnedFd::from_raw_fd(raw) };
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut targets: Vec<Vec<u8>> = Vec::new();
        for prefix in prefixes {
            if !prefix.starts_with('/') {
                return Err(FanotifyError::NotAbsolute(prefix.clone()));
            }
            let bytes = prefix.as_bytes();
            targets.push(
                resolve::nearest_existing(bytes)
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            );
            targets.extend(resolve::mounts_under(bytes, &mountinfo));
        }
        let mut mounts: Vec<Mount> = Vec::new();
        let mut marked: Vec<String> = Vec::new();
        let mut has_rename = true;
        for target in targets {
            let path = Path::new(std::ffi::OsStr::from_bytes(&target));
            let shown = path.display().to_string();
            let fsid = match rustix::fs::statfs(path) {
                Ok(s) => fsid_of(&s),
                Err(e) => {
                    return Err(FanotifyError::Mark {
                        path: shown,
                        source: e.into(),
                    });
                }
            };
            if mounts.iter().any(|m| m.fsid == fsid) {
                continue;
            }
            let mask = if has_rename {
                MASK_BASE | libc::FAN_RENAME
            } else {
                MASK_BASE | libc::FAN_MOVED_TO
            };
            match mark(&group, path, mask) {
                Err(e) if has_rename && e.raw_os_error() == Some(libc::EINVAL) => {
                    // Before Linux 5.17: renames arrive as FAN_MOVED_TO, without the old name.
                    has_rename = false;
                    mark(&group, path, MASK_BASE | libc::FAN_MOVED_TO)
                }
                other => other,
            }
            .map_err(|source| FanotifyError::Mark {
                path: shown.clone(),
                source,
            })?;
            // Not O_PATH: open_by_handle_at(2) refuses an O_PATH descriptor as its mount.
            let dir = rustix::fs::open(
                path,
                rustix::fs::OFlags::RDONLY
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| FanotifyError::Mark {
                path: shown.clone(),
                source: e.into(),
            })?;
            check_handles(&dir, path, fsid).map_err(|source| FanotifyError::Handle {
                path: shown.clone(),
                source,
            })?;
            marked.push(shown);
            mounts.push(Mount { fsid, fd: dir });
        }
        log::info!(
            "fanotify: filesystem marks on {} for {} watched paths",
            marked.join(", "),
            prefixes.len()
        );
        let prefixes = prefixes.iter().map(|p| p.as_bytes().to_vec()).collect();
        // SAFETY: the OwnedFd keeps the group open and unchanged until this AsyncFd drops it.
        let fd = unsafe { AsyncFd::register_with_interest(group, tokio::io::Interest::READABLE) }
            .map_err(|e| FanotifyError::Init(e.into_parts().1))?;
        Ok(Self {
            fd,
            resolver: Resolver::new(mounts, prefixes),
            has_rename,
            buf: vec![0; READ_BYTES],
            raw: Vec::new(),
            overflows: 0,
        })
    }

    /// Waits until events are queued. Readiness is cleared only by a drain that reached EAGAIN,
    /// so events left by a drain that stopped at its bound wake the next wait at once.
    pub async fn readable(&self) -> io::Result<()> {
        self.fd.readable().await.map(drop)
    }

    /// Reads what is queued now (never blocks) and appends the resulting events to `out`, in
    /// the order the kernel queued them.
    pub fn drain(&mut self, out: &mut Vec<File>) {
        let clock = Clock::now();
        let mut taken = 0;
        while taken < DRAIN_MAX {
            let buf = &mut self.buf;
            // try_io clears tokio's readiness when the read says EAGAIN.
            let read = self.fd.try_io(tokio::io::Interest::READABLE, |fd| {
                rustix::io::read(fd, &mut buf[..]).map_err(io::Error::from)
            });
            let n = match read {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) => {
                    if err.kind() != io::ErrorKind::WouldBlock {
                        log::warn!("reading fanotify events: {err}");
                    }
                    break;
                }
            };
            self.raw.clear();
            if let Err(err) = parse::parse(&self.buf[..n], &mut self.raw) {
                log::warn!("dropping undecodable fanotify record: {err}");
            }
            for raw in &self.raw {
                taken += 1;
                if raw.mask & libc::FAN_Q_OVERFLOW != 0 {
                    self.overflows += 1;
                    log::warn!(
                        "fanotify queue overflowed: file events under the watched paths were lost"
                    );
                    continue;
                }
                self.resolver.resolve(raw, &clock, out);
            }
        }
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
