//! Cheap evasions through the real `lineage-sensor run`: a shell reached through launchers
//! (env, nohup, setsid, timeout, stdbuf, nice, busybox), argv[0] rewritten with `exec -a`, and a
//! double fork that re-parents the shell to init. Each must still give `server-spawned-shell`
//! rooted at the server.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use integration_tests::{RunningSensor, briefs, require_root, temp_dir};
use serde_json::Value;

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");
/// Generous: nothing here measures time.
const WITHIN: Duration = Duration::from_secs(30);

/// Waits for the shell alert whose command line carries `marker`.
fn shell_alert(sensor: &RunningSensor, marker: &str) -> Result<Value, String> {
    sensor
        .expect_alert(WITHIN, &format!("{marker} shell alert"), |a| {
            a.rule() == "server-spawned-shell" && a.has_marker(marker)
        })
        .map(|(alert, _)| alert.doc)
}

/// The launchers every run tries, each by the path Debian installs it at; `cargo xtask test`
/// installs busybox on the host as the guest has it.
const LAUNCHERS: [(&str, &[&str]); 7] = [
    ("env", &["/usr/bin/env"]),
    ("nohup", &["/usr/bin/nohup"]),
    ("setsid", &["/usr/bin/setsid"]),
    ("timeout", &["/usr/bin/timeout", "30"]),
    ("stdbuf", &["/usr/bin/stdbuf", "-o0"]),
    ("nice", &["/usr/bin/nice", "-n", "5"]),
    ("busybox", &["/bin/busybox", "sh", "-c"]),
];

