//! What `run` adds to an alert after the engine made it, from the host: the engine does no I/O,
//! so that `replay` stays deterministic.
//!
//! That is the evidence of the incident ([`evidence`]: a snapshot of its processes and the client
//! of the request, read first, while they still exist) and the hash of the file a file rule
//! names. The kernel side does not see close(),
//! so the file is read `hash_delay_ms` after the write: the content shortly after, not at close.
//! The alert waits beside the alert path (a task per alert), is written to disk before the wait
//! ([`pending`]), and comes back to the loop as a finished line through a channel.

pub mod evidence;
pub mod hash;
mod order;
pub mod pending;
pub mod workload;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::{mpsc, watch};

use crate::{
    alert::Alert,
    config::{Config, WebrootScriptWriteConfig},
    metrics::Metrics,
};

/// Longest time one file's inspection may take (open, stat, read, hash). The alert goes without
/// its hash after that.
pub const HASH_DEADLINE: Duration = Duration::from_secs(1);

/// A finished alert line (JSON, no newline) for the sinks: encoded once, then shared (never
/// copied) by every sink, its spool and its retries.
pub type Line = bytes::Bytes;

/// Where the alerts waiting for their hash are kept: beside the incident state file.
pub fn pending_path(incidents_state_file: &Path) -> Option<PathBuf> {
    if incidents_state_file.as_os_str().is_empty() {
        return None;
    }
    let mut path = PathBuf::from(incidents_state_file);
    path.as_mut_os_string().push(".pending-hashes");
    Some(path)
}

/// The enrich stage of `run`: alerts in; those that need nothing go straight through, the others
/// come back later as finished lines from [`Enricher::next_ready`].
pub struct Enricher {
    rx: mpsc::UnboundedReceiver<Line>,
    hashing: Hashing,
    rule: WebrootScriptWriteConfig,
    evidence: evidence::Evidence,
    /// Alerts whose bundle was written, back for the rest of the stage.
    evidence_tx: mpsc::UnboundedSender<Alert>,
    evidence_rx: mpsc::UnboundedReceiver<Alert>,
    workload: workload::Workload,
    /// Alerts that waited for their container's names.
    workload_rx: mpsc::UnboundedReceiver<Alert>,
    /// Keeps an incident's alerts in order around those detours.
    order: order::IncidentOrder,
}

