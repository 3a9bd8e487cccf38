//! Syslog over TLS (RFC 5425) to Debian's rsyslogd with its gtls driver, with certificates made
//! here (rcgen): with and without client certificates, a receiver of another CA, and rotation.
//! The sinks run as in the sensor and are fed alert lines made here. `cargo xtask test`
//! installs rsyslog-gnutls.

use std::{path::Path, sync::Arc, time::Duration};

use integration_tests::{
    pki::{Ca, Leaf, Pair, Rotation},
    receivers::{Rsyslog, RsyslogTls, deduplicated, wait_until},
    scratch,
    sink_feed::{alert, config, ids},
};
use lineage_sensor::{metrics::Metrics, sink::Sinks, sink::delivery::Transport as _};

fn syslog_sink(rsyslog: &Rsyslog, ca: &Path, client: Option<&Pair>) -> String {
    let client = client.map_or(String::new(), |c| {
        format!(
            ", crt_file = \"{}\", key_file = \"{}\"",
            c.crt.display(),
            c.key.display()
        )
    });
    format!(
        "[[output.sinks]]\ntype = \"syslog\"\nname = \"siem\"\naddress = \"127.0.0.1:{}\"\nprotocol = \"tls\"\nretry_max_secs = 1\ntls = {{ ca_file = \"{}\"{client} }}\n",
        rsyslog.port,
        ca.display()
    )
}

fn rsyslog_ids(rsyslog: &Rsyslog) -> Vec<String> {
    deduplicated(&rsyslog.alerts())
}

/// RFC 5425 to Debian's rsyslogd (gtls driver): without a client certificate when it does not
/// ask for one, with one when it does; a sink without one is refused by it (counted), and
/// nothing is lost.
#[test]
fn syslog_tls_to_rsyslog_with_and_without_client_certificates() {
    let dir = scratch("tls-rsyslog");
    let ca = Ca::new("syslog CA");
    let ca_file = ca.write(&dir.join("ca.pem"));
    let server = ca.issue(Leaf::Server, &dir, "rsyslog");
    let client = ca.issue(Leaf::Client, &dir, "client");
    let mut rsyslog = Rsyslog::new(&dir);
    rsyslog.set_tls(Some(RsyslogTls {
        crt: server.crt.clone(),
        key: server.key.clone(),
        client_ca: ca_file.clone(),
        require_client_cert: false,
    }));
    rsyslog.start();

    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let anonymous = config(&dir, &syslog_sink(&rsyslog, &ca_file, None));
    let sinks = Sinks::start(&anonymous.output, metrics.clone()).expect("sinks");
    let first = ids("syslog-anon", 5);
    for id in &first {
        sinks.send_line(alert(id));
    }
    wait_until("5 alerts at rsyslog over TLS", || {
        rsyslog_ids(&rsyslog) == first
    });
    sinks.stop();

    // rsyslog now demands a client certificate of our CA.
    rsyslog.stop();
    rsyslog.set_tls(Some(RsyslogTls {
        require_client_cert: true,
        crt: server.crt.clone(),
        key: server.key.clone(),
        client_ca: ca_file.clone(),
    }));
    rsyslog.start();
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let sinks = Sinks::start(&anonymous.output, metrics.clone()).expect("sinks");
    let second = ids("syslog-mtls", 5);
    for id in &second {
        sinks.send_line(alert(id));
    }
    wait_until("the anonymous sink refused, counted", || {
        metrics.sink_failed_count("siem") >= 2
    });
    assert_eq!(
        rsyslog_ids(&rsyslog),
        first,
        "nothing got through without a certificate"
    );
    sinks.stop();
    // The same sink (same spool) with the client certificate: what waited goes out.
    let mutual = config(&dir, &syslog_sink(&rsyslog, &ca_file, Some(&client)));
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let sinks = Sinks::start(&mutual.output, metrics.clone()).expect("sinks");
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    wait_until("the waiting alerts with a client certificate", || {
        rsyslog_ids(&rsyslog) == all
    });
    for reason in lineage_sensor::metrics::DROP_REASONS {
        assert_eq!(metrics.sink_dropped_count("siem", reason), 0, "{reason}");
    }
    sinks.stop();
}

