//! Every setting has a range: `lineage-sensor check-config` refuses each absurd value with exit
//! code 2, naming the file, the line and the dotted field, and refuses a 10 MB config without
//! parsing it. Needs no eBPF.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use integration_tests::{sensor_binary, temp_dir};

/// Refusals are cheap (a size check, or a number compared): far below this even on a loaded
/// machine.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);

fn check_config(config: &Path) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let out = Command::new(sensor_binary())
        .arg("check-config")
        .arg(config)
        .output()
        .expect("run lineage-sensor");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    path
}

/// (config text, dotted field, line)
const CASES: &[(&str, &str, usize)] = &[
    (
        "[rules.webroot_script_write]\nhash_delay_ms = 18446744073709551615\n",
        "rules.webroot_script_write.hash_delay_ms",
        2,
    ),
    (
        "[rules.webroot_script_write]\nhash_delay_ms = 10001\n",
        "rules.webroot_script_write.hash_delay_ms",
        2,
    ),
    (
        "[rules.webroot_script_write]\nhash_max_bytes = 300000000\n",
        "rules.webroot_script_write.hash_max_bytes",
        2,
    ),
    (
        "[capture]\nring_buffer_bytes = 2147483648\n",
        "capture.ring_buffer_bytes",
        2,
    ),
    (
        "[lineage]\nexit_grace_secs = 0\n",
        "lineage.exit_grace_secs",
        2,
    ),
    (
        "[lineage]\nmax_processes = 20000000\n",
        "lineage.max_processes",
        2,
    ),
    (
        "[rules.server_outbound_unknown]\nlearning_secs = 99999999\n",
        "rules.server_outbound_unknown.learning_secs",
        2,
    ),
    (
        "[rules.server_outbound_unknown]\nmax_learned = 0\n",
        "rules.server_outbound_unknown.max_learned",
        2,
    ),
    (
        "[rules.server_written_file_executed]\nmax_tracked = 2000000\n",
        "rules.server_written_file_executed.max_tracked",
        2,
    ),
    ("[incidents]\nspan_secs = 0\n", "incidents.span_secs", 2),
    (
        "[rate_limit]\nwindow_secs = 86401\n",
        "rate_limit.window_secs",
        2,
    ),
    (
        "[rate_limit]\nmax_tracked = 0\n",
        "rate_limit.max_tracked",
        2,
    ),
    (
        "[[output.sinks]]\ntype = \"stdout\"\nbatch_max_events = 1000000\n",
        "output.sinks[0].batch_max_events",
        3,
    ),
    (
        "[[output.sinks]]\ntype = \"stdout\"\n\n[[output.sinks]]\ntype = \"file\"\nname = \"f\"\n\
         path = \"/x\"\nqueue_max_events = 100000000\n",
        "output.sinks[1].queue_max_events",
        8,
    ),
    (
        "[[output.sinks]]\ntype = \"syslog\"\naddress = \"127.0.0.1:514\"\ntimeout_secs = 3601\n",
        "output.sinks[0].timeout_secs",
        4,
    ),
    (
        "[[output.sinks]]\ntype = \"stdout\"\nretry_max_secs = 86400\n",
        "output.sinks[0].retry_max_secs",
        3,
    ),
    (
        "[[output.sinks]]\ntype = \"file\"\npath = \"/x\"\nspool_max_bytes = 2199023255552\n",
        "output.sinks[0].spool_max_bytes",
        4,
    ),
];

#[test]
fn each_out_of_range_setting_exits_2_naming_file_line_and_field() {
    let dir = temp_dir("lineage-config-ranges-");
    for (i, (text, field, line)) in CASES.iter().enumerate() {
        let path = write(dir.path(), &format!("c{i}.toml"), text);
        let (code, stderr, took) = check_config(&path);
        assert_eq!(code, Some(2), "{field}: {stderr}");
        let want = format!("{}:{line}:", path.display());
        assert!(
            stderr.contains(&want) && stderr.contains(field),
            "{field}: expected {want} and the field in {stderr:?}"
        );
        assert!(took < ANSWER_WITHIN, "{field}: answered in {took:?}");
    }
}

#[test]
fn a_10_mb_config_and_oversized_lists_are_refused_at_once() {
    let dir = temp_dir("lineage-config-size-");
    let globs: Vec<String> = (0..700_000).map(|i| format!("\"/opt/x{i}/*\"")).collect();
    let text = format!("[detect]\nnot_servers = [{}]\n", globs.join(", "));
    assert!(text.len() > 10_000_000);
    let path = write(dir.path(), "huge.toml", &text);
    let (code, stderr, took) = check_config(&path);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&path.display().to_string()) && stderr.contains("at most"),
        "{stderr}"
    );
    assert!(took < ANSWER_WITHIN, "answered in {took:?}");

    // Small enough to read, but a list past its bound: named with its line.
    let globs: Vec<String> = (0..1025).map(|i| format!("\"x{i}\"")).collect();
    let text = format!("# c\n[detect]\nnot_servers = [{}]\n", globs.join(", "));
    let path = write(dir.path(), "list.toml", &text);
    let (code, stderr, took) = check_config(&path);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3:", path.display()))
            && stderr.contains("detect.not_servers")
            && stderr.contains("entries"),
        "{stderr}"
    );
    assert!(took < ANSWER_WITHIN, "answered in {took:?}");
}
