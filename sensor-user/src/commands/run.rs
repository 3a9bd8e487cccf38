//! `lineage-sensor run`: live detection. Kernel events go through the same engine as `replay`;
//! alerts go to the configured sinks (stdout by default), health and counters to the metrics
//! endpoint. SIGHUP reloads the config file without detaching the programs.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use crate::{
    alert::Alert,
    config::{Config, ConfigError},
    detect::{DetectError, Engine, EngineTotals, HostInfo},
    event::Event,
    kernel::{Capture, CaptureError},
    lineage::{CgroupIndex, clock_ticks_per_sec, read_proc},
    metrics::{Metrics, MetricsError},
    proc_facts::{ProcFacts, SHELL_DIRS, ShellCopies},
    serve::{self, ServeError},
    sink::{SinkError, Sinks},
};

mod state_files;

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
    Serve(#[from] ServeError),
    #[error(transparent)]
    Privileges(#[from] crate::privileges::MissingCapability),
    #[error("watching for SIGHUP: {0}")]
    Signal(std::io::Error),
    #[error("reading the ring buffer: {0}")]
    Read(#[from] std::io::Error),
    #[error("serialising an alert: {0}")]
    Serialise(#[from] serde_json::Error),
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

/// Detects until `stop` resolves, then detaches, drains, saves state and reports.
pub async fn run(
    config: &Config,
    options: &RunOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<RunTotals, RunError> {
    crate::privileges::check_run(&config.capture)?;
    state_files::check_locations(config).map_err(RunError::UnsafeState)?;
    let mut config = config.clone();
    let metrics = Arc::new(Metrics::new()?);
    // Bound before the slow start-up so that liveness probes answer (and readiness says no).
    let mut endpoint = start_endpoint(&config, options, &metrics).await?;
    let mut engine = new_engine(&config, &metrics)?;
    let mut sinks = Sinks::start(&config.output, metrics.clone())?;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(RunError::Signal)?;
    // Attach first, then read /proc: a process started in between is then in the ring buffer
    // rather than missed.
    let mut capture = Capture::start(&config.effective_capture(), metrics.clone())?;
    seed(&mut engine, &config);
    capture.add_to_server_tree(engine.take_server_pids());
    capture.seed_listeners(&config.lineage.proc_root);
    // After seeding: restored incidents are matched to the seeded roots.
    state_files::restore_incidents(&mut engine, &config);
    metrics.set_processes(engine.totals().processes);
    metrics.set_ready(true);
    log::info!("ready: programs attached, detecting");

    let mut batch: Vec<Event> = Vec::new();
    let mut alerts: Vec<Alert> = Vec::new();
    let mut line = Vec::with_capacity(4096);
    let (hash_tx, mut hash_rx) = tokio::sync::mpsc::unbounded_channel::<Alert>();
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
    let mut trim = crate::memory::TrimAfterShrink::default();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            read = capture.next_batch(&mut batch) => {
                read?;
                let hashing = Hashing::new(&config, &hash_tx);
                handle(&mut engine, &mut batch, &mut alerts, &mut line, &sinks, &metrics, &hashing, &config)?;
                capture.add_to_server_tree(engine.take_server_pids());
            }
            Some(alert) = hash_rx.recv() => send_alert(&alert, &mut line, &sinks)?,
            _ = hangup.recv() => {
                reload(&mut config, options, &mut engine, &mut sinks, &mut endpoint, &metrics).await;
                capture.add_to_server_tree(engine.take_server_pids());
            }
            _ = housekeeping.tick() => {
                capture.warn_lost();
                capture.sync_map_sizes();
                // A second behind now: records still in the ring are older than that.
                engine.advance_clock(crate::clock::boottime_ns().saturating_sub(1_000_000_000));
                if config.lineage.cgroup_root.exists() {
                    engine.set_containers(CgroupIndex::scan(&config.lineage.cgroup_root));
                }
                let processes = engine.totals().processes;
                metrics.set_processes(processes);
                if trim.due(processes) {
                    engine.shrink_to_fit();
                    crate::memory::give_back();
                }
                if let Some(path) = &config.rules.server_outbound_unknown.state_file
                    && let Err(err) = engine.save_learned(path)
                {
                    log::warn!("{err}");
                }
            }
        }
    }

    metrics.set_ready(false);
    capture
        .detach_and_drain(&mut batch, |batch| {
            let hashing = Hashing::new(&config, &hash_tx);
            handle(
                &mut engine,
                batch,
                &mut alerts,
                &mut line,
                &sinks,
                &metrics,
                &hashing,
                &config,
            )
        })
        .await?;
    // Alerts waiting for their file hash are still delivered: each task holds a sender, so this
    // ends when the last has finished.
    drop(hash_tx);
    while let Some(alert) = hash_rx.recv().await {
        send_alert(&alert, &mut line, &sinks)?;
    }
    // Joining the delivery threads blocks: off the runtime's thread.
    let _ = tokio::task::spawn_blocking(move || sinks.stop()).await;
    drop(endpoint);
    if let Some(path) = &config.rules.server_outbound_unknown.state_file {
        engine.save_learned(path)?;
    }
    if let Err(err) = state_files::save_incidents(&mut engine, &config) {
        log::warn!("{err}");
    }
    Ok(RunTotals {
        engine: engine.totals(),
        lost: capture.sync_lost(),
    })
}

async fn start_endpoint(
    config: &Config,
    options: &RunOptions,
    metrics: &Arc<Metrics>,
) -> Result<Option<serve::Endpoint>, ServeError> {
    if !config.metrics.enabled {
        return Ok(None);
    }
    let addr = options.metrics_listen.unwrap_or(config.metrics.listen);
    Ok(Some(serve::start(addr, metrics.clone()).await?))
}

fn new_engine(config: &Config, metrics: &Arc<Metrics>) -> Result<Engine, RunError> {
    let engine = Engine::new(
        config,
        HostInfo {
            hostname: crate::clock::hostname(),
            boot_wall_ns: crate::clock::boot_wall_ns(),
        },
    )?
    .with_metrics(metrics.clone())
    .with_server_pids();
    let shells = ShellCopies::scan(SHELL_DIRS, |path| engine.is_shell_file(path));
    log::debug!(
        "{} shell files hashed to recognise copies under other names",
        shells.len()
    );
    let mut engine = engine.with_host_facts(Box::new(ProcFacts::new(
        config.lineage.proc_root.clone(),
        shells,
    )));
    if let Some(path) = &config.rules.server_outbound_unknown.state_file {
        engine.load_learned(path)?;
    }
    Ok(engine)
}

/// Containers and running processes, read after the programs are attached.
fn seed(engine: &mut Engine, config: &Config) {
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
}

/// SIGHUP. Events meanwhile wait in the ring buffer: the programs stay attached throughout.
/// A config that does not load is refused and the running one kept.
async fn reload(
    config: &mut Config,
    options: &RunOptions,
    engine: &mut Engine,
    sinks: &mut Sinks,
    endpoint: &mut Option<serve::Endpoint>,
    metrics: &Arc<Metrics>,
) {
    let Some(path) = &options.config_path else {
        log::info!("SIGHUP: no --config file; reopening sink files only");
        if let Err(err) = sinks.reload(&config.output) {
            log::error!("SIGHUP: {err}");
        }
        return;
    };
    match reload_from(path, config, options, engine, sinks, endpoint, metrics).await {
        Ok(()) => log::info!("SIGHUP: reloaded {}", path.display()),
        Err(err) => {
            log::error!("SIGHUP: {err}; configuration not reloaded, the running one stays in force")
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Run(#[from] RunError),
}

async fn reload_from(
    path: &Path,
    config: &mut Config,
    options: &RunOptions,
    engine: &mut Engine,
    sinks: &mut Sinks,
    endpoint: &mut Option<serve::Endpoint>,
    metrics: &Arc<Metrics>,
) -> Result<(), ReloadError> {
    let new = Config::load(path)?;
    state_files::check_locations(&new)?;
    if new.effective_capture() != config.effective_capture() {
        log::warn!("SIGHUP: [capture] changes take effect at the next start");
    }
    let detection_changed = new.lineage != config.lineage
        || new.detect != config.detect
        || new.rules != config.rules
        || new.incidents != config.incidents
        || new.rate_limit != config.rate_limit;
    // Everything fallible first, so that a failure leaves the running state untouched.
    let new_engine = if detection_changed {
        if let Some(path) = &config.rules.server_outbound_unknown.state_file
            && let Err(err) = engine.save_learned(path)
        {
            log::warn!("{err}");
        }
        Some(new_engine(&new, metrics)?)
    } else {
        None
    };
    if new.metrics != config.metrics {
        // The old listener is closed first: the new address may be the same port.
        *endpoint = None;
        match start_endpoint(&new, options, metrics).await {
            Ok(started) => *endpoint = started,
            Err(err) => {
                *endpoint = start_endpoint(config, options, metrics)
                    .await
                    .map_err(RunError::from)?;
                return Err(RunError::from(err).into());
            }
        }
    }
    sinks.reload(&new.output).map_err(RunError::from)?;
    if let Some(mut fresh) = new_engine {
        // The new rules start from the running processes; the exit grace of processes that
        // already ended starts afresh. Open incidents carry over, as across a restart.
        seed(&mut fresh, &new);
        fresh.restore_incidents(engine.incidents_snapshot());
        *engine = fresh;
        log::info!("SIGHUP: detection rules replaced");
    }
    *config = new;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn handle(
    engine: &mut Engine,
    batch: &mut Vec<Event>,
    alerts: &mut Vec<Alert>,
    line: &mut Vec<u8>,
    sinks: &Sinks,
    metrics: &Metrics,
    hashing: &Hashing<'_>,
    config: &Config,
) -> Result<(), RunError> {
    for event in batch.drain(..) {
        let ts_ns = event.ts_ns();
        let before = alerts.len();
        engine.process(event, alerts);
        if alerts.len() > before {
            let now = crate::clock::boottime_ns();
            let latency = now.saturating_sub(ts_ns) as f64 / 1e9;
            for _ in before..alerts.len() {
                metrics.alert_latency(latency);
            }
        }
    }
    // Before the alerts leave: once an alert is out, a SIGKILL must not lose its incident.
    if let Err(err) = state_files::save_incidents(engine, config) {
        log::warn!("{err}");
    }
    for alert in alerts.drain(..) {
        if hashing.max_bytes > 0 && alert.file.is_some() {
            hashing.later(alert);
        } else {
            send_alert(&alert, line, sinks)?;
        }
    }
    Ok(())
}

fn send_alert(alert: &Alert, line: &mut Vec<u8>, sinks: &Sinks) -> Result<(), RunError> {
    line.clear();
    alert.to_line(line)?;
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    sinks.send(Arc::from(&line[..]));
    Ok(())
}

/// `file.hash.sha256` for alerts naming a file. The engine does no I/O (replay stays
/// deterministic), so `run` adds the hash here, off the event loop: a task waits `hash_delay_ms`
/// for the writer to finish (the kernel side does not see close(), so this is the content
/// shortly after the write), hashes on the blocking pool and hands the alert back to the loop.
struct Hashing<'a> {
    tx: &'a tokio::sync::mpsc::UnboundedSender<Alert>,
    max_bytes: u64,
    delay: Duration,
}

impl<'a> Hashing<'a> {
    fn new(config: &Config, tx: &'a tokio::sync::mpsc::UnboundedSender<Alert>) -> Self {
        let rule = &config.rules.webroot_script_write;
        Self {
            tx,
            max_bytes: rule.hash_max_bytes,
            delay: Duration::from_millis(rule.hash_delay_ms),
        }
    }

    fn later(&self, mut alert: Alert) {
        let tx = self.tx.clone();
        let (max_bytes, delay) = (self.max_bytes, self.delay);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(file) = alert.file.as_mut() {
                let path = file.path.clone();
                let hash = tokio::task::spawn_blocking(move || sha256_file(&path, max_bytes))
                    .await
                    .ok()
                    .flatten();
                file.hash = hash.map(|sha256| crate::alert::FileHash { sha256 });
            }
            // The loop is gone only at the very end of shutdown, after draining this channel.
            let _ = tx.send(alert);
        });
    }
}

/// The file's SHA-256 in hex, if it is still a regular file of at most `max_bytes`.
fn sha256_file(escaped_path: &str, max_bytes: u64) -> Option<String> {
    use sha2::{Digest as _, Sha256};
    use std::{io::Read as _, os::unix::ffi::OsStrExt as _};
    let raw = crate::escape::unescape(escaped_path).ok()?;
    let file = std::fs::File::open(std::ffi::OsStr::from_bytes(&raw)).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > max_bytes {
        return None;
    }
    // The file may grow between metadata and read: never hash more than the limit.
    let mut content = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut content)
        .ok()?;
    if content.len() as u64 > max_bytes {
        return None;
    }
    let digest = Sha256::digest(&content);
    Some(digest.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod hash_tests {
    use super::sha256_file;

    #[test]
    fn hashes_small_regular_files_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.php");
        std::fs::write(&path, b"abc").expect("write");
        let text = path.to_str().expect("utf-8 temp path");
        assert_eq!(
            sha256_file(text, 3).as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(sha256_file(text, 2), None, "over the limit");
        assert_eq!(sha256_file(dir.path().to_str().expect("utf-8"), 10), None);
        assert_eq!(sha256_file(&format!("{text}.gone"), 10), None);
    }
}
