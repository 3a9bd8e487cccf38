//! SIGHUP to the real `lineage-sensor run`: the file sink reopened (logrotate), an invalid
//! config refused with file, line and field, a valid one applied, the programs attached
//! throughout.

use std::path::Path;

use integration_tests::{
    NO_RATE_LIMIT, RunningSensor, fake_server, marked_alert,
    receivers::{WITHIN, has_marker, read_ndjson, wait_until},
    require_root, scratch,
};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");

/// SIGHUP reopens the file sink (logrotate), refuses an invalid config with file, line and
/// field, and applies a valid one, with the programs attached throughout.
#[test]
fn sighup_reopens_files_refuses_bad_configs_and_applies_good_ones() {
    require_root();
    let dir = scratch("sighup");
    let server = fake_server(WORKLOAD, &dir, "nginx");
    let first = dir.join("first.ndjson");
    let second = dir.join("second.ndjson");
    let config = dir.join("sensor.toml");
    let file_config = |path: &Path, extra: &str| {
        format!(
            "{NO_RATE_LIMIT}{extra}[output]\nspool_dir = \"{}\"\n\n[[output.sinks]]\ntype = \"file\"\npath = \"{}\"\n",
            dir.join("spool").display(),
            path.display()
        )
    };
    std::fs::write(&config, file_config(&first, "")).expect("config");
    let mut sensor = RunningSensor::start(&config);
    let arrives = |path: &Path, marker: &str| {
        wait_until(&format!("{marker} in {}", path.display()), || {
            has_marker(&read_ndjson(path), marker)
        });
    };
    marked_alert(&server, "hup-0");
    arrives(&first, "hup-0");

    // logrotate: move the file away, SIGHUP, the next alert goes to a new file.
    let rotated = dir.join("first.ndjson.1");
    std::fs::rename(&first, &rotated).expect("rotate");
    sensor.signal(libc::SIGHUP);
    sensor.expect_log(WITHIN, "SIGHUP: reloaded");
    marked_alert(&server, "hup-1");
    arrives(&first, "hup-1");
    assert!(!has_marker(&read_ndjson(&rotated), "hup-1"));

    // An invalid config: refused with file, line and field; the running one stays.
    std::fs::write(
        &config,
        format!(
            "{NO_RATE_LIMIT}[output]\nspool_dir = \"/tmp\"\n\n[[output.sinks]]\ntype = \"file\"\npaht = \"/tmp/x\"\n"
        ),
    )
    .expect("bad config");
    sensor.signal(libc::SIGHUP);
    sensor.expect_log(WITHIN, "configuration not reloaded");
    let refusal = sensor
        .log_seen
        .iter()
        .find(|l| l.contains("configuration not reloaded"))
        .cloned()
        .unwrap_or_default();
    assert!(
        refusal.contains(&format!("{}:9:", config.display())) && refusal.contains("paht"),
        "the refusal names file, line and field: {refusal}"
    );
    marked_alert(&server, "hup-2");
    arrives(&first, "hup-2");

    // A valid new config: another file, and new detection settings (the engine is replaced).
    std::fs::write(
        &config,
        file_config(&second, "[incidents]\nspan_secs = 60\n\n"),
    )
    .expect("new config");
    sensor.signal(libc::SIGHUP);
    sensor.expect_log(WITHIN, "detection rules replaced");
    marked_alert(&server, "hup-3");
    arrives(&second, "hup-3");
    assert!(!has_marker(&read_ndjson(&first), "hup-3"));
    let log = sensor.stop_clean();
    assert!(
        !log.iter()
            .any(|l| l.contains("programs detached") && l.contains("SIGHUP")),
        "{log:#?}"
    );
}
