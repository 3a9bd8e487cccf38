//! Harness for the privileged tests: the real programs loaded in-process, their events collected
//! on a background thread until the test asks for them.

use std::{
    sync::{Arc, mpsc},
    thread::JoinHandle,
    time::Duration,
};

use lineage_sensor::{
    config::CaptureConfig,
    event::{Event, EventKind},
    kernel::{Capture, connect_entry::ConnectEntry},
    metrics::Metrics,
};

/// How long the ring must stay empty, after detaching, before collection ends.
const DRAIN_QUIET: Duration = Duration::from_millis(200);

/// What a session saw.
pub struct Collected {
    pub events: Vec<Event>,
    /// Events the kernel could not hand over, as the `events_lost_total` metric reports them.
    pub lost: u64,
    pub metrics: Arc<Metrics>,
    /// How connect() entry was observed.
    pub connect_entry: ConnectEntry,
}

impl Collected {
    pub fn lost_metric(&self) -> u64 {
        EventKind::ALL.iter().map(|&k| self.metrics.lost(k)).sum()
    }
}

/// The sensor's capture running on a thread of its own.
pub struct TestSensor {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: JoinHandle<Result<Collected, String>>,
}

impl TestSensor {
    /// Loads and attaches the programs; returns once they are attached.
    pub fn start(config: CaptureConfig) -> Result<TestSensor, String> {
        Self::start_with(config, Reading::Live)
    }

    /// Like [`Self::start`], but nothing is read from the ring until [`Self::stop`]: a stalled
    /// consumer, to fill the ring on purpose.
    pub fn start_stalled(config: CaptureConfig) -> Result<TestSensor, String> {
        Self::start_with(config, Reading::AtStop)
    }

    fn start_with(config: CaptureConfig, reading: Reading) -> Result<TestSensor, String> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(collect(config, reading, ready_tx, stop_rx))
        });
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(TestSensor {
                stop: stop_tx,
                thread,
            }),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(match thread.join() {
                Ok(Err(err)) => err,
                _ => "sensor thread ended before attaching".into(),
            }),
        }
    }

    /// Detaches, drains what is left in the ring and returns everything seen.
    pub fn stop(self) -> Result<Collected, String> {
        let _ = self.stop.send(());
        self.thread
            .join()
            .map_err(|_| "sensor thread panicked".to_string())?
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    Live,
    AtStop,
}

async fn collect(
    config: CaptureConfig,
    reading: Reading,
    ready: mpsc::Sender<Result<(), String>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<Collected, String> {
    let metrics = Arc::new(Metrics::new().map_err(|e| e.to_string())?);
    let mut capture = match Capture::start(&config, metrics.clone()) {
        Ok(capture) => capture,
        Err(err) => {
            let msg = format!("{err}");
            let _ = ready.send(Err(msg.clone()));
            return Err(msg);
        }
    };
    let _ = ready.send(Ok(()));
    let mut events = Vec::new();
    match reading {
        Reading::AtStop => {
            let _ = (&mut stop).await;
        }
        Reading::Live => loop {
            tokio::select! {
                _ = &mut stop => break,
                read = capture.next_batch(&mut events) => read.map_err(|e| e.to_string())?,
            }
        },
    }
    capture.detach();
    while let Ok(read) = tokio::time::timeout(DRAIN_QUIET, capture.next_batch(&mut events)).await {
        read.map_err(|e| e.to_string())?;
    }
    let lost = capture.sync_lost();
    Ok(Collected {
        events,
        lost,
        metrics,
        connect_entry: capture.connect_entry().clone(),
    })
}

/// Runs `f` with the sensor attached, and returns what it saw with `f`'s result.
pub fn with_sensor<T>(
    config: CaptureConfig,
    f: impl FnOnce() -> T,
) -> Result<(Collected, T), String> {
    let sensor = TestSensor::start(config)?;
    let value = f();
    Ok((sensor.stop()?, value))
}

/// Fails clearly when the tests are not run as root (they load eBPF programs).
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the integration tests load eBPF programs and must run as root: use `cargo xtask test`"
    );
}

pub fn execs(events: &[Event]) -> impl Iterator<Item = &lineage_sensor::event::Exec> {
    events.iter().filter_map(|e| match e {
        Event::Exec(x) => Some(x),
        _ => None,
    })
}

pub fn forks(events: &[Event]) -> impl Iterator<Item = &lineage_sensor::event::Fork> {
    events.iter().filter_map(|e| match e {
        Event::Fork(x) => Some(x),
        _ => None,
    })
}

pub fn exits(events: &[Event]) -> impl Iterator<Item = &lineage_sensor::event::Exit> {
    events.iter().filter_map(|e| match e {
        Event::Exit(x) => Some(x),
        _ => None,
    })
}

pub fn files(events: &[Event]) -> impl Iterator<Item = &lineage_sensor::event::File> {
    events.iter().filter_map(|e| match e {
        Event::File(x) => Some(x),
        _ => None,
    })
}