#[test]
fn launchers_argv0_and_double_forks_do_not_hide_a_server_spawned_shell() {
    require_root();
    let dir = temp_dir("lineage-evasion-");
    let server = dir.path().join("nginx");
    std::fs::copy(WORKLOAD, &server).expect("copy workload as nginx");
    let server_text = server.to_str().expect("utf-8 path").to_owned();
    let config = dir.path().join("sensor.toml");
    std::fs::write(&config, "").expect("write config");
    let sensor = RunningSensor::start(&config);

    let marker = |name: &str| format!("true evasion-{name}");
    let missing: Vec<&str> = LAUNCHERS
        .iter()
        .map(|(_, argv)| argv[0])
        .chain(["/bin/bash"])
        .filter(|p| !std::path::Path::new(p).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "every case this test names must run; missing on this host: {missing:?} \
         (`cargo xtask test` installs them)"
    );
    let cases: Vec<(String, Vec<String>)> = LAUNCHERS
        .iter()
        .map(|(name, launcher)| {
            let mut argv: Vec<String> = launcher.iter().map(|s| s.to_string()).collect();
            // busybox's own `sh -c` takes the command; the others launch /bin/sh -c.
            if *name != "busybox" {
                argv.extend(["/bin/sh".into(), "-c".into()]);
            }
            argv.push(marker(name));
            ((*name).to_owned(), argv)
        })
        .collect();
    let mut failures = Vec::new();
    for (name, argv) in &cases {
        let status = Command::new(&server)
            .arg("spawn")
            .args(argv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run the fake server");
        assert!(status.success(), "{name}: {status}");
        match shell_alert(&sensor, &format!("evasion-{name}")) {
            Ok(alert) if alert["lineage"]["ancestry"][0]["executable"] == server_text.as_str() => {}
            Ok(alert) => failures.push(format!(
                "{name}: wrong root {}",
                alert["lineage"]["ancestry"]
            )),
            Err(err) => failures.push(err),
        }
    }

    // argv[0] rewritten: the executed file is still /bin/sh (bash's exec -a replaces bash).
    {
        let status = Command::new(&server)
            .args([
                "spawn",
                "/bin/bash",
                "-c",
                "exec -a '[kworker/0:1]' /bin/sh -c 'true evasion-argv0'",
            ])
            .stdout(Stdio::null())
            .status()
            .expect("run the fake server");
        assert!(status.success());
        let (found, _) = sensor.alert_until(WITHIN, |a| {
            a.rule() == "server-spawned-shell"
                && a.args().first().map(String::as_str) == Some("[kworker/0:1]")
        });
        if let Some(alert) = found {
            assert!(
                alert["process"]["executable"]
                    .as_str()
                    .is_some_and(|e| e.ends_with("sh")),
                "{alert}"
            );
        } else {
            failures.push("exec -a: no alert for the renamed shell".into());
        }
    }

    // A shell copied under another name: recognised by its content, not its name.
    let real_sh = std::fs::canonicalize("/bin/sh").expect("/bin/sh");
    let copy = dir.path().join("kworker");
    std::fs::copy(&real_sh, &copy).expect("copy the shell");
    let status = Command::new(&server)
        .arg("spawn")
        .arg(&copy)
        .args(["-c", "true evasion-copied"])
        .stdout(Stdio::null())
        .status()
        .expect("run the fake server");
    assert!(status.success());
    match shell_alert(&sensor, "evasion-copied") {
        Ok(alert) => {
            assert_eq!(
                alert["process"]["executable"],
                copy.to_str().expect("utf-8")
            );
            assert_eq!(
                alert["lineage"]["shell_copy_of"],
                real_sh.to_str().expect("utf-8"),
                "{alert}"
            );
        }
        Err(err) => failures.push(err),
    }

    // Double fork: the shell's parent has exited and it runs under init, yet its incident
    // keeps the server as root.
    let out = Command::new(&server)
        .args(["detach", "true evasion-detached"])
        .output()
        .expect("run the fake server");
    assert!(out.status.success());
    let grandchild: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .strip_prefix("grandchild=")
        .and_then(|p| p.parse().ok())
        .expect("grandchild pid");
    match shell_alert(&sensor, "evasion-detached") {
        Ok(alert) => {
            assert_eq!(alert["process"]["pid"], grandchild);
            assert_eq!(
                alert["lineage"]["ancestry"][0]["executable"],
                server_text.as_str(),
                "the detached shell keeps its server root: {alert}"
            );
        }
        Err(err) => failures.push(err),
    }

    assert!(failures.is_empty(), "{failures:#?}");
    let (status, log) = sensor.stop();
    assert!(status.success(), "{log:#?}");
}

/// A server binary under a name no family lists, found by the port it listens on
/// (`listen_ports`), with its shell alerted and rooted at it.
#[test]
fn a_renamed_server_is_recognised_by_its_listening_port() {
    require_root();
    let dir = temp_dir("lineage-renamed-");
    let server = dir.path().join("srv-7f3a");
    std::fs::copy(WORKLOAD, &server).expect("copy workload");
    let port = integration_tests::free_port();
    let config = dir.path().join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "[[detect.extra_families]]\nname = \"in-house\"\nlisten_ports = [{port}]\n\
             [[rules.server_outbound_unknown.allow]]\ncidr = \"10.0.0.0/8\"\n"
        ),
    )
    .expect("write config");
    let sensor = RunningSensor::start(&config);

    // Not listening on the port: its shell is nobody's business.
    let quiet = Command::new(&server)
        .args(["spawn", "/bin/sh", "-c", "true renamed-not-listening"])
        .stdout(Stdio::null())
        .status()
        .expect("run the fake server");
    assert!(quiet.success());

    let mut running = Command::new(&server)
        .args([
            "listen-spawn",
            &port.to_string(),
            "/bin/sh",
            "-c",
            "true renamed-listening",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the renamed server");
    // The listening server's shell comes after the not-listening one's: it is the sentinel
    // that ends the negative check (events are handled in order).
    let (found, before) = sensor.alert_until(WITHIN, |a| {
        a.rule() == "server-spawned-shell" && a.has_marker("renamed-listening")
    });
    drop(running.stdin.take());
    let _ = running.wait();
    let alert = found.unwrap_or_else(|| {
        panic!(
            "no shell alert below the renamed server: {}",
            briefs(&before)
        )
    });
    assert!(
        before.is_empty(),
        "a server that listens on no listed port is not one: {}",
        briefs(&before)
    );
    assert_eq!(alert["lineage"]["server"]["family"], "in-house", "{alert}");
    assert_eq!(alert["lineage"]["server"]["listen_port"], port);
    assert_eq!(
        alert["lineage"]["ancestry"][0]["executable"],
        server.to_str().expect("utf-8")
    );

    // The renamed server's child dials out (loopback is not allowed by this config): attributed
    // to it through the listening socket too.
    let target = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let target_port = target.local_addr().expect("addr").port();
    let mut running = Command::new(&server)
        .args(["listen-spawn", &port.to_string()])
        .arg(&server)
        .args(["connect", &format!("127.0.0.1:{target_port}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the renamed server again");
    let (outbound, others) = sensor.alert_until(WITHIN, |a| {
        a["rule"]["id"] == "server-outbound-unknown" && a["destination"]["port"] == target_port
    });
    drop(running.stdin.take());
    let _ = running.wait();
    let outbound = outbound.unwrap_or_else(|| panic!("no outbound alert: {others:#?}"));
    assert_eq!(
        outbound["lineage"]["server"]["family"], "in-house",
        "{outbound}"
    );
    assert_eq!(outbound["lineage"]["server"]["listen_port"], port);

    let (status, log) = sensor.stop();
    assert!(status.success(), "{log:#?}");
}
