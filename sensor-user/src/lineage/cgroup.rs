//! Container identity from cgroup paths: events carry a cgroup id (the cgroup directory's inode),
//! so the cgroup filesystem is indexed to map ids to what the directory names say: the container
//! id every runtime puts there, the runtime where its systemd scope name tells, and on Kubernetes
//! the pod uid of the kubelet's pod cgroup. This needs no runtime and no credentials.

use std::{os::unix::fs::MetadataExt as _, path::Path, sync::Arc};

use regex::Regex;
use rustc_hash::FxHashMap;

/// The runtime a container's cgroup name tells (systemd driver scopes, docker's cgroupfs parent).
/// The cgroupfs driver's bare `<id>` under a pod names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Containerd,
    CriO,
    Docker,
    Podman,
}

impl Runtime {
    /// ECS `container.runtime`.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Docker => "docker",
            Runtime::Podman => "podman",
        }
    }

    /// The inverse of [`Self::as_str`] (a record's `container` line).
    pub fn parse(name: &str) -> Option<Self> {
        [
            Runtime::Containerd,
            Runtime::CriO,
            Runtime::Docker,
            Runtime::Podman,
        ]
        .into_iter()
        .find(|r| r.as_str() == name)
    }
}

/// What a container's cgroup path says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    /// The 64-hex-digit id.
    pub id: String,
    pub runtime: Option<Runtime>,
    /// The Kubernetes pod uid (with dashes), when the container is below a kubelet pod cgroup.
    pub pod_uid: Option<String>,
}

/// The container id in a /proc/<pid>/cgroup text or a cgroup path: the 64-hex-digit id that
/// docker, containerd, CRI-O and podman put in the cgroup directory name.
pub fn container_id_from_cgroup(text: &str) -> Option<&str> {
    container_regex()
        .captures_iter(text)
        .last()
        .and_then(|c| c.get(2))
        .map(|m| m.as_str())
}

/// The container and pod a /proc/<pid>/cgroup text or a cgroup path names. Of several lines (v1
/// hierarchies and the `0::` line), the last one naming a container is read.
pub fn container_from_cgroup(text: &str) -> Option<ContainerRef> {
    let line = text.lines().rev().find(|l| container_regex().is_match(l))?;
    let caps = container_regex().captures_iter(line).last()?;
    let id = caps.get(2)?.as_str().to_owned();
    let runtime = match caps.get(1).map(|m| m.as_str()) {
        Some("cri-containerd") => Some(Runtime::Containerd),
        Some("crio") => Some(Runtime::CriO),
        Some("libpod") => Some(Runtime::Podman),
        Some("docker") => Some(Runtime::Docker),
        // docker's cgroupfs driver: /docker/<id>.
        _ if line.contains("/docker/") => Some(Runtime::Docker),
        _ => None,
    };
    // Only the part above the container: a pod cgroup is its parent.
    let above = &line[..caps.get(0).map_or(0, |m| m.start())];
    let pod_uid = pod_regex()
        .captures_iter(above)
        .last()
        .and_then(|c| c.get(1))
        // The systemd driver spells the uid's dashes as underscores (a dash separates slices).
        .map(|m| m.as_str().replace('_', "-"));
    Some(ContainerRef {
        id,
        runtime,
        pod_uid,
    })
}

fn container_regex() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        // A literal, valid pattern: it cannot fail to compile.
        #[allow(clippy::unwrap_used)]
        Regex::new(
            r"(?:^|[/\-:])(?:(cri-containerd|crio|docker|libpod)-)?([0-9a-f]{64})(?:\.scope)?(?:/|$|\s)",
        )
        .unwrap()
    })
}

fn pod_regex() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        // A pod uid is a UUID, or 32 hex digits for a static pod (a hash of its manifest); only
        // below `kubepods` is it the kubelet's.
        #[allow(clippy::unwrap_used)]
        Regex::new(
            r"kubepods.*[/\-]pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}|[0-9a-f]{32})(?:\.slice)?(?:/|$)",
        )
        .unwrap()
    })
}

/// cgroup inode -> container for every container cgroup under a cgroup2 mount.
#[derive(Debug, Default)]
pub struct CgroupIndex;

/// Directory nesting followed under the cgroup root (kubepods nest about six deep).
const MAX_CGROUP_DEPTH: usize = 10;

