//! Every kind of wrong config, one at a time, through `lineage-sensor check-config` (and `run`
//! for the state locations): exit code 2 and a message naming the file, the line and the field.
//! Needs no eBPF; it is here because it runs the real binary.

use std::{os::unix::fs::PermissionsExt as _, path::Path, process::Command};

use integration_tests::{sensor_binary, temp_dir};

/// Runs the sensor, returns the exit code and stderr.
fn sensor(args: &[&str], config: &Path) -> (Option<i32>, String) {
    let out = Command::new(sensor_binary())
        .args(args)
        .arg(config)
        .output()
        .expect("run lineage-sensor");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// (what is wrong, config text, field named, line named)
const CASES: &[(&str, &str, &str, usize)] = &[
    (
        "type",
        "# comment\n[capture]\nring_buffer_bytes = \"big\"\n",
        "capture.ring_buffer_bytes",
        3,
    ),
    (
        "range: not a power of two",
        "[capture]\nring_buffer_bytes = 1000\n",
        "capture.ring_buffer_bytes",
        2,
    ),
    (
        "range: flush tick of zero",
        "[capture]\nring_buffer_bytes = 4096\nflush_interval_ms = 0\n",
        "capture.flush_interval_ms",
        3,
    ),
    (
        "enum: unknown connect entry",
        "[capture]\nconnect_entry = \"kprobe\"\n",
        "capture.connect_entry",
        2,
    ),
    (
        "range: port 0 in a family",
        "[detect]\n[[detect.extra_families]]\nname = \"x\"\nlisten_ports = [0]\n",
        "detect.extra_families[0].listen_ports[0]",
        4,
    ),
    (
        "range: negative",
        "[incidents]\n\nspan_secs = -1\n",
        "incidents.span_secs",
        3,
    ),
    (
        "range: too few processes",
        "[lineage]\nmax_processes = 10\n",
        "lineage.max_processes",
        2,
    ),
    (
        "unknown key",
        "[capture]\nring_bufer_bytes = 4096\n",
        "capture.ring_bufer_bytes",
        2,
    ),
    ("unknown section", "\n[captur]\nx = 1\n", "captur", 2),
    (
        "bad CIDR",
        "[[rules.server_outbound_unknown.allow]]\ncidr = \"10.0.0.0/33\"\n",
        "rules.server_outbound_unknown.allow[0].cidr",
        2,
    ),
    (
        "bad regex",
        "[[rules.server_spawned_shell.exclude]]\nargs = [\"sh\", \"(unclosed\"]\n",
        "rules.server_spawned_shell.exclude[0].args[1]",
        2,
    ),
    (
        "bad glob",
        "[detect]\nnot_servers = [\"/etc/init.d/*\", \"/usr/[bin\"]\n",
        "detect.not_servers[1]",
        2,
    ),
    (
        "web root with no literal directory",
        "[rules.webroot_script_write]\nweb_roots = [\n  \"/var/www\",\n  \"**/htdocs\",\n]\n",
        "rules.webroot_script_write.web_roots[1]",
        4,
    ),
    (
        "spool bound out of range",
        "[[output.sinks]]\ntype = \"stdout\"\n\n[[output.sinks]]\ntype = \"file\"\npath = \"/x\"\nspool_max_bytes = 10\n",
        "output.sinks[1].spool_max_bytes",
        7,
    ),
    (
        "bad socket address",
        "[metrics]\nlisten = \"localhost-ish\"\n",
        "metrics.listen",
        2,
    ),
    (
        "bad severity",
        "[rules.server_spawned_shell]\nseverity = 101\n",
        "rules.server_spawned_shell.severity",
        2,
    ),
];

#[test]
fn every_bad_field_exits_2_naming_file_line_and_field() {
    let dir = temp_dir("lineage-badcfg-fields-");
    let mut failures = Vec::new();
    for (i, (what, text, field, line)) in CASES.iter().enumerate() {
        let path = dir.path().join(format!("case{i}.toml"));
        std::fs::write(&path, text).expect("write config");
        let (code, stderr) = sensor(&["check-config"], &path);
        let location = format!("{}:{line}:", path.display());
        if code != Some(2) || !stderr.contains(&location) || !stderr.contains(field) {
            failures.push(format!(
                "{what}: exit {code:?}, want 2 with {location:?} and {field:?}: {stderr}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn a_good_config_passes_so_the_cases_above_can_fail() {
    let dir = temp_dir("lineage-badcfg-good-");
    let path = dir.path().join("good.toml");
    std::fs::write(
        &path,
        "[capture]\nring_buffer_bytes = 4096\n[[rules.server_outbound_unknown.allow]]\ncidr = \"10.0.0.0/8\"\n",
    )
    .expect("write config");
    let (code, stderr) = sensor(&["check-config"], &path);
    assert_eq!(code, Some(0), "{stderr}");
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/lineage-sensor.toml");
    let (code, stderr) = sensor(&["check-config"], &deploy);
    assert_eq!(code, Some(0), "the shipped config: {stderr}");
}

#[test]
fn an_unreadable_config_exits_2_naming_the_file() {
    let dir = temp_dir("lineage-badcfg-unreadable-");
    for path in [dir.path().join("missing.toml"), dir.path().to_path_buf()] {
        let (code, stderr) = sensor(&["check-config"], &path);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    }
    // Not UTF-8: read, but not text.
    let binary = dir.path().join("binary.toml");
    std::fs::write(&binary, b"[capture]\nring_buffer_bytes = \"\xff\xfe\"\n").expect("write");
    let (code, stderr) = sensor(&["check-config"], &binary);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&binary.display().to_string()), "{stderr}");
}

#[test]
fn a_config_others_can_write_is_refused() {
    let dir = temp_dir("lineage-badcfg-perm-");
    let path = dir.path().join("sensor.toml");
    std::fs::write(&path, "").expect("write config");
    for mode in [0o664, 0o646] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let (code, stderr) = sensor(&["check-config"], &path);
        assert_eq!(code, Some(2), "mode {mode:o}: {stderr}");
        assert!(
            stderr.contains(&path.display().to_string()) && stderr.contains("go-w"),
            "{stderr}"
        );
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, stderr) = sensor(&["check-config"], &path);
    assert_eq!(code, Some(0), "{stderr}");

    // Owned by another user: only when we can give it away (root), as in CI.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&path, Some(65534), None).expect("chown to nobody");
        let (code, stderr) = sensor(&["check-config"], &path);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("uid 65534"), "{stderr}");
    }
}

