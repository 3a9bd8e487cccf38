//! A real Prometheus scraping the real `lineage-sensor run`, and promtool checking its
//! exposition. `cargo xtask test` installs prometheus.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{
    NO_RATE_LIMIT, RunningSensor, fake_server, free_port, marked_alert, metric,
    receivers::{WITHIN, has_marker, http_get, read_ndjson, wait_until},
    require_root, scratch,
};
use serde_json::Value;

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");

/// A real Prometheus scrapes the endpoint; promtool accepts the exposition; the endpoint shows
/// health and readiness and no alert contents.
#[test]
fn prometheus_scrapes_the_sensor_and_promtool_accepts_its_metrics() {
    require_root();
    let dir = scratch("prometheus");
    let server = fake_server(WORKLOAD, &dir, "nginx");
    let config = dir.join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "{NO_RATE_LIMIT}[output]\nspool_dir = \"{}\"\n\n[[output.sinks]]\ntype = \"file\"\npath = \"{}\"\n",
            dir.join("spool").display(),
            dir.join("alerts.ndjson").display()
        ),
    )
    .expect("config");
    let sensor = RunningSensor::start(&config);
    let base = format!("http://127.0.0.1:{}", sensor.metrics_port);
    assert_eq!(
        http_get(&format!("{base}/healthz")).expect("healthz").0,
        200
    );
    assert_eq!(http_get(&format!("{base}/readyz")).expect("readyz").0, 200);

    let marker = "secret-marker-7f3a";
    marked_alert(&server, marker);
    wait_until("the alert", || {
        has_marker(&read_ndjson(&dir.join("alerts.ndjson")), marker)
    });
    let text = sensor.metrics();
    assert!(!text.contains(marker), "alert contents leak into /metrics");
    assert!(!text.contains(&dir.display().to_string()));
    for series in [
        "lineage_sensor_build_info{version=",
        "lineage_sensor_events_total{type=\"exec\"}",
        "lineage_sensor_events_lost_total{type=\"exec\"}",
        "lineage_sensor_decode_errors_total",
        "lineage_sensor_alerts_suppressed_total{rule=\"server-spawned-shell\"}",
        "lineage_sensor_processes_tracked",
        "lineage_sensor_alert_latency_seconds_bucket",
        "lineage_sensor_sink_sent_total{sink=\"file\"}",
        "lineage_sensor_sink_failed_total{sink=\"file\"}",
        "lineage_sensor_sink_spooled_alerts{sink=\"file\"}",
        "lineage_sensor_sink_dropped_total{reason=\"queue_full\",sink=\"file\"}",
        "lineage_sensor_ready 1",
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
    assert!(
        metric(
            &text,
            "lineage_sensor_alerts_total{rule=\"server-spawned-shell\"}"
        )
        .is_some_and(|v| v >= 1.0)
    );
    assert!(metric(&text, "lineage_sensor_alert_latency_seconds_count").is_some_and(|v| v >= 1.0));

    promtool_check(&text).expect("promtool check metrics accepts the sensor's metrics");
    // The check can fail: a counter without _total is refused.
    assert!(
        promtool_check("# HELP x_count a\n# TYPE x_count counter\nx_count 1\n").is_err(),
        "promtool check metrics refuses a bad exposition"
    );

    let web_port = free_port();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: lineage-sensor\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            sensor.metrics_port
        ),
    )
    .expect("prometheus.yml");
    let mut prometheus = Command::new("/usr/bin/prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("prometheus-data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{web_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus (cargo xtask test installs it)");
    let query = |q: &str| -> Option<Value> {
        let (status, body) = http_get(&format!(
            "http://127.0.0.1:{web_port}/api/v1/query?query={q}"
        ))
        .ok()?;
        (status == 200).then(|| serde_json::from_str(&body).ok())?
    };
    let first_value =
        |v: &Value| -> Option<f64> { v["data"]["result"][0]["value"][1].as_str()?.parse().ok() };
    let mut scraped = None;
    let deadline = Instant::now() + WITHIN;
    while Instant::now() < deadline {
        if let Some(up) = query("up%7Bjob%3D%22lineage-sensor%22%7D")
            && first_value(&up) == Some(1.0)
            && let Some(alerts) =
                query("lineage_sensor_alerts_total%7Brule%3D%22server-spawned-shell%22%7D")
            && let Some(value) = first_value(&alerts)
        {
            scraped = Some(value);
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(prometheus.id() as i32, libc::SIGTERM) };
    let _ = prometheus.wait();
    assert!(
        scraped.is_some_and(|v| v >= 1.0),
        "Prometheus scraped the sensor: up == 1 and the alert counted ({scraped:?})"
    );
    sensor.stop_clean();
}

fn promtool_check(text: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut child = Command::new("/usr/bin/promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (cargo xtask test installs prometheus)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
