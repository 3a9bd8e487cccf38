//! Keeps the engine's container index current: a container started after the last scan has a
//! cgroup the index does not know, and its first process's alert would carry no container.
//! A batch naming such a cgroup has the cgroup tree scanned again before the engine sees it; a
//! cgroup the scan finds to be no container's is remembered, so each new cgroup costs one scan.
//!
//! A container new to the index also has its runtime state read (`[workload]`, the same files
//! the enrich stage reads) on a thread of its own, so that exclusions can name its image,
//! namespace or pod. The loop never waits for such a read: names arrive at the start of a later
//! batch, and until then the container's alerts are judged without them, which errs towards
//! alerting. `record` uses the same watch and writes what it learns as `container` lines, so
//! that `replay` gives the verdicts `run` gave.

use std::{
    collections::VecDeque,
    path::Path,
    sync::{
        Arc,
        mpsc::{Receiver, Sender, channel},
    },
    time::{Duration, Instant},
};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::{
    config::WorkloadConfig,
    detect::Engine,
    enrich::workload::state::{LookupError, Meta, lookup},
    event::Event,
    lineage::{CgroupIndex, ContainerNames, ContainerRef},
};

/// Bound on the cgroups remembered as no container's (new sessions and services add some); past
/// it the memory starts over, costing one scan per cgroup seen again.
const MAX_NOT_CONTAINERS: usize = 16_384;
/// Reads of runtime state in flight at once: a state directory on a stuck filesystem holds at
/// most these threads, one per container.
const MAX_READS_IN_FLIGHT: usize = 4;
/// A container whose state was not there (or not readable) is read again after this, at the
/// next scan.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Where what the watch learns goes: the engine in `run`, the record file in `record`.
pub trait ContainerSink {
    /// A fresh scan: every container cgroup now on the host.
    fn containers(&mut self, index: FxHashMap<u64, Arc<ContainerRef>>);
    /// The runtime's names of container `id`.
    fn names(&mut self, id: &str, names: Arc<ContainerNames>);
}

impl ContainerSink for Engine {
    fn containers(&mut self, index: FxHashMap<u64, Arc<ContainerRef>>) {
        self.set_containers(index);
    }

    fn names(&mut self, id: &str, names: Arc<ContainerNames>) {
        self.set_container_names(id, names);
    }
}

type ReadResult = (String, Result<Option<Meta>, LookupError>);

#[derive(Debug)]
pub struct ContainerWatch {
    /// cgroup ids of containers in the last scan.
    containers: FxHashSet<u64>,
    not_containers: FxHashSet<u64>,
    /// None: names are not read (`workload.enabled = false`).
    workload: Option<Arc<WorkloadConfig>>,
    tx: Sender<ReadResult>,
    rx: Receiver<ReadResult>,
    in_flight: FxHashSet<String>,
    /// Containers whose read waits for a free slot, oldest first.
    queue: VecDeque<String>,
    /// Container id -> when to read it again (None: its names were read).
    read: FxHashMap<String, Option<Instant>>,
}

impl ContainerWatch {
    pub fn new(workload: &WorkloadConfig) -> Self {
        let (tx, rx) = channel();
        Self {
            containers: FxHashSet::default(),
            not_containers: FxHashSet::default(),
            workload: workload.enabled.then(|| Arc::new(workload.clone())),
            tx,
            rx,
            in_flight: FxHashSet::default(),
            queue: VecDeque::new(),
            read: FxHashMap::default(),
        }
    }

    /// A full scan into `sink` (at start, and from housekeeping, which also forgets removed
    /// containers), and names asked for the containers not read yet.
    pub fn rescan(&mut self, root: &Path, sink: &mut impl ContainerSink) {
        self.take_names(sink);
        if !root.exists() {
            return;
        }
        let index = CgroupIndex::scan(root);
        self.containers = index.keys().copied().collect();
        let ids: FxHashSet<String> = index.values().map(|c| c.id.clone()).collect();
        self.read.retain(|id, _| ids.contains(id));
        sink.containers(index);
        if self.workload.is_none() {
            return;
        }
        let now = Instant::now();
        for id in ids {
            let due = match self.read.get(&id) {
                None => true,
                Some(None) => false,
                Some(Some(at)) => now >= *at,
            };
            if due && !self.in_flight.contains(&id) && !self.queue.contains(&id) {
                self.queue.push_back(id);
            }
        }
        self.start_reads();
    }

    /// Names read since the last call go to `sink`, then the cgroup tree is scanned again when
    /// `batch` names a cgroup neither the index nor the memory knows.
    pub fn before(&mut self, batch: &[Event], root: &Path, sink: &mut impl ContainerSink) {
        self.take_names(sink);
        let is_new = |id: &u64| {
            *id != 0 && !self.containers.contains(id) && !self.not_containers.contains(id)
        };
        if !batch.iter().filter_map(cgroup_of).any(|id| is_new(&id)) {
            return;
        }
        self.rescan(root, sink);
        if self.not_containers.len() > MAX_NOT_CONTAINERS {
            self.not_containers.clear();
        }
        for id in batch.iter().filter_map(cgroup_of) {
            if id != 0 && !self.containers.contains(&id) {
                self.not_containers.insert(id);
            }
        }
    }