pub fn connects(events: &[Event]) -> impl Iterator<Item = &lineage_sensor::event::Connect> {
    events.iter().filter_map(|e| match e {
        Event::Connect(x) => Some(x),
        _ => None,
    })
}

/// The `lineage-sensor` binary of this build: `LINEAGE_SENSOR_BIN`, or the one next to the test
/// executable's `deps/` directory (`cargo xtask test` builds it before the tests).
pub fn sensor_binary() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("LINEAGE_SENSOR_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("test executable is in target/<profile>/deps");
    let binary = profile_dir.join("lineage-sensor");
    assert!(
        binary.exists(),
        "{} not built: run `cargo build -p sensor-user` first (cargo xtask test does)",
        binary.display()
    );
    binary
}

/// A private temporary directory named after `prefix`, removed when dropped.
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
}

/// The value of one series in a metrics text, e.g. `lineage_sensor_sink_sent_total{sink="x"}`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A free loopback port for a sensor's metrics endpoint.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// The real `lineage-sensor run` as a child process: stdout lines (alerts) and stderr lines (log)
/// collected on threads of their own. Killed on drop, so a failing test leaves nothing behind.
pub struct RunningSensor {
    pub child: Option<std::process::Child>,
    pub alerts: mpsc::Receiver<String>,
    pub log: mpsc::Receiver<String>,
    pub log_seen: Vec<String>,
    pub metrics_port: u16,
}

impl RunningSensor {
    /// Starts `run --config CONFIG --metrics-listen 127.0.0.1:<free port>` and waits (up to a
    /// minute) for "ready".
    pub fn start(config: &std::path::Path) -> RunningSensor {
        use std::io::BufRead as _;
        let metrics_port = free_port();
        let mut child = std::process::Command::new(sensor_binary())
            .args(["run", "--config"])
            .arg(config)
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start lineage-sensor run");
        let (alert_tx, alerts) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = alert_tx.send(line);
            }
        });
        let (log_tx, log) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = log_tx.send(line);
            }
        });
        let mut sensor = RunningSensor {
            child: Some(child),
            alerts,
            log,
            log_seen: Vec::new(),
            metrics_port,
        };
        let ready = sensor.wait_log(Duration::from_secs(60), |l| l.contains("ready"));
        assert!(ready, "sensor never became ready: {:#?}", sensor.log_seen);
        sensor
    }

    /// Whether a log line matching `want` arrives within `within` (lines seen are kept).
    pub fn wait_log(&mut self, within: Duration, want: impl Fn(&str) -> bool) -> bool {
        if self.log_seen.iter().any(|l| want(l)) {
            return true;
        }
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    let hit = want(&line);
                    self.log_seen.push(line);
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    /// Every stdout line until one matches `want` or `within` passes; the match, if any, is the
    /// last line returned.
    pub fn lines_until(
        &self,
        within: Duration,
        want: impl Fn(&str) -> bool,
    ) -> (bool, Vec<String>) {
        let deadline = std::time::Instant::now() + within;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.alerts.recv_timeout(left) {
                Ok(line) => {
                    let hit = want(&line);
                    lines.push(line);
                    if hit {
                        return (true, lines);
                    }
                }
                Err(_) => return (false, lines),
            }
        }
    }

    /// The first alert matching `want` that arrives within `within`, and the alerts before it.
    /// Every stdout line must be a JSON object.
    pub fn alert_until(
        &self,
        within: Duration,
        want: impl Fn(&serde_json::Value) -> bool,
    ) -> (Option<serde_json::Value>, Vec<serde_json::Value>) {
        let deadline = std::time::Instant::now() + within;
        let mut others = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(line) = self.alerts.recv_timeout(left) else {
                return (None, others);
            };
            let alert: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
            if want(&alert) {
                return (Some(alert), others);
            }
            others.push(alert);
        }
    }

    /// GET of a path on the metrics endpoint: status and body.
    pub fn http_get(&self, path: &str) -> Result<(u16, String), String> {
        use std::io::{Read as _, Write as _};
        let mut stream =
            std::net::TcpStream::connect((std::net::Ipv4Addr::LOCALHOST, self.metrics_port))
                .map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .map_err(|e| e.to_string())?;
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status line in {response:?}"))?;
        let body = response
            .split_once("\r\n\r\n")
            .map_or(String::new(), |(_, b)| b.to_owned());
        Ok((status, body))
    }

    /// SIGTERM, then the exit status and the rest of the log.
    pub fn stop(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let mut child = self.child.take().expect("child present until stopped");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().expect("wait for sensor");
        let mut log = std::mem::take(&mut self.log_seen);
        log.extend(self.log.try_iter());
        (status, log)
    }

    /// SIGKILL: no drain, no shutdown, as an OOM killer or a hostile root would do it.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RunningSensor {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
