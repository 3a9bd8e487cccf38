//! Evidence: what the host shows of an incident while its processes still exist. A web shell's
//! processes live for milliseconds, so /proc is read at once, on the loop, when the alert
//! arrives ([`snapshot`], procfs only, which cannot stall); the client of the request is looked
//! up from the same reads ([`client`]); files are read and the bundle written beside the alert
//! path ([`bundle`]), and the alert leaves once its bundle is written (or could not be).

pub mod bundle;
pub mod client;
pub mod snapshot;
pub mod sockets;

use std::{
    collections::{HashMap, VecDeque},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use crate::{
    alert::{Alert, EvidenceRef},
    config::EvidenceConfig,
    metrics::Metrics,
};

use bundle::{AlertRef, Bundle, Outcome, Store};
use snapshot::{Expected, Limits};

/// Incidents remembered as having a bundle; older ones get a new bundle if they alert again.
const MAX_REMEMBERED: usize = 4096;

/// A bundle snapshotted and waiting to be finished off the loop.
pub struct Pending {
    store: Store,
    bundle: Bundle,
    scripts: Vec<(String, &'static str)>,
}

impl Pending {
    /// Finishes and writes the bundle (blocking); what the alert says of it.
    pub fn finish(self) -> (EvidenceRef, Outcome) {
        let id = self.bundle.id.clone();
        let path = bundle::path_text(&self.store.path_of(&id));
        let outcome = self.store.finish(self.bundle, self.scripts);
        (
            EvidenceRef {
                id,
                path,
                status: outcome.as_str(),
            },
            outcome,
        )
    }
}

pub struct Evidence {
    config: EvidenceConfig,
    proc_root: PathBuf,
    ticks_per_sec: u64,
    remembered: VecDeque<String>,
    with_bundle: HashMap<String, String>,
    exe_hashes: bundle::ExeHashes,
    metrics: Arc<Metrics>,
}

impl Evidence {
    pub fn new(config: &EvidenceConfig, metrics: Arc<Metrics>) -> Evidence {
        Evidence {
            config: config.clone(),
            proc_root: PathBuf::from("/proc"),
            ticks_per_sec: crate::lineage::clock_ticks_per_sec(),
            remembered: VecDeque::new(),
            with_bundle: HashMap::new(),
            exe_hashes: bundle::ExeHashes::default(),
            metrics,
        }
    }

    pub fn set_config(&mut self, config: &EvidenceConfig) {
        self.config = config.clone();
    }

    fn store(&self) -> Store {
        Store {
            dir: self.config.dir.clone(),
            max_bundle_bytes: self.config.max_bundle_bytes,
            max_total_bytes: self.config.max_total_bytes,
            retention: Duration::from_secs(self.config.retention_secs),
            script_max_bytes: self.config.script_max_bytes,
            exe_hashes: self.exe_hashes.clone(),
        }
    }

    /// Reads /proc for `alert`'s ancestry now, fills `client.*`, and returns the bundle to write
    /// when this alert is the first of its incident or a file alert.
    pub fn snapshot(&mut self, alert: &mut Alert) -> Option<Pending> {
        if !self.config.enabled || alert.lineage.server.is_none() && alert.file.is_none() {
            return None;
        }
        let limits = Limits {
            max_fds: usize::try_from(self.config.max_fds_per_process).unwrap_or(usize::MAX),
            env_values: &self.config.env_values,
            ticks_per_sec: self.ticks_per_sec,
        };
        let last = alert.lineage.ancestry.len().saturating_sub(1);
        let server_pid = alert.lineage.server.as_ref().map(|s| s.pid);
        let processes: Vec<_> = alert
            .lineage
            .ancestry
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let role = if i == last {
                    "process"
                } else if Some(p.pid) == server_pid {
                    "server"
                } else {
                    "ancestor"
                };
                let start_ns = p
                    .entity_id
                    .rsplit_once('-')
                    .and_then(|(_, ns)| ns.parse().ok());
                let expected = Expected {
                    pid: p.pid,
                    start_ns,
                    entity_id: &p.entity_id,
                    role,
                    args: &p.args,
                };
                snapshot::read(&self.proc_root, &expected, &limits)
            })
            .collect();
        let (client, source) = client::find(&self.proc_root, &processes);
        self.metrics.client_lookup(source.confidence);
        alert.client = client.clone();
        alert.lineage.client = Some(source.clone());

        let incident = alert.lineage.incident.id.clone();
        let id = alert.event.id.clone();
        if !self.config.keeps_bundles() {
            return None;
        }
        if alert.file.is_none()
            && let Some(earlier) = self.with_bundle.get(&incident)
        {
            alert.lineage.evidence = Some(EvidenceRef {
                id: earlier.clone(),
                path: bundle::path_text(&self.store().path_of(earlier)),
                status: "earlier",
            });
            return None;
        }
        self.remember(incident.clone(), id.clone());
        let scripts = scripts_of(alert, &processes);
        Some(Pending {
            store: self.store(),
            scripts,
            bundle: Bundle {
                version: 1,
                id,
                taken_at: crate::alert::rfc3339(now_ns()),
                incident,
                alert: AlertRef {
                    event_id: alert.event.id.clone(),
                    rule_id: alert.rule.id,
                    timestamp: alert.timestamp.clone(),
                },
                host: alert.host.hostname.clone(),
                server: alert.lineage.server.clone(),
                processes,
                client,
                client_source: source,
                scripts: Vec::new(),
                truncated: false,
                cut: Vec::new(),
            },
        })
    }

    /// Counts how a bundle ended (one place for the metric).
    pub fn finished(&self, outcome: Outcome) {
        self.metrics.evidence_bundle(outcome.as_str());
        if outcome != Outcome::Written {
            log::warn!(
                "evidence bundle not kept ({}) in {}; the alert still goes",
                outcome.as_str(),
                self.config.dir.display()
            );
        }
    }

    fn remember(&mut self, incident: String, bundle_id: String) {
        if self
            .with_bundle
            .insert(incident.clone(), bundle_id)
            .is_none()
        {
            self.remembered.push_back(incident);
        }
        while self.remembered.len() > MAX_REMEMBERED {
            if let Some(old) = self.remembered.pop_front() {
                self.with_bundle.remove(&old);
            }
        }
    }
}

/// The scripts worth a copy: the written file of a file alert, the server's SCRIPT_FILENAME,
/// and a script an interpreter of the ancestry was started on.
fn scripts_of(
    alert: &Alert,
    processes: &[snapshot::ProcessEvidence],
) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = Vec::new();
    let mut add = |path: &str, source| {
        if path.starts_with('/') && !out.iter().any(|(p, _)| p == path) && out.len() < 4 {
            out.push((path.to_owned(), source));
        }
    };
    if let Some(file) = &alert.file {
        add(&file.path, "file_alert");
    }
    for p in processes {
        if let Some(script) = p.env_values.get("SCRIPT_FILENAME") {
            add(script, "script_filename");
        }
    }
    for p in processes {
        let interpreter = p
            .args
            .first()
            .map(|a| a.rsplit('/').next().unwrap_or(a))
            .is_some_and(|name| {
                [
                    "php", "perl", "python", "ruby", "node", "bash", "sh", "dash",
                ]
                .iter()
                .any(|i| name.starts_with(i))
            });
        if interpreter && let Some(script) = p.args.iter().skip(1).find(|a| a.starts_with('/')) {
            add(script, "interpreter_argument");
        }
    }
    out
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
