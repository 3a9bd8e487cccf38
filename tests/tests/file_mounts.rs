//! A filesystem mounted below a web root after the sensor started: fanotify marks it on the
//! housekeeping tick (the start-up log line of the mark is the signal), after which a script
//! written there alerts as on any other mechanism.

use std::{ffi::CString, os::unix::ffi::OsStrExt, time::Duration};

use integration_tests::{RunningSensor, file_hooks_toml, file_mechanisms, require_root, temp_dir};
use lineage_sensor::config::FileHooks;

#[test]
fn a_filesystem_mounted_under_a_web_root_after_start_is_watched() {
    require_root();
    for mechanism in file_mechanisms() {
        eprintln!("file mechanism: {mechanism:?}");
        mounted_later_is_watched(mechanism);
    }
}

fn mounted_later_is_watched(mechanism: FileHooks) {
    let dir = temp_dir("lineage-file-mounts-");
    let www = dir.path().join("www");
    let up = www.join("uploads");
    std::fs::create_dir_all(&up).expect("web root");
    let config = dir.path().join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "{}[rules.webroot_script_write]\nweb_roots = [\"{}\"]\n[incidents]\nstate_file = \"\"\n",
            file_hooks_toml(mechanism),
            www.display()
        ),
    )
    .expect("config");
    let mut sensor = RunningSensor::start(&config);

    let target = CString::new(up.as_os_str().as_bytes()).expect("cstring");
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
    if mechanism == FileHooks::Fanotify {
        // The housekeeping tick is every 10 s.
        let shown = up.display().to_string();
        let marked = sensor.wait_log(Duration::from_secs(25), |l| {
            l.contains("fanotify: filesystem marks on") && l.contains(&shown)
        });
        if !marked {
            // SAFETY: unmounting what we mounted.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
            panic!("the new mount under the web root was never marked");
        }
    }
    let script = up.join("shell.php");
    std::fs::write(&script, b"<?php system($_GET['c']); ?>").expect("script");
    let want = script.to_str().expect("utf-8").to_owned();
    let (found, others) = sensor.alert_until(Duration::from_secs(10), |a| {
        a.doc["file"]["path"] == want.as_str()
    });
    // SAFETY: unmounting what we mounted.
    unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    let found = found.unwrap_or_else(|| panic!("no alert for {want}: {others:#?}"));
    assert_eq!(found.rule(), "webroot-script-write");
    let (status, log) = sensor.stop();
    assert!(status.success(), "{log:#?}");
}
