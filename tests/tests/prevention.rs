//! `[prevention]` on the real kernel: a server's child dialing a destination
//! `server-outbound-unknown` alerts on, inside a network namespace the test creates. Enforce
//! refuses the connect with EPERM before any packet leaves (the listener there accepts
//! nothing) and the alert says `event.type: denied`, `event.action: blocked`; an allowlisted
//! destination still connects; dry-run lets the same connect through and says would-block; a
//! SIGKILLed sensor leaves nothing blocked.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
    time::Duration,
};

use integration_tests::{
    Alert, RunningSensor, fake_server, metric, netns::NetNs, require_root, server_shell, temp_dir,
};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");
/// Generous: nothing here measures speed.
const WITHIN: Duration = Duration::from_secs(30);

/// A fake nginx that waits for `go` to exist, then runs `sh -c CMD` (its child dials).
struct Waiting {
    child: Child,
    out: BufReader<ChildStdout>,
    go: PathBuf,
}

impl Waiting {
    fn start(server: &Path, dir: &Path, name: &str, cmd: &str) -> Waiting {
        Self::spawn(server, dir, name, "wait-file", cmd)
    }

    /// The server itself dials `address` once `go` exists.
    fn dialer(server: &Path, dir: &Path, name: &str, address: &str) -> Waiting {
        Self::spawn(server, dir, name, "wait-dial", address)
    }

    fn spawn(server: &Path, dir: &Path, name: &str, mode: &str, what: &str) -> Waiting {
        let go = dir.join(name);
        let mut child = Command::new(server)
            .arg(mode)
            .arg(&go)
            .arg(what)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the fake server");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        Waiting { child, out, go }
    }

    /// Lets it dial; returns every `dial...` line it printed.
    fn go(mut self) -> Vec<String> {
        std::fs::write(&self.go, b"").expect("write go");
        let mut lines = Vec::new();
        let mut line = String::new();
        while self.out.read_line(&mut line).expect("read server output") > 0 {
            if line.starts_with("dial") {
                lines.push(line.trim().to_owned());
            }
            line.clear();
        }
        let _ = self.child.wait();
        lines
    }
}

/// The kernel confirms a server when userspace has read its exec. Events are handled in order
/// and the server pids reach the kernel before a batch's alerts leave, so once a later server's
/// shell has alerted, every server started before it is confirmed.
fn confirmed(sensor: &RunningSensor, server: &Path) {
    sensor
        .quiet_until_sentinel(WITHIN, |marker| {
            server_shell(server, &format!("true {marker}"))
        })
        .expect("the sentinel alert");
}

fn config(dir: &Path, mode: &str, ns: &NetNs, allowed_ports: &[u16]) -> PathBuf {
    let path = dir.join("sensor.toml");
    std::fs::write(
        &path,
        format!(
            "[prevention]\nmode = \"{mode}\"\nhold_execs = false\n\
             [[rules.server_outbound_unknown.allow]]\ncidr = \"{}/32\"\nports = {allowed_ports:?}\n\
             [incidents]\nstate_file = \"\"\n[rate_limit]\nwindow_secs = 0\n",
            ns.addr
        ),
    )
    .expect("write config");
    path
}

fn outbound_to(port: u16) -> impl Fn(&Alert) -> bool {
    move |a: &Alert| {
        a["rule"]["id"] == "server-outbound-unknown" && a["destination"]["port"] == port
    }
}

