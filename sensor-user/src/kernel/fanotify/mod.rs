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

mod marks;
mod parse;
mod resolve;
mod tail;

use std::{
    io,
    os::fd::{FromRawFd, OwnedFd},
};

use tokio::io::unix::AsyncFd;

use crate::event::File;
use resolve::{Clock, Resolver};

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
    marks: marks::Marks,
    prefixes_given: Vec<String>,
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
        for prefix in prefixes {
            if !prefix.starts_with('/') {
                return Err(FanotifyError::NotAbsolute(prefix.clone()));
            }
        }
        let mut marks = marks::Marks::default();
        let targets = marks::targets(prefixes, true);
        marks.add(&group, &targets)?;
        log::info!(
            "fanotify: filesystem marks on {} for {} watched paths",
            marks.shown.join(", "),
            prefixes.len()
        );
        let prefix_list = prefixes.to_vec();
        let prefixes = prefixes.iter().map(|p| p.as_bytes().to_vec()).collect();
        // SAFETY: the OwnedFd keeps the group open and unchanged until this AsyncFd drops it.
        let fd = unsafe { AsyncFd::register_with_interest(group, tokio::io::Interest::READABLE) }
            .map_err(|e| FanotifyError::Init(e.into_parts().1))?;
        let has_rename = marks.has_rename;
        Ok(Self {
            fd,
            resolver: Resolver::new(marks.take_new(), prefixes),
            marks,
            prefixes_given: prefix_list,
            has_rename,
            buf: vec![0; READ_BYTES],
            raw: Vec::new(),
            overflows: 0,
        })
    }

    /// Marks filesystems mounted below a watched path since the last look (called on the
    /// housekeeping tick: writes on such a mount before then are not seen).
    pub fn refresh_mounts(&mut self) {
        let targets = marks::targets(&self.prefixes_given, false);
        if let Err(err) = self.marks.add(self.fd.get_ref(), &targets) {
            log::warn!("fanotify: {err}; writes there are not seen");
        }
        let new = self.marks.take_new();
        if !new.is_empty() {
            log::info!(
                "fanotify: filesystem marks on {}",
                self.marks.shown[self.marks.shown.len() - new.len()..].join(", ")
            );
            self.resolver.mounts.extend(new);
        }
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
