//! Hashing a file named in an alert, as root, in a directory an attacker may write.
//!
//! The path is untrusted: it may name a FIFO (an open that blocks for ever), a device (an open
//! with side effects), a symbolic link to /etc/shadow (a digest of a secret published to the
//! SIEM), or a file on a stalled mount. So the file is first looked at without following links
//! and opened only if it is a regular file; the open refuses every symbolic link on the way
//! (`openat2` with `RESOLVE_NO_SYMLINKS`) and never blocks; the descriptor is checked again with
//! fstat (the name may have been swapped in between); reads stop at the size cap and the
//! deadline. The blocking work runs on a detached thread of its own, awaited with a timeout, so a
//! read stuck in the kernel holds back neither the alert nor the shutdown.

use std::{
    ffi::OsStr,
    io::Read as _,
    os::unix::ffi::OsStrExt as _,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, ResolveFlags};
use sha2::{Digest as _, Sha256};

/// Hashing threads alive at once; past this a file is not hashed (`busy`). Bounds what files on
/// a stalled mount can pin: each holds a thread until its read returns.
const MAX_THREADS: usize = 4;
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// What a file turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl Kind {
    /// ECS `file.type` (ECS lists file, dir and symlink; the others name themselves).
    pub fn as_ecs(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
            Kind::CharDevice => "char_device",
            Kind::BlockDevice => "block_device",
        }
    }

    fn of(file_type: FileType) -> Option<Kind> {
        Some(match file_type {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            FileType::Fifo => Kind::Fifo,
            FileType::Socket => Kind::Socket,
            FileType::CharacterDevice => Kind::CharDevice,
            FileType::BlockDevice => Kind::BlockDevice,
            FileType::Unknown => return None,
        })
    }
}

/// Why there is no hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Larger than `hash_max_bytes` (or it grew past it while read).
    TooLarge,
    /// A FIFO, socket, device or directory: never opened.
    NotRegular,
    /// A symbolic link, at the end of the path or on the way: never followed.
    SymlinkInPath,
    /// No longer there.
    Gone,
    /// Open or read failed (permissions, path too long, I/O error).
    Unreadable,
    /// Not read to the end within the deadline.
    Deadline,
    /// Every hashing thread is held by slower files.
    Busy,
}

impl Missing {
    pub fn as_str(self) -> &'static str {
        match self {
            Missing::TooLarge => "too_large",
            Missing::NotRegular => "not_regular",
            Missing::SymlinkInPath => "symlink_in_path",
            Missing::Gone => "gone",
            Missing::Unreadable => "unreadable",
            Missing::Deadline => "deadline",
            Missing::Busy => "busy",
        }
    }
}

/// What was learnt about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    pub kind: Option<Kind>,
    /// A symbolic link's target, read with readlink (the target itself is never touched).
    pub target: Option<Vec<u8>>,
    /// SHA-256 in lowercase hex, for a regular file only.
    pub sha256: Option<String>,
    pub missing: Option<Missing>,
}

impl Inspection {
    fn missing(kind: Option<Kind>, why: Missing) -> Inspection {
        Inspection {
            kind,
            target: None,
            sha256: None,
            missing: Some(why),
        }
    }
}

/// Inspects `path` on a thread of its own and waits at most `within` for it. Never blocks the
/// caller longer than that, whatever the file is.
pub async fn inspect_within(path: Vec<u8>, max_bytes: u64, within: Duration) -> Inspection {
    if THREADS.fetch_add(1, Ordering::AcqRel) >= MAX_THREADS {
        THREADS.fetch_sub(1, Ordering::AcqRel);
        return Inspection::missing(None, Missing::Busy);
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let deadline = Instant::now() + within;
    let spawned = std::thread::Builder::new()
        .name("hash".into())
        .spawn(move || {
            let result = inspect(&path, max_bytes, deadline);
            THREADS.fetch_sub(1, Ordering::AcqRel);
            let _ = tx.send(result);
        });
    if spawned.is_err() {
        THREADS.fetch_sub(1, Ordering::AcqRel);
        return Inspection::missing(None, Missing::Busy);
    }
    // Detached: a thread stuck in a read is left behind (and counted against MAX_THREADS) rather
    // than waited for; process exit does not wait for it either.
    match tokio::time::timeout(within, rx).await {
        Ok(Ok(inspection)) => inspection,
        Ok(Err(_)) | Err(_) => Inspection::missing(None, Missing::Deadline),
    }
}

/// Inspects `path` (raw bytes, absolute); blocking, but every step is bounded: no open blocks,
/// reads stop at `max_bytes + 1` bytes and at `deadline` (checked between reads).
pub fn inspect(path: &[u8], max_bytes: u64, deadline: Instant) -> Inspection {
    let (fd, kind) = match open_regular(path, max_bytes) {
        Ok(opened) => opened,
        Err(inspection) => return *inspection,
    };
    let mut file = std::fs::File::from(fd).take(max_bytes.saturating_add(1));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        if Instant::now() >= deadline {
            return Inspection::missing(kind, Missing::Deadline);
        }
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Inspection::missing(kind, Missing::Unreadable),
        };
        total += n as u64;
        if total > max_bytes {
            // It grew while being read: the cap is on what is read, not on what stat said.
            return Inspection::missing(kind, Missing::TooLarge);
        }
        hasher.update(&buf[..n]);
    }
    let digest = hasher.finalize();
    Inspection {
        kind,
        target: None,
        sha256: Some(digest.iter().map(|b| format!("{b:02x}")).collect()),
        missing: None,
    }
}

