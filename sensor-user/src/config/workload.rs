//! `[workload]`: names, image and pod of the container an alert's process runs in, read by `run`
//! from the container runtime's own state on the node, with no cluster credentials.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where `run` finds each running container's OCI runtime config (its `config.json`, whose
/// annotations name the pod, namespace, container and image), as the host sees it. `replay` reads
/// none. The container id and pod uid come from the cgroup path either way.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadConfig {
    /// Whether alerts of containerised processes get container and pod names from the runtime's
    /// state.
    pub enabled: bool,
    /// containerd's task state directories (`<state>/io.containerd.runtime.v2.task`): each
    /// container's bundle is `<dir>/<containerd namespace>/<container id>/config.json`.
    pub containerd_task_dirs: Vec<PathBuf>,
    /// containers/storage directories of CRI-O and Podman: a container's config is
    /// `<dir>/<container id>/userdata/config.json`.
    pub storage_container_dirs: Vec<PathBuf>,
    /// Docker's container directories: a container's state is `<dir>/<container id>/config.v2.json`
    /// (its name, the image as it was asked for, and on a cri-dockerd node the pod's labels
    /// naming pod, namespace and container).
    pub docker_container_dirs: Vec<PathBuf>,
    /// Longest time an alert waits for a container's first lookup, in milliseconds (0 to 1000).
    /// An alert whose lookup is not done by then leaves without the names and says so
    /// (`lineage.workload_missing: pending`); the lookup finishes beside it for later alerts.
    pub lookup_wait_ms: u64,
    /// Most containers whose names are kept (16 to 1000000); past it the oldest are forgotten.
    pub cache_entries: usize,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            containerd_task_dirs: vec![PathBuf::from(
                "/run/containerd/io.containerd.runtime.v2.task",
            )],
            storage_container_dirs: vec![
                PathBuf::from("/run/containers/storage/overlay-containers"),
                PathBuf::from("/var/lib/containers/storage/overlay-containers"),
            ],
            docker_container_dirs: vec![PathBuf::from("/var/lib/docker/containers")],
            lookup_wait_ms: 5,
            cache_entries: 4096,
        }
    }
}
