//! Container ids from cgroup paths: events carry a cgroup id (the cgroup directory's inode), so
//! the cgroup filesystem is indexed once to map ids to the container ids in directory names.

use std::{os::unix::fs::MetadataExt as _, path::Path, sync::Arc};

use regex::Regex;
use rustc_hash::FxHashMap;

/// The container id in a /proc/<pid>/cgroup text or a cgroup path: the 64-hex-digit id that
/// docker, containerd, CRI-O and podman put in the cgroup directory name.
pub fn container_id_from_cgroup(text: &str) -> Option<&str> {
    container_regex()
        .captures_iter(text)
        .last()
        .and_then(|c| c.get(1))
        .map(|m| m.as_str())
}

fn container_regex() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        // A literal, valid pattern: it cannot fail to compile.
        #[allow(clippy::unwrap_used)]
        Regex::new(r"(?:^|[/\-:])([0-9a-f]{64})(?:\.scope)?(?:/|$|\s)").unwrap()
    })
}

/// cgroup inode -> container id for every container cgroup under a cgroup2 mount.
#[derive(Debug, Default)]
pub struct CgroupIndex;

/// Directory nesting followed under the cgroup root (kubepods nest about six deep).
const MAX_CGROUP_DEPTH: usize = 10;

impl CgroupIndex {
    /// Walks `root` (normally /sys/fs/cgroup); unreadable parts are skipped.
    pub fn scan(root: &Path) -> FxHashMap<u64, Arc<str>> {
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
                if let Some(id) = container_id_from_cgroup(&text) {
                    out.insert(meta.ino(), Arc::from(id));
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
        assert_eq!(index.get(&ino).map(|s| &**s), Some(ID));
        assert_eq!(index.len(), 1);
    }
}
