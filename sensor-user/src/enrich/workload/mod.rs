//! Container and pod names for the alerts of containerised processes: the engine put the
//! container id, runtime and pod uid there from the cgroup path; this adds the container's name,
//! image, pod name and namespace from the runtime's state on the node ([`state`]).
//!
//! Each container is read once and cached. The read runs on a blocking thread, never on the
//! loop: an alert whose container is not cached waits for it at most `lookup_wait_ms` beside the
//! loop, then leaves with what is known and says why the rest is missing
//! (`lineage.workload_missing`). A failed read counts in `workload_lookups_total`, logs one line,
//! and is tried again [`RETRY_AFTER`] later, so names come back when the runtime does.

pub mod state;

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rustc_hash::FxHashMap;
use tokio::sync::{mpsc, watch};

pub use state::{LookupError, Meta};

use crate::{
    alert::{Alert, ContainerImage, Orchestrator, OrchestratorResource},
    config::WorkloadConfig,
    metrics::Metrics,
};

/// A container not found, or whose state could not be read, is read again after this.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

enum Slot {
    /// A read is running; the sender says `true` when it is done.
    Reading(watch::Receiver<bool>),
    Found(Arc<Meta>),
    Missing(&'static str, Instant),
}

#[derive(Default)]
struct Cache {
    slots: FxHashMap<String, Slot>,
    /// Insertion order, to forget the oldest past the bound.
    order: VecDeque<String>,
}

impl Cache {
    fn insert(&mut self, id: &str, slot: Slot, max: usize) {
        if self.slots.insert(id.to_owned(), slot).is_none() {
            self.order.push_back(id.to_owned());
        }
        while self.order.len() > max {
            if let Some(old) = self.order.pop_front() {
                self.slots.remove(&old);
            }
        }
    }
}

/// What an alert gets now: the names, a read to wait for, or why there are none.
enum Now {
    Done(Result<Arc<Meta>, &'static str>),
    Wait(watch::Receiver<bool>),
}

pub struct Workload {
    config: WorkloadConfig,
    cache: Arc<Mutex<Cache>>,
    metrics: Arc<Metrics>,
    tx: mpsc::UnboundedSender<Alert>,
}

impl Workload {
    /// Alerts that waited come back on `tx`.
    pub fn new(
        config: &WorkloadConfig,
        metrics: Arc<Metrics>,
        tx: mpsc::UnboundedSender<Alert>,
    ) -> Self {
        Workload {
            config: config.clone(),
            cache: Arc::default(),
            metrics,
            tx,
        }
    }

    /// The same cache with no way back for waiting alerts: for shutdown, where only
    /// [`Workload::apply_cached`] is used.
    pub fn detached(&self) -> Workload {
        Workload {
            config: self.config.clone(),
            cache: self.cache.clone(),
            metrics: self.metrics.clone(),
            tx: mpsc::unbounded_channel().0,
        }
    }

    pub fn set_config(&mut self, config: &WorkloadConfig) {
        if *config != self.config {
            self.config = config.clone();
            // Other directories may know other containers.
            lock(&self.cache).slots.clear();
            lock(&self.cache).order.clear();
        }
    }

    /// The alert, with the names if they are cached (or the wait is 0); otherwise `None` and
    /// the alert comes back on the channel within `lookup_wait_ms`.
    pub fn apply(&self, mut alert: Alert) -> Option<Alert> {
        let Some(id) = alert.container.as_ref().map(|c| c.id.clone()) else {
            return Some(alert);
        };
        if !self.config.enabled {
            return Some(alert);
        }
        match self.now(&id) {
            Now::Done(result) => {
                fill(&mut alert, result);
                Some(alert)
            }
            Now::Wait(_) if self.config.lookup_wait_ms == 0 => {
                fill(&mut alert, Err("pending"));
                Some(alert)
            }
            Now::Wait(mut done) => {
                let (cache, tx) = (self.cache.clone(), self.tx.clone());
                let wait = Duration::from_millis(self.config.lookup_wait_ms);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(wait, done.wait_for(|d| *d)).await;
                    let result = match lock(&cache).slots.get(&id) {
                        Some(Slot::Found(meta)) => Ok(meta.clone()),
                        Some(Slot::Missing(why, _)) => Err(*why),
                        _ => Err("pending"),
                    };
                    fill(&mut alert, result);
                    // The loop is gone only at the very end of shutdown, after draining this.
                    let _ = tx.send(alert);
                });
                None
            }
        }
    }

