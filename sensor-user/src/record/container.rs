//! The record's `container` line: what `record` learned about a container's cgroup (from its
//! path) and, once read, the names its runtime gave it. `replay` feeds it to the engine before
//! the events that follow it, as `run` fed the same knowledge to its engine, so that exclusions
//! by image, namespace or pod give the same verdicts.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::lineage::{ContainerNames, ContainerRef, Runtime};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "container")]
pub struct ContainerLine {
    /// The container's cgroup (the events' `cgroup_id`).
    pub cgroup_id: u64,
    /// The 64-hex-digit container id.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// The runtime's names; absent until read (a later line for the same cgroup adds them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
}

impl ContainerLine {
    pub fn new(cgroup_id: u64, c: &ContainerRef, names: Option<&ContainerNames>) -> Self {
        let names = names.cloned().unwrap_or_default();
        Self {
            cgroup_id,
            id: c.id.clone(),
            runtime: c.runtime.map(|r| r.as_str().to_owned()),
            pod_uid: c.pod_uid.clone(),
            name: names.name,
            image: names.image,
            namespace: names.namespace,
            pod_name: names.pod_name,
        }
    }

    /// What the cgroup path said.
    pub fn container(&self) -> Arc<ContainerRef> {
        Arc::new(ContainerRef {
            id: self.id.clone(),
            runtime: self.runtime.as_deref().and_then(Runtime::parse),
            pod_uid: self.pod_uid.clone(),
        })
    }

    /// The runtime's names, None when the line has none.
    pub fn names(&self) -> Option<Arc<ContainerNames>> {
        let names = ContainerNames {
            name: self.name.clone(),
            image: self.image.clone(),
            namespace: self.namespace.clone(),
            pod_name: self.pod_name.clone(),
        };
        (!names.is_empty()).then(|| Arc::new(names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{RecordWriter, read_events};

    #[test]
    fn container_lines_read_back_before_the_event_they_precede() {
        let c = ContainerRef {
            id: "ab".repeat(32),
            runtime: Some(Runtime::Containerd),
            pod_uid: Some("5f3d2c1b-8a7e-4b6c-9d0e-1f2a3b4c5d6e".into()),
        };
        let names = ContainerNames {
            image: Some("registry.example/ops/backup:1.4".into()),
            namespace: Some("ops".into()),
            ..ContainerNames::default()
        };
        let mut writer = RecordWriter::new(Vec::new());
        let bare = ContainerLine::new(7, &c, None);
        let named = ContainerLine::new(7, &c, Some(&names));
        writer.write_container(&bare).expect("write");
        writer
            .write(&crate::detect::test_support::exec(
                1,
                2,
                1,
                "/bin/sh",
                &["sh"],
            ))
            .expect("write");
        writer.write_container(&named).expect("write");
        writer
            .write(&crate::detect::test_support::exec(
                2,
                3,
                1,
                "/bin/sh",
                &["sh"],
            ))
            .expect("write");
        let bytes = writer.into_inner();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.lines().next().unwrap_or("").contains("\"image\""),
            "names are left out until read: {text}"
        );
        let mut reader = read_events(&bytes[..]);
        assert!(reader.next().is_some_and(|e| e.is_ok()));
        assert_eq!(reader.take_containers(), vec![bare.clone()]);
        assert!(reader.next().is_some_and(|e| e.is_ok()));
        let lines = reader.take_containers();
        assert_eq!(lines, vec![named]);
        assert_eq!(lines[0].container(), Arc::new(c));
        assert_eq!(lines[0].names(), Some(Arc::new(names)));
        assert_eq!(bare.names(), None);
        assert!(reader.next().is_none());
    }
}
