//! `replay --baseline`, `--save-baseline` and `baseline merge` through the binary: a habit
//! learned from one record keeps the next quiet, an export from a record is plain sorted TOML,
//! and a fleet's merge of exports silences each host's habits.

use std::{path::PathBuf, process::Command};

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/scenarios")
        .join(name)
}

fn sensor(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lineage-sensor"))
        .args(args)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn a_learned_record_an_export_and_a_fleet_merge_keep_habits_quiet() {
    let dir = tempfile::tempdir().expect("tmp");
    let (thumbs, scan) = (
        "benign-habit-php-imagemagick-thumbnails",
        "benign-habit-gunicorn-clamav-scan",
    );
    let path = |name: &str, ext: &str| corpus(&format!("{name}.{ext}"));
    let replay = "replay".as_ref();

    // Without a baseline the helper alerts; with the learning record it does not.
    let plain = sensor(&[replay, path(thumbs, "ndjson").as_os_str()]);
    assert!(plain.contains("server-spawned-shell"), "{plain}");
    let learned = sensor(&[
        replay,
        "--baseline".as_ref(),
        path(thumbs, "learn.ndjson").as_os_str(),
        path(thumbs, "ndjson").as_os_str(),
    ]);
    assert_eq!(learned, "", "a learned habit is quiet");

    // Each host's export, from its own learning record.
    let mut exports = Vec::new();
    for name in [thumbs, scan] {
        let out = dir.path().join(format!("{name}.toml"));
        let alerts = sensor(&[
            replay,
            "--save-baseline".as_ref(),
            out.as_os_str(),
            path(name, "learn.ndjson").as_os_str(),
        ]);
        assert!(alerts.contains("server-spawned-shell"), "learning alerts");
        let text = std::fs::read_to_string(&out).expect("export");
        assert!(
            text.contains("[[server]]") && text.contains("learning_ends ="),
            "{text}"
        );
        exports.push(out);
    }
    let mut args: Vec<&std::ffi::OsStr> = vec!["baseline".as_ref(), "merge".as_ref()];
    args.push("--close".as_ref());
    args.extend(exports.iter().map(|p| p.as_os_str()));
    let merged = sensor(&args);
    assert!(!merged.contains("learning_ends ="), "{merged}");
    let (php, python) = (
        merged.find("family = \"php\"").expect("php"),
        merged.find("family = \"python-web\"").expect("python"),
    );
    assert!(php < python, "sorted by server: {merged}");
    assert!(merged.contains("/tmp/<path>"), "{merged}");
    let fleet = dir.path().join("fleet.toml");
    std::fs::write(&fleet, &merged).expect("fleet");

    // A new host with the fleet's file: both habits quiet, a new command alerts as new.
    for name in [thumbs, scan] {
        let out = sensor(&[
            replay,
            "--baseline".as_ref(),
            fleet.as_os_str(),
            path(name, "ndjson").as_os_str(),
        ]);
        assert_eq!(out, "", "{name}");
    }
    let attack = sensor(&[
        replay,
        "--baseline".as_ref(),
        fleet.as_os_str(),
        path("alert-habit-php-new-template", "ndjson").as_os_str(),
    ]);
    let alert: serde_json::Value =
        serde_json::from_str(attack.lines().next().expect("an alert")).expect("json");
    assert_eq!(alert["lineage"]["baseline"]["new"], true, "{attack}");
}
