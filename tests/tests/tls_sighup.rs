//! Certificate rotation by SIGHUP in the real `lineage-sensor run`, while alerts keep coming:
//! the HTTPS receiver (our own, on rustls) starts to demand client certificates of a new CA,
//! the sensor's certificate files and token file are replaced and it gets SIGHUP. Every alert
//! the sensor detected (its file sink is the record) reaches the receiver, none dropped, with
//! the new token after the signal and the key from the environment throughout.

use integration_tests::{
    NO_RATE_LIMIT, RunningSensor, fake_server,
    https_receiver::{HttpsReceiver, ServerTls},
    marked_alert, metric,
    pki::Rotation,
    receivers::{WITHIN, deduplicated, has_marker, read_ndjson, wait_until},
    require_root, scratch,
};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");

#[test]
fn sighup_rereads_rotated_client_certificates_and_loses_nothing() {
    require_root();
    let dir = scratch("tls-sighup");
    let server = fake_server(WORKLOAD, &dir, "nginx");
    let certs = Rotation::new(&dir, "receiver CA", "server");
    let mut receiver = HttpsReceiver::new();
    receiver.start(&ServerTls {
        cert: certs.server.clone(),
        client_ca: Some(certs.old_client_ca.clone()),
    });
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
type = "http"
name = "hook"
url = "https://127.0.0.1:{port}/hook"
retry_max_secs = 1
headers = {{ Authorization = {{ file = "{token}", prefix = "Bearer " }}, X-Api-Key = {{ env = "LINEAGE_TEST_SIEM_KEY" }} }}
tls = {{ ca_file = "{ca}", crt_file = "{crt}", key_file = "{key}" }}
"#,
            spool = dir.join("spool").display(),
            truth = truth.display(),
            port = receiver.port,
            ca = certs.ca_file.display(),
            crt = certs.live.crt.display(),
            key = certs.live.key.display(),
            token = dir.join("token").display(),
        ),
    )
    .expect("config");
    std::fs::write(dir.join("token"), "token-2026\n").expect("token");
    // The API key comes from the sensor's environment (as systemd's Environment= or a pod's
    // env from a Secret would set it).
    let mut sensor = RunningSensor::start_with(
        &config,
        &[
            "/usr/bin/env".into(),
            "LINEAGE_TEST_SIEM_KEY=key-from-env".into(),
        ],
    )
    .unwrap_or_else(|(status, log)| panic!("sensor not ready ({status}): {log:#?}"));
    let arrived =
        |receiver: &HttpsReceiver, marker: &str| has_marker(&receiver.alerts("/hook"), marker);

    marked_alert(&server, "rot-a0");
    wait_until("rot-a0 over mutual TLS", || arrived(&receiver, "rot-a0"));

    // The receiver now trusts only the new client CA: the old certificate is refused.
    receiver.stop();
    receiver.start(&ServerTls {
        cert: certs.server.clone(),
        client_ca: Some(certs.new_client_ca.clone()),
    });
    for i in 0..3 {
        marked_alert(&server, &format!("rot-b{i}"));
    }
    wait_until("refused attempts counted", || {
        metric(
            &sensor.metrics(),
            "lineage_sensor_sink_failed_total{sink=\"hook\"}",
        )
        .is_some_and(|v| v >= 1.0)
    });
    assert!(!arrived(&receiver, "rot-b0"));

    // New files in place, SIGHUP: read again, and what waited goes out with what follows.
    certs.install_new_client();
    std::fs::write(dir.join("token"), "token-2027\n").expect("token");
    sensor.signal(libc::SIGHUP);
    sensor.expect_log(WITHIN, "SIGHUP: reloaded");
    for i in 0..3 {
        marked_alert(&server, &format!("rot-c{i}"));
    }
    wait_until("every alert after the rotation", || {
        (0..3).all(|i| {
            arrived(&receiver, &format!("rot-b{i}")) && arrived(&receiver, &format!("rot-c{i}"))
        })
    });
    let text = sensor.metrics();
    for reason in lineage_sensor::metrics::DROP_REASONS {
        assert_eq!(
            metric(
                &text,
                &format!("lineage_sensor_sink_dropped_total{{reason=\"{reason}\",sink=\"hook\"}}")
            ),
            Some(0.0),
            "{reason}"
        );
    }
    sensor.stop_clean();
    // The token file was read again with the certificates; the variable throughout.
    let requests = receiver.requests();
    let first = requests.first().expect("a request");
    let last = requests.last().expect("a request");
    assert_eq!(first.header("authorization"), Some("Bearer token-2026"));
    assert_eq!(last.header("authorization"), Some("Bearer token-2027"));
    assert!(
        requests
            .iter()
            .all(|r| r.header("x-api-key") == Some("key-from-env")),
        "the key from the environment on every request"
    );
    assert_eq!(
        deduplicated(&receiver.alerts("/hook")),
        deduplicated(&read_ndjson(&truth)),
        "the receiver has every detected alert, in order"
    );
}
