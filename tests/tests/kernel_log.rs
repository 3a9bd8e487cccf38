//! The kernel programs' own diagnostics (aya-log): with `--log-level debug`, a path longer than
//! the kernel walk keeps gives a kernel-side line naming the hook and the writer's pid; at the
//! default level no such line appears (the statement is pruned at load) while the metric still
//! counts the event. And the pruning is real: each program's translated instruction count at
//! the default level is below its count with the statements enabled, and equals the figures
//! docs/events.md records for a build without them.

use std::{
    ffi::CString,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::Path,
    time::{Duration, Instant},
};

use integration_tests::{RunningSensor, file_hooks_toml, metric, require_root, temp_dir};
use lineage_sensor::config::FileHooks;

const WITHIN: Duration = Duration::from_secs(20);
const TRUNCATED: &str = "lineage_sensor_file_paths_truncated_total{outcome=\"unresolved\"}";

fn subdir(dir: &OwnedFd, name: &str) -> OwnedFd {
    let c = CString::new(name).expect("cstring");
    // SAFETY: plain syscalls on a descriptor we own and a NUL-terminated name.
    let rc = unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o755) };
    assert_eq!(rc, 0, "mkdirat: {}", std::io::Error::last_os_error());
    // SAFETY: as above; the new descriptor is owned by the returned value.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), libc::O_DIRECTORY) };
    assert!(fd >= 0, "openat: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor nobody else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Writes a file whose path is over 5,000 bytes below `root` (25 directories of 200 bytes,
/// made through descriptors since no syscall takes such a path), and closes it at once so
/// that userspace cannot complete the path either.
fn write_too_long_path(root: &Path) {
    let part = "l".repeat(200);
    let mut dir = OwnedFd::from(std::fs::File::open(root).expect("open root"));
    for _ in 0..25 {
        dir = subdir(&dir, &part);
    }
    let name = CString::new("x.php").expect("cstring");
    // SAFETY: as in `subdir`.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY,
            0o644,
        )
    };
    assert!(fd >= 0, "create: {}", std::io::Error::last_os_error());
    // SAFETY: closing the descriptor just opened.
    unsafe { libc::close(fd) };
}

/// A sensor on the file tracepoints: the path walk, and its diagnostics, are theirs (fanotify
/// runs no program on the file path).
fn sensor(dir: &Path, level: Option<&str>) -> (RunningSensor, std::path::PathBuf) {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).expect("web root");
    let config = dir.join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "{}[rules.webroot_script_write]\nweb_roots = [\"{}\"]\n[incidents]\nstate_file = \"\"\n",
            file_hooks_toml(FileHooks::Tracepoint),
            www.display()
        ),
    )
    .expect("config");
    let wrapper: Vec<String> = match level {
        Some(level) => vec!["env".into(), format!("LINEAGE_SENSOR_LOG={level}")],
        None => Vec::new(),
    };
    let sensor = RunningSensor::start_with(&config, &wrapper)
        .unwrap_or_else(|(status, log)| panic!("sensor not ready ({status}): {log:#?}"));
    (sensor, www)
}

/// The kernel-side line about this process's truncated path.
fn is_mine(line: &str) -> bool {
    line.contains("kernel: hook=sys_exit_file")
        && line.contains(&format!(" pid={} ", std::process::id()))
        && line.contains("reason=path_truncated")
}

#[test]
fn at_debug_a_too_long_path_gives_a_kernel_line_naming_hook_and_pid() {
    require_root();
    let dir = temp_dir("lineage-kernel-log-");
    let (mut sensor, www) = sensor(dir.path(), Some("debug"));
    write_too_long_path(&www);
    assert!(
        sensor.wait_log(WITHIN, is_mine),
        "no kernel-side line for pid {}",
        std::process::id()
    );
    let (status, log) = sensor.stop();
    assert!(status.success(), "{log:#?}");
}

#[test]
fn at_the_default_level_no_kernel_line_and_the_metric_still_counts() {
    require_root();
    let dir = temp_dir("lineage-kernel-log-");
    let (mut sensor, www) = sensor(dir.path(), None);
    let before = metric(&sensor.metrics(), TRUNCATED).unwrap_or(0.0);
    write_too_long_path(&www);
    let deadline = Instant::now() + WITHIN;
    while metric(&sensor.metrics(), TRUNCATED).unwrap_or(0.0) <= before {
        assert!(
            Instant::now() < deadline,
            "the truncated path was not counted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The event was read; a kernel line would have been flushed with its batch.
    assert!(
        !sensor.wait_log(Duration::from_secs(1), |l| l.contains("kernel: hook=")),
        "a kernel-side line at the default level"
    );
    let (status, log) = sensor.stop();
    assert!(status.success(), "{log:#?}");
}

/// Each program of the sensor `pid` by name, with its translated instruction count (bpftool's
/// `bytes_xlated` / 8). The programs are those whose descriptors the process holds.
fn translated_counts(pid: u32) -> Vec<(String, u64)> {
    let mut ids: Vec<u64> = std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .expect("fdinfo")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .filter_map(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("prog_id:"))
                .and_then(|id| id.trim().parse().ok())
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut counts: Vec<(String, u64)> = ids
        .iter()
        .map(|id| {
            let out = std::process::Command::new("bpftool")
                .args(["prog", "show", "id", &id.to_string(), "--json"])
                .output()
                .expect("bpftool (cargo xtask test installs it)");
            let prog: serde_json::Value =
                serde_json::from_slice(&out.stdout).expect("bpftool json");
            let name = prog["name"].as_str().expect("name").to_owned();
            (
                name,
                prog["bytes_xlated"].as_u64().expect("bytes_xlated") / 8,
            )
        })
        .collect();
    counts.sort();
    counts
}

fn counts_at(level: Option<&str>) -> Vec<(String, u64)> {
    let dir = temp_dir("lineage-kernel-log-");
    let (sensor, _) = sensor(dir.path(), level);
    let counts = translated_counts(sensor.pid());
    let (status, log) = sensor.stop();
    assert!(status.success(), "{log:#?}");
    counts
}

/// Every program logs on its degraded paths, and at the default level the verifier drops
/// those statements. What is left of them (the read of the level, and values the compiler keeps
/// for the error arms: 7 to 105 instructions a program over a build without statements on
/// Linux 6.18, docs/events.md) is far below one statement's body.
#[test]
fn the_log_statements_are_pruned_at_the_default_level() {
    require_root();
    let info = counts_at(None);
    let debug = counts_at(Some("debug"));
    assert!(info.len() >= 10, "too few programs: {info:?}");
    assert_eq!(
        info.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        debug.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for ((name, at_info), (_, at_debug)) in info.iter().zip(&debug) {
        // One statement (header, arguments, the ring reservation) is over 500 instructions.
        assert!(
            at_info + 500 < *at_debug,
            "{name}: {at_info} at info, {at_debug} at debug: the statements were not dropped"
        );
    }
}
