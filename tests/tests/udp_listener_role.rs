//! UDP servers by role, live (issue 17 item 1): a process of no known name that binds a UDP
//! socket to a fixed port is a server (the cgroup bind hooks report it as a `listen` event with
//! `proto` udp), so the shell it runs alerts rooted at it, family listener, with the port and
//! the protocol. The same process binding port 0 (an ephemeral port: a client) is nobody, and
//! its shell stays quiet.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use integration_tests::{NO_RATE_LIMIT, RunningSensor, briefs, require_root, temp_dir};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");
const WITHIN: Duration = Duration::from_secs(30);

/// `relay-agent udp-bind-spawn PORT /bin/sh -c CMD`, waited for: the socket stays bound until
/// the shell has run.
fn bind_and_run_shell(agent: &std::path::Path, port: u16, cmd: &str) -> Result<u32, String> {
    let mut child = Command::new(agent)
        .args(["udp-bind-spawn", &port.to_string(), "/bin/sh", "-c", cmd])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("relay-agent: {e}"))?;
    let pid = child.id();
    // The shell has run once `spawn` returned inside the agent; closing stdin lets it exit.
    drop(child.stdin.take());
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("relay-agent exited with {status}"));
    }
    Ok(pid)
}

#[test]
fn a_bound_udp_socket_makes_a_server_and_port_zero_does_not() {
    require_root();
    let dir = temp_dir("lineage-udp-role-");
    let config = dir.path().join("sensor.toml");
    std::fs::write(
        &config,
        format!("{NO_RATE_LIMIT}[incidents]\nstate_file = \"\"\n"),
    )
    .expect("config");
    // Chosen before the sensor starts: the test's own port-0 probes are not what is judged.
    let free_port = || {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").expect("free port");
        probe.local_addr().expect("addr").port()
    };
    let (port, sentinel_port) = (free_port(), free_port());
    let sensor = RunningSensor::start(&config);
    let metrics = sensor.metrics();
    assert!(
        metrics.contains(
            r#"lineage_sensor_hook_info{family="udp_bind",mechanism="cgroup_sock_addr"} 1"#
        ),
        "{metrics}"
    );
    // An unremarkable name: no family matches it; only its socket can make it a server.
    let agent = dir.path().join("relay-agent");
    std::fs::copy(WORKLOAD, &agent).expect("copy the workload as relay-agent");
    sensor.own_dir(dir.path());

    // A fixed port: a UDP server by role, whose shell alerts rooted at it.
    let marker = format!("lineage-udp-role-{}", std::process::id());
    let server_pid =
        bind_and_run_shell(&agent, port, &format!("echo {marker}")).expect("UDP server run");
    let (alert, before) = sensor
        .expect_alert(WITHIN, "the UDP server's shell alert", |a| {
            a.rule() == "server-spawned-shell" && a.has_marker(&marker)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(before.is_empty(), "{}", briefs(&before));
    let doc = &alert.doc;
    assert_eq!(doc["lineage"]["server"]["family"], "listener", "{doc}");
    assert_eq!(doc["lineage"]["server"]["pid"], server_pid, "{doc}");
    assert_eq!(doc["lineage"]["server"]["listen_port"], port, "{doc}");
    assert_eq!(doc["lineage"]["server"]["listen_proto"], "udp", "{doc}");
    assert_eq!(
        doc["lineage"]["ancestry"][0]["pid"], server_pid,
        "rooted at the UDP server: {doc}"
    );

    // Port 0: a client's socket. Its shell must not alert: nothing of this tree arrives before
    // the sentinel, a shell of another UDP server started after it.
    let zero_marker = format!("lineage-udp-zero-{}", std::process::id());
    bind_and_run_shell(&agent, 0, &format!("echo {zero_marker}")).expect("port 0 run");
    let noise = sensor
        .quiet_until_sentinel(WITHIN, |sentinel| {
            bind_and_run_shell(&agent, sentinel_port, &format!("echo {sentinel}")).map(drop)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        noise.is_empty(),
        "the port-0 client's shell alerted: {}",
        briefs(&noise)
    );
    let (status, log) = sensor.stop();
    assert!(status.success(), "{log:#?}");
}
