//! A ring buffer far too small for an exec storm under `lineage-sensor run`: losses are counted
//! in /metrics and logged with the count, the alerts that do arrive are still right, and the
//! sensor stays healthy.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use integration_tests::{RunningSensor, briefs, require_root, server_shell, temp_dir};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");

fn lost_total(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("lineage_sensor_events_lost_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[test]
fn a_tiny_ring_under_an_exec_storm_counts_and_logs_losses_and_stays_correct() {
    require_root();
    let dir = temp_dir("lineage-overflow-");
    let server = dir.path().join("nginx");
    std::fs::copy(WORKLOAD, &server).expect("copy workload as nginx");
    let config = dir.path().join("sensor.toml");
    // Rate limiting off: every shell that arrives must alert.
    std::fs::write(
        &config,
        "[capture]\nring_buffer_bytes = 4096\n[rate_limit]\nwindow_secs = 0\n",
    )
    .expect("write config");

    let mut sensor = RunningSensor::start(&config);
    let (status, body) = sensor.http_get("/metrics").expect("metrics");
    assert_eq!(status, 200);
    let lost_before = lost_total(&body);

    // Many shells at once from the server while the sensor is stopped: the 4 KiB ring keeps
    // the first few records (the server's exec among them) and has to drop the rest. (With the
    // sensor running, a release build's reader sometimes keeps up, and nothing is lost.)
    let pid = sensor.pid() as libc::pid_t;
    // SAFETY: signalling our own child, which is alive until `stop` below.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let out = Command::new(&server)
        .args(["burst", "1500"])
        .stdout(Stdio::null())
        .status()
        .expect("storm");
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    assert!(out.success());

    // The housekeeping tick (10 s) syncs the kernel's counter and logs the warning.
    assert!(
        sensor.wait_log(Duration::from_secs(30), |l| l
            .contains("events lost in the kernel")),
        "no loss warning: {:#?}",
        sensor.log_seen
    );
    let warning = sensor
        .log_seen
        .iter()
        .find(|l| l.contains("events lost in the kernel"))
        .expect("warning line");
    let count: u64 = warning
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .expect("the warning carries a count");
    assert!(count > 0, "{warning}");

    let (status, body) = sensor.http_get("/metrics").expect("metrics");
    assert_eq!(status, 200);
    let lost_after = lost_total(&body);
    assert!(
        lost_after > lost_before,
        "lost counter did not rise: {body}"
    );
    assert_eq!(sensor.http_get("/healthz").expect("GET /healthz").0, 200);
    assert_eq!(sensor.http_get("/readyz").expect("GET /readyz").0, 200);

    // Whatever arrived is right: every alert is a shell or tool below this server. The ring
    // kept the first records (the server's exec and its first shells), so some did arrive.
    let alerts = sensor.alerts_so_far();
    assert!(
        alerts.iter().any(|a| a.rule() == "server-spawned-shell"),
        "no shell of the burst arrived, so nothing below is judged: {}",
        briefs(&alerts)
    );
    for a in &alerts {
        let rule = a["rule"]["id"].as_str().unwrap_or_default();
        assert!(
            rule == "server-spawned-shell" || rule == "server-spawned-recon",
            "unexpected alert: {a}"
        );
        assert_eq!(
            a["lineage"]["ancestry"][0]["executable"],
            server.to_str().expect("utf-8 path"),
            "an alert with a wrong root: {a}"
        );
    }

    // And the sensor still detects after the storm.
    server_shell(&server, "true after-the-storm").expect("one more shell");
    sensor
        .expect_alert(Duration::from_secs(30), "alert after the storm", |a| {
            a.rule() == "server-spawned-shell" && a.has_marker("after-the-storm")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let (status, log) = sensor.stop();
    assert!(status.success(), "{log:#?}");
}
