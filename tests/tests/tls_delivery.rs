//! Alerts over HTTPS to our own receiver (hyper on rustls) acting as webhook, Elasticsearch
//! `_bulk` and Splunk HEC endpoint, with certificates made here (rcgen). The sinks run as in the
//! sensor (queue, spool, retries, metrics) and are fed alert lines made here, so every alert is
//! known: none may be lost, whatever the certificates do.

use std::{path::Path, sync::Arc, time::Duration};

use integration_tests::{
    https_receiver::{HttpsReceiver, ServerTls},
    pki::{Ca, Leaf, Pair, Rotation},
    receivers::{deduplicated, wait_until},
    scratch,
    sink_feed::{alert, config, ids},
};
use lineage_sensor::{
    config::{Config, SinkConfig},
    metrics::Metrics,
    sink::{Sinks, delivery::Transport as _, http::Http},
};

/// Webhook, `_bulk` and HEC over mutual TLS, with the API key and the HEC token read from files
/// (as a Kubernetes Secret is mounted): the receiver gets every alert in the right envelope with
/// the right credentials, and the metrics count them.
#[test]
fn https_webhook_bulk_and_hec_with_credentials_from_files() {
    let dir = scratch("tls-https");
    let ca = Ca::new("receiver CA");
    let clients = Ca::new("client CA");
    let ca_file = ca.write(&dir.join("ca.pem"));
    let client_ca = clients.write(&dir.join("client-ca.pem"));
    let server = ca.issue(Leaf::Server, &dir, "server");
    let client = clients.issue(Leaf::Client, &dir, "client");
    std::fs::write(dir.join("es-key"), "c2VjcmV0LWVz\n").expect("key file");
    std::fs::write(
        dir.join("hec-token"),
        "11111111-2222-3333-4444-555555555555\n",
    )
    .expect("token file");
    let mut receiver = HttpsReceiver::new();
    receiver.start(&ServerTls {
        cert: server,
        client_ca: Some(client_ca),
    });
    let tls = format!(
        "tls = {{ ca_file = \"{}\", crt_file = \"{}\", key_file = \"{}\" }}",
        ca_file.display(),
        client.crt.display(),
        client.key.display()
    );
    let port = receiver.port;
    let config = config(
        &dir,
        &format!(
            r#"[[output.sinks]]
type = "http"
name = "webhook"
url = "https://127.0.0.1:{port}/hook"
headers = {{ X-Tenant = "bank-1" }}
retry_max_secs = 1
{tls}

[[output.sinks]]
type = "http"
name = "elastic"
url = "https://localhost:{port}/_bulk"
format = "elasticsearch_bulk"
index = "alerts-test"
headers = {{ Authorization = {{ file = "{key}", prefix = "ApiKey " }} }}
retry_max_secs = 1
{tls}

[[output.sinks]]
type = "http"
name = "splunk"
url = "https://127.0.0.1:{port}"
format = "splunk_hec"
index = "security"
token = {{ file = "{token}" }}
retry_max_secs = 1
{tls}
"#,
            key = dir.join("es-key").display(),
            token = dir.join("hec-token").display(),
        ),
    );
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let sinks = Sinks::start(&config.output, metrics.clone()).expect("sinks");
    let sent = ids("https", 5);
    for id in &sent {
        sinks.send_line(alert(id));
    }
    for path in ["/hook", "/_bulk", "/services/collector/event"] {
        wait_until(&format!("5 alerts at {path}"), || {
            deduplicated(&receiver.alerts(path)) == sent
        });
    }
    for sink in ["webhook", "elastic", "splunk"] {
        wait_until(&format!("{sink} counts 5 sent"), || {
            metrics.sink_sent_count(sink) == 5
        });
    }
    sinks.stop();

    let requests = receiver.requests();
    let hook = requests
        .iter()
        .find(|r| r.path == "/hook")
        .expect("webhook");
    assert_eq!(hook.header("x-tenant"), Some("bank-1"));
    assert_eq!(hook.header("content-type"), Some("application/x-ndjson"));
    let bulk = requests.iter().find(|r| r.path == "/_bulk").expect("bulk");
    assert_eq!(bulk.header("authorization"), Some("ApiKey c2VjcmV0LWVz"));
    let first: serde_json::Value =
        serde_json::from_str(bulk.body.lines().next().expect("action line")).expect("JSON");
    assert_eq!(first["create"]["_index"], "alerts-test");
    assert_eq!(first["create"]["_id"], "https-0000");
    let hec = requests
        .iter()
        .find(|r| r.path == "/services/collector/event")
        .expect("HEC");
    assert_eq!(
        hec.header("authorization"),
        Some("Splunk 11111111-2222-3333-4444-555555555555")
    );
    let envelope: serde_json::Value = serde_json::Deserializer::from_str(&hec.body)
        .into_iter()
        .next()
        .expect("one envelope")
        .expect("JSON");
    assert_eq!(envelope["time"].as_f64(), Some(1_796_446_800.123));
    assert_eq!(envelope["source"], "lineage-sensor");
    assert_eq!(envelope["sourcetype"], "lineage-sensor:alert");
    assert_eq!(envelope["index"], "security");
    assert!(envelope["host"].as_str().is_some_and(|h| !h.is_empty()));
    assert_eq!(envelope["event"]["event"]["id"], "https-0000");
}

