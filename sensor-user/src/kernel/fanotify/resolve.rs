//! From a fanotify event (a directory handle and a name) to the [`File`] event the syscall
//! tracepoints would have sent for the same call: the path resolved to the root, filtered by the
//! watched prefixes, the operation told apart by what the new entry is.

use std::{
    collections::{HashMap, HashSet},
    ffi::OsStr,
    os::{
        fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
};

use rustix::fs::{AtFlags, FileType};

use super::parse::{DirName, Handle, RawEvent};
use crate::event::{File, FileOp};

const O_WRONLY: u32 = libc::O_WRONLY as u32;
const O_CREAT: u32 = libc::O_CREAT as u32;
/// The kernel's overflow uid: the writer's uid when neither its /proc entry nor the file says.
const UNKNOWN_UID: u32 = 65534;
/// Files created and not yet closed after writing, remembered so that their close is not
/// reported a second time as a modification. Bounded: a create never closed for writing (a
/// file made with mknod, or still open) would otherwise stay forever.
const CREATED_MAX: usize = 4096;
/// Directory paths remembered at most (a few hundred KiB).
const DIR_PATHS_MAX: usize = 8192;

/// An escaped path and whether it is only the path's tail.
type Path = (String, bool);

/// A filesystem the group has a mark on, and a directory on it to open handles through.
pub struct Mount {
    pub fsid: [i32; 2],
    pub fd: OwnedFd,
}

pub struct Resolver {
    pub mounts: Vec<Mount>,
    pub prefixes: Vec<Vec<u8>>,
    created: HashSet<DirName>,
    /// Directory paths by handle; forgotten whenever a directory is renamed (the only way a
    /// known directory's path changes while it exists).
    dir_paths: HashMap<Handle, Vec<u8>>,
}

impl Resolver {
    pub fn new(mounts: Vec<Mount>, prefixes: Vec<Vec<u8>>) -> Self {
        Self {
            mounts,
            prefixes,
            created: HashSet::new(),
            dir_paths: HashMap::new(),
        }
    }

    /// The events `raw` stands for (none when it lies outside every watched prefix).
    pub fn resolve(&mut self, raw: &RawEvent, clock: &Clock, out: &mut Vec<File>) {
        let ondir = raw.mask & libc::FAN_ONDIR != 0;
        if ondir && raw.mask & (libc::FAN_RENAME | libc::FAN_MOVED_TO) != 0 {
            self.dir_paths.clear();
        }
        if raw.mask & libc::FAN_RENAME != 0
            && let (Some(old), Some(new)) = (&raw.old, &raw.new)
        {
            self.rename(raw.pid, Some(old), new, clock, out);
        } else if raw.mask & libc::FAN_MOVED_TO != 0
            && let Some(entry) = &raw.entry
        {
            // Kernels before FAN_RENAME: the old name is not known.
            self.rename(raw.pid, None, entry, clock, out);
        }
        if ondir {
            // mkdir and a directory's close are not file writes (the tracepoints see neither).
            return;
        }
        let Some(entry) = &raw.entry else { return };
        if raw.mask & libc::FAN_CREATE != 0 {
            let closed = raw.mask & libc::FAN_CLOSE_WRITE != 0;
            self.create(raw.pid, entry, closed, clock, out);
        } else if raw.mask & libc::FAN_CLOSE_WRITE != 0 {
            if self.created.remove(entry) {
                return;
            }
            if let Some((dir, path)) = self.path_of(entry) {
                let st =
                    rustix::fs::statat(&dir, entry.name.as_slice(), AtFlags::SYMLINK_NOFOLLOW).ok();
                out.push(pending(
                    raw.pid,
                    FileOp::Open,
                    path,
                    None,
                    O_WRONLY,
                    st,
                    clock,
                ));
            }
        }
    }

    fn create(
        &mut self,
        pid: u32,
        entry: &DirName,
        closed: bool,
        clock: &Clock,
        out: &mut Vec<File>,
    ) {
        let Some((dir, path)) = self.path_of(entry) else {
            return;
        };
        let name = entry.name.as_slice();
        let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).ok();
        let kind = st.as_ref().map(|s| FileType::from_raw_mode(s.st_mode));
        let (op, source, flags) = match kind {
            Some(FileType::Symlink) => {
                let target = rustix::fs::readlinkat(&dir, name, Vec::new())
                    .ok()
                    .map(|t| crate::escape::escape_bytes(t.as_bytes()));
                (FileOp::Symlink, target, 0)
            }
            // A second name for an existing file: which one it was, fanotify does not say. The
            // link count is read now, not at the call: a file created, written and closed (one
            // merged event) and linked since is still an open; one created and linked before
            // its close is read is taken for a link (both are creations to the rules).
            Some(FileType::RegularFile)
                if !closed && st.as_ref().is_some_and(|s| s.st_nlink > 1) =>
            {
                (FileOp::Link, None, 0)
            }
            // Gone already (a temporary file): it was still created.
            Some(FileType::RegularFile) | None => {
                if !closed {
                    if self.created.len() >= CREATED_MAX {
                        self.created.clear();
                    }
                    self.created.insert(entry.clone());
                }
                (FileOp::Open, None, O_CREAT | O_WRONLY)
            }
            // Fifos, sockets and device nodes: no open(2) made them.
            Some(_) => return,
        };
        out.push(pending(pid, op, path, source, flags, st, clock));
    }

    fn rename(
        &mut self,
        pid: u32,
        old: Option<&DirName>,
        new: &DirName,
        clock: &Clock,
        out: &mut Vec<File>,
    ) {
        let Some((dir, path)) = self.path_of(new) else {
            return;
        };
        // A file created and moved into place before its close: the close names the new place.
        if let Some(old) = old
            && self.created.remove(old)
        {
            self.created.insert(new.clone());
        }
        let source = old.and_then(|o| self.full_path(o));
        let st = rustix::fs::statat(&dir, new.name.as_slice(), AtFlags::SYMLINK_NOFOLLOW).ok();
        out.push(pending(pid, FileOp::Rename, path, source, 0, st, clock));
    }

    /// The entry's directory (opened) and its escaped full path, if under a watched prefix. A
    /// path too long to resolve whole is its tail, marked and not checked against the prefixes
    /// (as the tracepoints send one).
    fn path_of(&mut self, entry: &DirName) -> Option<(OwnedFd, Path)> {
        // Most events on a marked filesystem are outside every prefix: a directory seen before
        // is judged without a handle lookup.
        if let Some(known) = self.dir_paths.get(&entry.dir)
            && !self.under_prefix(&join(known, &entry.name))
        {
            return None;
        }
        let dir = self.open_dir(&entry.dir)?;
        let Some(dir_path) = dir_path(&dir) else {
            let tail = super::tail::tail(&dir, &entry.name)?;
            return Some((dir, (crate::escape::escape_bytes(&tail), true)));
        };
        let full = join(&dir_path, &entry.name);
        if self.dir_paths.len() >= DIR_PATHS_MAX {
            self.dir_paths.clear();
        }
        self.dir_paths.insert(entry.dir.clone(), dir_path);
        if !self.under_prefix(&full) {
            return None;
        }
        Some((dir, (crate::escape::escape_bytes(&full), false)))
    }

    fn under_prefix(&self, path: &[u8]) -> bool {
        self.prefixes.iter().any(|p| path.starts_with(p))
    }

    fn full_path(&self, entry: &DirName) -> Option<String> {
        let dir = self.open_dir(&entry.dir)?;
        Some(crate::escape::escape_bytes(&join(
            &dir_path(&dir)?,
            &entry.name,
        )))
    }

    fn open_dir(&self, handle: &Handle) -> Option<OwnedFd> {
        let mount = self.mounts.iter().find(|m| m.fsid == handle.fsid)?;
        open_by_handle(mount.fd.as_fd(), handle).ok()
    }
}

