//! Reading one container's OCI runtime config from the runtime's state on the node: the
//! annotations the CRI runtimes write there name the pod, its namespace, the container and the
//! image. Plain files under /run: no socket, no API version, no credentials.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::WorkloadConfig;

/// What the runtime's state says about a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    pub runtime: Option<&'static str>,
    pub name: Option<String>,
    /// The image reference as the runtime was given it.
    pub image: Option<String>,
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
    pub pod_uid: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an OCI runtime config: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Largest config.json read (a runtime config is a few KiB; a huge one is not one).
const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Largest containers/storage list read: about 500 bytes a container.
const MAX_STORAGE_LIST_BYTES: u64 = 16 << 20;

/// The container `id`'s metadata, `None` when no configured directory knows it.
pub fn lookup(config: &WorkloadConfig, id: &str) -> Result<Option<Meta>, LookupError> {
    // The id came from a cgroup name matched as 64 hex digits: it cannot climb out of a dir.
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    for dir in &config.containerd_task_dirs {
        // containerd namespaces (`k8s.io` for the CRI, `moby` for docker, `default` ...).
        let Ok(namespaces) = std::fs::read_dir(dir) else {
            continue;
        };
        for ns in namespaces.flatten() {
            let path = ns.path().join(id).join("config.json");
            // exists, not is_file: whatever is there is read, and a read that hangs (a state
            // directory on a stuck filesystem) holds this blocking thread, never the alert,
            // and at most one read per container is ever in flight.
            if path.exists() {
                return read(&path, MAX_CONFIG_BYTES)
                    .map(|v| Some(from_annotations(&v, Some("containerd"))));
            }
        }
    }
    for dir in &config.storage_container_dirs {
        let path = dir.join(id).join("userdata").join("config.json");
        if path.exists() {
            let mut meta = from_annotations(&read(&path, MAX_CONFIG_BYTES)?, None);
            if meta.name.is_none() || meta.image.is_none() {
                // Podman writes neither into the OCI config; containers/storage's own list of
                // its containers has both (names, and the image reference in its metadata).
                storage_names(&dir.join("containers.json"), id, &mut meta)?;
            }
            return Ok(Some(meta));
        }
    }
    for dir in &config.docker_container_dirs {
        let path = dir.join(id).join("config.v2.json");
        if path.exists() {
            return read(&path, MAX_CONFIG_BYTES).map(|v| Some(docker(&v)));
        }
    }
    Ok(None)
}

