//! The workload of an alert: ECS `container.*` and, on Kubernetes, `orchestrator.*` for the pod.
//! The engine fills what the cgroup path says (container id, runtime, pod uid); `run`'s enrich
//! stage adds names and image from the runtime's own state ([`crate::enrich::workload`]).

use serde::Serialize;

use crate::lineage::ContainerRef;

/// ECS `container.*`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Container {
    pub id: String,
    /// `containerd`, `cri-o`, `docker` or `podman`; absent where neither the cgroup name nor the
    /// runtime's state tells.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// The container's name (on Kubernetes, the pod spec's container name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ContainerImage>,
}

/// ECS `container.image.*`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ContainerImage {
    /// The image reference without its tag or digest (`registry/ops/backup`).
    pub name: String,
    /// ECS keeps tags as a list; one here.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tag: Vec<String>,
    /// ECS `container.image.hash.all`: the digest when the reference names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<ImageHash>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ImageHash {
    pub all: Vec<String>,
}

/// ECS `orchestrator.*`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Orchestrator {
    /// Always `kubernetes`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The pod's namespace (from the runtime's state).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub resource: OrchestratorResource,
}

/// ECS `orchestrator.resource.*`: the pod.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OrchestratorResource {
    /// Always `pod`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The pod's name (from the runtime's state).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The pod uid (ECS `orchestrator.resource.id`, "unique ID of the resource").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl Container {
    /// What the cgroup path tells.
    pub fn from_cgroup(c: &ContainerRef) -> Container {
        Container {
            id: c.id.clone(),
            runtime: c.runtime.map(|r| r.as_str().to_owned()),
            name: None,
            image: None,
        }
    }
}

impl ContainerImage {
    /// Splits an image reference (`registry:5000/ops/backup:1.2@sha256:...`) into name, tag and
    /// digest. A colon before the last slash is a registry port, not a tag.
    pub fn parse(reference: &str) -> ContainerImage {
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.to_owned())),
            None => (reference, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                vec![rest[last_slash + i + 1..].to_owned()],
            ),
            None => (rest, Vec::new()),
        };
        ContainerImage {
            name: name.to_owned(),
            tag,
            hash: digest.map(|d| ImageHash { all: vec![d] }),
        }
    }
}

impl Orchestrator {
    /// A pod when the container's cgroup is below a kubelet pod cgroup.
    pub fn from_cgroup(c: &ContainerRef) -> Option<Orchestrator> {
        c.pod_uid.as_ref().map(|uid| Orchestrator {
            kind: "kubernetes",
            namespace: None,
            resource: OrchestratorResource {
                kind: "pod",
                name: None,
                id: Some(uid.clone()),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::Runtime;

    #[test]
    fn image_references_split_into_name_tag_and_digest() {
        let image = ContainerImage::parse("registry:5000/ops/backup:1.2");
        assert_eq!(image.name, "registry:5000/ops/backup");
        assert_eq!(image.tag, ["1.2"]);
        assert_eq!(image.hash, None);
        let image = ContainerImage::parse("registry:5000/ops/backup");
        assert_eq!(image.name, "registry:5000/ops/backup");
        assert!(image.tag.is_empty());
        let image = ContainerImage::parse("docker.io/library/nginx:1.25@sha256:abcd");
        assert_eq!(image.name, "docker.io/library/nginx");
        assert_eq!(image.tag, ["1.25"]);
        assert_eq!(image.hash.map(|h| h.all), Some(vec!["sha256:abcd".into()]));
    }

    #[test]
    fn a_pod_container_gives_a_kubernetes_pod() {
        let c = ContainerRef {
            id: "ab".repeat(32),
            runtime: Some(Runtime::Containerd),
            pod_uid: Some("5f3d2c1b-8a7e-4b6c-9d0e-1f2a3b4c5d6e".into()),
        };
        let json = serde_json::json!({
            "container": Container::from_cgroup(&c),
            "orchestrator": Orchestrator::from_cgroup(&c),
        });
        assert_eq!(
            json,
            serde_json::json!({
                "container": { "id": "ab".repeat(32), "runtime": "containerd" },
                "orchestrator": {
                    "type": "kubernetes",
                    "resource": { "type": "pod", "id": "5f3d2c1b-8a7e-4b6c-9d0e-1f2a3b4c5d6e" },
                },
            })
        );
        let plain = ContainerRef { pod_uid: None, ..c };
        assert_eq!(Orchestrator::from_cgroup(&plain), None);
    }
}
