//! The real `lineage-sensor run` delivering to real receivers on loopback: rsyslog (Debian's
//! package, our own instance), an HTTP receiver (webhook and Elasticsearch `_bulk`), a file; a
//! real Prometheus scraping it; SIGHUP reloads; and the sensor under exactly the capabilities
//! the systemd unit grants. `cargo xtask test` installs rsyslog, prometheus and setpriv.

use std::{
    collections::HashSet,
    io::{BufRead, BufReader},
    net::{Ipv4Addr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use integration_tests::{metric, require_root, sensor_binary};
use serde_json::Value;

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");
/// Generous bounds for things that normally take milliseconds; nothing here measures time.
const WITHIN: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WITHIN;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// A scratch directory every user may enter (the least-privilege run is not root).
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lineage-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

// ---------------------------------------------------------------------------------------------
// The sensor

struct Sensor {
    child: Child,
    log: mpsc::Receiver<String>,
    seen: Vec<String>,
    metrics_port: u16,
}

impl Sensor {
    fn start(config: &Path) -> Sensor {
        Self::start_with(config, &[])
            .unwrap_or_else(|(status, log)| panic!("sensor not ready ({status}): {log:#?}"))
    }

    /// `wrapper` runs the sensor (setpriv ...). A sensor that does not become ready is stopped,
    /// and its exit status and log returned.
    fn start_with(config: &Path, wrapper: &[String]) -> Result<Sensor, (ExitStatus, Vec<String>)> {
        let metrics_port = free_port();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(sensor_binary());
                c
            }
            None => Command::new(sensor_binary()),
        };
        let mut child = command
            .args(["run", "--config"])
            .arg(config)
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lineage-sensor run");
        let (tx, log) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut sensor = Sensor {
            child,
            log,
            seen: Vec::new(),
            metrics_port,
        };
        let deadline = Instant::now() + WITHIN;
        loop {
            match sensor
                .log
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    let ready = line.contains("ready: programs attached");
                    sensor.seen.push(line);
                    if ready {
                        return Ok(sensor);
                    }
                }
                Err(_) => {
                    // Its stderr closed (it exited), or it hangs: stop it either way.
                    let _ = sensor.child.kill();
                    let status = sensor.child.wait().expect("wait for sensor");
                    sensor.seen.extend(sensor.log.try_iter());
                    return Err((status, sensor.seen));
                }
            }
        }
    }

    fn log_contains(&mut self, needle: &str) -> bool {
        self.seen.extend(self.log.try_iter());
        self.seen.iter().any(|l| l.contains(needle))
    }

    fn wait_log(&mut self, needle: &str) {
        wait_until(&format!("sensor log line {needle:?}"), || {
            self.log_contains(needle)
        });
    }

    fn metrics(&self) -> String {
        http_get(&format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .expect("GET /metrics")
            .1
    }

    /// Stops with SIGTERM; returns the whole log. A clean exit is required.
    fn stop(mut self) -> Vec<String> {
        signal(&self.child, libc::SIGTERM);
        let status = self.child.wait().expect("wait for sensor");
        self.seen.extend(self.log.try_iter());
        assert!(
            status.success(),
            "clean exit on SIGTERM: {status}; {:#?}",
            self.seen
        );
        self.seen
    }
}

fn http_get(url: &str) -> Result<(u16, String), String> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// A copy of the workload named like a web server, so that what it spawns alerts.
fn fake_server(dir: &Path) -> PathBuf {
    let server = dir.join("nginx");
    std::fs::copy(WORKLOAD, &server).expect("copy workload as nginx");
    server
}

/// The server runs `sh -c` with a unique marker: one server-spawned-shell alert.
fn make_alert(server: &Path, marker: &str) {
    let status = Command::new(server)
        .args(["shell", &format!("echo {marker} >/dev/null")])
        .stdout(Stdio::null())
        .status()
        .expect("run the fake server");
    assert!(status.success());
}

/// Rate limiting off: every marker is its own alert anyway, but nothing may be held back.
const BASE_CONFIG: &str = "[rate_limit]\nwindow_secs = 0\n\n";

// ---------------------------------------------------------------------------------------------
// Receivers

/// Our own rsyslogd: own config, pid file, work directory and port; the system's is untouched.
struct Rsyslog {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Rsyslog {
    fn new(dir: &Path) -> Rsyslog {
        let dir = dir.join("rsyslog");
        std::fs::create_dir_all(&dir).expect("rsyslog dir");
        Rsyslog {
            dir,
            port: free_port(),
            child: None,
        }
    }