/// Opens `path` for reading if it is a regular file of at most `max_bytes`, reached without any
/// symbolic link, without blocking; otherwise says what it is and why it was not opened.
pub fn open_regular(
    path: &[u8],
    max_bytes: u64,
) -> Result<(std::os::fd::OwnedFd, Option<Kind>), Box<Inspection>> {
    let missing = |kind, why| Err(Box::new(Inspection::missing(kind, why)));
    // A truncated path's tail (shown as `…/...`) is not a path from the root: resolved against
    // the sensor's cwd it could name some other file.
    if !path.starts_with(b"/") {
        return missing(None, Missing::Unreadable);
    }
    let path = OsStr::from_bytes(path);
    let stat = match rustix::fs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(err) => return missing(None, from_errno(err)),
    };
    let kind = Kind::of(FileType::from_raw_mode(stat.st_mode));
    match kind {
        Some(Kind::File) => {}
        Some(Kind::Symlink) => {
            let target = rustix::fs::readlinkat(CWD, path, Vec::new())
                .ok()
                .map(|t| t.into_bytes());
            return Err(Box::new(Inspection {
                kind,
                target,
                sha256: None,
                missing: Some(Missing::SymlinkInPath),
            }));
        }
        _ => return missing(kind, Missing::NotRegular),
    }
    if stat.st_size as u64 > max_bytes {
        return missing(kind, Missing::TooLarge);
    }
    // O_NONBLOCK: if a FIFO was swapped in since the stat, the open returns at once (and a
    // mandatory lock or lease makes it fail instead of waiting). RESOLVE_NO_SYMLINKS: a directory
    // on the way replaced by a link fails with ELOOP.
    let fd = match rustix::fs::openat2(
        CWD,
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(err) => return missing(kind, from_errno(err)),
    };
    let Ok(opened) = rustix::fs::fstat(&fd) else {
        return missing(kind, Missing::Unreadable);
    };
    let opened_kind = Kind::of(FileType::from_raw_mode(opened.st_mode));
    if opened_kind != Some(Kind::File) {
        return missing(opened_kind, Missing::NotRegular);
    }
    if opened.st_size as u64 > max_bytes {
        return missing(kind, Missing::TooLarge);
    }
    Ok((fd, kind))
}

fn from_errno(err: rustix::io::Errno) -> Missing {
    match err {
        rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR => Missing::Gone,
        rustix::io::Errno::LOOP => Missing::SymlinkInPath,
        _ => Missing::Unreadable,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::{ffi::OsStrExt as _, fs::symlink};

    use super::*;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn at(path: &std::path::Path, max: u64) -> Inspection {
        inspect(
            path.as_os_str().as_bytes(),
            max,
            Instant::now() + Duration::from_secs(5),
        )
    }

    #[test]
    fn hashes_small_regular_files_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.php");
        std::fs::write(&path, b"abc").expect("write");
        let got = at(&path, 3);
        assert_eq!(got.sha256.as_deref(), Some(ABC));
        assert_eq!(got.kind, Some(Kind::File));
        assert_eq!(at(&path, 2).missing, Some(Missing::TooLarge));
        assert_eq!(at(dir.path(), 10).missing, Some(Missing::NotRegular));
        assert_eq!(
            at(&dir.path().join("gone.php"), 10).missing,
            Some(Missing::Gone)
        );
    }

    #[test]
    fn a_fifo_is_reported_at_once_and_never_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.php");
        rustix::fs::mknodat(CWD, &path, FileType::Fifo, Mode::from_raw_mode(0o644), 0)
            .expect("mkfifo");
        let started = Instant::now();
        let got = at(&path, 1 << 20);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(got.kind, Some(Kind::Fifo));
        assert_eq!(got.missing, Some(Missing::NotRegular));
        assert_eq!(got.sha256, None);
    }

    #[test]
    fn links_are_never_followed_anywhere_on_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"abc").expect("write");
        let link = dir.path().join("l.php");
        symlink(&secret, &link).expect("symlink");
        let got = at(&link, 10);
        assert_eq!(got.kind, Some(Kind::Symlink));
        assert_eq!(got.target.as_deref(), Some(secret.as_os_str().as_bytes()));
        assert_eq!(got.sha256, None);
        // A directory on the way that is a link: the regular file behind it is not read.
        std::fs::create_dir(dir.path().join("real")).expect("dir");
        std::fs::write(dir.path().join("real/x.php"), b"abc").expect("write");
        symlink(dir.path().join("real"), dir.path().join("via")).expect("dir link");
        let got = at(&dir.path().join("via/x.php"), 10);
        assert_eq!(got.missing, Some(Missing::SymlinkInPath), "{got:?}");
        assert_eq!(got.sha256, None);
        // A loop.
        symlink(dir.path().join("loop"), dir.path().join("loop")).expect("loop");
        assert_eq!(at(&dir.path().join("loop"), 10).kind, Some(Kind::Symlink));
    }

    #[test]
    fn a_path_not_from_the_root_is_never_read() {
        // The test's cwd is the crate directory, where Cargo.toml exists.
        assert!(std::path::Path::new("Cargo.toml").exists());
        let far = Instant::now() + Duration::from_secs(60);
        let got = inspect(b"Cargo.toml", 1 << 20, far);
        assert_eq!(got.missing, Some(Missing::Unreadable), "{got:?}");
        assert_eq!(got.sha256, None);
    }

    #[test]
    fn a_deadline_in_the_past_gives_no_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.php");
        std::fs::write(&path, b"abc").expect("write");
        let got = inspect(path.as_os_str().as_bytes(), 10, Instant::now());
        assert_eq!(got.missing, Some(Missing::Deadline));
    }

    #[tokio::test]
    async fn inspect_within_returns_on_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.php");
        std::fs::write(&path, b"abc").expect("write");
        let got = inspect_within(
            path.as_os_str().as_bytes().to_vec(),
            10,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(got.sha256.as_deref(), Some(ABC));
    }
}
