//! Delivery through outages: the real `lineage-sensor run` sends to our own rsyslogd, an HTTP
//! webhook and an Elasticsearch `_bulk` receiver on loopback, and a file, while the receivers go
//! down and the sensor restarts. `cargo xtask test` installs rsyslog.

use integration_tests::{
    NO_RATE_LIMIT, RunningSensor, fake_server, marked_alert, metric,
    receivers::{HttpReceiver, Rsyslog, WITHIN, deduplicated, has_marker, read_ndjson, wait_until},
    require_root, scratch,
};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");

/// Receivers go down while alerts happen, and come back; then they go down again, the sensor is
/// restarted, and its spool is replayed. Every receiver ends with every alert the sensor
/// produced (the file sink is the record of those), in order, once after de-duplication.
#[test]
fn alerts_survive_receiver_outages_and_a_sensor_restart() {
    require_root();
    let dir = scratch("outage");
    let server = fake_server(WORKLOAD, &dir, "nginx");
    let mut rsyslog = Rsyslog::new(&dir);
    let mut http = HttpReceiver::new();
    rsyslog.start();
    http.start();
    let truth = dir.join("alerts.ndjson");
    let config = dir.join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            r#"{NO_RATE_LIMIT}[output]
spool_dir = "{spool}"

[[output.sinks]]
type = "file"
name = "record"
path = "{truth}"

[[output.sinks]]
type = "syslog"
name = "siem"
address = "127.0.0.1:{syslog}"
retry_max_secs = 1

[[output.sinks]]
type = "http"
name = "webhook"
url = "http://127.0.0.1:{http}/hook"
retry_max_secs = 1

[[output.sinks]]
type = "http"
name = "elastic"
url = "http://127.0.0.1:{http}/_bulk"
format = "elasticsearch_bulk"
index = "lineage-test"
retry_max_secs = 1
"#,
            spool = dir.join("spool").display(),
            truth = truth.display(),
            syslog = rsyslog.port,
            http = http.port,
        ),
    )
    .expect("config");

    let everywhere = |rsyslog: &Rsyslog, http: &HttpReceiver, marker: &str| {
        has_marker(&rsyslog.alerts(), marker)
            && has_marker(&http.alerts("/hook"), marker)
            && has_marker(&http.alerts("/_bulk"), marker)
    };
    let network_sinks = ["siem", "webhook", "elastic"];

    // 1. Everything up.
    let sensor = RunningSensor::start(&config);
    marked_alert(&server, "mark-a0");
    wait_until("mark-a0 at every receiver", || {
        everywhere(&rsyslog, &http, "mark-a0")
    });

    // 2. Receivers down while alerts happen: they wait, then arrive when the receivers return.
    rsyslog.stop();
    http.stop();
    for i in 0..4 {
        marked_alert(&server, &format!("mark-b{i}"));
    }
    wait_until(
        "failed deliveries and a backlog on every network sink",
        || {
            let text = sensor.metrics();
            network_sinks.iter().all(|sink| {
                metric(
                    &text,
                    &format!("lineage_sensor_sink_failed_total{{sink=\"{sink}\"}}"),
                )
                .is_some_and(|v| v >= 1.0)
                    && metric(
                        &text,
                        &format!("lineage_sensor_sink_spooled_alerts{{sink=\"{sink}\"}}"),
                    )
                    .is_some_and(|v| v >= 1.0)
            })
        },
    );
    assert!(!has_marker(&rsyslog.alerts(), "mark-b0"));
    rsyslog.start();
    http.start();
    wait_until("mark-b* at every receiver after the outage", || {
        (0..4).all(|i| everywhere(&rsyslog, &http, &format!("mark-b{i}")))
    });

    // 3. Receivers down, then the sensor stops: the spool keeps the alerts for the next start.
    rsyslog.stop();
    http.stop();
    for i in 0..3 {
        marked_alert(&server, &format!("mark-c{i}"));
    }
    wait_until("mark-c* in the spools", || {
        let text = sensor.metrics();
        network_sinks.iter().all(|sink| {
            metric(
                &text,
                &format!("lineage_sensor_sink_spooled_alerts{{sink=\"{sink}\"}}"),
            )
            .is_some_and(|v| v >= 3.0)
        })
    });
    let text = sensor.metrics();
    for sink in network_sinks.iter().chain(["record"].iter()) {
        for reason in lineage_sensor::metrics::DROP_REASONS {
            assert_eq!(
                metric(
                    &text,
                    &format!(
                        "lineage_sensor_sink_dropped_total{{reason=\"{reason}\",sink=\"{sink}\"}}"
                    )
                ),
                Some(0.0),
                "{sink} dropped nothing ({reason})"
            );
        }
    }
    let log = sensor.stop_clean();
    assert!(
        log.iter()
            .any(|l| l.contains("stay spooled for the next start")),
        "{log:#?}"
    );
    rsyslog.start();
    http.start();
    let mut sensor = RunningSensor::start(&config);
    wait_until("mark-c* replayed from the spool after the restart", || {
        (0..3).all(|i| everywhere(&rsyslog, &http, &format!("mark-c{i}")))
    });
    sensor.expect_log(WITHIN, "replaying");
    sensor.stop_clean();

    let truth = read_ndjson(&truth);
    let markers: Vec<String> = ["a0", "b0", "b1", "b2", "b3", "c0", "c1", "c2"]
        .iter()
        .map(|m| format!("mark-{m}"))
        .collect();
    for marker in &markers {
        assert!(has_marker(&truth, marker), "{marker} was detected");
    }
    let expected = deduplicated(&truth);
    for (receiver, alerts) in [
        ("rsyslog", rsyslog.alerts()),
        ("webhook", http.alerts("/hook")),
        ("elasticsearch _bulk", http.alerts("/_bulk")),
    ] {
        // Every alert, once after de-duplication, in the order they were detected.
        assert_eq!(
            deduplicated(&alerts),
            expected,
            "{receiver} has exactly the detected alerts, in order"
        );
    }
}