impl Enricher {
    /// Starts the stage, sending again first what a SIGKILLed run left waiting for its hash.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Enricher {
        let (tx, rx) = mpsc::unbounded_channel();
        let rule = config.rules.webroot_script_write.clone();
        let path = pending_path(&config.incidents.state_file);
        let hashing = Hashing::new(tx, path.clone());
        if let Some(path) = path {
            match pending::load(&path) {
                Ok(entries) if entries.is_empty() => {}
                Ok(entries) => {
                    log::info!(
                        "sending {} file alerts a previous run left waiting for their hash",
                        entries.len()
                    );
                    hashing.restore(entries, rule.hash_max_bytes);
                }
                Err(err) => log::warn!("{err}; alerts it held are lost"),
            }
        }
        let (evidence_tx, evidence_rx) = mpsc::unbounded_channel();
        let (workload_tx, workload_rx) = mpsc::unbounded_channel();
        Enricher {
            rx,
            hashing,
            rule,
            workload: workload::Workload::new(&config.workload, metrics.clone(), workload_tx),
            evidence: evidence::Evidence::new(&config.evidence, metrics),
            evidence_tx,
            evidence_rx,
            workload_rx,
            order: order::IncidentOrder::default(),
        }
    }

    /// A reloaded config's hashing settings apply to the alerts from now on.
    pub fn set_config(&mut self, config: &Config) {
        self.rule = config.rules.webroot_script_write.clone();
        self.evidence.set_config(&config.evidence);
        self.workload.set_config(&config.workload);
    }

    /// The alert if it is ready now; otherwise it comes back from [`Enricher::next_ready`].
    /// /proc is read here, at once; a bundle to write sends the alert on a detour first.
    /// An alert of an incident with an alert away waits behind it (see [`order`]).
    pub fn enrich(&mut self, mut alert: Alert) -> Option<Alert> {
        if let Some(pending) = self.evidence.snapshot(&mut alert) {
            self.order.away(&alert.lineage.incident.id);
            let tx = self.evidence_tx.clone();
            tokio::task::spawn_blocking(move || {
                let (reference, outcome) = pending.finish();
                alert.lineage.evidence = Some(reference);
                let _ = tx.send(alert);
                outcome
            });
            return None;
        }
        let alert = self.order.pass(alert)?;
        self.after_evidence(alert)
    }

    fn after_evidence(&mut self, alert: Alert) -> Option<Alert> {
        let incident = alert.lineage.incident.id.clone();
        self.order.away(&incident);
        let ready = self.workload.apply(alert);
        if ready.is_some() {
            self.order.arrived(&incident);
        }
        ready.and_then(|alert| self.after_workload(alert))
    }

    fn after_workload(&self, alert: Alert) -> Option<Alert> {
        if Hashing::wants(&alert, &self.rule) {
            self.hashing.later(alert, &self.rule);
            None
        } else {
            Some(alert)
        }
    }

    /// The next alert whose enrichment finished (never ends while the stage lives).
    pub async fn next_ready(&mut self) -> Option<Line> {
        loop {
            if let Some(alert) = self.order.next_released() {
                if let Some(alert) = self.order.pass(alert)
                    && let Some(alert) = self.after_evidence(alert)
                {
                    return serde_json::to_vec(&alert).ok().map(Line::from);
                }
                continue;
            }
            tokio::select! {
                line = self.rx.recv() => return line,
                Some(alert) = self.evidence_rx.recv() => {
                    self.count_evidence(&alert);
                    let incident = alert.lineage.incident.id.clone();
                    let ready = self.after_evidence(alert);
                    // Back from its bundle (after_evidence counted its names' wait apart).
                    self.order.arrived(&incident);
                    if let Some(alert) = ready {
                        return serde_json::to_vec(&alert).ok().map(Line::from);
                    }
                }
                Some(alert) = self.workload_rx.recv() => {
                    self.order.arrived(&alert.lineage.incident.id);
                    if let Some(alert) = self.after_workload(alert) {
                        return serde_json::to_vec(&alert).ok().map(Line::from);
                    }
                }
            }
        }
    }

    fn count_evidence(&self, alert: &Alert) {
        if let Some(reference) = &alert.lineage.evidence {
            let outcome = evidence::bundle::Outcome::ALL
                .into_iter()
                .find(|o| o.as_str() == reference.status);
            if let Some(outcome) = outcome {
                self.evidence.finished(outcome);
            }
        }
    }

    /// Shutdown: alerts waiting for their hash are hashed now, not after their delay.
    pub fn hurry(&self) {
        self.hashing.hurry();
    }

    /// At shutdown: every alert still waiting, as each finishes. Each task holds a sender, so
    /// this ends when the last has finished (at most [`HASH_DEADLINE`] after [`Enricher::hurry`]).
    pub async fn finish(self, mut each: impl FnMut(Line)) {
        let Enricher {
            mut rx,
            hashing,
            rule,
            evidence,
            evidence_tx,
            mut evidence_rx,
            workload,
            mut workload_rx,
            mut order,
        } = self;
        // Bundles being written come back first (each task holds a sender), then go on to
        // hashing like any other alert.
        drop(evidence_tx);
        let rest = Enricher {
            rx: mpsc::unbounded_channel().1,
            hashing,
            rule,
            evidence,
            evidence_tx: mpsc::unbounded_channel().0,
            evidence_rx: mpsc::unbounded_channel().1,
            // Same cache, no sender: the waits in flight hold the only senders left.
            workload: workload.detached(),
            workload_rx: mpsc::unbounded_channel().1,
            order: order::IncidentOrder::default(),
        };
        drop(workload);
        // Alerts waiting for their container's names: each wait is bounded by lookup_wait_ms.
        while let Some(alert) = workload_rx.recv().await {
            if let Some(alert) = rest.after_workload(alert)
                && let Ok(line) = serde_json::to_vec(&alert)
            {
                each(Line::from(line));
            }
        }
        while let Some(mut alert) = evidence_rx.recv().await {
            rest.count_evidence(&alert);
            // No new read at shutdown: what is cached.
            rest.workload.apply_cached(&mut alert);
            if let Some(alert) = rest.after_workload(alert)
                && let Ok(line) = serde_json::to_vec(&alert)
            {
                each(Line::from(line));
            }
        }
        // What waited behind them, in order where it can still be kept.
        for mut alert in order.drain() {
            rest.workload.apply_cached(&mut alert);
            if let Some(alert) = rest.after_workload(alert)
                && let Ok(line) = serde_json::to_vec(&alert)
            {
                each(Line::from(line));
            }
        }
        drop(rest);
        while let Some(line) = rx.recv().await {
            each(line);
        }
    }
}

/// Hands file alerts to waiting tasks and gets them back hashed.
pub struct Hashing {
    tx: mpsc::UnboundedSender<Line>,
    hurry: watch::Sender<bool>,
    pending: Arc<Mutex<pending::Pending>>,
}

impl Hashing {
    /// `tx` receives each alert once it is ready; `pending_file` keeps waiting alerts on disk.
    pub fn new(tx: mpsc::UnboundedSender<Line>, pending_file: Option<PathBuf>) -> Hashing {
        Hashing {
            tx,
            hurry: watch::channel(false).0,
            pending: Arc::new(Mutex::new(pending::Pending::new(pending_file))),
        }
    }