impl CgroupIndex {
    /// Walks `root` (normally /sys/fs/cgroup); unreadable parts are skipped.
    pub fn scan(root: &Path) -> FxHashMap<u64, Arc<ContainerRef>> {
        let mut out = FxHashMap::default();
        let mut stack = vec![(root.to_owned(), 0usize)];
        while let Some((dir, depth)) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                if !meta.is_dir() {
                    continue;
                }
                let path = entry.path();
                let text = path.to_string_lossy();
                if let Some(container) = container_from_cgroup(&text) {
                    out.insert(meta.ino(), Arc::new(container));
                }
                if depth < MAX_CGROUP_DEPTH {
                    stack.push((path, depth + 1));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn runtimes_cgroup_paths_yield_the_id() {
        for path in [
            format!("0::/system.slice/docker-{ID}.scope\n"),
            format!("12:memory:/docker/{ID}\n"),
            format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-pod1.slice/cri-containerd-{ID}.scope"
            ),
            format!("0::/machine.slice/libpod-{ID}.scope/container"),
            format!("0::/kubepods/besteffort/pod1/{ID}"),
        ] {
            assert_eq!(container_id_from_cgroup(&path), Some(ID), "{path}");
        }
        assert_eq!(
            container_id_from_cgroup("0::/user.slice/user-1000.slice/session-2.scope"),
            None
        );
        assert_eq!(container_id_from_cgroup("0::/init.scope\n"), None);
    }

    const UID: &str = "5f3d2c1b-8a7e-4b6c-9d0e-1f2a3b4c5d6e";

    fn identity(text: &str) -> (String, Option<&'static str>, Option<String>) {
        let c = container_from_cgroup(text).unwrap_or_else(|| panic!("no container in {text}"));
        (c.id, c.runtime.map(Runtime::as_str), c.pod_uid)
    }

    #[test]
    fn both_kubelet_cgroup_drivers_give_the_same_pod_and_container() {
        let systemd_uid = UID.replace('-', "_");
        // As /proc/<pid>/cgroup shows them on a hybrid host (v1 lines, then the `0::` line) and
        // on a cgroup2-only host.
        let cgroupfs = format!(
            "12:pids:/kubepods/besteffort/pod{UID}/{ID}\n\
             4:memory:/kubepods/besteffort/pod{UID}/{ID}\n\
             1:name=systemd:/kubepods/besteffort/pod{UID}/{ID}\n\
             0::/kubepods/besteffort/pod{UID}/{ID}\n"
        );
        let systemd = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/\
             kubepods-burstable-pod{systemd_uid}.slice/cri-containerd-{ID}.scope\n"
        );
        let guaranteed =
            format!("0::/kubepods.slice/kubepods-pod{systemd_uid}.slice/crio-{ID}.scope\n");
        assert_eq!(identity(&cgroupfs), (ID.into(), None, Some(UID.into())));
        assert_eq!(
            identity(&systemd),
            (ID.into(), Some("containerd"), Some(UID.into()))
        );
        assert_eq!(
            identity(&guaranteed),
            (ID.into(), Some("cri-o"), Some(UID.into()))
        );
        // A static pod's uid is its manifest's hash.
        let hash = "6b1fe1e8d6b2c9f3a7d4e5f60718293a";
        assert_eq!(
            identity(&format!("0::/kubepods/burstable/pod{hash}/{ID}")).2,
            Some(hash.into())
        );
    }

    #[test]
    fn plain_containers_name_their_runtime_and_no_pod() {
        assert_eq!(
            identity(&format!("0::/system.slice/docker-{ID}.scope\n")),
            (ID.into(), Some("docker"), None)
        );
        assert_eq!(
            identity(&format!("12:memory:/docker/{ID}\n")),
            (ID.into(), Some("docker"), None)
        );
        assert_eq!(
            identity(&format!("0::/machine.slice/libpod-{ID}.scope/container\n")),
            (ID.into(), Some("podman"), None)
        );
        // A pod-like name outside kubepods is not a pod.
        assert_eq!(identity(&format!("0::/user.slice/pod{UID}/{ID}\n")).2, None);
        assert_eq!(container_from_cgroup("0::/init.scope\n"), None);
        assert_eq!(
            container_from_cgroup(&format!("0::/kubepods/besteffort/pod{UID}\n")),
            None,
            "the pod cgroup itself is no container"
        );
    }

    #[test]
    fn scan_maps_inodes_of_container_dirs() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root
            .path()
            .join("system.slice")
            .join(format!("docker-{ID}.scope"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let ino = std::fs::metadata(&dir).expect("meta").ino();
        let index = CgroupIndex::scan(root.path());
        assert_eq!(index.get(&ino).map(|c| c.id.as_str()), Some(ID));
        assert_eq!(index.len(), 1);
    }
}
