//! A ring buffer far too small for an exec storm under `lineage-sensor run`: losses are counted
//! in /metrics and logged with the count, the alerts that do arrive are still right, and the
//! sensor stays healthy.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use integration_tests::{
    RunningSensor, briefs, kernel_counters::lost_by_kind, metric, require_root, server_shell,
    temp_dir,
};
use sensor_ebpf::kind;

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");

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
    let pid = sensor.pid();
    // The kernel's own counter, read with bpftool from the sensor's maps: the reference the
    // metric is held to.
    let kernel_execs_lost =
        || lost_by_kind(pid).unwrap_or_else(|e| panic!("reading LOST: {e}"))[kind::EXEC as usize];
    let before = kernel_execs_lost();
    let log_before = sensor.log_seen.len();

    // Many shells at once from the server while the sensor is stopped: the 4 KiB ring keeps
    // the first few records (the server's exec among them) and has to drop the rest. (With the
    // sensor running, a release build's reader sometimes keeps up, and nothing is lost.)
    // SAFETY: signalling our own child, which is alive until `stop` below.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) }, 0);
    let out = Command::new(&server)
        .args(["burst", "1500"])
        .stdout(Stdio::null())
        .status()
        .expect("storm");
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGCONT) }, 0);
    assert!(out.success());
    let after = kernel_execs_lost();
    assert!(
        after > before,
        "the burst overflowed the ring: the kernel counted {before} lost execs before, {after} after"
    );

    // The housekeeping tick (10 s) syncs the kernel's counter: the metric over HTTP reaches
    // the kernel's count (which no longer grows for execs: the sensor reads again).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let metric_execs_lost = |sensor: &RunningSensor| {
        metric(
            &sensor.metrics(),
            "lineage_sensor_events_lost_total{type=\"exec\"}",
        )
        .map(|v| v as u64)
    };
    loop {
        let (kernel, reported) = (kernel_execs_lost(), metric_execs_lost(&sensor));
        if reported == Some(kernel) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the metric never matched the kernel: metric {reported:?}, kernel {kernel}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // And a warning with the count was logged after the burst.
    let is_warning = |l: &String| l.contains("events lost in the kernel");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !sensor.log_seen[log_before..].iter().any(is_warning) {
        assert!(
            std::time::Instant::now() < deadline,
            "no loss warning after the burst: {:#?}",
            sensor.log_seen
        );
        sensor.wait_log(Duration::from_millis(500), |_| false);
    }
    let warning = sensor.log_seen[log_before..]
        .iter()
        .find(|l| is_warning(l))
        .expect("a loss warning after the burst");
    let count: u64 = warning
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .expect("the warning carries a count");
    assert!(count > 0, "{warning}");
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