    /// Whether `alert` waits for a hash under `rule`'s settings.
    pub fn wants(alert: &Alert, rule: &WebrootScriptWriteConfig) -> bool {
        rule.hash_max_bytes > 0 && alert.file.is_some()
    }

    /// Waits `hash_delay_ms` (cut short by [`Hashing::hurry`]) beside the loop, then inspects the
    /// file and sends the finished line. The alert is on disk before the wait.
    pub fn later(&self, mut alert: Alert, rule: &WebrootScriptWriteConfig) {
        let Some(path) = alert.file.as_ref().map(|f| f.path.clone()) else {
            return;
        };
        // Serialising cannot fail for an Alert; were it to, the alert still goes, unpersisted.
        let key = serde_json::to_string(&alert).ok().map(|line| {
            self.lock().add(pending::Entry {
                path: path.clone(),
                line,
            })
        });
        let (tx, pending) = (self.tx.clone(), self.pending.clone());
        let mut hurry = self.hurry.subscribe();
        let (max_bytes, delay) = (
            rule.hash_max_bytes,
            Duration::from_millis(rule.hash_delay_ms),
        );
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = hurry.wait_for(|h| *h) => {}
            }
            let inspection = inspect_escaped(&path, max_bytes).await;
            if let Some(file) = alert.file.as_mut() {
                file.hash = inspection
                    .sha256
                    .clone()
                    .map(|sha256| crate::alert::FileHash { sha256 });
                file.file_type = inspection.kind.map(hash::Kind::as_ecs);
                file.target_path = inspection
                    .target
                    .as_deref()
                    .map(crate::escape::escape_bytes);
            }
            alert.lineage.file_hash_missing = inspection.missing.map(hash::Missing::as_str);
            if let Ok(line) = serde_json::to_vec(&alert) {
                // The loop is gone only at the very end of shutdown, after draining this.
                let _ = tx.send(Line::from(line));
            }
            if let Some(key) = key {
                lock(&pending).remove(key);
            }
        });
    }

    /// Sends again what a previous run left waiting (SIGKILL during the delay): each is hashed
    /// now if its file is still there, and says `gone` if not.
    pub fn restore(&self, entries: Vec<pending::Entry>, max_bytes: u64) {
        for entry in entries {
            let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&entry.line) else {
                log::warn!("a pending file alert that is not JSON was skipped");
                continue;
            };
            let key = self.lock().add(entry.clone());
            let (tx, pending) = (self.tx.clone(), self.pending.clone());
            tokio::spawn(async move {
                let inspection = inspect_escaped(&entry.path, max_bytes).await;
                patch(&mut value, &inspection);
                if let Ok(line) = serde_json::to_vec(&value) {
                    let _ = tx.send(Line::from(line));
                }
                lock(&pending).remove(key);
            });
        }
    }

    /// Shutdown: every waiting alert is hashed now instead of after its delay.
    pub fn hurry(&self) {
        let _ = self.hurry.send(true);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, pending::Pending> {
        lock(&self.pending)
    }
}

fn lock(pending: &Mutex<pending::Pending>) -> std::sync::MutexGuard<'_, pending::Pending> {
    // The set stays consistent if a holder panicked: keep going.
    pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn inspect_escaped(path: &str, max_bytes: u64) -> hash::Inspection {
    match crate::escape::unescape(path) {
        Ok(raw) => hash::inspect_within(raw, max_bytes, HASH_DEADLINE).await,
        Err(_) => hash::Inspection {
            kind: None,
            target: None,
            sha256: None,
            missing: Some(hash::Missing::Unreadable),
        },
    }
}

/// The restored alert (as JSON) with what the inspection found.
fn patch(value: &mut serde_json::Value, inspection: &hash::Inspection) {
    use serde_json::{Value, json};
    if let Some(Value::Object(file)) = value.get_mut("file") {
        if let Some(sha256) = &inspection.sha256 {
            file.insert("hash".into(), json!({ "sha256": sha256 }));
        }
        if let Some(kind) = inspection.kind {
            file.insert("type".into(), Value::from(kind.as_ecs()));
        }
        if let Some(target) = &inspection.target {
            file.insert(
                "target_path".into(),
                Value::from(crate::escape::escape_bytes(target)),
            );
        }
    }
    if let Some(Value::Object(lineage)) = value.get_mut("lineage") {
        if let Some(missing) = inspection.missing {
            lineage.insert("file_hash_missing".into(), Value::from(missing.as_str()));
        }
        // The hash is of the content at the restart, not shortly after the write.
        lineage.insert("file_hash_after_restart".into(), Value::Bool(true));
    }
}
