//! The real `lineage-sensor run` under exactly the capabilities the systemd unit grants, as an
//! unprivileged user (setpriv): it detects and delivers; without any one capability it refuses
//! to start in enforce and names it. `cargo xtask test` installs setpriv (util-linux).

use std::path::Path;

use integration_tests::{
    NO_RATE_LIMIT, RunningSensor, fake_server, marked_alert, metric,
    receivers::{has_marker, read_ndjson, wait_until},
    require_root, scratch,
};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");

/// The capabilities the systemd unit grants, from its AmbientCapabilities= line.
fn unit_capabilities() -> Vec<String> {
    let unit =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd/lineage-sensor.service");
    let text = std::fs::read_to_string(&unit).expect("the systemd unit");
    let caps: Vec<String> = text
        .lines()
        .find_map(|l| l.strip_prefix("AmbientCapabilities="))
        .expect("AmbientCapabilities= in the unit")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let bounding: Vec<String> = text
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("CapabilityBoundingSet= in the unit")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(caps, bounding, "the unit grants what it bounds");
    caps
}

/// `setpriv` as an unprivileged user (nobody) holding exactly `caps`, as the unit runs it.
fn setpriv(caps: &[String]) -> Vec<String> {
    let list: Vec<String> = caps
        .iter()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let set = format!(
        "-all{}",
        list.iter().map(|c| format!(",{c}")).collect::<String>()
    );
    [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        &format!("--inh-caps={set}"),
        &format!("--ambient-caps={set}"),
        &format!("--bounding-set={set}"),
        "--no-new-privs",
        "--",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// With only the unit's capabilities the sensor detects and delivers; without any one of them
/// it refuses to start and names the capability.
#[test]
fn runs_with_only_the_units_capabilities_and_names_a_missing_one() {
    require_root();
    let caps = unit_capabilities();
    assert!(!caps.is_empty());
    let dir = scratch("least-privilege");
    let server = fake_server(WORKLOAD, &dir, "nginx");
    let spool = dir.join("spool");
    let out = dir.join("out");
    for d in [&spool, &out] {
        std::fs::create_dir_all(d).expect("dir");
        std::os::unix::fs::chown(d, Some(65534), Some(65534)).expect("chown to nobody");
    }
    let alerts = out.join("alerts.ndjson");
    let config = dir.join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "{NO_RATE_LIMIT}[output]\nspool_dir = \"{}\"\n\n[[output.sinks]]\ntype = \"file\"\npath = \"{}\"\n",
            spool.display(),
            alerts.display()
        ),
    )
    .expect("config");
    use std::os::unix::fs::PermissionsExt as _;
    for path in [&dir, &config] {
        let mode = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    let sensor =
        RunningSensor::start_with(&config, &setpriv(&caps)).unwrap_or_else(|(status, log)| {
            panic!("the sensor works with the unit's capabilities ({status}): {log:#?}")
        });
    marked_alert(&server, "least-priv");
    wait_until("an alert from the unprivileged sensor", || {
        has_marker(&read_ndjson(&alerts), "least-priv")
    });
    let text = sensor.metrics();
    assert!(metric(&text, "lineage_sensor_processes_tracked").is_some_and(|v| v > 1.0));
    // The unit's capabilities are enough for the cheap file mechanism, as a non-root user.
    if integration_tests::file_mechanisms().contains(&lineage_sensor::config::FileHooks::Fanotify) {
        assert!(
            text.contains(r#"lineage_sensor_hook_info{family="file",mechanism="fanotify"} 1"#),
            "{text}"
        );
        assert_eq!(
            metric(&text, "lineage_sensor_syscall_tracepoints_attached"),
            Some(0.0),
            "{text}"
        );
    }
    sensor.stop_clean();

    // Enforce needs every capability the unit grants (CAP_KILL only for holding execs).
    let enforce = dir.join("enforce.toml");
    std::fs::write(
        &enforce,
        format!(
            "{}\n[prevention]\nmode = \"enforce\"\n",
            std::fs::read_to_string(&config).expect("config")
        ),
    )
    .expect("enforce config");
    std::fs::set_permissions(&enforce, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    for missing in &caps {
        let fewer: Vec<String> = caps.iter().filter(|c| *c != missing).cloned().collect();
        let started = RunningSensor::start_with(&enforce, &setpriv(&fewer));
        if caps.iter().any(|c| c == "CAP_SYS_ADMIN")
            && (missing == "CAP_BPF" || missing == "CAP_PERFMON")
        {
            // The kernel lets CAP_SYS_ADMIN (granted for fanotify) stand in for both.
            match started {
                Ok(sensor) => sensor.stop_clean(),
                Err((status, log)) => {
                    panic!("{missing} is covered by CAP_SYS_ADMIN ({status}): {log:#?}")
                }
            };
            continue;
        }
        let Err((status, log)) = started else {
            panic!("the sensor became ready without {missing}");
        };
        assert!(
            !status.success(),
            "exits with failure without {missing}: {log:#?}"
        );
        assert!(
            log.iter()
                .any(|l| l.contains(&format!("missing capability {missing}"))),
            "the error names {missing}: {log:#?}"
        );
    }
}