    /// Only what is cached, for alerts at shutdown: no read starts.
    pub fn apply_cached(&self, alert: &mut Alert) {
        let Some(id) = alert.container.as_ref().map(|c| c.id.clone()) else {
            return;
        };
        if !self.config.enabled {
            return;
        }
        let result = match lock(&self.cache).slots.get(&id) {
            Some(Slot::Found(meta)) => Ok(meta.clone()),
            Some(Slot::Missing(why, _)) => Err(*why),
            _ => Err("pending"),
        };
        fill(alert, result);
    }

    /// The cached answer, or the read in progress, starting one when there is none.
    fn now(&self, id: &str) -> Now {
        let mut cache = lock(&self.cache);
        match cache.slots.get(id) {
            Some(Slot::Found(meta)) => return Now::Done(Ok(meta.clone())),
            Some(Slot::Missing(why, at)) if at.elapsed() < RETRY_AFTER => {
                return Now::Done(Err(why));
            }
            Some(Slot::Reading(done)) => return Now::Wait(done.clone()),
            _ => {}
        }
        let (done_tx, done_rx) = watch::channel(false);
        cache.insert(
            id,
            Slot::Reading(done_rx.clone()),
            self.config.cache_entries,
        );
        drop(cache);
        let (config, cache, metrics, id) = (
            self.config.clone(),
            self.cache.clone(),
            self.metrics.clone(),
            id.to_owned(),
        );
        tokio::task::spawn_blocking(move || {
            let slot = match state::lookup(&config, &id) {
                Ok(Some(meta)) => {
                    metrics.workload.lookup("found");
                    Slot::Found(Arc::new(meta))
                }
                Ok(None) => {
                    metrics.workload.lookup("not_found");
                    Slot::Missing("not_found", Instant::now())
                }
                Err(err) => {
                    metrics.workload.lookup("error");
                    log::warn!("container {id}: {err}; its alerts go without pod and names");
                    Slot::Missing("error", Instant::now())
                }
            };
            lock(&cache).insert(&id, slot, config.cache_entries);
            let _ = done_tx.send(true);
        });
        Now::Wait(done_rx)
    }
}

/// The names into the alert, or why they are missing.
fn fill(alert: &mut Alert, result: Result<Arc<Meta>, &'static str>) {
    let meta = match result {
        Ok(meta) => meta,
        Err(why) => {
            alert.lineage.workload_missing = Some(why);
            return;
        }
    };
    if let Some(container) = alert.container.as_mut() {
        if container.runtime.is_none() {
            container.runtime = meta.runtime.map(str::to_owned);
        }
        container.name = meta.name.clone();
        container.image = meta.image.as_deref().map(ContainerImage::parse);
    }
    if meta.pod_name.is_none() && meta.pod_namespace.is_none() {
        return;
    }
    let orchestrator = alert.orchestrator.get_or_insert(Orchestrator {
        kind: "kubernetes",
        namespace: None,
        resource: OrchestratorResource {
            kind: "pod",
            name: None,
            id: None,
        },
    });
    orchestrator.namespace = meta.pod_namespace.clone();
    orchestrator.resource.name = meta.pod_name.clone();
    if orchestrator.resource.id.is_none() {
        orchestrator.resource.id = meta.pod_uid.clone();
    }
}

fn lock(cache: &Mutex<Cache>) -> std::sync::MutexGuard<'_, Cache> {
    // The cache stays consistent if a holder panicked: keep going.
    cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
