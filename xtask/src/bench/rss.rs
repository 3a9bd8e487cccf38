//! Memory with many tracked processes: the live sensor while N real processes sleep, and
//! `replay` of a record holding N live processes (deterministic, no kernel).

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde::Serialize;

use super::{
    build::Binaries,
    monitor::{self, MonitorKind},
    proc_stat, replay,
};

#[derive(Debug, Clone, Serialize)]
pub struct RssResult {
    pub processes: usize,
    /// The sensor's table size once all were running (its processes_tracked gauge).
    pub live_tracked: Option<u64>,
    pub live_idle_rss_kib: Option<u64>,
    pub live_peak_rss_kib: Option<u64>,
    pub replay_empty_peak_rss_kib: u64,
    pub replay_peak_rss_kib: u64,
}

impl RssResult {
    pub fn markdown(&self) -> String {
        let mb =
            |k: Option<u64>| k.map_or("n/a".into(), |k| format!("{:.1} MB", k as f64 / 1024.0));
        format!(
            "| | peak RSS |\n|---|---|\n\
             | `lineage-sensor run`, idle, before the processes | {} |\n\
             | `lineage-sensor run` with {} sleeping processes (table: {} entries) | **{}** |\n\
             | `lineage-sensor replay`, empty record | {} |\n\
             | `lineage-sensor replay`, record with {} live processes | {} |",
            mb(self.live_idle_rss_kib),
            self.processes,
            self.live_tracked.map_or("n/a".into(), |t| t.to_string()),
            mb(self.live_peak_rss_kib),
            mb(Some(self.replay_empty_peak_rss_kib)),
            self.processes,
            mb(Some(self.replay_peak_rss_kib)),
        )
    }
}

pub fn measure(bins: &Binaries, processes: usize) -> anyhow::Result<RssResult> {
    eprintln!("bench: RSS with {processes} tracked processes");
    let dir = tempfile::Builder::new()
        .prefix("lineage-bench-rss-")
        .tempdir()?;
    let empty = dir.path().join("empty.ndjson");
    replay::write_live(&empty, 0)?;
    let full = dir.path().join("live.ndjson");
    replay::write_live(&full, processes)?;
    let replay_empty = replay::run_replay(&bins.sensor, &empty, dir.path())?;
    let replay_full = replay::run_replay(&bins.sensor, &full, dir.path())?;

    let sensor = monitor::start(MonitorKind::Sensor, bins)?;
    let pid = sensor.pid().context("sensor pid")?;
    std::thread::sleep(Duration::from_millis(500));
    proc_stat::reset_peak_rss(pid);
    let idle = proc_stat::status_kib(pid, "VmHWM");
    let before = sensor.metrics().map_or(0, |m| m.processes);

    let mut holder = Command::new(&bins.workload)
        .args(["hold", &processes.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting workload hold")?;
    let stdout = holder.stdout.take().context("holder stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    if !line.starts_with("held=") {
        let _ = holder.kill();
        let _ = holder.wait();
        bail!("workload hold did not hold its processes: {line:?}");
    }
    // The sensor sees the forks through the ring buffer: wait until its table has them.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut tracked = None;
    while Instant::now() < deadline {
        tracked = sensor.metrics().map(|m| m.processes);
        if tracked.is_some_and(|t| t >= before + processes as u64) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let peak = proc_stat::status_kib(pid, "VmHWM");
    // Closing stdin ends the holder and its children.
    drop(holder.stdin.take());
    let _ = holder.wait();
    drop(sensor);
    Ok(RssResult {
        processes,
        live_tracked: tracked,
        live_idle_rss_kib: idle,
        live_peak_rss_kib: peak,
        replay_empty_peak_rss_kib: replay_empty.peak_rss_kib,
        replay_peak_rss_kib: replay_full.peak_rss_kib,
    })
}