#[test]
fn run_refuses_state_locations_others_can_write() {
    let dir = temp_dir("lineage-badcfg-state-");
    let open_dir = dir.path().join("open");
    std::fs::create_dir_all(&open_dir).expect("mkdir");
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let cases = [
        format!(
            "[incidents]\nstate_file = \"{}/incidents.json\"\n",
            open_dir.display()
        ),
        format!(
            "[output]\nspool_dir = \"{}\"\n\n[[output.sinks]]\ntype = \"file\"\npath = \"{}/alerts\"\n",
            open_dir.display(),
            dir.path().display()
        ),
    ];
    for (i, text) in cases.iter().enumerate() {
        let path = dir.path().join(format!("run{i}.toml"));
        std::fs::write(&path, text).expect("write config");
        let out = Command::new(sensor_binary())
            .args(["run", "--metrics-listen", "127.0.0.1:0", "--config"])
            .arg(&path)
            .output()
            .expect("run lineage-sensor");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "case {i}: {stderr}");
        assert!(
            stderr.contains(&open_dir.display().to_string()) && stderr.contains("go-w"),
            "case {i}: {stderr}"
        );
    }
}

/// A config holding an API key inline is refused while group or others can read it (exit 2,
/// the field and the remedy named), and accepted once it is 0600 or the key comes from a file.
#[test]
fn an_inline_credential_in_a_readable_config_is_refused() {
    let dir = temp_dir("lineage-badcfg-secret-");
    let path = dir.path().join("sensor.toml");
    let inline = "[[output.sinks]]\ntype = \"http\"\nurl = \"https://es.example:9200/_bulk\"\n\
                  format = \"elasticsearch_bulk\"\nheaders = { Authorization = \"ApiKey c2VjcmV0\" }\n";
    std::fs::write(&path, inline).expect("write config");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, stderr) = sensor(&["check-config"], &path);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("output.sinks[0].headers.Authorization")
            && stderr.contains("readable by other users")
            && stderr.contains("chmod 600")
            && !stderr.contains("c2VjcmV0"),
        "{stderr}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (code, stderr) = sensor(&["check-config"], &path);
    assert_eq!(code, Some(0), "{stderr}");
    std::fs::write(
        &path,
        inline.replace(
            "\"ApiKey c2VjcmV0\"",
            "{ file = \"/run/secrets/lineage-sensor/token\", prefix = \"ApiKey \" }",
        ),
    )
    .expect("write config");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, stderr) = sensor(&["check-config"], &path);
    assert_eq!(code, Some(0), "{stderr}");
}