    fn received_path(&self) -> PathBuf {
        self.dir.join("received.log")
    }

    fn start(&mut self) {
        let conf = self.dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{dir}" maxMessageSize="1m")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{port}")
template(name="msgonly" type="string" string="%msg%\n")
action(type="omfile" file="{received}" template="msgonly")
"#,
                dir = self.dir.display(),
                port = self.port,
                received = self.received_path().display(),
            ),
        )
        .expect("rsyslog.conf");
        let child = Command::new("/usr/sbin/rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rsyslogd (cargo xtask test installs rsyslog)");
        self.child = Some(child);
        let port = self.port;
        wait_until("rsyslogd listening", || {
            std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
        });
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, libc::SIGTERM);
            let _ = child.wait();
        }
    }

    /// The alerts in the received file, in arrival order (duplicates included).
    fn alerts(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.received_path()).unwrap_or_default();
        text.lines()
            .filter_map(|line| line.find('{').map(|start| &line[start..]))
            .map(|json| {
                serde_json::from_str(json)
                    .unwrap_or_else(|e| panic!("rsyslog got a bad message ({e}): {json}"))
            })
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

type Posts = Arc<Mutex<Vec<(String, String)>>>;

/// An HTTP receiver (axum) that records every POST; stopped and started on the same port.
struct HttpReceiver {
    port: u16,
    posts: Posts,
    running: Option<(
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    )>,
}

impl HttpReceiver {
    fn new() -> HttpReceiver {
        HttpReceiver {
            port: free_port(),
            posts: Arc::default(),
            running: None,
        }
    }

    fn start(&mut self) {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound_rx) = mpsc::channel();
        let posts = self.posts.clone();
        let port = self.port;
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let record = |posts: Posts| {
                    move |uri: axum::http::Uri, body: String| async move {
                        let path = uri.path().to_owned();
                        let bulk = path.ends_with("/_bulk");
                        posts.lock().expect("posts").push((path, body));
                        if bulk {
                            r#"{"took":1,"errors":false,"items":[]}"#.to_owned()
                        } else {
                            "ok".to_owned()
                        }
                    }
                };
                let app = axum::Router::new().fallback(axum::routing::post(record(posts)));
                let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
                    .await
                    .expect("bind the HTTP receiver");
                let _ = bound_tx.send(());
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop_rx.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        bound_rx.recv().expect("HTTP receiver bound");
        self.running = Some((stop_tx, thread));
    }

    fn stop(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            let _ = stop.send(());
            thread.join().expect("HTTP receiver thread");
        }
    }

    /// Alerts posted to `path`, in arrival order; `_bulk` action lines are checked and skipped.
    fn alerts(&self, path: &str) -> Vec<Value> {
        let posts = self.posts.lock().expect("posts");
        let mut alerts = Vec::new();
        for (_, body) in posts.iter().filter(|(p, _)| p == path) {
            let mut lines = body.lines();
            while let Some(line) = lines.next() {
                let value: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("bad NDJSON line ({e}): {line}"));
                if let Some(action) = value.get("create") {
                    let doc: Value = serde_json::from_str(lines.next().expect("bulk document"))
                        .expect("bulk document is JSON");
                    assert_eq!(action["_id"], doc["event"]["id"], "bulk _id is event.id");
                    assert_eq!(action["_index"], "lineage-test");
                    alerts.push(doc);
                } else {
                    alerts.push(value);
                }
            }
        }
        alerts
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_ndjson(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line ({e}): {l}")))
        .collect()
}