    fn start_reads(&mut self) {
        let Some(config) = &self.workload else {
            return;
        };
        while self.in_flight.len() < MAX_READS_IN_FLIGHT {
            let Some(id) = self.queue.pop_front() else {
                return;
            };
            let (config, tx, key) = (config.clone(), self.tx.clone(), id.clone());
            let spawned = std::thread::Builder::new()
                .name("container-names".into())
                .spawn(move || {
                    let result = lookup(&config, &key);
                    // The watch may be gone (a reload replaced it): nothing to tell then.
                    let _ = tx.send((key, result));
                });
            match spawned {
                Ok(_) => {
                    self.in_flight.insert(id);
                }
                Err(err) => {
                    log::warn!("container names of {id} not read: {err}");
                    self.read.insert(id, Some(Instant::now() + RETRY_AFTER));
                }
            }
        }
    }

    fn take_names(&mut self, sink: &mut impl ContainerSink) {
        while let Ok((id, result)) = self.rx.try_recv() {
            self.in_flight.remove(&id);
            match result {
                Ok(Some(meta)) => {
                    let names = names_of(meta);
                    log::debug!("container {id}: names read: {names:?}");
                    self.read.insert(id.clone(), None);
                    sink.names(&id, Arc::new(names));
                }
                Ok(None) => {
                    log::debug!("container {id}: no runtime state found");
                    self.read.insert(id, Some(Instant::now() + RETRY_AFTER));
                }
                Err(err) => {
                    log::warn!("container names of {id}: {err}");
                    self.read.insert(id, Some(Instant::now() + RETRY_AFTER));
                }
            }
        }
        self.start_reads();
    }
}

fn names_of(meta: Meta) -> ContainerNames {
    ContainerNames {
        name: meta.name,
        image: meta.image,
        namespace: meta.pod_namespace,
        pod_name: meta.pod_name,
    }
}

/// Only forks and execs place a process in a container.
fn cgroup_of(event: &Event) -> Option<u64> {
    match event {
        Event::Exec(e) => Some(e.cgroup_id),
        Event::Fork(f) => Some(f.cgroup_id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "8faf3044cf8eedd65fd06b3d726fd92acfc3f9d7757efe033c40bdfd124a0599";

    #[derive(Default)]
    struct Seen {
        index: FxHashMap<u64, Arc<ContainerRef>>,
        names: Vec<(String, Arc<ContainerNames>)>,
    }

    impl ContainerSink for Seen {
        fn containers(&mut self, index: FxHashMap<u64, Arc<ContainerRef>>) {
            self.index = index;
        }
        fn names(&mut self, id: &str, names: Arc<ContainerNames>) {
            self.names.push((id.into(), names));
        }
    }

    #[test]
    fn a_new_container_cgroup_has_its_names_read_beside_the_loop() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let cgroups = dir.path().join("cgroup");
        let task = dir.path().join("task");
        let bundle = task.join("k8s.io").join(ID);
        std::fs::create_dir_all(&bundle).expect("mkdir");
        std::fs::write(
            bundle.join("config.json"),
            serde_json::json!({"annotations": {
                "io.kubernetes.cri.container-name": "backup",
                "io.kubernetes.cri.image-name": "registry.example/ops/backup:1.4",
                "io.kubernetes.cri.sandbox-namespace": "ops",
                "io.kubernetes.cri.sandbox-name": "backup-29011",
            }})
            .to_string(),
        )
        .expect("write");
        let cgroup = cgroups.join("kubepods/besteffort/pod1").join(ID);
        std::fs::create_dir_all(&cgroup).expect("mkdir");
        let cgroup_id = std::fs::metadata(&cgroup).expect("meta").ino();
        let config = WorkloadConfig {
            containerd_task_dirs: vec![task],
            storage_container_dirs: vec![],
            ..WorkloadConfig::default()
        };
        let mut watch = ContainerWatch::new(&config);
        let mut seen = Seen::default();
        let exec = crate::detect::test_support::exec(1, 2, 1, "/bin/sh", &["sh"]);
        let exec = match exec {
            Event::Exec(mut e) => {
                e.cgroup_id = cgroup_id;
                Event::Exec(e)
            }
            other => other,
        };
        watch.before(std::slice::from_ref(&exec), &cgroups, &mut seen);
        assert_eq!(
            seen.index.get(&cgroup_id).map(|c| c.id.as_str()),
            Some(ID),
            "the new cgroup is scanned before the batch"
        );
        // The read finishes on its own thread; a later batch takes its result.
        let give_up = Instant::now() + Duration::from_secs(30);
        while seen.names.is_empty() && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(5));
            watch.before(&[], &cgroups, &mut seen);
        }
        let (id, names) = seen.names.first().expect("names read");
        assert_eq!(id, ID);
        assert_eq!(
            names.image.as_deref(),
            Some("registry.example/ops/backup:1.4")
        );
        assert_eq!(names.namespace.as_deref(), Some("ops"));
        assert_eq!(names.pod_name.as_deref(), Some("backup-29011"));
        assert_eq!(names.name.as_deref(), Some("backup"));
        // Read once: a later scan does not read it again.
        watch.rescan(&cgroups, &mut seen);
        assert!(watch.in_flight.is_empty() && watch.queue.is_empty());
    }

    #[test]
    fn names_are_not_read_when_workload_is_disabled() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("docker").join(ID)).expect("mkdir");
        let mut watch = ContainerWatch::new(&WorkloadConfig {
            enabled: false,
            ..WorkloadConfig::default()
        });
        let mut seen = Seen::default();
        watch.rescan(dir.path(), &mut seen);
        assert_eq!(seen.index.len(), 1);
        assert!(watch.in_flight.is_empty() && watch.queue.is_empty());
    }
}
