//! Workload identity on alerts: a real containerd pod, run over the CRI API as the kubelet runs
//! it, whose fake nginx spawns `sh -c id`. The alert names the pod, its namespace and uid, the
//! container and its image: the uid from the cgroup the runtime made, the names from
//! containerd's own state on the node. Where that state cannot be read, the alert still leaves
//! with what the cgroup path tells, and says why the rest is missing.

use std::{path::Path, time::Duration};

use integration_tests::{
    Alert, RunningSensor, cri, fake_server, marked_alert, require_root, temp_dir,
};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");
/// Generous: the latency is measured by `cargo xtask bench`, not asserted here.
const ALERT_WITHIN: Duration = Duration::from_secs(30);
const POD_UID: &str = "5f3d2c1b-8a7e-4b6c-9d0e-1f2a3b4c5d6e";
const IMAGE: &str = "registry.local/shop/checkout:1.0";

/// A containerd with the pause and checkout images, and a sensor reading `task_dirs` (containerd's
/// own task dir when `None`).
fn setup(dir: &Path, task_dirs: Option<&str>) -> (cri::Containerd, RunningSensor) {
    setup_with(dir, task_dirs, "", &[])
}

/// As [`setup`], with `extra` appended to the sensor's config and the sensor run by `wrapper`.
fn setup_with(
    dir: &Path,
    task_dirs: Option<&str>,
    extra: &str,
    wrapper: &[String],
) -> (cri::Containerd, RunningSensor) {
    let rootfs = cri::rootfs(dir, &[(Path::new(WORKLOAD), "/usr/sbin/nginx")])
        .unwrap_or_else(|e| panic!("{e}"));
    let containerd =
        cri::Containerd::start(&dir.join("containerd")).unwrap_or_else(|e| panic!("{e}"));
    containerd
        .import_pause_image(&rootfs)
        .unwrap_or_else(|e| panic!("{e}"));
    containerd
        .import_image(&rootfs, IMAGE)
        .unwrap_or_else(|e| panic!("{e}"));
    let task_dirs = task_dirs
        .map(str::to_owned)
        .unwrap_or_else(|| containerd.task_dir().display().to_string());
    let config = dir.join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "[incidents]\nstate_file = \"\"\n\
             [workload]\ncontainerd_task_dirs = [\"{task_dirs}\"]\nstorage_container_dirs = []\n\
             lookup_wait_ms = 1000\n{extra}"
        ),
    )
    .expect("write config");
    let sensor = RunningSensor::start_with(&config, wrapper)
        .unwrap_or_else(|(status, log)| panic!("sensor not ready ({status}): {log:#?}"));
    (containerd, sensor)
}

