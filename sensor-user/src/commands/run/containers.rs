//! Keeps the engine's cgroup -> container index current: a container started after the last scan
//! has a cgroup the index does not know, and its first process's alert would carry no container.
//! A batch naming such a cgroup has the cgroup tree scanned again before the engine sees it; a
//! cgroup the scan finds to be no container's is remembered, so each new cgroup costs one scan.

use std::path::Path;

use rustc_hash::FxHashSet;

use crate::{detect::Engine, event::Event, lineage::CgroupIndex};

/// Bound on the cgroups remembered as no container's (new sessions and services add some); past
/// it the memory starts over, costing one scan per cgroup seen again.
const MAX_NOT_CONTAINERS: usize = 16_384;

#[derive(Debug, Default)]
pub struct ContainerWatch {
    /// cgroup ids of containers in the last scan.
    containers: FxHashSet<u64>,
    not_containers: FxHashSet<u64>,
}

impl ContainerWatch {
    /// A full scan into `engine` (at start, and from housekeeping, which also forgets removed
    /// containers).
    pub fn rescan(&mut self, root: &Path, engine: &mut Engine) {
        if !root.exists() {
            return;
        }
        let index = CgroupIndex::scan(root);
        self.containers = index.keys().copied().collect();
        engine.set_containers(index);
    }

    /// Scans again when `batch` names a cgroup neither the index nor the memory knows.
    pub fn before(&mut self, batch: &[Event], root: &Path, engine: &mut Engine) {
        let is_new = |id: &u64| {
            *id != 0 && !self.containers.contains(id) && !self.not_containers.contains(id)
        };
        if !batch.iter().filter_map(cgroup_of).any(|id| is_new(&id)) {
            return;
        }
        self.rescan(root, engine);
        if self.not_containers.len() > MAX_NOT_CONTAINERS {
            self.not_containers.clear();
        }
        for id in batch.iter().filter_map(cgroup_of) {
            if id != 0 && !self.containers.contains(&id) {
                self.not_containers.insert(id);
            }
        }
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