/// One delivery attempt of an https sink to `receiver`; its error, if any.
fn attempt(sink: &str, receiver: &HttpsReceiver) -> Result<(), String> {
    let text = format!(
        "[[output.sinks]]\ntype = \"http\"\nurl = \"https://127.0.0.1:{}/hook\"\n{sink}",
        receiver.port
    );
    let config = Config::parse(&text, Path::new("t.toml")).expect("valid");
    let sink: &SinkConfig = &config.output.sinks[0];
    let mut http = Http::new(sink, Duration::from_secs(10));
    http.send(&[alert("x")]).map(|_| ())
}

/// An expired certificate, a certificate for another name, one from an unknown CA and a
/// missing client certificate each fail with a message that says so.
#[test]
fn https_certificate_errors_are_clear() {
    let dir = scratch("tls-errors");
    let ca = Ca::new("receiver CA");
    let ca_file = ca.write(&dir.join("ca.pem"));
    let trust = format!("tls = {{ ca_file = \"{}\" }}\n", ca_file.display());
    let mut receiver = HttpsReceiver::new();
    let serve =
        |receiver: &mut HttpsReceiver, cert: Pair, client_ca: Option<std::path::PathBuf>| {
            receiver.stop();
            receiver.start(&ServerTls { cert, client_ca });
        };

    serve(&mut receiver, ca.issue(Leaf::Server, &dir, "good"), None);
    attempt(&trust, &receiver).expect("a good certificate is accepted");

    serve(
        &mut receiver,
        ca.issue(Leaf::ExpiredServer, &dir, "expired"),
        None,
    );
    let err = attempt(&trust, &receiver).expect_err("expired");
    assert!(err.contains("certificate has expired"), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{}", receiver.port)),
        "{err}"
    );

    serve(
        &mut receiver,
        ca.issue(Leaf::OtherNameServer, &dir, "other"),
        None,
    );
    let err = attempt(&trust, &receiver).expect_err("wrong name");
    assert!(
        err.contains("not valid for the name \"127.0.0.1\"") && err.contains("tls.server_name"),
        "{err}"
    );
    // The override names what the certificate holds: accepted.
    let renamed = format!(
        "tls = {{ ca_file = \"{}\", server_name = \"elsewhere.example\" }}\n",
        ca_file.display()
    );
    attempt(&renamed, &receiver).expect("server_name override");

    let stranger = Ca::new("another CA");
    serve(
        &mut receiver,
        stranger.issue(Leaf::Server, &dir, "stranger"),
        None,
    );
    let err = attempt(&trust, &receiver).expect_err("unknown CA");
    assert!(
        err.contains("not signed by a CA trusted here") && err.contains("ca.pem"),
        "{err}"
    );

    let clients = Ca::new("client CA");
    let client_ca = clients.write(&dir.join("client-ca.pem"));
    serve(
        &mut receiver,
        ca.issue(Leaf::Server, &dir, "mtls"),
        Some(client_ca),
    );
    let err = attempt(&trust, &receiver).expect_err("no client certificate");
    assert!(err.contains("requires a client certificate"), "{err}");
    let wrong_client = stranger.issue(Leaf::Client, &dir, "wrong-client");
    let with_wrong = format!(
        "tls = {{ ca_file = \"{}\", crt_file = \"{}\", key_file = \"{}\" }}\n",
        ca_file.display(),
        wrong_client.crt.display(),
        wrong_client.key.display()
    );
    let err = attempt(&with_wrong, &receiver).expect_err("client cert of another CA");
    assert!(err.contains("refused our client certificate"), "{err}");

    let missing = format!(
        "tls = {{ ca_file = \"{}\" }}\n",
        dir.join("nope.pem").display()
    );
    let err = attempt(&missing, &receiver).expect_err("missing CA file");
    assert!(
        err.contains("tls.ca_file") && err.contains("nope.pem"),
        "{err}"
    );
}

