//! Files too deep or too long for the kernel's path walk, under a watched prefix: reported (the
//! path completed from /proc, or its tail marked truncated and counted), never dropped.

use std::{
    ffi::CString,
    fs,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::PathBuf,
    time::Duration,
};

use integration_tests::{
    RunningSensor, file_hooks_toml, file_mechanisms, files, require_root, temp_dir, with_sensor,
};
use lineage_sensor::{
    config::{CaptureConfig, FileHooks},
    event::File,
};

/// A fresh directory whose `watched/` subdirectory is the watched prefix.
struct Tree {
    root: PathBuf,
}

impl Tree {
    fn new() -> Tree {
        let root = std::env::temp_dir().join(format!("lineage-deep-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("watched")).expect("create dirs");
        Tree { root }
    }
    fn watched(&self) -> PathBuf {
        self.root.join("watched")
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        // std removes a tree through directory fds, so paths past PATH_MAX go too.
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// `name` made and opened below the directory `dir`, relative to its fd (the only way to build a
/// path longer than PATH_MAX).
fn subdir(dir: &OwnedFd, name: &str) -> OwnedFd {
    let c = CString::new(name).expect("cstring");
    // SAFETY: a valid directory fd and a NUL-terminated name.
    let rc = unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o755) };
    assert_eq!(rc, 0, "mkdirat: {}", std::io::Error::last_os_error());
    // SAFETY: as above.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), libc::O_DIRECTORY) };
    assert!(fd >= 0, "openat: {}", std::io::Error::last_os_error());
    // SAFETY: a descriptor just opened and owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Creates `name` below `dir` for writing and closes it.
fn create_in(dir: &OwnedFd, name: &str) {
    let c = CString::new(name).expect("cstring");
    // SAFETY: a valid directory fd and a NUL-terminated name.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY,
            0o644,
        )
    };
    assert!(fd >= 0, "create: {}", std::io::Error::last_os_error());
    // SAFETY: our own fd.
    unsafe { libc::close(fd) };
}

/// The event for the file whose full path is `full`: the same path, or a truncated tail of it.
fn report_of<'a>(mine: &[&'a File], full: &str) -> Option<&'a File> {
    mine.iter().copied().find(|f| {
        f.ret >= 0
            && if f.path_truncated {
                f.path.len() > 1 && full.ends_with(&f.path)
            } else {
                f.path == full
            }
    })
}

#[test]
fn a_path_60_levels_deep_and_one_over_4096_bytes_are_both_reported() {
    require_root();
    for mechanism in file_mechanisms() {
        eprintln!("file mechanism: {mechanism:?}");
        deep_and_long_reported(mechanism);
    }
}

fn deep_and_long_reported(mechanism: FileHooks) {
    let tree = Tree::new();
    let pid = std::process::id();
    let watched = tree.watched();
    let config = CaptureConfig {
        watch_paths: vec![watched.to_string_lossy().into_owned()],
        file_hooks: mechanism,
        ..CaptureConfig::default()
    };
    let top = fs::File::open(&watched).expect("open watched");
    let top = OwnedFd::from(top);

    let deep_dir = (0..60).fold(watched.clone(), |p, i| p.join(format!("d{i:02}")));
    let deep_name = format!("deep-{pid}.php");
    let deep = deep_dir.join(&deep_name).to_string_lossy().into_owned();
    let long_part = "l".repeat(200);
    let long_name = format!("long-{pid}.php");
    let long = format!(
        "{}{}/{long_name}",
        watched.to_string_lossy(),
        format!("/{long_part}").repeat(25)
    );
    assert!(long.len() > 4096 && deep.split('/').count() > 60);
    fs::create_dir_all(&deep_dir).expect("60 levels");

    let (seen, ()) = with_sensor(config, || {
        fs::write(&deep, b"<?php ?>").expect("deep write");
        let mut dir = subdir(&top, &long_part);
        for _ in 1..25 {
            dir = subdir(&dir, &long_part);
        }
        create_in(&dir, &long_name);
    })
    .expect("sensor");

    let mine: Vec<&File> = files(&seen.events).filter(|f| f.pid == pid).collect();
    let deep_seen = report_of(&mine, &deep)
        .unwrap_or_else(|| panic!("the 60-level write is not reported: {mine:#?}"));
    let long_seen = report_of(&mine, &long)
        .unwrap_or_else(|| panic!("the 4096+ byte write is not reported: {mine:#?}"));
    // 60 levels are within the kernel walk (or completed from the open descriptor).
    assert!(
        !deep_seen.path_truncated && deep_seen.path == deep,
        "{deep_seen:?}"
    );
    // readlink(2) cannot return more than PATH_MAX: the long path stays a marked tail.
    assert!(long_seen.path_truncated, "{long_seen:?}");
    assert!(long_seen.path.ends_with(&format!("/{long_name}")));
    let truncated = [deep_seen, long_seen]
        .iter()
        .filter(|f| f.path_truncated)
        .count() as u64;
    let counted = seen.metrics.paths_truncated(false) + seen.metrics.paths_truncated(true);
    assert!(
        counted >= truncated,
        "file_paths_truncated_total {counted} for {mine:#?}"
    );
}

#[test]
fn a_script_written_past_the_kernel_walk_in_a_web_root_raises_an_alert_marked_truncated() {
    require_root();
    for mechanism in file_mechanisms() {
        eprintln!("file mechanism: {mechanism:?}");
        script_past_the_walk_alerts(mechanism);
    }
}

fn script_past_the_walk_alerts(mechanism: FileHooks) {
    let dir = temp_dir("lineage-deep-alert-");
    let www = dir.path().join("www");
    fs::create_dir_all(&www).expect("web root");
    let config = dir.path().join("sensor.toml");
    fs::write(
        &config,
        format!(
            "{}[rules.webroot_script_write]\nweb_roots = [\"{}\"]\n\
             [incidents]\nstate_file = \"\"\n",
            file_hooks_toml(mechanism),
            www.display()
        ),
    )
    .expect("config");
    let sensor = RunningSensor::start(&config);

    let long_part = "l".repeat(200);
    let name = format!("shell-{}.php", std::process::id());
    let mut at = OwnedFd::from(fs::File::open(&www).expect("open web root"));
    for _ in 0..25 {
        at = subdir(&at, &long_part);
    }
    create_in(&at, &name);

    let tail = format!("/{name}");
    let (found, others) = sensor.alert_until(Duration::from_secs(10), |a| {
        a.doc["file"]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with(&tail))
    });
    let found = found.unwrap_or_else(|| panic!("no alert for {name}; others: {others:#?}"));
    assert_eq!(found.rule(), "webroot-script-write");
    let path = found.doc["file"]["path"].as_str().unwrap_or_default();
    assert!(path.starts_with("…/"), "not marked truncated: {path}");
    assert!(path.len() > 4000, "{path}");
}
