//! Receivers the sensor delivers to, on loopback: our own rsyslogd (Debian's package, its own
//! config and port; the system's is untouched) and an HTTP receiver (webhook and Elasticsearch
//! `_bulk`) that can be stopped and started on the same port. `cargo xtask test` installs
//! rsyslog.

use std::{
    collections::HashSet,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::free_port;

/// Generous bounds for things that normally take milliseconds; nothing here measures time.
pub const WITHIN: Duration = Duration::from_secs(60);

/// Polls `done` until it holds; panics naming `what` after [`WITHIN`].
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WITHIN;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// GET with ureq: status and body (any status; a failed request is an error).
pub fn http_get(url: &str) -> Result<(u16, String), String> {
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

/// Our own rsyslogd: own config, pid file, work directory and port; the system's is untouched.
pub struct Rsyslog {
    dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
    tls: Option<RsyslogTls>,
}

/// RFC 5425 with rsyslog's gtls driver (Debian's rsyslog-gnutls): its certificate and key, the
/// CA it checks clients against, and whether it demands a client certificate from that CA.
#[derive(Clone)]
pub struct RsyslogTls {
    pub crt: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
    pub require_client_cert: bool,
}

impl Rsyslog {
    pub fn new(dir: &Path) -> Rsyslog {
        let dir = dir.join("rsyslog");
        std::fs::create_dir_all(&dir).expect("rsyslog dir");
        Rsyslog {
            dir,
            port: free_port(),
            child: None,
            tls: None,
        }
    }

    /// Listens with TLS (from the next start on).
    pub fn set_tls(&mut self, tls: Option<RsyslogTls>) {
        self.tls = tls;
    }

    fn input(&self) -> String {
        let Some(tls) = &self.tls else {
            return format!(
                "module(load=\"imtcp\")\ninput(type=\"imtcp\" address=\"127.0.0.1\" port=\"{}\")\n",
                self.port
            );
        };
        let authmode = if tls.require_client_cert {
            "x509/certvalid"
        } else {
            "anon"
        };
        format!(
            r#"global(DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile="{ca}"
       DefaultNetstreamDriverCertFile="{crt}" DefaultNetstreamDriverKeyFile="{key}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.Authmode="{authmode}")
input(type="imtcp" address="127.0.0.1" port="{port}")
"#,
            ca = tls.client_ca.display(),
            crt = tls.crt.display(),
            key = tls.key.display(),
            port = self.port,
        )
    }

    pub fn received_path(&self) -> PathBuf {
        self.dir.join("received.log")
    }

    pub fn start(&mut self) {
        let conf = self.dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{dir}" maxMessageSize="1m")
{input}template(name="msgonly" type="string" string="%msg%\n")
action(type="omfile" file="{received}" template="msgonly")
"#,
                dir = self.dir.display(),
                input = self.input(),
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

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }

    /// The alerts in the received file, in arrival order (duplicates included).
    pub fn alerts(&self) -> Vec<Value> {
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
pub struct HttpReceiver {
    pub port: u16,
    posts: Posts,
    running: Option<(
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    )>,
}

impl HttpReceiver {
    pub fn new() -> HttpReceiver {
        HttpReceiver {
            port: free_port(),
            posts: Arc::default(),
            running: None,
        }
    }

    pub fn start(&mut self) {
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

    pub fn stop(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            let _ = stop.send(());
            thread.join().expect("HTTP receiver thread");
        }
    }

    /// Alerts posted to `path`, in arrival order; `_bulk` action lines are checked and skipped.
    pub fn alerts(&self, path: &str) -> Vec<Value> {
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

impl Default for HttpReceiver {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn read_ndjson(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line ({e}): {l}")))
        .collect()
}

/// event.id of each alert, first occurrences only, in order: what a de-duplicating receiver
/// keeps.
pub fn deduplicated(alerts: &[Value]) -> Vec<String> {
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
pub fn has_marker(alerts: &[Value], marker: &str) -> bool {
    alerts
        .iter()
        .any(|a| a["process"]["args"].to_string().contains(marker))
}
