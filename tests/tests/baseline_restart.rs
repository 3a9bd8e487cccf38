//! The learned baseline across a SIGKILL: a server's habit learned under one sensor is written
//! to `baseline.state_file`; the restarted sensor reads it back, keeps the habit quiet once the
//! window (which did not restart) is over, counts it, and alerts on a new command of the same
//! server with `lineage.baseline.new`.

use std::{
    os::unix::process::CommandExt as _,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{RunningSensor, require_root, temp_dir};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");
/// Generous: nothing here measures time.
const WITHIN: Duration = Duration::from_secs(40);
const LEARNING_SECS: u64 = 4;

/// A fake server in a process group of its own, killed with its shells on drop.
struct Reaped(Child);
impl Drop for Reaped {
    fn drop(&mut self) {
        // SAFETY: signalling the process group we created for the fake server.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

/// `nginx paced`: runs `sh -c CMD` every `gap_ms`, `count` times.
fn server(exe: &std::path::Path, count: u32, gap_ms: u32, cmd: &str) -> Reaped {
    Reaped(
        Command::new(exe)
            .process_group(0)
            .args(["paced", "0", &count.to_string(), &gap_ms.to_string()])
            .args(["/bin/sh", "-c", cmd])
            .stdout(Stdio::null())
            .spawn()
            .expect("start the fake server"),
    )
}

#[test]
fn a_habit_learned_before_a_sigkill_stays_quiet_after_the_restart() {
    require_root();
    let dir = temp_dir("lineage-baseline-");
    let exe = dir.path().join("nginx");
    std::fs::copy(WORKLOAD, &exe).expect("copy workload as nginx");
    let state = dir.path().join("baseline.toml");
    let config = dir.path().join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "[incidents]\nstate_file = \"\"\n[rate_limit]\nwindow_secs = 0\n\
             [baseline]\nstate_file = \"{}\"\nlearning_secs = {LEARNING_SECS}\n",
            state.display()
        ),
    )
    .expect("write config");

    let first = RunningSensor::start(&config);
    let habit = server(&exe, 100_000, 300, "echo habit /tmp/job_$$");
    let habit_pid = habit.0.id();
    let rooted =
        |a: &integration_tests::Alert, pid: u32| a.doc["lineage"]["ancestry"][0]["pid"] == pid;
    let (learning, _) = first
        .expect_alert(WITHIN, "the habit's alert while learning", |a| {
            rooted(a, habit_pid) && a.doc["rule"]["id"] == "server-spawned-shell"
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        learning.doc["lineage"]["baseline"].is_null(),
        "learning alerts as before"
    );
    // Written by the 10 s housekeeping; then killed without a chance to write again.
    let deadline = Instant::now() + WITHIN;
    while !std::fs::read_to_string(&state).is_ok_and(|t| t.contains("echo habit /tmp/<path>")) {
        assert!(Instant::now() < deadline, "no baseline state file written");
        std::thread::sleep(Duration::from_millis(200));
    }
    first.kill();
    let saved = std::fs::read_to_string(&state).expect("state");
    assert!(saved.contains("learning_ends = "), "{saved}");
    // The window ends LEARNING_SECS after the server was first seen, not after the restart.
    std::thread::sleep(Duration::from_secs(LEARNING_SECS));

    let second = RunningSensor::start(&config);
    let fresh = server(&exe, 1, 0, "echo brand-new");
    let fresh_pid = fresh.0.id();
    let (new, before) = second
        .expect_alert(WITHIN, "the new command's alert", |a| rooted(a, fresh_pid))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(new.doc["lineage"]["baseline"]["new"], true, "{}", new.doc);
    assert!(
        new.doc["lineage"]["baseline"]["template"]
            .as_str()
            .is_some_and(|t| t.contains("echo brand-new")),
        "{}",
        new.doc
    );
    assert!(
        before.iter().all(|a| !rooted(a, habit_pid)),
        "the learned habit alerted after the restart: {}",
        integration_tests::briefs(&before)
    );
    // The habit runs every 300 ms: its first judgement after the restart may still be ahead.
    let baselined = |metrics: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with(
                    "lineage_sensor_alerts_baselined_total{rule=\"server-spawned-shell\"}",
                )
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    let deadline = Instant::now() + WITHIN;
    let mut metrics = second.metrics();
    while baselined(&metrics).is_none_or(|n| n < 1) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        metrics = second.metrics();
    }
    assert!(
        baselined(&metrics).is_some_and(|n| n >= 1),
        "the habit is counted: {metrics}"
    );
    drop(fresh);
    drop(habit);
    second.stop_clean();
}
