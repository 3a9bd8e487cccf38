//! SIGKILL mid-attack and restart: the new sensor re-attaches, rebuilds its process table from
//! /proc (a server and shell started under the old one are known), and continues the same
//! incident instead of opening a duplicate for the same tree.

use std::{
    io::{BufRead as _, BufReader},
    os::unix::process::CommandExt as _,
    process::{Child, Command, Stdio},
    time::Duration,
};

use integration_tests::{RunningSensor, require_root, temp_dir};
use serde_json::Value;

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");
/// Generous: nothing here measures time.
const WITHIN: Duration = Duration::from_secs(30);

/// The fake server in a process group of its own, killed with its shell on drop.
struct Reaped(Child);
impl Drop for Reaped {
    fn drop(&mut self) {
        // SAFETY: signalling the process group we created for the fake server.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

fn alert_where(sensor: &mut RunningSensor, want: impl Fn(&Value) -> bool) -> Value {
    let (found, others) = sensor.alert_until(WITHIN, |a| want(&a.doc));
    sensor.wait_log(Duration::ZERO, |_| false);
    match found {
        Some(alert) => alert.doc,
        None => panic!(
            "no such alert; got {}; log {:#?}",
            integration_tests::briefs(&others),
            sensor.log_seen
        ),
    }
}

#[test]
fn after_sigkill_the_restarted_sensor_continues_the_tree_and_its_incident() {
    require_root();
    let dir = temp_dir("lineage-restart-");
    let server = dir.path().join("nginx");
    std::fs::copy(WORKLOAD, &server).expect("copy workload as nginx");
    let go = dir.path().join("go");
    let state = dir.path().join("incidents.json");
    let config = dir.path().join("sensor.toml");
    std::fs::write(
        &config,
        format!("[incidents]\nstate_file = \"{}\"\n", state.display()),
    )
    .expect("write config");

    let mut first = RunningSensor::start(&config);
    // The web shell: one `id` now, one after the restart, from the same shell.
    let script = format!(
        "id >/dev/null; while ! test -e '{}'; do sleep 0.05; done; id >/dev/null",
        go.display()
    );
    let mut child = Command::new(&server)
        .process_group(0)
        .args(["shell", &script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the fake server");
    let stdout = child.stdout.take().expect("stdout");
    let server_proc = Reaped(child);
    let server_pid = server_proc.0.id();
    let rooted = |a: &Value| a["lineage"]["ancestry"][0]["pid"] == server_pid;

    let before = alert_where(&mut first, |a| {
        a["rule"]["id"] == "server-spawned-recon" && rooted(a)
    });
    let incident = before["lineage"]["incident"]["id"].clone();
    assert!(incident.is_string());
    let shell_pid = before["process"]["parent"]["pid"].clone();
    first.kill();
    assert!(
        state.exists(),
        "the open incident was written before the kill"
    );

    // The sensor is host-wide: other trees on this host may have open incidents too, so the
    // state file must hold this test's incident, and the restart must continue at least it.
    let saved = std::fs::read_to_string(&state).expect("read the incident state");
    let incident_id = incident.as_str().expect("incident id is a string");
    assert!(saved.contains(incident_id), "{incident_id} not in {saved}");
    let mut second = RunningSensor::start(&config);
    let continued = |l: &str| {
        l.split("continuing ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n >= 1)
    };
    assert!(second.wait_log(WITHIN, continued), "{:#?}", second.log_seen);
    std::fs::write(&go, "").expect("let the shell go on");
    let after = alert_where(&mut second, |a| {
        a["rule"]["id"] == "server-spawned-recon" && rooted(a)
    });
    assert_eq!(
        after["lineage"]["incident"]["id"], incident,
        "same tree within the span after a restart: same incident"
    );
    assert_eq!(after["process"]["parent"]["pid"], shell_pid);
    assert_eq!(after["lineage"]["server"]["family"], "nginx");
    assert_eq!(
        after["lineage"]["ancestry"][0]["executable"],
        server.to_str().expect("utf-8 path"),
        "the root rebuilt from /proc is the server"
    );
    let status_line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("status="));
    assert_eq!(status_line.as_deref(), Some("status=0"));
    let (status, log) = second.stop();
    assert!(status.success(), "{log:#?}");
    drop(server_proc);
}
