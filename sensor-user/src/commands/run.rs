//! `lineage-sensor run`: live detection. Kernel events go through the same engine as `replay`;
//! alerts are written to stdout as NDJSON.

use std::{
    io::{BufWriter, Write},
    sync::Arc,
    time::Duration,
};

use crate::{
    alert::Alert,
    config::Config,
    detect::{DetectError, Engine, EngineTotals, HostInfo},
    event::Event,
    kernel::{Capture, CaptureError},
    lineage::{CgroupIndex, clock_ticks_per_sec, read_proc},
    metrics::{Metrics, MetricsError},
};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Detect(#[from] DetectError),
    #[error("writing alerts: {0}")]
    Write(#[from] std::io::Error),
    #[error("serialising an alert: {0}")]
    Serialise(#[from] serde_json::Error),
}

/// What a session did, reported at shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunTotals {
    pub engine: EngineTotals,
    pub lost: u64,
}

impl std::fmt::Display for RunTotals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}; events lost in the kernel: {}",
            self.engine, self.lost
        )
    }
}

/// How often lost counters are read, the cgroup index refreshed and learned state saved.
const HOUSEKEEPING: Duration = Duration::from_secs(10);
/// At shutdown, the ring is drained until it stays empty this long.
const DRAIN_QUIET: Duration = Duration::from_millis(100);

/// Detects until `stop` resolves, then detaches, drains, saves state and reports.
pub async fn run(
    config: &Config,
    out: impl Write,
    stop: impl std::future::Future<Output = ()>,
) -> Result<RunTotals, RunError> {
    let metrics = Arc::new(Metrics::new()?);
    let mut engine = Engine::new(
        config,
        HostInfo {
            hostname: crate::clock::hostname(),
            boot_wall_ns: crate::clock::boot_wall_ns(),
        },
    )?
    .with_metrics(metrics.clone());
    let state_file = config.rules.server_outbound_unknown.state_file.clone();
    if let Some(path) = &state_file {
        engine.load_learned(path)?;
    }
    // Attach first, then read /proc: a process started in between is then in the ring buffer
    // rather than missed.
    let mut capture = Capture::start(&config.capture, metrics.clone())?;
    if config.lineage.cgroup_root.exists() {
        engine.set_containers(CgroupIndex::scan(&config.lineage.cgroup_root));
    }
    if config.lineage.seed_from_proc {
        match read_proc(&config.lineage.proc_root, clock_ticks_per_sec()) {
            Ok(procs) => {
                log::info!(
                    "seeded {} processes from {}",
                    procs.len(),
                    config.lineage.proc_root.display()
                );
                engine.seed(procs);
            }
            Err(err) => log::warn!("not seeded from /proc: {err}"),
        }
    }
    log::info!("ready: programs attached, detecting");

    let mut out = BufWriter::with_capacity(1 << 16, out);
    let mut batch: Vec<Event> = Vec::new();
    let mut alerts: Vec<Alert> = Vec::new();
    let mut line = Vec::with_capacity(4096);
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
    let mut lost_seen = 0;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            read = capture.next_batch(&mut batch) => {
                read?;
                handle(&mut engine, &mut batch, &mut alerts, &mut line, &mut out)?;
            }
            _ = housekeeping.tick() => {
                let lost = capture.sync_lost();
                if lost > lost_seen {
                    log::warn!("{} events lost in the kernel (ring buffer full); {lost} in total", lost - lost_seen);
                    lost_seen = lost;
                }
                if config.lineage.cgroup_root.exists() {
                    engine.set_containers(CgroupIndex::scan(&config.lineage.cgroup_root));
                }
                if let Some(path) = &state_file && let Err(err) = engine.save_learned(path) {
                    log::warn!("{err}");
                }
            }
        }
    }

    capture.detach();
    while let Ok(read) = tokio::time::timeout(DRAIN_QUIET, capture.next_batch(&mut batch)).await {
        read?;
        handle(&mut engine, &mut batch, &mut alerts, &mut line, &mut out)?;
    }
    out.flush()?;
    if let Some(path) = &state_file {
        engine.save_learned(path)?;
    }
    Ok(RunTotals {
        engine: engine.totals(),
        lost: capture.sync_lost(),
    })
}

fn handle(
    engine: &mut Engine,
    batch: &mut Vec<Event>,
    alerts: &mut Vec<Alert>,
    line: &mut Vec<u8>,
    out: &mut impl Write,
) -> Result<(), RunError> {
    for event in batch.drain(..) {
        engine.process(event, alerts);
    }
    if alerts.is_empty() {
        return Ok(());
    }
    for alert in alerts.drain(..) {
        line.clear();
        alert.to_line(line)?;
        out.write_all(line)?;
    }
    // Alerts are flushed per batch so a reader sees them within the batch latency.
    out.flush()?;
    Ok(())
}
