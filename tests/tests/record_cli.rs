//! The real `lineage-sensor` binary: what a user types, what a user reads.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use integration_tests::{require_root, sensor_binary};

const TRACEFS: &str = "/sys/kernel/tracing";

fn tracefs_mounted() -> bool {
    std::path::Path::new(TRACEFS).join("events").is_dir()
}

#[test]
fn record_mounts_tracefs_writes_ndjson_and_reports_totals_on_sigterm() {
    require_root();
    // A fresh machine has no tracefs mounted: take it away (lazily, so nothing else breaks) and
    // expect the sensor to mount it again by itself.
    if tracefs_mounted() {
        // SAFETY: a constant path; MNT_DETACH leaves existing users of the mount working.
        let rc = unsafe { libc::umount2(c"/sys/kernel/tracing".as_ptr(), libc::MNT_DETACH) };
        assert_eq!(rc, 0, "umount tracefs: {}", std::io::Error::last_os_error());
    }
    assert!(!tracefs_mounted());

    let dir = std::env::temp_dir().join(format!("lineage-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let output = dir.join("events.ndjson");
    let mut sensor = Command::new(sensor_binary())
        .args(["record", "--output"])
        .arg(&output)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lineage-sensor");
    let stderr = sensor.stderr.take().expect("stderr");
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut log = Vec::new();
    while !log.iter().any(|l: &String| l.contains("ready")) {
        match lines_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => log.push(line),
            Err(_) => panic!("sensor never became ready: {log:#?}"),
        }
    }
    assert!(
        tracefs_mounted(),
        "the sensor mounts tracefs when it is missing"
    );

    let mut sh = Command::new("sh")
        .args(["-c", "exit 3"])
        .spawn()
        .expect("sh");
    assert_eq!(sh.wait().expect("wait").code(), Some(3));

    // SAFETY: signalling our own child.
    unsafe { libc::kill(sensor.id() as i32, libc::SIGTERM) };
    let status = sensor.wait().expect("wait for sensor");
    log.extend(lines_rx.iter());
    assert!(
        status.success(),
        "clean exit on SIGTERM: {status}; {log:#?}"
    );
    let totals = log
        .iter()
        .find(|l| l.contains("events: exec="))
        .unwrap_or_else(|| panic!("no totals in {log:#?}"));
    assert!(totals.contains("lost: 0"), "{totals}");

    let text = std::fs::read_to_string(&output).expect("record file");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    assert_eq!(lines[0]["type"], "header", "first line is the header");
    let exec = lines
        .iter()
        .find(|v| v["type"] == "exec" && v["pid"] == sh.id() && v["argv"][2] == "exit 3")
        .expect("exec of sh in the record");
    assert_eq!(exec["argv"], serde_json::json!(["sh", "-c", "exit 3"]));
    assert_eq!(exec["ppid"], std::process::id());
    let exit = lines
        .iter()
        .find(|v| v["type"] == "exit" && v["pid"] == sh.id())
        .expect("exit of sh in the record");
    assert_eq!(exit["exit_code"], 3);
    assert_eq!(exit["start_ns"], exec["start_ns"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_config_exits_2_naming_file_line_and_field() {
    let dir = std::env::temp_dir().join(format!("lineage-badconf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("sensor.toml");
    std::fs::write(&config, "[capture]\nring_buffer_bytes = 1000\n").expect("write config");
    let out = Command::new(sensor_binary())
        .args(["record", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("sensor.toml"), "{stderr}");
    assert!(stderr.contains("capture.ring_buffer_bytes"), "{stderr}");

    std::fs::write(
        &config,
        "[capture]\nring_buffer_bytes = 4096\nverbose = true\n",
    )
    .expect("write");
    let out = Command::new(sensor_binary())
        .args(["check-config"])
        .arg(&config)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("sensor.toml:3:"),
        "line of the unknown key: {stderr}"
    );
    assert!(stderr.contains("verbose"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_tracefs_and_without_the_right_to_mount_it_the_message_says_what_to_do() {
    require_root();
    if tracefs_mounted() {
        // SAFETY: a constant path; MNT_DETACH leaves existing users of the mount working.
        let rc = unsafe { libc::umount2(c"/sys/kernel/tracing".as_ptr(), libc::MNT_DETACH) };
        assert_eq!(rc, 0, "umount tracefs: {}", std::io::Error::last_os_error());
    }
    // Everything but CAP_SYS_ADMIN: loading would be allowed, mounting is not.
    let out = Command::new("setpriv")
        .args([
            "--bounding-set",
            "-sys_admin",
            "--inh-caps",
            "-sys_admin",
            "--",
        ])
        .arg(sensor_binary())
        .args(["record", "--output", "/dev/null"])
        .output()
        .expect("run setpriv (util-linux)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("tracefs is not mounted"), "{stderr}");
    assert!(
        stderr.contains("mount -t tracefs tracefs /sys/kernel/tracing"),
        "{stderr}"
    );
    assert!(!tracefs_mounted());
    // Leave the machine as the next test expects it.
    let status = Command::new("mount")
        .args(["-t", "tracefs", "tracefs", TRACEFS])
        .status()
        .expect("mount");
    assert!(status.success());
}

#[test]
fn without_cap_bpf_the_message_names_the_capabilities() {
    require_root();
    let out = Command::new("setpriv")
        .args([
            "--bounding-set",
            "-bpf,-perfmon,-sys_admin",
            "--inh-caps",
            "-bpf,-perfmon,-sys_admin",
            "--",
        ])
        .arg(sensor_binary())
        .args(["record", "--output", "/dev/null"])
        .output()
        .expect("run setpriv (util-linux)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("CAP_BPF and CAP_PERFMON"), "{stderr}");
    assert!(stderr.contains("Operation not permitted"), "{stderr}");
}

#[test]
fn sigterm_right_after_ready_still_shuts_down_cleanly() {
    require_root();
    // The signal handlers must be in place before "ready" is logged: a SIGTERM that arrives
    // before the main loop first polls must not meet the default action.
    for round in 0..5 {
        let mut sensor = Command::new(sensor_binary())
            .args(["record", "--output", "/dev/null"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lineage-sensor");
        let stderr = sensor.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let mut log = Vec::new();
        for line in lines.by_ref().map_while(Result::ok) {
            let ready = line.contains("ready");
            log.push(line);
            if ready {
                break;
            }
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(sensor.id() as i32, libc::SIGTERM) };
        log.extend(lines.map_while(Result::ok));
        let status = sensor.wait().expect("wait for sensor");
        assert!(status.success(), "round {round}: {status}; {log:#?}");
        assert!(
            log.iter().any(|l| l.contains("events: exec=")),
            "round {round}: {log:#?}"
        );
    }
}