/// open_by_handle_at(2) with O_PATH: needs CAP_DAC_READ_SEARCH.
pub fn open_by_handle(
    mount: std::os::fd::BorrowedFd<'_>,
    handle: &Handle,
) -> std::io::Result<OwnedFd> {
    // struct file_handle: handle_bytes (u32), handle_type (i32), then the bytes; u32-aligned.
    let words = 2 + handle.bytes.len().div_ceil(4);
    let mut buf = vec![0u32; words];
    buf[0] = handle.bytes.len() as u32;
    buf[1] = handle.handle_type as u32;
    // SAFETY: the destination holds the bytes after the 8-byte header.
    unsafe {
        std::ptr::copy_nonoverlapping(
            handle.bytes.as_ptr(),
            buf.as_mut_ptr().add(2).cast::<u8>(),
            handle.bytes.len(),
        );
    }
    // SAFETY: a well-formed file_handle in `buf`, valid for the duration of the call.
    let fd = unsafe {
        libc::open_by_handle_at(
            mount.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            libc::O_PATH | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Where an open directory is now, as this process sees the filesystem; `None` once deleted or
/// when the path is longer than readlink(2) returns.
fn dir_path(dir: &OwnedFd) -> Option<Vec<u8>> {
    let link = format!("/proc/self/fd/{}", dir.as_raw_fd());
    let path = std::fs::read_link(link).ok()?;
    let bytes = path.as_os_str().as_bytes();
    if !bytes.starts_with(b"/") || bytes.ends_with(b" (deleted)") {
        return None;
    }
    Some(bytes.to_vec())
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut full = dir.to_vec();
    if !full.ends_with(b"/") {
        full.push(b'/');
    }
    full.extend_from_slice(name);
    full
}

/// The clocks when a batch was read: fanotify events carry no time, so each is placed by the
/// change time of what it names (wall clock, converted) and never later than its reading.
pub struct Clock {
    pub read_ns: u64,
    /// CLOCK_REALTIME - CLOCK_BOOTTIME.
    pub boot_wall_ns: u64,
}

impl Clock {
    pub fn now() -> Self {
        Self {
            read_ns: crate::clock::boottime_ns(),
            boot_wall_ns: crate::clock::boot_wall_ns(),
        }
    }

    /// The event's time: the entry's ctime in boot time, clamped to [0, read time]. A ctime
    /// from the future (a clock step) or a missing entry gives the read time.
    // st_ctime_nsec is unsigned on some architectures and signed on others.
    #[allow(clippy::unnecessary_cast)]
    pub fn estimate_ts(&self, st: Option<&rustix::fs::Stat>) -> u64 {
        let Some(st) = st else { return self.read_ns };
        let wall = (st.st_ctime as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(st.st_ctime_nsec as u64);
        let boot = wall.saturating_sub(self.boot_wall_ns);
        if boot == 0 || boot > self.read_ns {
            self.read_ns
        } else {
            boot
        }
    }
}

fn pending(
    pid: u32,
    op: FileOp,
    (path, path_truncated): Path,
    source: Option<String>,
    flags: u32,
    st: Option<rustix::fs::Stat>,
    clock: &Clock,
) -> File {
    let uid = proc_uid(pid)
        .or_else(|| st.as_ref().map(|s| s.st_uid))
        .unwrap_or(UNKNOWN_UID);
    File {
        ts_ns: clock.estimate_ts(st.as_ref()),
        pid,
        tid: pid,
        uid,
        op,
        path,
        path_truncated,
        source,
        flags,
        ret: 0,
        // The name's own identity (statat without following links), as `file_id::stamp` gives
        // the tracepoints' events.
        dev: st.as_ref().map(|s| s.st_dev),
        ino: st.as_ref().map(|s| s.st_ino),
    }
}

/// The real uid of a live process (what bpf_get_current_uid_gid gives the tracepoints).
fn proc_uid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Mount points under a prefix (from /proc/self/mountinfo, octal escapes undone): each is a
/// filesystem of its own that needs its own mark.
pub fn mounts_under(prefix: &[u8], mountinfo: &str) -> Vec<Vec<u8>> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_octal)
        .filter(|m| m.starts_with(prefix))
        .collect()
}

fn unescape_octal(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or(""), 8)
        {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The nearest existing directory at or above `path`: a watched prefix that does not exist yet
/// will be created on that directory's filesystem (unless something is mounted there first).
pub fn nearest_existing(path: &[u8]) -> &std::path::Path {
    let mut p = std::path::Path::new(OsStr::from_bytes(path));
    while !p.is_dir() {
        match p.parent() {
            Some(parent) => p = parent,
            None => break,
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_below_a_prefix_are_found_with_escapes_undone() {
        let info = "22 1 8:1 / / rw - ext4 /dev/vda rw\n\
                    30 22 0:40 / /srv/www/up\\040loads rw - tmpfs tmpfs rw\n\
                    31 22 0:41 / /srv/www rw - tmpfs tmpfs rw\n\
                    32 22 0:42 / /srv/wwwx rw - tmpfs tmpfs rw\n";
        assert_eq!(
            mounts_under(b"/srv/www/", info),
            vec![b"/srv/www/up loads".to_vec()]
        );
        assert_eq!(
            mounts_under(b"/srv/www", info),
            vec![
                b"/srv/www/up loads".to_vec(),
                b"/srv/www".to_vec(),
                b"/srv/wwwx".to_vec()
            ]
        );
    }

    #[test]
    fn the_time_is_the_change_time_never_after_the_read() {
        let clock = Clock {
            read_ns: 5_000_000_000,
            boot_wall_ns: 1_000_000_000_000,
        };
        // SAFETY: an all-zero stat is a valid value of this plain C struct.
        let mut st: rustix::fs::Stat = unsafe { std::mem::zeroed() };
        st.st_ctime = 1003;
        st.st_ctime_nsec = 7;
        assert_eq!(clock.estimate_ts(Some(&st)), 3_000_000_007);
        st.st_ctime = 1010;
        assert_eq!(clock.estimate_ts(Some(&st)), 5_000_000_000);
        assert_eq!(clock.estimate_ts(None), 5_000_000_000);
    }
}
