//! Files an attacker plants in a web root to turn the sensor's hashing against it: a FIFO (an
//! open that blocks for ever), a device node, a unix socket, a symbolic link to /etc/shadow (a
//! digest of a secret sent to the SIEM), a link loop and a 4 GB sparse file. Each is moved into
//! the web root and followed by a real script. Every alert must leave within 2 s of its write,
//! only regular files in the web root may carry a hash, and SIGTERM must stop the sensor in 5 s.

use std::{
    os::unix::{ffi::OsStrExt as _, fs::symlink},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use integration_tests::{RunningSensor, file_hooks_toml, file_mechanisms, require_root, temp_dir};
use lineage_sensor::config::FileHooks;
use serde_json::Value;

/// Alerts must leave this soon after the write (hash delay 200 ms, hash deadline 1 s).
const ALERT_WITHIN: Duration = Duration::from_secs(2);

fn sha256(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_owned()
}

/// Puts a prepared node into the web root by rename (the kernel reports renames into it).
fn move_in(from: &Path, to: &Path) {
    std::fs::rename(from, to).expect("rename into the web root");
}

fn mknod(path: &Path, kind: libc::mode_t, dev: libc::dev_t) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("cstring");
    // SAFETY: a valid NUL-terminated path.
    let rc = unsafe { libc::mknod(c.as_ptr(), kind | 0o644, dev) };
    assert_eq!(rc, 0, "mknod: {}", std::io::Error::last_os_error());
}

/// The alert about `path`, waited for at most `ALERT_WITHIN` after `written`.
fn alert_for(sensor: &RunningSensor, path: &Path, written: Instant) -> Value {
    let text = path.to_str().expect("utf-8 path").to_owned();
    let left = ALERT_WITHIN.saturating_sub(written.elapsed());
    let (found, others) = sensor.alert_until(left, |a| a.doc["file"]["path"] == text.as_str());
    let found = found.unwrap_or_else(|| {
        panic!("no alert for {text} within {ALERT_WITHIN:?} of its write; others: {others:#?}")
    });
    assert!(
        written.elapsed() <= ALERT_WITHIN,
        "{text}: alert after {:?}",
        written.elapsed()
    );
    found.doc
}

#[test]
fn planted_fifos_devices_sockets_and_links_are_reported_unhashed_and_never_stall_the_sensor() {
    require_root();
    for mechanism in file_mechanisms() {
        eprintln!("file mechanism: {mechanism:?}");
        planted_files_reported(mechanism);
    }
}

fn planted_files_reported(mechanism: FileHooks) {
    let dir = temp_dir("lineage-hostile-files-");
    let www = dir.path().join("www");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&www).expect("web root");
    std::fs::create_dir_all(&outside).expect("outside");
    let config = dir.path().join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "{}[rules.webroot_script_write]\nweb_roots = [\"{}\"]\nhash_delay_ms = 200\n\
             [incidents]\nstate_file = \"\"\n",
            file_hooks_toml(mechanism),
            www.display()
        ),
    )
    .expect("config");
    let sensor = RunningSensor::start(&config);

    // (name in the web root, how it is made outside, expected file.type)
    type Make = fn(&Path);
    let hostile: [(&str, Make, &str); 6] = [
        ("f.php", |p| mknod(p, libc::S_IFIFO, 0), "fifo"),
        (
            "dev.php",
            |p| mknod(p, libc::S_IFCHR, libc::makedev(1, 3)),
            "char_device",
        ),
        (
            "sock.php",
            |p| {
                // The listener is dropped; the socket file stays.
                std::os::unix::net::UnixListener::bind(p).expect("bind");
            },
            "socket",
        ),
        (
            "shadow.php",
            |p| symlink("/etc/shadow", p).expect("symlink"),
            "symlink",
        ),
        (
            "loop.php",
            |p| {
                let name = p.file_name().expect("name");
                symlink(name, p).expect("loop");
            },
            "symlink",
        ),
        (
            "big.php",
            |p| {
                let file = std::fs::File::create(p).expect("create");
                file.set_len(4 << 30).expect("4 GB sparse");
            },
            "file",
        ),
    ];
    let mut real: Vec<(PathBuf, String)> = Vec::new();
    for (i, (name, make, kind)) in hostile.iter().enumerate() {
        let staged = outside.join(name);
        make(&staged);
        let planted = www.join(name);
        let written = Instant::now();
        move_in(&staged, &planted);
        let alert = alert_for(&sensor, &planted, written);
        assert_eq!(alert["rule"]["id"], "webroot-script-write", "{alert}");
        assert!(
            alert["file"]["hash"].is_null(),
            "{name} must not carry a hash: {alert}"
        );
        assert_eq!(alert["file"]["type"], *kind, "{alert}");
        if *name == "shadow.php" {
            assert_eq!(alert["file"]["target_path"], "/etc/shadow", "{alert}");
            assert_eq!(alert["lineage"]["file_hash_missing"], "symlink_in_path");
        }
        if *name == "big.php" {
            assert_eq!(alert["lineage"]["file_hash_missing"], "too_large");
        }

        // A real script right after: its alert is not held back by the hostile file.
        let script = www.join(format!("real{i}.php"));
        let written = Instant::now();
        std::fs::write(&script, format!("<?php system($_GET['c{i}']); ?>")).expect("script");
        let alert = alert_for(&sensor, &script, written);
        let want = sha256(&script);
        assert_eq!(alert["file"]["hash"]["sha256"], want.as_str(), "{alert}");
        assert_eq!(alert["file"]["type"], "file");
        real.push((script, want));
    }

    let stopping = Instant::now();
    let (status, log) = sensor.stop();
    let took = stopping.elapsed();
    assert!(status.success(), "{log:#?}");
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM took {took:?} to stop the sensor"
    );
    assert_eq!(real.len(), hostile.len());
}

#[test]
fn sigterm_during_a_long_hash_delay_stops_at_once_and_the_alert_still_leaves() {
    require_root();
    for mechanism in file_mechanisms() {
        eprintln!("file mechanism: {mechanism:?}");
        sigterm_during_hash_delay(mechanism);
    }
}

fn sigterm_during_hash_delay(mechanism: FileHooks) {
    let dir = temp_dir("lineage-hostile-delay-");
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).expect("web root");
    let config = dir.path().join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "{}[rules.webroot_script_write]\nweb_roots = [\"{}\"]\nhash_delay_ms = 10000\n\
             [incidents]\nstate_file = \"\"\n",
            file_hooks_toml(mechanism),
            www.display()
        ),
    )
    .expect("config");
    let sensor = RunningSensor::start(&config);
    let script = www.join("late.php");
    std::fs::write(&script, b"<?php ?>").expect("script");
    // Let the kernel event reach the sensor (flush interval 10 ms); the hash waits 10 s.
    std::thread::sleep(Duration::from_millis(500));
    let stopping = Instant::now();
    sensor.signal(libc::SIGTERM);
    let want = script.to_str().expect("utf-8").to_owned();
    let (found, others) = sensor.alert_until(Duration::from_secs(5), |a| {
        a.doc["file"]["path"] == want.as_str()
    });
    let found =
        found.unwrap_or_else(|| panic!("the waiting alert was not sent at shutdown: {others:#?}"));
    assert_eq!(
        found.doc["file"]["hash"]["sha256"],
        sha256(&script).as_str()
    );
    let (status, log) = sensor.stop();
    assert!(status.success(), "{log:#?}");
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "stopping took {:?}",
        stopping.elapsed()
    );
}