/// A receiver whose certificate comes from another CA is refused; the alerts wait in the spool,
/// the failures are counted, and once the receiver has the right certificate every alert
/// arrives, none dropped.
#[test]
fn https_receiver_of_another_ca_is_refused_until_fixed() {
    let dir = scratch("tls-other-ca");
    let ca = Ca::new("receiver CA");
    let stranger = Ca::new("another CA");
    let ca_file = ca.write(&dir.join("ca.pem"));
    let mut receiver = HttpsReceiver::new();
    receiver.start(&ServerTls {
        cert: stranger.issue(Leaf::Server, &dir, "wrong"),
        client_ca: None,
    });
    let config = config(
        &dir,
        &format!(
            "[[output.sinks]]\ntype = \"http\"\nname = \"hook\"\nurl = \"https://127.0.0.1:{}/hook\"\nretry_max_secs = 1\ntls = {{ ca_file = \"{}\" }}\n",
            receiver.port,
            ca_file.display()
        ),
    );
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let sinks = Sinks::start(&config.output, metrics.clone()).expect("sinks");
    let sent = ids("other-ca", 20);
    for id in &sent {
        sinks.send_line(alert(id));
    }
    wait_until("failed attempts counted", || {
        metrics.sink_failed_count("hook") >= 2
    });
    assert!(receiver.alerts("/hook").is_empty());
    receiver.stop();
    receiver.start(&ServerTls {
        cert: ca.issue(Leaf::Server, &dir, "right"),
        client_ca: None,
    });
    wait_until("every alert after the fix", || {
        deduplicated(&receiver.alerts("/hook")) == sent
    });
    wait_until("20 counted sent", || metrics.sink_sent_count("hook") == 20);
    for reason in lineage_sensor::metrics::DROP_REASONS {
        assert_eq!(metrics.sink_dropped_count("hook", reason), 0, "{reason}");
    }
    sinks.stop();
}

/// Certificate rotation while alerts flow: the receiver starts to demand client certificates
/// of a new CA, the sensor's certificate files are replaced, and the reload SIGHUP does
/// (`Sinks::reload` with the same configuration) makes the sink read them again. Every alert
/// arrives, none dropped.
#[test]
fn client_certificate_rotation_on_reload_loses_nothing() {
    let dir = scratch("tls-rotation");
    let certs = Rotation::new(&dir, "receiver CA", "server");
    let mut receiver = HttpsReceiver::new();
    receiver.start(&ServerTls {
        cert: certs.server.clone(),
        client_ca: Some(certs.old_client_ca.clone()),
    });
    let config = config(
        &dir,
        &format!(
            "[[output.sinks]]\ntype = \"http\"\nname = \"hook\"\nurl = \"https://127.0.0.1:{}/hook\"\nretry_max_secs = 1\ntls = {{ ca_file = \"{}\", crt_file = \"{}\", key_file = \"{}\" }}\n",
            receiver.port,
            certs.ca_file.display(),
            certs.live.crt.display(),
            certs.live.key.display()
        ),
    );
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let mut sinks = Sinks::start(&config.output, metrics.clone()).expect("sinks");
    let sent = ids("rotation", 300);
    for (i, id) in sent.iter().enumerate() {
        sinks.send_line(alert(id));
        std::thread::sleep(Duration::from_millis(5));
        if i == 100 {
            receiver.stop();
            receiver.start(&ServerTls {
                cert: certs.server.clone(),
                client_ca: Some(certs.new_client_ca.clone()),
            });
        }
        if i == 150 {
            certs.install_new_client();
        }
        if i == 200 {
            sinks.reload(&config.output).expect("reload");
        }
    }
    wait_until("every alert across the rotation", || {
        deduplicated(&receiver.alerts("/hook")) == sent
    });
    assert!(
        metrics.sink_failed_count("hook") >= 1,
        "the old certificate was refused in between"
    );
    for reason in lineage_sensor::metrics::DROP_REASONS {
        assert_eq!(metrics.sink_dropped_count("hook", reason), 0, "{reason}");
    }
    sinks.stop();
}