/// Runs the pod `shop/checkout-1` and its nginx's `sh -c id`; the shell's alert and the
/// container id.
fn pod_shell_alert(containerd: &mut cri::Containerd, sensor: &RunningSensor) -> (Alert, String) {
    // The container's first process waits for /go, then becomes nginx (same pid), which runs
    // `sh -c id` and stays: the test knows nginx's pid before its shell exists.
    let pod = containerd
        .run_pod(
            "shop",
            "checkout-1",
            POD_UID,
            "checkout",
            IMAGE,
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
    assert_eq!(
        shell.doc["process"]["args"],
        serde_json::json!(["/bin/sh", "-c", "id"])
    );
    assert_eq!(shell.doc["lineage"]["server"]["pid"], nginx);
    (shell, pod.container_id)
}

fn lookups(sensor: &RunningSensor, outcome: &str) -> Option<f64> {
    integration_tests::metric(
        &sensor.metrics(),
        &format!("lineage_sensor_workload_lookups_total{{outcome=\"{outcome}\"}}"),
    )
}

#[test]
fn a_pod_shell_alert_names_pod_namespace_container_and_image() {
    require_root();
    let dir = temp_dir("lineage-workload-");
    let (mut containerd, sensor) = setup(dir.path(), None);
    let (shell, container_id) = pod_shell_alert(&mut containerd, &sensor);
    let doc = &shell.doc;
    assert_eq!(doc["container"]["id"], container_id.as_str(), "{doc}");
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
    assert_eq!(lookups(&sensor, "found"), Some(1.0));
}

#[test]
fn without_the_runtime_state_the_alert_has_the_cgroup_identity_and_says_why() {
    require_root();
    let dir = temp_dir("lineage-workload-");
    // As a node whose DaemonSet does not mount the runtime's state.
    let missing = dir.path().join("not-mounted");
    let (mut containerd, sensor) =
        setup(dir.path(), Some(missing.to_str().expect("utf-8 temp dir")));
    let (shell, container_id) = pod_shell_alert(&mut containerd, &sensor);
    let doc = &shell.doc;
    assert_eq!(doc["container"]["id"], container_id.as_str(), "{doc}");
    assert!(doc["container"].get("name").is_none(), "{doc}");
    assert_eq!(
        doc["orchestrator"],
        serde_json::json!({
            "type": "kubernetes",
            "resource": { "type": "pod", "id": POD_UID },
        }),
        "the pod uid from the cgroup path: {doc}"
    );
    assert_eq!(doc["lineage"]["workload_missing"], "not_found", "{doc}");
    assert_eq!(lookups(&sensor, "not_found"), Some(1.0));
}

/// Podman with a store of the test's own, removed on drop.
struct Podman {
    args: Vec<String>,
    name: String,
}

impl Podman {
    fn new(dir: &Path, name: &str) -> Podman {
        let store = |sub: &str| dir.join(sub).display().to_string();
        Podman {
            args: vec![
                "--root".into(),
                store("podman-root"),
                "--runroot".into(),
                store("podman-run"),
                "--storage-driver".into(),
                "vfs".into(),
                "--cgroup-manager".into(),
                "cgroupfs".into(),
            ],
            name: name.to_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("podman")
            .args(&self.args)
            .args(args)
            .output()
            .expect("run podman (apt-get install podman)");
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = std::process::Command::new("podman")
            .args(&self.args)
            .args(["rm", "--force", "--time", "0", &self.name])
            .output();
    }
}

#[test]
fn a_podman_container_alert_names_the_container_and_image() {
    require_root();
    let dir = temp_dir("lineage-podman-");
    let dir = dir.path();
    let rootfs = cri::rootfs(dir, &[(Path::new(WORKLOAD), "/usr/sbin/nginx")])
        .unwrap_or_else(|e| panic!("{e}"));
    let archive = dir.join("image.tar");
    cri::oci_archive(&rootfs, IMAGE, &archive).unwrap_or_else(|e| panic!("{e}"));
    let podman = Podman::new(dir, "web-1");
    podman.run(&["load", "--input", archive.to_str().expect("utf-8 temp dir")]);

    let config = dir.join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "[incidents]\nstate_file = \"\"\n\
             [workload]\ncontainerd_task_dirs = []\nstorage_container_dirs = [\"{}\"]\n\
             lookup_wait_ms = 1000\n",
            dir.join("podman-root/vfs-containers").display()
        ),
    )
    .expect("write config");
    let sensor = RunningSensor::start(&config);

    // The limits podman would ask for by default are above what this session may grant.
    let id = podman.run(&[
        "run",
        "--detach",
        "--name",
        "web-1",
        "--network",
        "host",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=4096:4096",
        IMAGE,
        "/bin/sh",
        "-c",
        "until [ -e /go ]; do sleep 0.1; done; \
         exec /usr/sbin/nginx paced 0 1 600000 /bin/sh -c id",
    ]);
    let nginx: u32 = podman
        .run(&["inspect", "--format", "{{.State.Pid}}", "web-1"])
        .parse()
        .expect("the container's pid");
    sensor.own_pid(nginx);
    std::fs::write(format!("/proc/{nginx}/root/go"), "").expect("start the container's nginx");
    let (shell, _) = sensor
        .expect_alert(ALERT_WITHIN, "the container's server-spawned-shell", |a| {
            a.rule() == "server-spawned-shell"
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let doc = &shell.doc;
    assert_eq!(doc["container"]["id"], id.as_str(), "{doc}");
    assert_eq!(doc["container"]["name"], "web-1", "{doc}");
    assert_eq!(doc["container"]["runtime"], "podman", "{doc}");
    assert_eq!(
        doc["container"]["image"]["name"], "registry.local/shop/checkout",
        "{doc}"
    );
    assert!(doc.get("orchestrator").is_none(), "no pod: {doc}");
}

/// Exclusions by image and by namespace, as a platform team tunes per workload: three pods
/// whose nginx each runs a shell; the one whose image and namespace match neither exclusion
/// alerts, the other two are excluded in the engine (counted, no alert).
#[test]
fn exclusions_by_image_and_namespace_take_effect_on_real_pods() {
    require_root();
    let dir = temp_dir("lineage-workload-");
    // Three like shells: each must be judged, none held back by the rate limit.
    let exclusions = "[rate_limit]\nwindow_secs = 0\n\
         [[rules.server_spawned_shell.exclude]]\n\
         container.image.name = \"registry.local/shop/*\"\n\
         [[rules.server_spawned_shell.exclude]]\n\
         orchestrator.namespace = \"kube-system\"\n";
    // The watch's debug line says when a container's names are in the engine.
    let wrapper = [
        "env".to_owned(),
        "LINEAGE_SENSOR_LOG=info,lineage_sensor::commands::run::containers=debug".to_owned(),
    ];
    let (mut containerd, mut sensor) = setup_with(dir.path(), None, exclusions, &wrapper);
    // (namespace, pod, uid, image): by image, by namespace, by neither.
    let pods = [
        ("shop", "checkout-1", POD_UID, IMAGE),
        (
            "kube-system",
            "proxy-1",
            "0c7a4d2e-1b3f-4a5c-8d6e-7f8091a2b3c4",
            "registry.local/infra/proxy:2.0",
        ),
        (
            "ops",
            "backup-1",
            "9e8d7c6b-5a4f-4e3d-9c2b-1a0f9e8d7c6b",
            "registry.local/ops/backup:1.0",
        ),
    ];
    let rootfs = dir.path().join("rootfs");
    let mut nginx = Vec::new();
    for (namespace, pod, uid, image) in pods {
        let (id, pid) = paced_pod(&mut containerd, &rootfs, (namespace, pod, uid, image));
        sensor.own_pid(pid);
        // Names read before the shell runs: the race a brand-new container's first alerts
        // lose (they are judged without names, so they alert) is not what this test is about.
        sensor.expect_log(ALERT_WITHIN, &format!("container {id}: names read"));
        nginx.push(pid);
    }
    run_shells(&nginx);
    // The pod matching neither exclusion alerts. An alert of a container can wait for its
    // names in the enrich stage (`lookup_wait_ms`) while a host process's does not, so the
    // host's sentinel below can overtake a pod's alert: the excluded shells are also judged by
    // the engine's own count at the end, which no ordering affects.
    let (backup, mut alerts) = sensor
        .expect_alert(ALERT_WITHIN, "the backup pod's shell", |a| {
            a.rule() == "server-spawned-shell" && a.doc["lineage"]["server"]["pid"] == nginx[2]
        })
        .unwrap_or_else(|e| panic!("{e}"));
    alerts.push(backup);
    let server = fake_server(WORKLOAD, dir.path(), "nginx");
    alerts.extend(
        sensor
            .quiet_until_sentinel(ALERT_WITHIN, |marker| {
                marked_alert(&server, marker);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let shells_of = |pid: u32| {
        alerts
            .iter()
            .filter(|a| {
                a.rule() == "server-spawned-shell" && a.doc["lineage"]["server"]["pid"] == pid
            })
            .count()
    };
    assert_eq!(shells_of(nginx[0]), 0, "excluded by image: {alerts:#?}");
    assert_eq!(shells_of(nginx[1]), 0, "excluded by namespace: {alerts:#?}");
    assert_eq!(shells_of(nginx[2]), 1, "matches neither: {alerts:#?}");
    let backup = alerts
        .iter()
        .find(|a| a.doc["lineage"]["server"]["pid"] == nginx[2])
        .map(|a| &a.doc);
    assert_eq!(
        backup.map(|d| d["orchestrator"]["namespace"].clone()),
        Some(serde_json::json!("ops"))
    );
    // The engine's own count: the two shells were excluded, not missed.
    let log = sensor.stop_clean();
    let shell_totals = log.iter().find_map(|l| {
        let (_, rest) = l.split_once(" server-spawned-shell=")?;
        rest.split_once(')').map(|(counts, _)| counts.to_owned())
    });
    assert!(
        shell_totals
            .as_deref()
            .is_some_and(|t| t.ends_with("excluded 2")),
        "{shell_totals:?} in {log:#?}"
    );
}

/// A pod whose container waits for /go, then becomes nginx (same pid), which runs a shell that
/// writes /ran and runs no recon tool (the exclusions here are the shell rule's). The container
/// id and nginx's pid.
fn paced_pod(
    containerd: &mut cri::Containerd,
    rootfs: &Path,
    (namespace, pod, uid, image): (&str, &str, &str, &str),
) -> (String, u32) {
    if image != IMAGE {
        containerd
            .import_image(rootfs, image)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let container = containerd
        .run_pod(
            namespace,
            pod,
            uid,
            "app",
            image,
            &[
                "/bin/sh",
                "-c",
                "until [ -e /go ]; do sleep 0.1; done; \
                 exec /usr/sbin/nginx paced 0 1 600000 /bin/sh -c 'echo ran > /ran'",
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let pid = containerd
        .init_pid(&container.container_id)
        .unwrap_or_else(|e| panic!("{e}"));
    (container.container_id, pid)
}

/// Lets each paced pod's nginx run its shell, and waits until every shell has run.
fn run_shells(nginx: &[u32]) {
    for &pid in nginx {
        std::fs::write(format!("/proc/{pid}/root/go"), "").expect("start the pod's nginx");
    }
    let deadline = std::time::Instant::now() + ALERT_WITHIN;
    for &pid in nginx {
        let mark = format!("/proc/{pid}/root/ran");
        while !Path::new(&mark).exists() {
            assert!(std::time::Instant::now() < deadline, "{mark} never written");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `record` on a node with pods writes what it learns of their containers, and `replay` of
/// that record gives the verdicts of an exclusion by image that `run` gives live.
#[test]
fn a_record_of_pods_replays_exclusions_by_image() {
    use std::io::BufRead as _;
    require_root();
    let dir = temp_dir("lineage-workload-");
    let dir = dir.path();
    let rootfs = cri::rootfs(dir, &[(Path::new(WORKLOAD), "/usr/sbin/nginx")])
        .unwrap_or_else(|e| panic!("{e}"));
    let mut containerd =
        cri::Containerd::start(&dir.join("containerd")).unwrap_or_else(|e| panic!("{e}"));
    containerd
        .import_pause_image(&rootfs)
        .unwrap_or_else(|e| panic!("{e}"));
    containerd
        .import_image(&rootfs, IMAGE)
        .unwrap_or_else(|e| panic!("{e}"));
    let config = dir.join("record.toml");
    std::fs::write(
        &config,
        format!(
            "[workload]\ncontainerd_task_dirs = [\"{}\"]\nstorage_container_dirs = []\n\
             docker_container_dirs = []\n",
            containerd.task_dir().display()
        ),
    )
    .expect("write config");
    let record = dir.join("pods.ndjson");
    let mut recorder = std::process::Command::new(integration_tests::sensor_binary())
        .args(["record", "--config"])
        .arg(&config)
        .arg("--output")
        .arg(&record)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start lineage-sensor record");
    let stderr = recorder.stderr.take().expect("stderr");
    let (log_tx, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = log_tx.send(line);
        }
    });
    while !log
        .recv_timeout(ALERT_WITHIN)
        .unwrap_or_else(|_| panic!("record never became ready"))
        .contains("ready")
    {}

    let pods = [
        ("shop", "checkout-1", POD_UID, IMAGE),
        (
            "ops",
            "backup-1",
            "9e8d7c6b-5a4f-4e3d-9c2b-1a0f9e8d7c6b",
            "registry.local/ops/backup:1.0",
        ),
    ];
    let mut nginx = Vec::new();
    for pod in pods {
        let (id, pid) = paced_pod(&mut containerd, &rootfs, pod);
        // The record names the container's image before its shell runs (the race the first
        // alerts of a brand-new container lose is not what this test is about).
        let deadline = std::time::Instant::now() + ALERT_WITHIN;
        while !std::fs::read_to_string(&record).is_ok_and(|text| {
            text.lines().any(|l| {
                l.starts_with("{\"type\":\"container\"")
                    && l.contains(&id)
                    && l.contains(&format!("\"image\":\"{}\"", pod.3))
            })
        }) {
            assert!(
                std::time::Instant::now() < deadline,
                "no container line for {id}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx.push(pid);
    }
    run_shells(&nginx);
    // The shells' events were in the ring before /ran existed: record drains it at SIGTERM.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(recorder.id() as i32, libc::SIGTERM) };
    assert!(recorder.wait().expect("wait for record").success());

    let replay = |exclusions: &str| {
        let config = dir.join("replay.toml");
        std::fs::write(
            &config,
            format!("[rate_limit]\nwindow_secs = 0\n{exclusions}"),
        )
        .expect("write config");
        let out = std::process::Command::new(integration_tests::sensor_binary())
            .args(["replay", "--config"])
            .arg(&config)
            .arg(&record)
            .output()
            .expect("run replay");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let alerts: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("an alert per line"))
            .collect();
        nginx
            .iter()
            .map(|&pid| {
                alerts
                    .iter()
                    .filter(|a| {
                        a["rule"]["id"] == "server-spawned-shell"
                            && a["lineage"]["server"]["pid"] == pid
                    })
                    .count()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(replay(""), [1, 1], "both shells are in the record");
    assert_eq!(
        replay(
            "[[rules.server_spawned_shell.exclude]]\n\
             container.image.name = \"registry.local/shop/*\"\n"
        ),
        [0, 1],
        "the checkout image's shell is excluded, the backup's is not"
    );
}
