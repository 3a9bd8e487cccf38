//! File writes, renames and links as the kernel resolves them, filtered by watched prefixes.

use std::{
    ffi::CString,
    fs::{self, OpenOptions},
    os::unix::{ffi::OsStrExt, fs::OpenOptionsExt},
    path::{Path, PathBuf},
};

use integration_tests::{file_mechanisms, files, require_root, with_sensor};
use lineage_sensor::{
    config::{CaptureConfig, FileHooks},
    event::FileOp,
};

/// A fresh directory tree: `watched/` is the prefix the sensor watches, `outside/` is not.
struct Tree {
    root: PathBuf,
}

impl Tree {
    fn new(name: &str) -> Tree {
        let root =
            std::env::temp_dir().join(format!("lineage-files-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for dir in ["watched/sub", "outside"] {
            fs::create_dir_all(root.join(dir)).expect("create dirs");
        }
        Tree { root }
    }
    fn watched(&self) -> PathBuf {
        self.root.join("watched")
    }
    fn outside(&self) -> PathBuf {
        self.root.join("outside")
    }
    fn config(&self, mechanism: FileHooks) -> CaptureConfig {
        CaptureConfig {
            watch_paths: vec![self.watched().to_string_lossy().into_owned()],
            file_hooks: mechanism,
            ..CaptureConfig::default()
        }
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn writes_under_the_watched_prefix_arrive_resolved_and_nothing_else_does() {
    require_root();
    for mechanism in file_mechanisms() {
        eprintln!("file mechanism: {mechanism:?}");
        writes_arrive_resolved(mechanism);
    }
}

fn writes_arrive_resolved(mechanism: FileHooks) {
    let tree = Tree::new("resolve");
    let w = tree.watched();
    let link_to_watched = tree.root.join("shortcut");
    std::os::unix::fs::symlink(&w, &link_to_watched).expect("symlink");
    fs::write(w.join("existing.php"), b"<?php ?>").expect("seed file");

    let (seen, ()) = with_sensor(tree.config(mechanism), || {
        fs::write(w.join("abs.php"), b"x").expect("absolute write");
        // Created, held open while another file is written, closed last: fanotify's create
        // and close of it are two events, still one write-open.
        let held = fs::File::create(w.join("held.php")).expect("create held");
        fs::write(w.join("between.php"), b"b").expect("write between");
        drop(held);
        // Relative to the cwd of a child process, so the test's own cwd is untouched.
        let status = std::process::Command::new("sh")
            .args(["-c", "echo y > rel.php"])
            .current_dir(w.join("sub"))
            .status()
            .expect("sh");
        assert!(status.success());
        // Relative to a directory fd.
        let dir = fs::File::open(w.join("sub")).expect("open dir");
        let name = CString::new("dirfd.php").expect("cstring");
        // SAFETY: valid fd and NUL-terminated name.
        let fd = unsafe {
            libc::openat(
                std::os::fd::AsRawFd::as_raw_fd(&dir),
                name.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY,
                0o644,
            )
        };
        assert!(fd >= 0);
        // SAFETY: our own fd.
        unsafe { libc::close(fd) };
        // Through a symlinked directory: the kernel reports the real path.
        fs::write(link_to_watched.join("via-link.php"), b"z").expect("write via symlink");
        // Written elsewhere, moved into place, and linked.
        fs::write(tree.outside().join("moved.php"), b"m").expect("write outside");
        fs::rename(tree.outside().join("moved.php"), w.join("moved.php")).expect("rename in");
        fs::hard_link(w.join("abs.php"), w.join("sub/hard.php")).expect("link");
        // A directory filled outside, moved in, then written to: seen at its new place.
        let staged = tree.outside().join("staged");
        fs::create_dir(&staged).expect("staged dir");
        fs::write(staged.join("before.php"), b"b").expect("write in staged");
        // Time for the sensor to read that write, so that fanotify's resolver has known the
        // directory outside the prefix before it moves in.
        std::thread::sleep(std::time::Duration::from_millis(500));
        fs::rename(&staged, w.join("staged")).expect("move dir in");
        fs::write(w.join("staged/after.php"), b"a").expect("write in moved dir");
        // A symbolic link into the prefix: a script appears there without a write there.
        std::os::unix::fs::symlink(tree.outside().join("shell.php"), w.join("soft.php"))
            .expect("symlink");
        // symlinkat relative to a directory fd.
        let sub = fs::File::open(w.join("sub")).expect("open dir");
        let (target, name) = (c"/tmp/elsewhere.php", c"soft-at.php");
        // SAFETY: valid fd and NUL-terminated strings.
        let rc = unsafe {
            libc::symlinkat(
                target.as_ptr(),
                std::os::fd::AsRawFd::as_raw_fd(&sub),
                name.as_ptr(),
            )
        };
        assert_eq!(rc, 0, "symlinkat: {}", std::io::Error::last_os_error());
        // A failed create under the prefix is reported with its error.
        assert!(fs::write(w.join("missing-dir/x.php"), b"f").is_err());
        // Not reported: reads, and writes outside the prefix.
        let _ = fs::read(w.join("existing.php")).expect("read");
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(w.join("existing.php"))
            .expect("read-only open");
        fs::write(tree.outside().join("elsewhere.php"), b"e").expect("write outside");
    })
    .expect("sensor");

    let mine: Vec<_> = files(&seen.events)
        .filter(|f| f.path.starts_with(&text(&tree.root)))
        .collect();
    let find = |path: PathBuf, op: FileOp| {
        mine.iter()
            .find(|f| f.path == text(&path) && f.op == op)
            .unwrap_or_else(|| panic!("no {op:?} of {} in {mine:#?}", path.display()))
    };
    let abs = find(w.join("abs.php"), FileOp::Open);
    assert!(abs.ret >= 0 && abs.flags & (libc::O_CREAT as u32) != 0);
    assert_eq!(abs.pid, std::process::id());
    find(w.join("sub/rel.php"), FileOp::Open);
    find(w.join("sub/dirfd.php"), FileOp::Open);
    find(w.join("via-link.php"), FileOp::Open);
    let moved = find(w.join("moved.php"), FileOp::Rename);
    assert_eq!(moved.ret, 0);
    assert_eq!(
        moved.source.as_deref(),
        Some(text(&tree.outside().join("moved.php")).as_str())
    );
    let hard = find(w.join("sub/hard.php"), FileOp::Link);
    if mechanism == FileHooks::Tracepoint {
        assert_eq!(
            hard.source.as_deref(),
            Some(text(&w.join("abs.php")).as_str())
        );
    } else {
        // fanotify names the new link only, not which existing name it was made from.
        assert_eq!(hard.source, None);
    }
    find(w.join("staged"), FileOp::Rename);
    find(w.join("staged/after.php"), FileOp::Open);
    let soft = find(w.join("soft.php"), FileOp::Symlink);
    assert_eq!(
        soft.source.as_deref(),
        Some(text(&tree.outside().join("shell.php")).as_str())
    );
    let soft_at = find(w.join("sub/soft-at.php"), FileOp::Symlink);
    assert_eq!(soft_at.source.as_deref(), Some("/tmp/elsewhere.php"));
    assert_eq!(soft_at.ret, 0);
    let missing = text(&w.join("missing-dir/x.php"));
    if mechanism == FileHooks::Tracepoint {
        let failed = find(w.join("missing-dir/x.php"), FileOp::Open);
        assert_eq!(failed.ret, -libc::ENOENT);
    } else {
        // fanotify sees what happened to the filesystem: a failed call changed nothing.
        assert!(mine.iter().all(|f| f.path != missing), "{mine:#?}");
    }
    // One event per write-open: a created file's close is not a second, "modification" one.
    for name in ["abs.php", "held.php"] {
        let events: Vec<_> = mine
            .iter()
            .filter(|f| f.path == text(&w.join(name)))
            .collect();
        assert_eq!(events.len(), 1, "{events:#?}");
        assert_ne!(events[0].flags & (libc::O_CREAT as u32), 0, "{events:#?}");
    }

    for f in &mine {
        assert!(
            f.path.starts_with(&text(&w)),
            "only paths under the watched prefix leave the kernel: {f:?}"
        );
        assert!(
            !f.path.ends_with("existing.php"),
            "read-only opens are not reported: {f:?}"
        );
    }
    assert_eq!(seen.lost, 0);
}

#[test]
fn paths_cross_mount_points() {
    require_root();
    for mechanism in file_mechanisms() {
        eprintln!("file mechanism: {mechanism:?}");
        paths_cross(mechanism);
    }
}

fn paths_cross(mechanism: FileHooks) {
    let tree = Tree::new("mount");
    let mnt = tree.watched().join("mnt");
    fs::create_dir_all(&mnt).expect("mountpoint");
    let target = CString::new(mnt.as_os_str().as_bytes()).expect("cstring");
    // SAFETY: valid NUL-terminated strings; a private tmpfs on our own directory.
    let rc = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
    let result = with_sensor(tree.config(mechanism), || {
        fs::create_dir_all(mnt.join("deep/er")).expect("dirs on tmpfs");
        fs::write(mnt.join("deep/er/shell.php"), b"x").expect("write on tmpfs");
    });
    // SAFETY: unmounting what we mounted.
    unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    let (seen, ()) = result.expect("sensor");
    let expected = text(&mnt.join("deep/er/shell.php"));
    assert!(
        files(&seen.events).any(|f| f.path == expected && f.op == FileOp::Open),
        "the path walks from the tmpfs up through its mountpoint: {:#?}",
        files(&seen.events).collect::<Vec<_>>()
    );
}

#[test]
fn without_watched_paths_no_file_events_reach_userspace() {
    require_root();
    for mechanism in file_mechanisms() {
        let tree = Tree::new("none");
        let config = CaptureConfig {
            file_hooks: mechanism,
            ..CaptureConfig::default()
        };
        let (seen, ()) = with_sensor(config, || {
            fs::write(tree.watched().join("x.php"), b"x").expect("write");
        })
        .expect("sensor");
        let count = files(&seen.events)
            .filter(|f| f.path.starts_with(&text(&tree.root)))
            .count();
        assert_eq!(
            count, 0,
            "nothing is watched, so nothing is sent ({mechanism:?})"
        );
    }
}

/// `auto` takes fanotify only where it can see every watched path: a prefix on a filesystem
/// that cannot report file handles (procfs) makes it fall back to the tracepoints, which then
/// still report the other prefix's writes, and the metrics say so.
#[test]
fn auto_falls_back_to_the_tracepoints_where_fanotify_cannot_mark() {
    require_root();
    let tree = Tree::new("fallback");
    let w = tree.watched();
    let config = CaptureConfig {
        watch_paths: vec![text(&w), "/proc/sys/lineage-test".into()],
        ..CaptureConfig::default()
    };
    let (seen, ()) = with_sensor(config, || {
        fs::write(w.join("x.php"), b"x").expect("write");
    })
    .expect("sensor");
    let text = seen.metrics.encode().expect("encode");
    assert!(
        text.contains(
            r#"lineage_sensor_hook_info{family="file",mechanism="syscall_tracepoint"} 1"#
        ),
        "{text}"
    );
    assert!(
        files(&seen.events).any(|f| f.path == self::text(&w.join("x.php"))),
        "the fallback still sees the writes"
    );
}
