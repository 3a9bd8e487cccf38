//! The cache and the bounded wait, against real files: a FIFO as a container's config.json
//! stands for a runtime state that hangs (a read blocks until a writer comes).

use std::{ffi::CString, os::unix::ffi::OsStrExt as _, path::Path, time::Duration};

use super::*;
use crate::{
    alert::{
        AlertEvent, Container, Host, Incident, LineageInfo, NamedId, ProcessInfo, RuleInfo,
        Technique, Threat, User,
    },
    config::Severity,
};

const ID: &str = "8faf3044cf8eedd65fd06b3d726fd92acfc3f9d7757efe033c40bdfd124a0599";

fn alert() -> Alert {
    let process = ProcessInfo {
        pid: 42,
        entity_id: "42-1".into(),
        executable: "/bin/sh".into(),
        name: Some("sh".into()),
        args: vec!["/bin/sh".into(), "-c".into(), "id".into()],
        command_line: Some("/bin/sh -c id".into()),
        user: User { id: "0".into() },
        start: "2026-12-05T00:00:00Z".into(),
        parent: None,
    };
    Alert {
        timestamp: "2026-12-05T00:00:00Z".into(),
        event: AlertEvent {
            kind: "alert",
            category: vec!["process"],
            kind_type: vec!["start"],
            id: "x".into(),
            severity: 73,
            module: "lineage_sensor",
            dataset: "lineage_sensor.alert",
            outcome: None,
            action: None,
        },
        rule: RuleInfo {
            id: "server-spawned-shell",
            name: "n",
            description: "d",
        },
        threat: Threat {
            framework: "MITRE ATT&CK",
            tactic: NamedId {
                id: "TA0003",
                name: "Persistence",
            },
            technique: Technique {
                id: "T1505",
                name: "Server Software Component",
                subtechnique: None,
            },
        },
        process: process.clone(),
        file: None,
        destination: None,
        network: None,
        host: Host {
            hostname: "node".into(),
        },
        client: None,
        container: Some(Container {
            id: ID.into(),
            runtime: None,
            name: None,
            image: None,
        }),
        orchestrator: None,
        lineage: LineageInfo {
            incident: Incident { id: "i".into() },
            severity: Severity::High,
            server: None,
            ancestry: vec![process],
            suppressed_count: 0,
            args_truncated: false,
            shell_copy_of: None,
            shell: None,
            indicators: Vec::new(),
            file_hash_missing: None,
            baseline: None,
            client: None,
            evidence: None,
            workload_missing: None,
        },
    }
}

fn config_json(dir: &Path) -> std::path::PathBuf {
    let path = dir.join(format!("task/k8s.io/{ID}/config.json"));
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    path
}

const ANNOTATIONS: &str = r#"{"annotations": {
    "io.kubernetes.cri.container-name": "checkout",
    "io.kubernetes.cri.image-name": "registry.local/shop/checkout:1.0",
    "io.kubernetes.cri.sandbox-name": "checkout-1",
    "io.kubernetes.cri.sandbox-namespace": "shop",
    "io.kubernetes.cri.sandbox-uid": "5f3d2c1b-8a7e-4b6c-9d0e-1f2a3b4c5d6e"}}"#;

fn workload(dir: &Path, wait_ms: u64) -> (Workload, mpsc::UnboundedReceiver<Alert>, Arc<Metrics>) {
    let config = WorkloadConfig {
        containerd_task_dirs: vec![dir.join("task")],
        storage_container_dirs: Vec::new(),
        lookup_wait_ms: wait_ms,
        ..WorkloadConfig::default()
    };
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let (tx, rx) = mpsc::unbounded_channel();
    (Workload::new(&config, metrics.clone(), tx), rx, metrics)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_alert_waits_for_the_read_and_the_next_is_served_from_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(config_json(dir.path()), ANNOTATIONS).expect("write");
    // A wait far longer than a read of a small file takes, so the read is done within it.
    let (workload, mut rx, metrics) = workload(dir.path(), 1000);
    assert!(workload.apply(alert()).is_none(), "not cached: it waits");
    let first = rx.recv().await.expect("the alert comes back");
    assert_eq!(first.lineage.workload_missing, None);
    let container = first.container.expect("container");
    assert_eq!(container.name.as_deref(), Some("checkout"));
    assert_eq!(container.runtime.as_deref(), Some("containerd"));
    let orchestrator = first.orchestrator.expect("pod");
    assert_eq!(orchestrator.namespace.as_deref(), Some("shop"));
    assert_eq!(orchestrator.resource.name.as_deref(), Some("checkout-1"));

    let second = workload.apply(alert()).expect("cached: at once");
    assert_eq!(
        second.orchestrator.and_then(|o| o.resource.name).as_deref(),
        Some("checkout-1")
    );
    assert_eq!(metrics.workload.lookups("found"), 1, "read once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_runtime_state_delays_no_alert_beyond_the_wait() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = config_json(dir.path());
    let c_path = CString::new(path.as_os_str().as_bytes()).expect("no NUL");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
    let (workload, mut rx, _metrics) = workload(dir.path(), 20);
    assert!(workload.apply(alert()).is_none());
    // The read blocks until a writer opens the FIFO, which nothing does yet: the alert comes
    // back anyway, without names, saying so.
    let first = rx.recv().await.expect("the alert comes back");
    assert_eq!(first.lineage.workload_missing, Some("pending"));
    assert!(first.container.is_some_and(|c| c.name.is_none()));
    // Still reading: the next alert waits its bounded time too, and is not read twice.
    assert!(workload.apply(alert()).is_none());
    let second = rx.recv().await.expect("the alert comes back");
    assert_eq!(second.lineage.workload_missing, Some("pending"));

    // The state answers: later alerts have the names.
    let writer = tokio::task::spawn_blocking(move || std::fs::write(&path, ANNOTATIONS));
    writer.await.expect("join").expect("write the FIFO");
    let named = loop {
        let got = match workload.apply(alert()) {
            Some(alert) => alert,
            None => rx.recv().await.expect("back"),
        };
        if got.lineage.workload_missing.is_none() {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        named.container.and_then(|c| c.name).as_deref(),
        Some("checkout")
    );
}
