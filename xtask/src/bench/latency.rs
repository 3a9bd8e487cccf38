//! Exec-to-alert latency: a program copied under a server's name spawns shells, one at a time;
//! each alert's `@timestamp` (the kernel's event time) is compared with the wall clock at the
//! moment its line appeared in the sensor's alert file. Measured for a server that is already
//! running (the kernel knows it is in a server tree, so the shell's exec wakes the sensor at
//! once) and for one started together with its shell (not yet known: the exec is read on the
//! next flush tick).

use std::{
    io::{Read as _, Seek as _, SeekFrom},
    path::PathBuf,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use serde::Serialize;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{
    build::Binaries,
    monitor::{self, MonitorKind, SensorConfig},
    stats::quantile,
};

/// How often the alert file is polled: the measurement's resolution.
const POLL: Duration = Duration::from_millis(1);
/// Pause between shells, so each alert is timed alone rather than queued behind others.
const PACE: Duration = Duration::from_millis(20);

/// How the fake server relates to its shells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// One long-lived server spawns every shell, as a web server serving a web shell does.
    Running,
    /// A new server per shell, which spawns it at once.
    JustStarted,
}

impl Server {
    pub const ALL: [Server; 2] = [Server::Running, Server::JustStarted];

    fn label(self) -> &'static str {
        match self {
            Server::Running => "running",
            Server::JustStarted => "started with the shell",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyResult {
    pub server: &'static str,
    /// The file sink's setup: spooled (the default: appended and fsynced before delivery) or not.
    pub sink: &'static str,
    pub shells: usize,
    pub alerts: usize,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub over_20ms: usize,
}

impl LatencyResult {
    pub fn markdown_intro() -> String {
        format!(
            "A copy of the workload binary named `nginx` runs `sh -c /bin/true`, one every {} ms; \
             each `server-spawned-shell` alert is timed from the kernel's exec time (`@timestamp`) \
             to its line being in the sensor's alert file (polled every {} ms). *running*: one \
             long-lived server spawns every shell (the kernel already has it in its server tree, \
             so the shell's exec wakes the sensor); *started with the shell*: a new server per \
             shell, spawning it at once (not yet known to the kernel: read on the next flush \
             tick, `capture.flush_interval_ms`).\n\n\
             | server | file sink | shells | alerts | p50 | p99 | max | over 20 ms |\n|---|---|---|---|---|---|---|---|",
            PACE.as_millis(),
            POLL.as_millis()
        )
    }

    pub fn markdown_row(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.2} ms"));
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            self.server,
            self.sink,
            self.shells,
            self.alerts,
            ms(self.p50_ms),
            ms(self.p99_ms),
            ms(self.max_ms),
            self.over_20ms
        )
    }
}

/// The file sink as configured by default (spool on) and without its spool, which tells the
/// fsync's share of the latency apart.
pub const SINKS: [(&str, &str); 2] = [
    ("spooled (default)", ""),
    ("no spool", "spool_max_bytes = 0\n"),
];

pub fn measure(
    bins: &Binaries,
    shells: usize,
    (sink, sink_extra): (&'static str, &str),
    start: Server,
) -> anyhow::Result<LatencyResult> {
    eprintln!(
        "bench: exec-to-alert latency ({shells} shells, server {}, {sink} file sink)",
        start.label()
    );
    let sensor = monitor::start_with(
        MonitorKind::Sensor,
        bins,
        &SensorConfig {
            sink_extra,
            // Every shell must alert: identical alerts would otherwise be held back for a minute.
            extra: "[rate_limit]\nwindow_secs = 0\n",
        },
    )?;
    let server = sensor.dir().join("nginx");
    std::fs::copy(&bins.workload, &server).context("copying the workload as nginx")?;

    let stop = Arc::new(AtomicBool::new(false));
    let tail = {
        let path = sensor.alerts_path();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || tail_lines(path, &stop))
    };
    match start {
        Server::Running => {
            let (count, gap) = (shells.to_string(), PACE.as_millis().to_string());
            // The pause lets the sensor read the server's exec (a flush tick) before the shells.
            let status = Command::new(&server)
                .args(["paced", "500", &count, &gap, "/bin/sh", "-c", "/bin/true"])
                .stdout(Stdio::null())
                .status()
                .context("running the fake server")?;
            anyhow::ensure!(status.success(), "the fake server failed: {status}");
        }
        Server::JustStarted => {
            for _ in 0..shells {
                let status = Command::new(&server)
                    .args(["shell", "/bin/true"])
                    .stdout(Stdio::null())
                    .status()
                    .context("running the fake server")?;
                anyhow::ensure!(status.success(), "the fake server failed: {status}");
                std::thread::sleep(PACE);
            }
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let lines = tail
        .join()
        .map_err(|_| anyhow::anyhow!("the tail thread panicked"))?;
    drop(sensor);

    let mut latencies: Vec<f64> = lines
        .iter()
        .filter_map(|(seen_ns, line)| {
            let alert: serde_json::Value = serde_json::from_str(line).ok()?;
            if alert["rule"]["id"] != "server-spawned-shell" {
                return None;
            }
            let at = OffsetDateTime::parse(alert["@timestamp"].as_str()?, &Rfc3339).ok()?;
            Some((*seen_ns as i128 - at.unix_timestamp_nanos()) as f64 / 1e6)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    Ok(LatencyResult {
        server: start.label(),
        sink,
        over_20ms: latencies.iter().filter(|&&l| l > 20.0).count(),
        shells,
        alerts: latencies.len(),
        p50_ms: quantile(&latencies, 0.5),
        p99_ms: quantile(&latencies, 0.99),
        max_ms: latencies.last().copied(),
    })
}

/// Complete lines appended to `path`, each with the wall clock (ns) when it was first seen.
fn tail_lines(path: PathBuf, stop: &AtomicBool) -> Vec<(u64, String)> {
    let mut seen = Vec::new();
    let mut pending = Vec::new();
    let mut offset = 0;
    let mut buf = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        if let Ok(mut file) = std::fs::File::open(&path)
            && file.seek(SeekFrom::Start(offset)).is_ok()
        {
            buf.clear();
            if let Ok(n) = file.read_to_end(&mut buf) {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                offset += n as u64;
                pending.extend_from_slice(&buf);
                while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    seen.push((now, String::from_utf8_lossy(&line).trim().to_owned()));
                }
            }
        }
        std::thread::sleep(POLL.saturating_sub(started.elapsed()));
    }
    seen
}