/// rsyslogd with a certificate of another CA is refused (the error names the CA file); the
/// alerts wait, and arrive once it has the right certificate, all counted as sent.
#[test]
fn syslog_tls_receiver_of_another_ca_is_refused_until_fixed() {
    let dir = scratch("tls-rsyslog-ca");
    let ca = Ca::new("syslog CA");
    let stranger = Ca::new("another CA");
    let ca_file = ca.write(&dir.join("ca.pem"));
    let wrong = stranger.issue(Leaf::Server, &dir, "wrong");
    let right = ca.issue(Leaf::Server, &dir, "right");
    let mut rsyslog = Rsyslog::new(&dir);
    rsyslog.set_tls(Some(RsyslogTls {
        crt: wrong.crt.clone(),
        key: wrong.key.clone(),
        client_ca: ca_file.clone(),
        require_client_cert: false,
    }));
    rsyslog.start();
    let config = config(&dir, &syslog_sink(&rsyslog, &ca_file, None));

    let mut direct = lineage_sensor::sink::syslog::Syslog::new(
        format!("127.0.0.1:{}", rsyslog.port),
        lineage_sensor::config::SyslogProtocol::Tls,
        10,
        Duration::from_secs(10),
    )
    .with_tls(config.output.sinks[0].tls.clone().unwrap_or_default());
    let err = direct.send(&[alert("x")]).expect_err("another CA");
    assert!(
        err.contains("not signed by a CA trusted here") && err.contains("ca.pem"),
        "{err}"
    );

    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let sinks = Sinks::start(&config.output, metrics.clone()).expect("sinks");
    let sent = ids("syslog-ca", 10);
    for id in &sent {
        sinks.send_line(alert(id));
    }
    wait_until("refusals counted", || {
        metrics.sink_failed_count("siem") >= 2
    });
    assert!(rsyslog_ids(&rsyslog).is_empty());
    rsyslog.stop();
    rsyslog.set_tls(Some(RsyslogTls {
        crt: right.crt.clone(),
        key: right.key.clone(),
        client_ca: ca_file.clone(),
        require_client_cert: false,
    }));
    rsyslog.start();
    wait_until("every alert once fixed", || rsyslog_ids(&rsyslog) == sent);
    wait_until("10 counted sent", || metrics.sink_sent_count("siem") == 10);
    for reason in lineage_sensor::metrics::DROP_REASONS {
        assert_eq!(metrics.sink_dropped_count("siem", reason), 0, "{reason}");
    }
    sinks.stop();
}

/// Client certificate rotation for syslog over TLS: rsyslogd starts to accept only clients of a
/// new CA while alerts flow; the files are replaced and the reload SIGHUP does makes the sink
/// reconnect with them. Every alert arrives, none dropped.
#[test]
fn syslog_tls_client_certificate_rotation_on_reload_loses_nothing() {
    let dir = scratch("tls-rsyslog-rotation");
    let certs = Rotation::new(&dir, "syslog CA", "rsyslog");
    let mut rsyslog = Rsyslog::new(&dir);
    let serve = |rsyslog: &mut Rsyslog, client_ca: &Path| {
        rsyslog.stop();
        rsyslog.set_tls(Some(RsyslogTls {
            crt: certs.server.crt.clone(),
            key: certs.server.key.clone(),
            client_ca: client_ca.to_owned(),
            require_client_cert: true,
        }));
        rsyslog.start();
    };
    serve(&mut rsyslog, &certs.old_client_ca);
    let config = config(
        &dir,
        &syslog_sink(&rsyslog, &certs.ca_file, Some(&certs.live)),
    );
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let mut sinks = Sinks::start(&config.output, metrics.clone()).expect("sinks");
    let sent = ids("syslog-rotation", 200);
    for (i, id) in sent.iter().enumerate() {
        sinks.send_line(alert(id));
        std::thread::sleep(Duration::from_millis(5));
        if i == 50 {
            serve(&mut rsyslog, &certs.new_client_ca);
        }
        if i == 100 {
            certs.install_new_client();
        }
        if i == 150 {
            sinks.reload(&config.output).expect("reload");
        }
    }
    wait_until("every alert across the rotation", || {
        rsyslog_ids(&rsyslog) == sent
    });
    assert!(
        metrics.sink_failed_count("siem") >= 1,
        "the old certificate was refused"
    );
    for reason in lineage_sensor::metrics::DROP_REASONS {
        assert_eq!(metrics.sink_dropped_count("siem", reason), 0, "{reason}");
    }
    sinks.stop();
}

/// A collector reached by address whose certificate holds only its name: refused with a hint,
/// accepted with `tls.server_name` set to that name.
#[test]
fn syslog_tls_by_address_needs_server_name() {
    let dir = scratch("tls-rsyslog-name");
    let ca = Ca::new("syslog CA");
    let ca_file = ca.write(&dir.join("ca.pem"));
    let named = ca.issue(Leaf::OtherNameServer, &dir, "named");
    let mut rsyslog = Rsyslog::new(&dir);
    rsyslog.set_tls(Some(RsyslogTls {
        crt: named.crt.clone(),
        key: named.key.clone(),
        client_ca: ca_file.clone(),
        require_client_cert: false,
    }));
    rsyslog.start();
    let sink = |server_name: Option<&str>| {
        lineage_sensor::sink::syslog::Syslog::new(
            format!("127.0.0.1:{}", rsyslog.port),
            lineage_sensor::config::SyslogProtocol::Tls,
            10,
            Duration::from_secs(10),
        )
        .with_tls(lineage_sensor::config::SinkTls {
            ca_file: Some(ca_file.clone()),
            server_name: server_name.map(str::to_owned),
            ..Default::default()
        })
    };
    let err = sink(None)
        .send(&[alert("by-address")])
        .expect_err("the certificate does not hold 127.0.0.1");
    assert!(
        err.contains("not valid for the name \"127.0.0.1\"") && err.contains("tls.server_name"),
        "{err}"
    );
    let mut renamed = sink(Some("elsewhere.example"));
    renamed
        .send(&[alert("by-name")])
        .expect("server_name override");
    drop(renamed);
    wait_until("the alert sent with the override", || {
        rsyslog_ids(&rsyslog) == ["by-name"]
    });
}