/// event.id of each alert, first occurrences only, in order: what a de-duplicating receiver
/// keeps.
fn deduplicated(alerts: &[Value]) -> Vec<String> {
    let mut seen = HashSet::new();
    alerts
        .iter()
        .map(|a| {
            a["event"]["id"]
                .as_str()
                .expect("every alert has event.id")
                .to_owned()
        })
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

/// Whether an alert's own command line carries `marker` (not its ancestry or paths).
fn has_marker(alerts: &[Value], marker: &str) -> bool {
    alerts
        .iter()
        .any(|a| a["process"]["args"].to_string().contains(marker))
}

// ---------------------------------------------------------------------------------------------
// Tests

/// Receivers go down while alerts happen, and come back; then they go down again, the sensor is
/// restarted, and its spool is replayed. Every receiver ends with every alert the sensor
/// produced (the file sink is the record of those), in order, once after de-duplication.
#[test]
fn alerts_survive_receiver_outages_and_a_sensor_restart() {
    require_root();
    let dir = scratch("outage");
    let server = fake_server(&dir);
    let mut rsyslog = Rsyslog::new(&dir);
    let mut http = HttpReceiver::new();
    rsyslog.start();
    http.start();
    let truth = dir.join("alerts.ndjson");
    let config = dir.join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            r#"{BASE_CONFIG}[output]
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
    let sensor = Sensor::start(&config);
    make_alert(&server, "mark-a0");
    wait_until("mark-a0 at every receiver", || {
        everywhere(&rsyslog, &http, "mark-a0")
    });

    // 2. Receivers down while alerts happen: they wait, then arrive when the receivers return.
    rsyslog.stop();
    http.stop();
    for i in 0..4 {
        make_alert(&server, &format!("mark-b{i}"));
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
        make_alert(&server, &format!("mark-c{i}"));
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
    let log = sensor.stop();
    assert!(
        log.iter()
            .any(|l| l.contains("stay spooled for the next start")),
        "{log:#?}"
    );
    rsyslog.start();
    http.start();
    let mut sensor = Sensor::start(&config);
    wait_until("mark-c* replayed from the spool after the restart", || {
        (0..3).all(|i| everywhere(&rsyslog, &http, &format!("mark-c{i}")))
    });
    sensor.wait_log("replaying");
    sensor.stop();

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

/// A real Prometheus scrapes the endpoint; promtool accepts the exposition; the endpoint shows
/// health and readiness and no alert contents.
#[test]
fn prometheus_scrapes_the_sensor_and_promtool_accepts_its_metrics() {
    require_root();
    let dir = scratch("prometheus");
    let server = fake_server(&dir);
    let config = dir.join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "{BASE_CONFIG}[output]\nspool_dir = \"{}\"\n\n[[output.sinks]]\ntype = \"file\"\npath = \"{}\"\n",
            dir.join("spool").display(),
            dir.join("alerts.ndjson").display()
        ),
    )
    .expect("config");
    let sensor = Sensor::start(&config);
    let base = format!("http://127.0.0.1:{}", sensor.metrics_port);
    assert_eq!(
        http_get(&format!("{base}/healthz")).expect("healthz").0,
        200
    );
    assert_eq!(http_get(&format!("{base}/readyz")).expect("readyz").0, 200);

    let marker = "secret-marker-7f3a";
    make_alert(&server, marker);
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
    signal(&prometheus, libc::SIGTERM);
    let _ = prometheus.wait();
    assert!(
        scraped.is_some_and(|v| v >= 1.0),
        "Prometheus scraped the sensor: up == 1 and the alert counted ({scraped:?})"
    );
    sensor.stop();
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

/// SIGHUP reopens the file sink (logrotate), refuses an invalid config with file, line and
/// field, and applies a valid one, with the programs attached throughout.
#[test]
fn sighup_reopens_files_refuses_bad_configs_and_applies_good_ones() {
    require_root();
    let dir = scratch("sighup");
    let server = fake_server(&dir);
    let first = dir.join("first.ndjson");
    let second = dir.join("second.ndjson");
    let config = dir.join("sensor.toml");
    let file_config = |path: &Path, extra: &str| {
        format!(
            "{BASE_CONFIG}{extra}[output]\nspool_dir = \"{}\"\n\n[[output.sinks]]\ntype = \"file\"\npath = \"{}\"\n",
            dir.join("spool").display(),
            path.display()
        )
    };
    std::fs::write(&config, file_config(&first, "")).expect("config");
    let mut sensor = Sensor::start(&config);
    let arrives = |path: &Path, marker: &str| {
        wait_until(&format!("{marker} in {}", path.display()), || {
            has_marker(&read_ndjson(path), marker)
        });
    };
    make_alert(&server, "hup-0");
    arrives(&first, "hup-0");

    // logrotate: move the file away, SIGHUP, the next alert goes to a new file.
    let rotated = dir.join("first.ndjson.1");
    std::fs::rename(&first, &rotated).expect("rotate");
    signal(&sensor.child, libc::SIGHUP);
    sensor.wait_log("SIGHUP: reloaded");
    make_alert(&server, "hup-1");
    arrives(&first, "hup-1");
    assert!(!has_marker(&read_ndjson(&rotated), "hup-1"));

    // An invalid config: refused with file, line and field; the running one stays.
    std::fs::write(
        &config,
        format!(
            "{BASE_CONFIG}[output]\nspool_dir = \"/tmp\"\n\n[[output.sinks]]\ntype = \"file\"\npaht = \"/tmp/x\"\n"
        ),
    )
    .expect("bad config");
    signal(&sensor.child, libc::SIGHUP);
    sensor.wait_log("configuration not reloaded");
    let refusal = sensor
        .seen
        .iter()
        .find(|l| l.contains("configuration not reloaded"))
        .cloned()
        .unwrap_or_default();
    assert!(
        refusal.contains(&format!("{}:9:", config.display())) && refusal.contains("paht"),
        "the refusal names file, line and field: {refusal}"
    );
    make_alert(&server, "hup-2");
    arrives(&first, "hup-2");

    // A valid new config: another file, and new detection settings (the engine is replaced).
    std::fs::write(
        &config,
        file_config(&second, "[incidents]\nspan_secs = 60\n\n"),
    )
    .expect("new config");
    signal(&sensor.child, libc::SIGHUP);
    sensor.wait_log("detection rules replaced");
    make_alert(&server, "hup-3");
    arrives(&second, "hup-3");
    assert!(!has_marker(&read_ndjson(&first), "hup-3"));
    let log = sensor.stop();
    assert!(
        !log.iter()
            .any(|l| l.contains("programs detached") && l.contains("SIGHUP")),
        "{log:#?}"
    );
}

/// The capabilities the systemd unit grants, from its AmbientCapabilities= line.
fn unit_capabilities() -> Vec<String> {
    let unit =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd/lineage-sensor.service");
    let text = std::fs::read_to_string(&unit).expect("the systemd unit");
    let caps: Vec<String> = text
        .lines()
        .find_map(|l| l.strip_prefix("AmbientCapabilities="))
        .expect("AmbientCapabilities= in the unit")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let bounding: Vec<String> = text
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("CapabilityBoundingSet= in the unit")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(caps, bounding, "the unit grants what it bounds");
    caps
}

/// `setpriv` as an unprivileged user (nobody) holding exactly `caps`, as the unit runs it.
fn setpriv(caps: &[String]) -> Vec<String> {
    let list: Vec<String> = caps
        .iter()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let set = format!(
        "-all{}",
        list.iter().map(|c| format!(",{c}")).collect::<String>()
    );
    [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        &format!("--inh-caps={set}"),
        &format!("--ambient-caps={set}"),
        &format!("--bounding-set={set}"),
        "--no-new-privs",
        "--",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// With only the unit's capabilities the sensor detects and delivers; without any one of them
/// it refuses to start and names the capability.
#[test]
fn runs_with_only_the_units_capabilities_and_names_a_missing_one() {
    require_root();
    let caps = unit_capabilities();
    assert!(!caps.is_empty());
    let dir = scratch("least-privilege");
    let server = fake_server(&dir);
    let spool = dir.join("spool");
    let out = dir.join("out");
    for d in [&spool, &out] {
        std::fs::create_dir_all(d).expect("dir");
        std::os::unix::fs::chown(d, Some(65534), Some(65534)).expect("chown to nobody");
    }
    let alerts = out.join("alerts.ndjson");
    let config = dir.join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "{BASE_CONFIG}[output]\nspool_dir = \"{}\"\n\n[[output.sinks]]\ntype = \"file\"\npath = \"{}\"\n",
            spool.display(),
            alerts.display()
        ),
    )
    .expect("config");
    use std::os::unix::fs::PermissionsExt as _;
    for path in [&dir, &config] {
        let mode = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    let sensor = Sensor::start_with(&config, &setpriv(&caps)).unwrap_or_else(|(status, log)| {
        panic!("the sensor works with the unit's capabilities ({status}): {log:#?}")
    });
    make_alert(&server, "least-priv");
    wait_until("an alert from the unprivileged sensor", || {
        has_marker(&read_ndjson(&alerts), "least-priv")
    });
    let text = sensor.metrics();
    assert!(metric(&text, "lineage_sensor_processes_tracked").is_some_and(|v| v > 1.0));
    sensor.stop();

    for missing in &caps {
        let fewer: Vec<String> = caps.iter().filter(|c| *c != missing).cloned().collect();
        let Err((status, log)) = Sensor::start_with(&config, &setpriv(&fewer)) else {
            panic!("the sensor became ready without {missing}");
        };
        assert!(
            !status.success(),
            "exits with failure without {missing}: {log:#?}"
        );
        assert!(
            log.iter()
                .any(|l| l.contains(&format!("missing capability {missing}"))),
            "the error names {missing}: {log:#?}"
        );
    }
}
