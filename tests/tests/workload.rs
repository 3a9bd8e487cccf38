//! Workload identity on alerts: a real containerd pod, run over the CRI API as the kubelet runs
//! it, whose fake nginx spawns `sh -c id`. The alert names the pod, its namespace and uid, the
//! container and its image: the uid from the cgroup the runtime made, the names from
//! containerd's own state on the node.

use std::time::Duration;

use integration_tests::{RunningSensor, cri, require_root, temp_dir};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");
/// Generous: the latency is measured by `cargo xtask bench`, not asserted here.
const ALERT_WITHIN: Duration = Duration::from_secs(30);
const POD_UID: &str = "5f3d2c1b-8a7e-4b6c-9d0e-1f2a3b4c5d6e";

#[test]
fn a_pod_shell_alert_names_pod_namespace_container_and_image() {
    require_root();
    let dir = temp_dir("lineage-workload-");
    let dir = dir.path();
    let rootfs = cri::rootfs(dir, &[(std::path::Path::new(WORKLOAD), "/usr/sbin/nginx")])
        .unwrap_or_else(|e| panic!("{e}"));
    let mut containerd =
        cri::Containerd::start(&dir.join("containerd")).unwrap_or_else(|e| panic!("{e}"));
    containerd
        .import_pause_image(&rootfs)
        .unwrap_or_else(|e| panic!("{e}"));
    containerd
        .import_image(&rootfs, "registry.local/shop/checkout:1.0")
        .unwrap_or_else(|e| panic!("{e}"));

    let config = dir.join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "[incidents]\nstate_file = \"\"\n\
             [workload]\ncontainerd_task_dirs = [\"{}\"]\nstorage_container_dirs = []\n\
             lookup_wait_ms = 1000\n",
            containerd.task_dir().display()
        ),
    )
    .expect("write config");
    let sensor = RunningSensor::start(&config);

    // The container's first process waits for /go, then becomes nginx (same pid), which runs
    // `sh -c id` and stays: the test knows nginx's pid before its shell exists.
    let pod = containerd
        .run_pod(
            "shop",
            "checkout-1",
            POD_UID,
            "checkout",
            "registry.local/shop/checkout:1.0",
            &[
                "/bin/sh",
                "-c",
                "until [ -e /go ]; do sleep 0.1; done; \
                 exec /usr/sbin/nginx paced 0 1 600000 /bin/sh -c id",
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let nginx = containerd
        .init_pid(&pod.container_id)
        .unwrap_or_else(|e| panic!("{e}"));
    sensor.own_pid(nginx);
    std::fs::write(format!("/proc/{nginx}/root/go"), "").expect("start the pod's nginx");

    let (shell, _) = sensor
        .expect_alert(ALERT_WITHIN, "the pod's server-spawned-shell", |a| {
            a.rule() == "server-spawned-shell"
        })
        .unwrap_or_else(|e| panic!("{e}\ncontainerd log: {}", containerd.log()));
    let doc = &shell.doc;
    assert_eq!(
        doc["process"]["args"],
        serde_json::json!(["/bin/sh", "-c", "id"])
    );
    assert_eq!(doc["lineage"]["server"]["pid"], nginx);
    assert_eq!(doc["container"]["id"], pod.container_id.as_str(), "{doc}");
    assert_eq!(doc["container"]["name"], "checkout", "{doc}");
    assert_eq!(doc["container"]["runtime"], "containerd", "{doc}");
    assert_eq!(
        doc["container"]["image"],
        serde_json::json!({ "name": "registry.local/shop/checkout", "tag": ["1.0"] }),
        "{doc}"
    );
    assert_eq!(
        doc["orchestrator"],
        serde_json::json!({
            "type": "kubernetes",
            "namespace": "shop",
            "resource": { "type": "pod", "name": "checkout-1", "id": POD_UID },
        }),
        "{doc}"
    );
    assert!(doc["lineage"].get("workload_missing").is_none(), "{doc}");

    let metrics = sensor.metrics();
    assert_eq!(
        integration_tests::metric(
            &metrics,
            "lineage_sensor_workload_lookups_total{outcome=\"found\"}"
        ),
        Some(1.0),
        "the container's state was read"
    );
}