/// Docker's own state of a container (`config.v2.json`): its name with Docker's leading `/`,
/// the image as it was asked for, and on a cri-dockerd node the kubelet's labels.
fn docker(state: &Value) -> Meta {
    let labels = state.get("Config").and_then(|c| c.get("Labels"));
    let label = |key: &str| {
        labels
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let name = state
        .get("Name")
        .and_then(Value::as_str)
        .map(|n| n.trim_start_matches('/'))
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    Meta {
        runtime: Some("docker"),
        name: label("io.kubernetes.container.name").or(name),
        image: state
            .get("Config")
            .and_then(|c| c.get("Image"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        pod_name: label("io.kubernetes.pod.name"),
        pod_namespace: label("io.kubernetes.pod.namespace"),
        pod_uid: label("io.kubernetes.pod.uid"),
    }
}

/// Name and image of container `id` from a containers/storage `containers.json`, if it is there.
fn storage_names(path: &Path, id: &str, meta: &mut Meta) -> Result<(), LookupError> {
    if !path.exists() {
        return Ok(());
    }
    let list = read(path, MAX_STORAGE_LIST_BYTES)?;
    let Some(entry) = list.as_array().and_then(|l| {
        l.iter()
            .find(|c| c.get("id").and_then(Value::as_str) == Some(id))
    }) else {
        return Ok(());
    };
    if meta.name.is_none() {
        meta.name = entry
            .get("names")
            .and_then(|n| n.get(0))
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    if meta.image.is_none() {
        // `metadata` is itself JSON, as a string.
        meta.image = entry
            .get("metadata")
            .and_then(Value::as_str)
            .and_then(|m| serde_json::from_str::<Value>(m).ok())
            .and_then(|m| {
                m.get("image-name")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
    }
    Ok(())
}

fn read(path: &Path, max_bytes: u64) -> Result<Value, LookupError> {
    use std::io::Read as _;
    let err = |source| LookupError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(err)?;
    let mut text = Vec::new();
    file.take(max_bytes).read_to_end(&mut text).map_err(err)?;
    serde_json::from_slice(&text).map_err(|source| LookupError::Json {
        path: path.to_owned(),
        source,
    })
}

/// The annotations of containerd's CRI plugin (`io.kubernetes.cri.*`), CRI-O's
/// (`io.kubernetes.pod.*`, `io.kubernetes.cri-o.*`) and nerdctl's (`nerdctl/name`).
fn from_annotations(config: &Value, runtime: Option<&'static str>) -> Meta {
    let annotations = config.get("annotations");
    let get = |key: &str| {
        annotations
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    // Podman also writes some `io.kubernetes.cri-o.*` keys, but marks itself as the manager.
    let crio = get("io.kubernetes.cri-o.ContainerID").is_some()
        && get("io.container.manager").as_deref() != Some("libpod");
    let runtime = runtime.or(Some(if crio { "cri-o" } else { "podman" }));
    Meta {
        runtime,
        name: get("io.kubernetes.cri.container-name")
            .or_else(|| get("io.kubernetes.container.name"))
            .or_else(|| get("nerdctl/name")),
        image: get("io.kubernetes.cri.image-name")
            .or_else(|| get("io.kubernetes.cri-o.ImageName"))
            .or_else(|| get("io.kubernetes.cri-o.Image")),
        pod_name: get("io.kubernetes.cri.sandbox-name").or_else(|| get("io.kubernetes.pod.name")),
        pod_namespace: get("io.kubernetes.cri.sandbox-namespace")
            .or_else(|| get("io.kubernetes.pod.namespace")),
        pod_uid: get("io.kubernetes.cri.sandbox-uid").or_else(|| get("io.kubernetes.pod.uid")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "8faf3044cf8eedd65fd06b3d726fd92acfc3f9d7757efe033c40bdfd124a0599";

    fn config(root: &Path) -> WorkloadConfig {
        WorkloadConfig {
            containerd_task_dirs: vec![root.join("task")],
            storage_container_dirs: vec![root.join("storage")],
            docker_container_dirs: vec![root.join("docker")],
            ..WorkloadConfig::default()
        }
    }

    fn write(path: &Path, json: &Value) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, json.to_string()).expect("write");
    }

    #[test]
    fn containerd_cri_annotations_name_pod_namespace_container_and_image() {
        let root = tempfile::tempdir().expect("tempdir");
        // As containerd 1.6's CRI plugin wrote it for a pod run through the CRI API here.
        write(
            &root.path().join(format!("task/k8s.io/{ID}/config.json")),
            &serde_json::json!({
                "ociVersion": "1.0.2-dev",
                "annotations": {
                    "io.kubernetes.cri.container-name": "checkout",
                    "io.kubernetes.cri.container-type": "container",
                    "io.kubernetes.cri.image-name": "registry.local/shop/checkout:1.0",
                    "io.kubernetes.cri.sandbox-id": "92f38b81c48f767e",
                    "io.kubernetes.cri.sandbox-name": "checkout-1",
                    "io.kubernetes.cri.sandbox-namespace": "shop",
                    "io.kubernetes.cri.sandbox-uid": "5f3d2c1b-8a7e-4b6c-9d0e-1f2a3b4c5d6e",
                },
            }),
        );
        let meta = lookup(&config(root.path()), ID)
            .expect("read")
            .expect("found");
        assert_eq!(
            meta,
            Meta {
                runtime: Some("containerd"),
                name: Some("checkout".into()),
                image: Some("registry.local/shop/checkout:1.0".into()),
                pod_name: Some("checkout-1".into()),
                pod_namespace: Some("shop".into()),
                pod_uid: Some("5f3d2c1b-8a7e-4b6c-9d0e-1f2a3b4c5d6e".into()),
            }
        );
    }

    #[test]
    fn crio_annotations_and_a_missing_container() {
        let root = tempfile::tempdir().expect("tempdir");
        write(
            &root
                .path()
                .join(format!("storage/{ID}/userdata/config.json")),
            &serde_json::json!({
                "annotations": {
                    "io.kubernetes.cri-o.ContainerID": ID,
                    "io.kubernetes.cri-o.ImageName": "quay.io/ops/backup:2",
                    "io.kubernetes.container.name": "backup",
                    "io.kubernetes.pod.name": "backup-28391",
                    "io.kubernetes.pod.namespace": "ops",
                    "io.kubernetes.pod.uid": "0d4e5f60-7182-4a3b-8c9d-0e1f2a3b4c5d",
                },
            }),
        );
        let meta = lookup(&config(root.path()), ID)
            .expect("read")
            .expect("found");
        assert_eq!(meta.runtime, Some("cri-o"));
        assert_eq!(meta.name.as_deref(), Some("backup"));
        assert_eq!(meta.image.as_deref(), Some("quay.io/ops/backup:2"));
        assert_eq!(meta.pod_namespace.as_deref(), Some("ops"));
        let other = "ab".repeat(32);
        assert_eq!(lookup(&config(root.path()), &other).expect("read"), None);
        // Not an id: never joined to a path.
        assert_eq!(
            lookup(&config(root.path()), "../../etc").expect("read"),
            None
        );
    }

    #[test]
    fn podman_names_come_from_the_storage_list() {
        let root = tempfile::tempdir().expect("tempdir");
        // As podman 4.3 wrote them here for `podman run --name web-1`.
        write(
            &root
                .path()
                .join(format!("storage/{ID}/userdata/config.json")),
            &serde_json::json!({
                "annotations": {
                    "io.container.manager": "libpod",
                    "io.kubernetes.cri-o.Created": "2026-12-05T08:50:46.160392351Z",
                    "io.kubernetes.cri-o.TTY": "false",
                    "io.podman.annotations.autoremove": "FALSE",
                },
            }),
        );
        write(
            &root.path().join("storage/containers.json"),
            &serde_json::json!([
                { "id": "ab".repeat(32), "names": ["other"], "metadata": "{}" },
                {
                    "id": ID,
                    "names": ["web-1"],
                    "image": "67bf51ea013fe6f92404fd5d23d6b0af2fce318070476838bc84046cc9782746",
                    "metadata": "{\"image-name\":\"registry.local/shop/checkout:1.0\",\"name\":\"web-1\"}",
                },
            ]),
        );
        let meta = lookup(&config(root.path()), ID)
            .expect("read")
            .expect("found");
        assert_eq!(meta.runtime, Some("podman"));
        assert_eq!(meta.name.as_deref(), Some("web-1"));
        assert_eq!(
            meta.image.as_deref(),
            Some("registry.local/shop/checkout:1.0")
        );
        assert_eq!(meta.pod_name, None);
    }

    #[test]
    fn docker_names_come_from_its_container_state() {
        let root = tempfile::tempdir().expect("tempdir");
        // The fields of moby's config.v2.json that are read; `Image` is the image id, the
        // reference as asked for is `Config.Image`.
        write(
            &root.path().join(format!("docker/{ID}/config.v2.json")),
            &serde_json::json!({
                "ID": ID,
                "Name": "/web-1",
                "Image": "sha256:67bf51ea013fe6f92404fd5d23d6b0af2fce318070476838bc84046cc9782746",
                "Config": { "Image": "nginx:1.25", "Labels": { "maintainer": "x" } },
                "State": { "Running": true, "Pid": 4242 },
            }),
        );
        let meta = lookup(&config(root.path()), ID)
            .expect("read")
            .expect("found");
        assert_eq!(
            meta,
            Meta {
                runtime: Some("docker"),
                name: Some("web-1".into()),
                image: Some("nginx:1.25".into()),
                ..Meta::default()
            }
        );
        // cri-dockerd: the kubelet's labels name the pod and the spec's container name.
        let other = "cd".repeat(32);
        write(
            &root.path().join(format!("docker/{other}/config.v2.json")),
            &serde_json::json!({
                "Name": "/k8s_backup_backup-29011_ops_0d4e5f60-7182-4a3b-8c9d-0e1f2a3b4c5d_0",
                "Config": { "Image": "registry.example/ops/backup:1.4", "Labels": {
                    "io.kubernetes.container.name": "backup",
                    "io.kubernetes.pod.name": "backup-29011",
                    "io.kubernetes.pod.namespace": "ops",
                    "io.kubernetes.pod.uid": "0d4e5f60-7182-4a3b-8c9d-0e1f2a3b4c5d",
                } },
            }),
        );
        let pod = lookup(&config(root.path()), &other)
            .expect("read")
            .expect("found");
        assert_eq!(pod.name.as_deref(), Some("backup"));
        assert_eq!(pod.pod_name.as_deref(), Some("backup-29011"));
        assert_eq!(pod.pod_namespace.as_deref(), Some("ops"));
        assert_eq!(
            pod.image.as_deref(),
            Some("registry.example/ops/backup:1.4")
        );
    }

    #[test]
    fn a_config_that_is_not_json_is_an_error() {
        let root = tempfile::tempdir().expect("tempdir");
        let path = root.path().join(format!("task/k8s.io/{ID}/config.json"));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, "{ not json").expect("write");
        assert!(matches!(
            lookup(&config(root.path()), ID),
            Err(LookupError::Json { .. })
        ));
    }
}
