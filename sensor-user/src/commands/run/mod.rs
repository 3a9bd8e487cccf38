//! `lineage-sensor run`: live detection, a pipeline of stages, each a type with one job:
//!
//! ```text
//! Capture (kernel: capture, decode) -> Detector (lineage, rules, gate: the engine)
//!     -> Enricher (evidence, file hashes, off the loop) -> Sinks (delivery)
//! ```
//!
//! with the metrics endpoint on the side. SIGHUP reloads the config file without detaching the
//! programs (see [`reload`]).

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use crate::{
    alert::Alert,
    config::{Config, ConfigError},
    detect::{DetectError, Engine, EngineTotals, HostInfo},
    enrich::Enricher,
    event::Event,
    kernel::{Capture, CaptureError},
    metrics::{
        Metrics, MetricsError,
        endpoint::{self, Endpoint, EndpointError},
    },
    sink::{SinkError, Sinks},
};

mod baseline_state;
pub(super) mod containers;
mod detector;
mod holds;
mod reload;
mod state_files;

use detector::Detector;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Not transparent: main.rs finds the ConfigError in the chain and exits with 2.
    #[error("refusing to start")]
    UnsafeState(#[source] ConfigError),
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Detect(#[from] DetectError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error(transparent)]
    Privileges(#[from] crate::privileges::MissingCapability),
    #[error("watching for SIGHUP: {0}")]
    Signal(std::io::Error),
    #[error("reading the ring buffer: {0}")]
    Read(#[from] std::io::Error),
}

/// Where the config came from and what the command line overrides.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Reloaded on SIGHUP; without it, SIGHUP only reopens files.
    pub config_path: Option<PathBuf>,
    /// `--metrics-listen`: wins over `metrics.listen`, also after a reload.
    pub metrics_listen: Option<SocketAddr>,
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

/// How often execution prevention's heartbeat is written (the kernel holds while it is under
/// 500 ms old) and held processes past `prevention.hold_timeout_ms` are continued.
const HEARTBEAT: Duration = Duration::from_millis(100);

/// Execution prevention's tick: alive, and nothing held longer than the timeout.
fn beat(capture: &mut Capture, metrics: &Metrics) {
    if let Some(holds) = capture.holds() {
        holds.beat();
        for _ in 0..holds.expire() {
            metrics.prevention.exec("hold-timeout", "released");
            metrics.prevention.hold("timed_out");
        }
    }
}

/// What `run` reports as this host: the engine's clock and alerts' `host.hostname`.
pub fn host() -> HostInfo {
    HostInfo {
        hostname: crate::clock::hostname(),
        boot_wall_ns: crate::clock::boot_wall_ns(),
    }
}

/// Detects with `engine` (built from `config`, see [`super::build_engine`]) until `stop`
/// resolves, then detaches, drains, saves state and reports.
pub async fn run(
    config: &Config,
    engine: Engine,
    options: &RunOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<RunTotals, RunError> {
    crate::privileges::check_run(&config.effective_capture())?;
    crate::privileges::check_prevention(&config.prevention)?;
    state_files::check_locations(config).map_err(RunError::UnsafeState)?;
    let mut config = config.clone();
    let metrics = Arc::new(Metrics::new()?);
    // Bound before the slow start-up so that liveness probes answer (and readiness says no).
    let mut endpoint = start_endpoint(&config, options, &metrics).await?;
    let mut detector = Detector::new(engine, &config, &metrics)?;
    let mut enricher = Enricher::new(&config, metrics.clone());
    let mut sinks = Sinks::start(&config.output, metrics.clone())?;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(RunError::Signal)?;
    // Attach first, then read /proc: a process started in between is then in the ring buffer
    // rather than missed.
    let prevent = crate::kernel::prevent::PreventPlan::from_config(&config)
        .map_err(crate::kernel::CaptureError::from)?;
    prevent.log();
    let mut capture =
        Capture::start_with(&config.effective_capture(), Some(&prevent), metrics.clone())?;
    detector.seed(&config, &mut capture);
    detector.restore_incidents(&config);
    metrics.set_ready(true);
    log::info!("ready: programs attached, detecting");

    let mut batch: Vec<Event> = Vec::new();
    let mut alerts: Vec<Alert> = Vec::new();
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
    let mut heartbeat = tokio::time::interval(if capture.holds().is_some() {
        HEARTBEAT
    } else {
        HOUSEKEEPING
    });
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            read = capture.next_batch(&mut batch) => {
                read?;
                detector.process(&mut batch, &config, &mut alerts, capture.holds());
                detector.hand_over_server_pids(&mut capture);
                deliver(&mut alerts, &mut enricher, &sinks)?;
            }
            Some(line) = enricher.next_ready() => sinks.send_line(line),
            _ = hangup.recv() => {
                let stages = reload::Stages {
                    detector: &mut detector,
                    enricher: &mut enricher,
                    sinks: &mut sinks,
                    endpoint: &mut endpoint,
                    capture: &mut capture,
                };
                reload::reload(&mut config, options, stages, &metrics).await;
            }
            _ = heartbeat.tick() => beat(&mut capture, &metrics),
            _ = housekeeping.tick() => {
                capture.warn_lost();
                capture.sync_map_sizes();
                capture.refresh_file_marks();
                detector.housekeeping(&config);
            }
        }
    }

    metrics.set_ready(false);
    // Alerts waiting for their hash are hashed now: shutdown waits for no delay, and for no
    // file longer than enrich::HASH_DEADLINE.
    enricher.hurry();
    // What is still in the ring goes through the same stages (no server pids handed over: the
    // programs are detached).
    capture
        .detach_and_drain(&mut batch, |batch, holds| {
            detector.process(batch, &config, &mut alerts, holds);
            deliver(&mut alerts, &mut enricher, &sinks)
        })
        .await?;
    // Alerts waiting for their file hash are still delivered.
    enricher.finish(|line| sinks.send_line(line)).await;
    // Joining the delivery threads blocks: off the runtime's thread.
    let _ = tokio::task::spawn_blocking(move || sinks.stop()).await;
    drop(endpoint);
    Ok(RunTotals {
        engine: detector.finish(&config)?,
        lost: capture.sync_lost(),
    })
}

/// The detector's alerts through the enrich stage to the sinks (those that must wait for
/// enrichment come back through [`Enricher::next_ready`]).
fn deliver(
    alerts: &mut Vec<Alert>,
    enricher: &mut Enricher,
    sinks: &Sinks,
) -> Result<(), RunError> {
    for alert in alerts.drain(..) {
        if let Some(alert) = enricher.enrich(alert) {
            sinks.send(&alert)?;
        }
    }
    Ok(())
}

async fn start_endpoint(
    config: &Config,
    options: &RunOptions,
    metrics: &Arc<Metrics>,
) -> Result<Option<Endpoint>, EndpointError> {
    if !config.metrics.enabled {
        return Ok(None);
    }
    let addr = options.metrics_listen.unwrap_or(config.metrics.listen);
    Ok(Some(endpoint::start(addr, metrics.clone()).await?))
}
