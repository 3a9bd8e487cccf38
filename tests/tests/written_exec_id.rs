//! server-written-file-executed knows the executed file by its device and inode (read by the
//! kernel at exec) against those of the file the server wrote (read at its file event): a hard
//! link to what the server wrote alerts under any name; a copy, or another file renamed over
//! the written name, does not. Runs in the guest kernels too (xtask GUEST_TESTS): the members
//! followed at exec are found in each kernel's BTF.

use std::{path::Path, process::Command, time::Duration};

use integration_tests::{
    Alert, NO_RATE_LIMIT, RunningSensor, require_root, server_shell, temp_dir,
};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");
const WITHIN: Duration = Duration::from_secs(30);
const RULE: &str = "server-written-file-executed";

/// Runs `program` and waits for it; the exec is what the sensor judges.
fn exec(program: &Path) {
    let status = Command::new(program)
        .status()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    assert!(status.success(), "{}: {status}", program.display());
}

/// The executed file is recognised by its device and inode, not its name: a hard link to what
/// the server wrote is that file under another name; a copy, or another file renamed over the
/// written name, is not.
#[test]
fn the_executed_file_is_known_by_device_and_inode() {
    require_root();
    let dir = temp_dir("lineage-written-id-");
    let www = dir.path().join("www");
    let up = www.join("up");
    std::fs::create_dir_all(&up).expect("web root");
    let server = integration_tests::fake_server(WORKLOAD, dir.path(), "nginx");
    let config = dir.path().join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "{}[rules.webroot_script_write]\nweb_roots = [\"{}\"]\n[incidents]\nstate_file = \"\"\n",
            NO_RATE_LIMIT,
            www.display()
        ),
    )
    .expect("config");
    let sensor = RunningSensor::start(&config);
    sensor.own_dir(dir.path());

    // The server's shell drops a program into the web root.
    let tool = up.join("tool");
    let t = tool.to_str().expect("utf-8");
    let status = Command::new(&server)
        .args(["copy", "/usr/bin/true", t])
        .status()
        .expect("the fake server");
    assert!(status.success(), "the drop: {status}");
    let is_exec = |a: &Alert| a.doc["rule"]["id"] == RULE;
    let quiet = |what: &str| {
        let before = sensor
            .quiet_until_sentinel(WITHIN, |m| {
                server_shell(&server, &format!("echo {m} >/dev/null"))
            })
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let wrong: Vec<_> = before.iter().filter(|a| is_exec(a)).collect();
        assert!(wrong.is_empty(), "{what} alerted: {wrong:#?}");
    };
    let alerts = |what: &str, program: &Path| {
        let (alert, _) = sensor
            .expect_alert(WITHIN, what, is_exec)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(alert.doc["file"]["path"], t, "{what}: {}", alert.doc);
        assert_eq!(
            alert.doc["process"]["executable"],
            program.to_str().expect("utf-8"),
            "{what}: {}",
            alert.doc
        );
    };
    // The drop was read (its file event is before the sentinel's exec in the ring).
    quiet("the drop");

    let copy = dir.path().join("copy");
    std::fs::copy(&tool, &copy).expect("copy");
    exec(&copy);
    quiet("a copy of the written file");

    let linked = dir.path().join("linked");
    std::fs::hard_link(&tool, &linked).expect("hard link");
    exec(&linked);
    alerts("a hard link to the written file", &linked);

    exec(&tool);
    alerts("the written file by its own name", &tool);

    // Another file (same content, another inode) renamed over the written name.
    let other = up.join(".other");
    std::fs::copy("/usr/bin/true", &other).expect("other file");
    std::fs::set_permissions(&other, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    std::fs::rename(&other, &tool).expect("rename over");
    exec(&tool);
    quiet("another file renamed over the written name");

    // What the server wrote is still there under its other name.
    exec(&linked);
    alerts("the hard link after the rename-over", &linked);

    let (status, log) = sensor.stop();
    assert!(status.success(), "{log:#?}");
}
