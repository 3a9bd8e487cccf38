//! Execution prevention on the real kernel (docs/prevention.md): a shell below a confirmed
//! fake server is stopped at its exec, judged by the engine and killed before it runs its
//! payload in enforce; an excluded one runs; dry-run runs it and says would-block; and the
//! sensor dying (SIGKILL, SIGSEGV) or not beating never leaves a process held.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{RunningSensor, fake_server, metric, require_root, server_shell, temp_dir};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");
/// Generous: nothing here measures speed.
const WITHIN: Duration = Duration::from_secs(30);

/// A fake nginx (started before the sensor confirms it) that waits for `go` to exist, then
/// runs `sh -c CMD` and prints `status=N` (-1: killed by a signal).
struct Waiting {
    child: Child,
    out: BufReader<ChildStdout>,
    go: PathBuf,
}

impl Waiting {
    fn start(server: &Path, dir: &Path, name: &str, cmd: &str) -> Waiting {
        Self::start_as("wait-file", server, dir, name, cmd)
    }

    /// `mode`: `wait-file` (the server runs the shell) or `prefork-wait-file` (a worker it
    /// forked at start does).
    fn start_as(mode: &str, server: &Path, dir: &Path, name: &str, cmd: &str) -> Waiting {
        let go = dir.join(name);
        let mut child = Command::new(server)
            .arg(mode)
            .arg(&go)
            .arg(cmd)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the fake server");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        Waiting { child, out, go }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets it run its shell, without waiting.
    fn release(&self) {
        std::fs::write(&self.go, b"").expect("write go");
    }

    /// Waits for the server to finish: the shell's `status=` line and the server's own exit
    /// status (a server killed along with its shell would not exit 0).
    fn finish(mut self) -> (String, std::process::ExitStatus) {
        let mut status = String::new();
        let mut line = String::new();
        while self.out.read_line(&mut line).expect("read server output") > 0 {
            if line.starts_with("status=") {
                status = line.trim().to_owned();
            }
            line.clear();
        }
        (status, self.child.wait().expect("wait for the server"))
    }

    fn go(self) -> (String, std::process::ExitStatus) {
        self.release();
        self.finish()
    }
}

/// Once a later server's shell has alerted, every server started before it is confirmed in
/// the kernel (events are handled in order; server pids reach the kernel before alerts leave).
fn confirmed(sensor: &RunningSensor, server: &Path) {
    sensor
        .quiet_until_sentinel(WITHIN, |marker| {
            server_shell(server, &format!("true {marker}"))
        })
        .expect("the sentinel alert");
}

fn config(dir: &Path, mode: &str, hold_timeout_ms: u64) -> PathBuf {
    let path = dir.join("sensor.toml");
    std::fs::write(
        &path,
        format!(
            "[prevention]\nmode = \"{mode}\"\nhold_timeout_ms = {hold_timeout_ms}\n\
             [[rules.server_spawned_shell.exclude]]\ncomment = \"the test's benign shell\"\n\
             args = [\"/bin/sh\", \"-c\", \"echo benign .*\"]\n\
             [incidents]\nstate_file = \"\"\n[rate_limit]\nwindow_secs = 0\n"
        ),
    )
    .expect("write config");
    path
}

/// The child of `parent` once it is stopped (state `T`): held by the sensor.
fn held_child(parent: u32) -> Option<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.get(1) == Some(&parent.to_string().as_str()) && fields.first() == Some(&"T") {
                return entry.file_name().to_str()?.parse().ok();
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn prevention_metric(sensor: &RunningSensor, action: &str) -> Option<f64> {
    metric(
        &sensor.metrics(),
        &format!(
            "lineage_sensor_prevention_actions_total{{action=\"{action}\",rule=\"server-spawned-shell\"}}"
        ),
    )
}

#[test]
fn enforce_kills_a_shell_below_a_server_before_its_payload_and_lets_an_excluded_one_run() {
    require_root();
    let tmp = temp_dir("lineage-exec-prevent-");
    let dir = tmp.path();
    let server = fake_server(WORKLOAD, dir, "nginx");
    let sensor = RunningSensor::start(&config(dir, "enforce", 300));

    let marker = dir.join("payload-ran");
    let attack = Waiting::start(
        &server,
        dir,
        "go1",
        &format!("echo x > {}", marker.display()),
    );
    let benign_file = dir.join("benign-ran");
    let benign = Waiting::start(
        &server,
        dir,
        "go2",
        &format!("echo benign > {}", benign_file.display()),
    );
    confirmed(&sensor, &server);

    let (status, server_exit) = attack.go();
    assert_eq!(status, "status=-1", "the shell was killed by a signal");
    assert!(server_exit.success(), "the server survives: {server_exit}");
    assert!(!marker.exists(), "the payload never ran");
    let (alert, _) = sensor
        .expect_alert(WITHIN, "blocked shell alert", |a| {
            a.rule() == "server-spawned-shell" && a.has_marker("payload-ran")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(alert["event"]["action"], "blocked");
    let types = alert["event"]["type"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(types.iter().any(|t| t == "denied"), "{types:?}");
    assert_eq!(alert["event"]["outcome"], "failure");
    assert!(prevention_metric(&sensor, "blocked") >= Some(1.0));

    let (status, server_exit) = benign.go();
    assert_eq!(status, "status=0", "the excluded shell ran");
    assert!(server_exit.success());
    assert_eq!(
        std::fs::read_to_string(&benign_file).ok().as_deref(),
        Some("benign\n")
    );
    sensor.stop_clean();
}

/// A worker forked in the microseconds after its master's exec, before userspace could confirm
/// the master, is confirmed with it (the kernel's fork program had no mark to copy): its shell
/// is held and killed like the master's own.
#[test]
fn a_worker_forked_before_its_server_was_confirmed_is_held_too() {
    require_root();
    let tmp = temp_dir("lineage-exec-prevent-prefork-");
    let dir = tmp.path();
    let server = fake_server(WORKLOAD, dir, "nginx");
    let sensor = RunningSensor::start(&config(dir, "enforce", 300));
    let marker = dir.join("worker-payload-ran");
    let attack = Waiting::start_as(
        "prefork-wait-file",
        &server,
        dir,
        "go",
        &format!("echo x > {}", marker.display()),
    );
    confirmed(&sensor, &server);
    let (status, server_exit) = attack.go();
    assert_eq!(
        status, "status=-1",
        "the worker's shell was killed by a signal"
    );
    assert!(server_exit.success(), "the server survives: {server_exit}");
    assert!(!marker.exists(), "the payload never ran");
    let (alert, _) = sensor
        .expect_alert(WITHIN, "blocked shell alert", |a| {
            a.rule() == "server-spawned-shell" && a.has_marker("worker-payload-ran")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(alert["event"]["action"], "blocked");
    sensor.stop_clean();
}

#[test]
fn dry_run_lets_the_shell_run_and_says_would_block() {
    require_root();
    let tmp = temp_dir("lineage-exec-prevent-dry-");
    let dir = tmp.path();
    let server = fake_server(WORKLOAD, dir, "nginx");
    let sensor = RunningSensor::start(&config(dir, "dry-run", 300));

    let marker = dir.join("payload-ran");
    let attack = Waiting::start(
        &server,
        dir,
        "go1",
        &format!("echo x > {}", marker.display()),
    );
    confirmed(&sensor, &server);
    let (status, server_exit) = attack.go();
    assert_eq!(status, "status=0", "dry-run changes nothing");
    assert!(server_exit.success());
    assert!(marker.exists(), "the payload ran");
    let (alert, _) = sensor
        .expect_alert(WITHIN, "would-block shell alert", |a| {
            a.rule() == "server-spawned-shell" && a.has_marker("payload-ran")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(alert["event"]["action"], "would-block");
    let types = alert["event"]["type"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!types.iter().any(|t| t == "denied"), "{types:?}");
    assert!(prevention_metric(&sensor, "would_block") >= Some(1.0));
    sensor.stop_clean();
}

/// The sensor is stopped (SIGSTOP) so that it cannot judge, a shell below the server is held,
/// then the sensor dies by `signal`: the watchdog continues the shell, which completes.
fn held_then_sensor_dies(dir: &Path, server: &Path, signal: i32, name: &str) {
    let sensor = RunningSensor::start(&config(dir, "enforce", 10_000));
    let marker = dir.join(format!("{name}-ran"));
    let attack = Waiting::start(server, dir, name, &format!("echo x > {}", marker.display()));
    confirmed(&sensor, server);
    if signal == libc::SIGSEGV {
        // Rust's std handles SIGSEGV (stack overflow detection): a SIGSEGV that is no fault
        // on a guard page restores the default action and returns, so the first one sent
        // from outside is survived; a real fault, or the next SIGSEGV, kills as a crash does.
        sensor.signal(libc::SIGSEGV);
        std::thread::sleep(Duration::from_millis(300));
        confirmed(&sensor, server);
    }
    sensor.signal(libc::SIGSTOP);
    // At once: the heartbeat (every 100 ms) is fresh for 500 ms after the last beat.
    attack.release();
    let held = held_child(attack.pid());
    assert!(
        held.is_some(),
        "the shell is held while the sensor cannot judge"
    );
    assert!(!marker.exists(), "held before its payload");
    if signal == libc::SIGKILL {
        sensor.kill();
    } else {
        sensor.signal(signal);
        sensor.signal(libc::SIGCONT);
        let (status, _) = sensor.stop();
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(
            status.signal(),
            Some(signal),
            "the sensor died by the signal"
        );
    }
    // Well inside the watchdog's own bound for a sensor that does not judge (20 s here).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !marker.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !marker.exists() {
        if let Some(pid) = held {
            // SAFETY: the test's own shell, still stopped; killed so the test ends.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        panic!("the held shell was not continued after the sensor died");
    }
    let (status, server_exit) = attack.finish();
    assert_eq!(
        status, "status=0",
        "the held shell was continued and completed"
    );
    assert!(server_exit.success());
    assert!(marker.exists(), "its payload ran: nothing stays held");
}

#[test]
fn a_dying_sensor_leaves_nothing_held_and_a_restarted_one_enforces_again() {
    require_root();
    let tmp = temp_dir("lineage-exec-prevent-die-");
    let dir = tmp.path();
    let server = fake_server(WORKLOAD, dir, "nginx");
    held_then_sensor_dies(dir, &server, libc::SIGKILL, "after-kill");
    held_then_sensor_dies(dir, &server, libc::SIGSEGV, "after-segv");

    let sensor = RunningSensor::start(&config(dir, "enforce", 300));
    let marker = dir.join("restarted-ran");
    let attack = Waiting::start(
        &server,
        dir,
        "go",
        &format!("echo x > {}", marker.display()),
    );
    confirmed(&sensor, &server);
    let (status, _) = attack.go();
    assert_eq!(status, "status=-1", "the restarted sensor kills again");
    assert!(!marker.exists());
    sensor.stop_clean();
}

#[test]
fn without_a_fresh_heartbeat_nothing_is_held() {
    require_root();
    let tmp = temp_dir("lineage-exec-prevent-stale-");
    let dir = tmp.path();
    let server = fake_server(WORKLOAD, dir, "nginx");
    let sensor = RunningSensor::start(&config(dir, "enforce", 10_000));
    let marker = dir.join("stale-ran");
    let attack = Waiting::start(
        &server,
        dir,
        "go",
        &format!("echo x > {}", marker.display()),
    );
    confirmed(&sensor, &server);
    sensor.signal(libc::SIGSTOP);
    // The heartbeat goes stale 500 ms after the last beat.
    std::thread::sleep(Duration::from_millis(1500));
    attack.release();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !marker.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // A held shell would wait for the watchdog's 20 s bound (2 x hold_timeout_ms).
    assert!(
        marker.exists(),
        "with a stale heartbeat the shell runs at once, never held"
    );
    let (status, _) = attack.finish();
    assert_eq!(status, "status=0");
    sensor.signal(libc::SIGCONT);
    sensor.stop_clean();
}
