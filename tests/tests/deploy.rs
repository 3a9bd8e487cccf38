//! deploy/ agrees with itself and with the binary: the Kubernetes ConfigMap is a config the
//! sensor accepts, and the DaemonSet grants the capabilities the systemd unit grants, probes
//! the endpoints the sensor serves on the port it listens on. (The schemas and
//! `systemd-analyze verify` are checked by `cargo xtask deploy-check`, run by `cargo xtask
//! test`.)

use std::{path::PathBuf, process::Command};

use integration_tests::sensor_binary;

fn deploy(path: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The block scalar under `lineage-sensor.toml: |`, de-indented.
fn configmap_toml() -> String {
    let text = deploy("kubernetes/configmap.yaml");
    let mut lines = text
        .lines()
        .skip_while(|l| l.trim() != "lineage-sensor.toml: |");
    lines.next().expect("the ConfigMap has lineage-sensor.toml");
    let body: Vec<&str> = lines
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .collect();
    assert!(body.len() > 3, "the embedded config is not empty");
    body.iter()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_configmap_holds_a_config_the_sensor_accepts() {
    let dir = std::env::temp_dir().join(format!("lineage-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("lineage-sensor.toml");
    std::fs::write(&file, configmap_toml()).expect("write");
    let out = Command::new(sensor_binary())
        .arg("check-config")
        .arg(&file)
        .output()
        .expect("check-config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The commented SIEM example is a sink the sensor accepts once uncommented.
    let mut inside = false;
    let uncommented: Vec<String> = configmap_toml()
        .lines()
        .map(|l| {
            if l.starts_with("# --- example") {
                inside = true;
            } else if l.starts_with("# --- end") {
                inside = false;
            } else if inside && let Some(rest) = l.strip_prefix("# ") {
                return rest.to_owned();
            }
            l.to_owned()
        })
        .collect();
    let uncommented = uncommented.join("\n");
    assert!(uncommented.contains("\n[[output.sinks]]\ntype = \"http\""));
    std::fs::write(&file, &uncommented).expect("write");
    let out = Command::new(sensor_binary())
        .arg("check-config")
        .arg(&file)
        .output()
        .expect("check-config");
    assert!(
        out.status.success(),
        "the uncommented example: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And the check can fail: a typo in the same file is refused.
    std::fs::write(&file, configmap_toml().replace("proc_root", "proc_rot")).expect("write");
    let out = Command::new(sensor_binary())
        .arg("check-config")
        .arg(&file)
        .output()
        .expect("check-config");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_daemonset_grants_what_the_unit_grants_and_probes_what_the_sensor_serves() {
    let unit = deploy("systemd/lineage-sensor.service");
    let mut unit_caps: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("AmbientCapabilities="))
        .expect("AmbientCapabilities=")
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_owned())
        .collect();
    let daemonset = deploy("kubernetes/daemonset.yaml");
    let add = daemonset
        .lines()
        .find_map(|l| l.trim().strip_prefix("add: "))
        .expect("capabilities.add");
    let mut pod_caps: Vec<String> = add
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|c| c.trim().trim_matches('"').to_owned())
        .collect();
    // The unit's SYS_ADMIN is for fanotify, which a pod cannot use for the node's web roots:
    // the ConfigMap pins the file hooks to the tracepoints instead.
    unit_caps.retain(|c| c != "SYS_ADMIN");
    unit_caps.sort();
    pod_caps.sort();
    assert_eq!(pod_caps, unit_caps);
    assert!(daemonset.contains("drop: [\"ALL\"]"));
    assert!(daemonset.contains("privileged: false"));
    assert!(
        !daemonset.contains("SYS_ADMIN\""),
        "no CAP_SYS_ADMIN: tracefs is mounted, file hooks pinned to the tracepoints"
    );
    assert!(
        configmap_toml().contains("file_hooks = \"tracepoint\""),
        "without SYS_ADMIN the pod must pin the file hooks, or it refuses to start"
    );

    let listen = configmap_toml()
        .lines()
        .find_map(|l| l.strip_prefix("listen = "))
        .expect("metrics.listen in the ConfigMap")
        .trim_matches('"')
        .to_owned();
    let port = listen.rsplit_once(':').expect("host:port").1;
    assert!(daemonset.contains(&format!("containerPort: {port}")));
    assert!(daemonset.contains(&format!("prometheus.io/port: \"{port}\"")));
    for path in ["/healthz", "/readyz"] {
        assert!(
            daemonset.contains(&format!("path: {path}")),
            "{path} probed"
        );
    }
    for mount in [
        "/sys/kernel/btf",
        "/sys/kernel/tracing",
        "/host/proc",
        "/run/secrets/lineage-sensor",
    ] {
        assert!(
            daemonset.contains(&format!("mountPath: {mount}")),
            "{mount} mounted"
        );
    }
}
