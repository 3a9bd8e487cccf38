//! What a container's runtime names about it beyond its cgroup path: learned by `run` from the
//! runtime's state when the container's cgroup is first seen (or read from a record's
//! `container` line by `replay`), and kept beside the cgroup index so that the gate's exclusions
//! can name an image, a namespace or a pod without any I/O of their own.

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use super::ContainerRef;

/// Names of one container; any may be unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerNames {
    /// The runtime's name of the container (the pod spec's container name on Kubernetes).
    pub name: Option<String>,
    /// The image reference as the runtime was given it (`registry.example/ops/backup:1.4`).
    pub image: Option<String>,
    /// The Kubernetes namespace of the container's pod.
    pub namespace: Option<String>,
    /// The Kubernetes pod's name.
    pub pod_name: Option<String>,
}

impl ContainerNames {
    /// Whether the runtime named nothing at all.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.image.is_none()
            && self.namespace.is_none()
            && self.pod_name.is_none()
    }
}

/// Most containers whose names are kept. The index of a live host holds only the containers its
/// last cgroup scan found, so this bounds what a record's `container` lines can add in `replay`.
const MAX_CONTAINERS: usize = 65_536;

/// cgroup id -> container, and container id -> names.
#[derive(Debug, Default)]
pub struct ContainerIndex {
    by_cgroup: FxHashMap<u64, Arc<ContainerRef>>,
    names: FxHashMap<Box<str>, Arc<ContainerNames>>,
}

impl ContainerIndex {
    /// Replaces the cgroup index with a fresh scan; the names of containers no longer in it are
    /// forgotten (a removed container's id never comes back).
    pub fn set(&mut self, by_cgroup: FxHashMap<u64, Arc<ContainerRef>>) {
        let live: FxHashSet<&str> = by_cgroup.values().map(|c| c.id.as_str()).collect();
        self.names.retain(|id, _| live.contains(&**id));
        self.by_cgroup = by_cgroup;
    }

    /// One container more (a record's `container` line).
    pub fn add(&mut self, cgroup_id: u64, container: Arc<ContainerRef>) {
        if self.by_cgroup.len() >= MAX_CONTAINERS && !self.by_cgroup.contains_key(&cgroup_id) {
            return;
        }
        self.by_cgroup.insert(cgroup_id, container);
    }

    /// The names the runtime gave container `id`; later names replace earlier ones.
    pub fn set_names(&mut self, id: &str, names: Arc<ContainerNames>) {
        if self.names.len() >= MAX_CONTAINERS && !self.names.contains_key(id) {
            return;
        }
        self.names.insert(id.into(), names);
    }

    pub fn by_cgroup(&self, cgroup_id: u64) -> Option<&Arc<ContainerRef>> {
        self.by_cgroup.get(&cgroup_id)
    }

    pub fn names(&self, id: &str) -> Option<&ContainerNames> {
        self.names.get(id).map(|n| &**n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str) -> Arc<ContainerRef> {
        Arc::new(ContainerRef {
            id: id.into(),
            runtime: None,
            pod_uid: None,
        })
    }

    #[test]
    fn a_rescan_forgets_the_names_of_removed_containers_only() {
        let mut index = ContainerIndex::default();
        index.set(
            [(1, container("a")), (2, container("b"))]
                .into_iter()
                .collect(),
        );
        let named = Arc::new(ContainerNames {
            image: Some("registry.example/ops/backup:1.4".into()),
            ..ContainerNames::default()
        });
        index.set_names("a", named.clone());
        index.set_names("b", named);
        index.set([(1, container("a"))].into_iter().collect());
        assert!(index.names("a").is_some());
        assert!(index.names("b").is_none(), "b was removed");
        index.add(3, container("c"));
        assert_eq!(index.by_cgroup(3).map(|c| c.id.as_str()), Some("c"));
    }
}