#[test]
fn enforce_refuses_unknown_egress_in_the_kernel_and_fails_open_when_the_sensor_dies() {
    require_root();
    let tmp = temp_dir("lineage-prevent-");
    let dir = tmp.path();
    let ns = NetNs::create(71);
    let (blocked_port, blocked) = ns.listen();
    let (allowed_port, allowed) = ns.listen();
    let (other_port, other) = ns.listen();
    let config_path = config(dir, "enforce", &ns, &[allowed_port]);
    let server = fake_server(WORKLOAD, dir, "nginx");
    let mut sensor = RunningSensor::start(&config_path);

    let dials = format!(
        "{WORKLOAD} dial {a}:{blocked_port}; {WORKLOAD} dial {a}:{allowed_port}",
        a = ns.addr
    );
    let waiting = Waiting::start(&server, dir, "go1", &dials);
    confirmed(&sensor, &server);
    let lines = waiting.go();
    assert_eq!(
        lines,
        ["dial_errno=1", "dial=ok"],
        "the unknown destination is refused with EPERM, the allowlisted one connects"
    );
    assert_eq!(
        allowed.wait_for(1, WITHIN),
        1,
        "the allowlisted connect arrived"
    );
    assert_eq!(
        blocked.now(),
        0,
        "no connection reached the refused destination"
    );

    let (alert, _) = sensor
        .expect_alert(WITHIN, "blocked outbound alert", outbound_to(blocked_port))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(alert["event"]["action"], "blocked");
    assert_eq!(alert["event"]["type"], serde_json::json!(["denied"]));
    assert_eq!(alert["event"]["outcome"], "failure");
    let metrics = sensor.metrics();
    let counted = metric(
        &metrics,
        "lineage_sensor_prevention_actions_total{action=\"blocked\",rule=\"server-outbound-unknown\"}",
    );
    assert!(counted >= Some(1.0), "blocked counted: {counted:?}");

    // SIGHUP with the refused port now allowed: the kernel follows the new rule at once.
    config(dir, "enforce", &ns, &[allowed_port, blocked_port]);
    sensor.signal(libc::SIGHUP);
    sensor.expect_log(WITHIN, "prevention allowances replaced");
    let now_allowed = Waiting::dialer(&server, dir, "go4", &format!("{}:{blocked_port}", ns.addr));
    confirmed(&sensor, &server);
    assert_eq!(now_allowed.go(), ["dial=ok"], "allowed after SIGHUP");
    assert_eq!(blocked.wait_for(1, WITHIN), 1, "the connect arrived");

    // Fail-open: a server confirmed while the sensor ran dials after a SIGKILL. It dials
    // itself: a child forked after the kill would not be in the kernel's tree anyway (the
    // fork hook died with the sensor), which would prove nothing about the connect hooks.
    let waiting = Waiting::dialer(&server, dir, "go2", &format!("{}:{other_port}", ns.addr));
    let again = Waiting::dialer(&server, dir, "go3", &format!("{}:{other_port}", ns.addr));
    confirmed(&sensor, &server);
    assert_eq!(
        again.go(),
        ["dial_errno=1"],
        "a confirmed server dialing itself is refused while the sensor runs"
    );
    sensor.kill();
    assert_eq!(
        waiting.go(),
        ["dial=ok"],
        "nothing is refused once the sensor is gone"
    );
    assert_eq!(other.wait_for(1, WITHIN), 1, "the connect arrived");
    blocked.stop();
    allowed.stop();
    other.stop();
}

#[test]
fn dry_run_lets_the_same_connect_through_and_says_would_block() {
    require_root();
    let tmp = temp_dir("lineage-prevent-dry-");
    let dir = tmp.path();
    let ns = NetNs::create(72);
    let (unknown_port, unknown) = ns.listen();
    let (allowed_port, _allowed) = ns.listen();
    let config = config(dir, "dry-run", &ns, &[allowed_port]);
    let server = fake_server(WORKLOAD, dir, "nginx");
    let sensor = RunningSensor::start(&config);

    let waiting = Waiting::start(
        &server,
        dir,
        "go",
        &format!("{WORKLOAD} dial {}:{unknown_port}", ns.addr),
    );
    confirmed(&sensor, &server);
    assert_eq!(waiting.go(), ["dial=ok"], "dry-run refuses nothing");
    assert_eq!(unknown.wait_for(1, WITHIN), 1, "the connect arrived");

    let (alert, _) = sensor
        .expect_alert(
            WITHIN,
            "would-block outbound alert",
            outbound_to(unknown_port),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(alert["event"]["action"], "would-block");
    assert_eq!(alert["event"]["outcome"], "success");
    let metrics = sensor.metrics();
    let counted = metric(
        &metrics,
        "lineage_sensor_prevention_actions_total{action=\"would_block\",rule=\"server-outbound-unknown\"}",
    );
    assert!(counted >= Some(1.0), "would-block counted: {counted:?}");
    unknown.stop();
    sensor.stop_clean();
}

#[test]
fn prevention_without_the_cgroup_hooks_refuses_to_start() {
    require_root();
    let tmp = temp_dir("lineage-prevent-tp-");
    let path = tmp.path().join("sensor.toml");
    std::fs::write(
        &path,
        "[capture]\nconnect_entry = \"tracepoint\"\n[prevention]\nmode = \"enforce\"\n\
         [incidents]\nstate_file = \"\"\n",
    )
    .expect("write config");
    let Err((status, log)) = RunningSensor::start_with(&path, &[]) else {
        panic!("an enforcing sensor started without the hooks that enforce");
    };
    assert!(!status.success(), "{status}");
    assert!(
        log.iter()
            .any(|l| l.contains("[prevention] needs the cgroup connect hooks")),
        "{log:#?}"
    );
}
