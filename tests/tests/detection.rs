//! The real `lineage-sensor run`: a program copied under a server's name spawns a shell and
//! dials out, and the alerts arrive on stdout with the right ancestry.

use std::{
    net::{Ipv4Addr, TcpListener},
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use integration_tests::{Alert, RunningSensor, require_root, server_shell, temp_dir};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");
/// Generous: the latency is measured by `cargo xtask bench`, not asserted here.
const ALERT_WITHIN: Duration = Duration::from_secs(30);

fn run_as_server(server: &Path, args: &[&str]) -> u32 {
    let mut child = Command::new(server)
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .expect("start the fake server");
    let pid = child.id();
    assert!(child.wait().expect("wait").success());
    pid
}

#[test]
fn a_copied_server_spawning_a_shell_and_dialing_out_alerts_with_its_ancestry() {
    require_root();
    let dir = temp_dir("lineage-detect-");
    let dir = dir.path();
    // A program copied under a server's name: families match the executed file's name.
    let server = dir.join("nginx");
    std::fs::copy(WORKLOAD, &server).expect("copy workload as nginx");

    let allowed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind allowed");
    let unknown = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind unknown");
    let allowed_port = allowed.local_addr().expect("addr").port();
    let unknown_port = unknown.local_addr().expect("addr").port();
    let config = dir.join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "[[rules.server_outbound_unknown.allow]]\ncidr = \"127.0.0.0/8\"\nports = [{allowed_port}]\n\
             [incidents]\nstate_file = \"\"\n"
        ),
    )
    .expect("write config");

    let sensor = RunningSensor::start(&config);

    let server_pid = run_as_server(&server, &["shell", "id >/dev/null"]);
    let is_shell = |a: &Alert| a["rule"]["id"] == "server-spawned-shell";
    let (shell, _) = sensor.alert_until(ALERT_WITHIN, is_shell);
    let shell = shell.expect("server-spawned-shell alert");
    assert_eq!(
        shell["threat"]["technique"]["subtechnique"]["id"],
        "T1505.003"
    );
    assert_eq!(
        shell["process"]["args"],
        serde_json::json!(["/bin/sh", "-c", "id >/dev/null"])
    );
    assert_eq!(shell["process"]["parent"]["pid"], server_pid);
    let ancestry = shell["lineage"]["ancestry"].as_array().expect("ancestry");
    assert_eq!(
        ancestry.first().map(|a| &a["pid"]),
        Some(&server_pid.into()),
        "rooted at the server"
    );
    assert_eq!(
        ancestry[0]["executable"],
        server.to_str().expect("utf-8 path")
    );
    assert_eq!(
        ancestry.last().map(|a| &a["executable"]),
        Some(&"/bin/sh".into())
    );
    assert_eq!(shell["lineage"]["server"]["family"], "nginx");
    let incident = shell["lineage"]["incident"]["id"].clone();
    assert!(incident.is_string());

    let (recon, others) =
        sensor.alert_until(ALERT_WITHIN, |a| a["rule"]["id"] == "server-spawned-recon");
    let recon = recon.unwrap_or_else(|| panic!("recon alert for id; got {others:#?}"));
    assert!(
        recon["process"]["executable"]
            .as_str()
            .is_some_and(|e| e.ends_with("/id"))
    );
    assert_eq!(
        recon["lineage"]["incident"]["id"], incident,
        "one attack, one incident"
    );
    assert_eq!(
        recon["lineage"]["ancestry"].as_array().map(Vec::len),
        Some(3)
    );

    let dialer = run_as_server(&server, &["connect", &format!("127.0.0.1:{unknown_port}")]);
    let (outbound, _) = sensor.alert_until(ALERT_WITHIN, |a| {
        a["rule"]["id"] == "server-outbound-unknown"
    });
    let outbound = outbound.expect("server-outbound-unknown alert");
    assert_eq!(outbound["destination"]["ip"], "127.0.0.1");
    assert_eq!(outbound["destination"]["port"], unknown_port);
    assert_eq!(outbound["network"]["transport"], "tcp");
    assert_eq!(outbound["process"]["pid"], dialer);

    // The allowlisted destination stays quiet: nothing of this tree alerts before the
    // sentinel shell that follows it.
    run_as_server(&server, &["connect", &format!("127.0.0.1:{allowed_port}")]);
    let noise = sensor
        .quiet_until_sentinel(ALERT_WITHIN, |marker| {
            server_shell(&server, &format!("true {marker}"))
        })
        .expect("the sentinel alert");
    assert!(
        noise.is_empty(),
        "an allowlisted connect alerted: {}",
        integration_tests::briefs(&noise)
    );

    let (status, log) = sensor.stop();
    assert!(
        status.success(),
        "clean exit on SIGTERM: {status}; {log:#?}"
    );
    assert!(
        log.iter().any(|l| l.contains("stopped")),
        "totals at shutdown: {log:#?}"
    );
}
