//! Exec-to-alert latency: a program copied under a server's name spawns shells, one at a time;
//! each alert's `@timestamp` (the kernel's event time) is compared with the wall clock at the
//! moment its line appeared in the sensor's alert file.

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
    report::quantile,
};

/// How often the alert file is polled: the measurement's resolution.
const POLL: Duration = Duration::from_millis(1);
/// Pause between shells, so each alert is timed alone rather than queued behind others.
const PACE: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Serialize)]
pub struct LatencyResult {
    pub shells: usize,
    pub alerts: usize,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl LatencyResult {
    pub fn markdown(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.2} ms"));
        format!(
            "A copy of the workload binary named `nginx` ran `sh -c /bin/true` {} times, {} ms apart; \
             the sensor wrote {} `server-spawned-shell` alerts to its file sink (spooled and fsynced \
             first, as in production). From the kernel's exec time (`@timestamp`) to the line being \
             in the file (polled every {} ms): p50 {}, p99 {}, max {}.",
            self.shells,
            PACE.as_millis(),
            self.alerts,
            POLL.as_millis(),
            ms(self.p50_ms),
            ms(self.p99_ms),
            ms(self.max_ms)
        )
    }
}

pub fn measure(bins: &Binaries, shells: usize) -> anyhow::Result<LatencyResult> {
    eprintln!("bench: exec-to-alert latency ({shells} shells)");
    let sensor = monitor::start_with(
        MonitorKind::Sensor,
        bins,
        // Every shell must alert: identical alerts would otherwise be held back for a minute.
        &SensorConfig {
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
    for _ in 0..shells {
        let status = Command::new(&server)
            .args(["shell", "/bin/true"])
            .stdout(Stdio::null())
            .status()
            .context("running the fake server")?;
        anyhow::ensure!(status.success(), "the fake server failed: {status}");
        std::thread::sleep(PACE);
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
