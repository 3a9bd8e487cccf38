//! SIGKILL while file alerts wait for their hash: they were on disk before the wait, so the
//! restarted sensor sends them, hashed if the file is still there and saying `gone` if not.

use std::time::Duration;

use integration_tests::{RunningSensor, file_hooks_toml, file_mechanisms, require_root, temp_dir};
use lineage_sensor::config::FileHooks;
use serde_json::Value;

const WITHIN: Duration = Duration::from_secs(30);

fn sha256(path: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_owned()
}

#[test]
fn file_alerts_waiting_for_their_hash_survive_sigkill() {
    require_root();
    for mechanism in file_mechanisms() {
        eprintln!("file mechanism: {mechanism:?}");
        waiting_alerts_survive(mechanism);
    }
}

fn waiting_alerts_survive(mechanism: FileHooks) {
    let dir = temp_dir("lineage-hash-kill-");
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).expect("web root");
    let state = dir.path().join("state/incidents.json");
    let pending = dir.path().join("state/incidents.json.pending-hashes");
    let config = dir.path().join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "{}[rules.webroot_script_write]\nweb_roots = [\"{}\"]\nhash_delay_ms = 10000\n\
             [incidents]\nstate_file = \"{}\"\n",
            file_hooks_toml(mechanism),
            www.display(),
            state.display()
        ),
    )
    .expect("config");

    let first = RunningSensor::start(&config);
    let kept = www.join("kept.php");
    let removed = www.join("removed.php");
    std::fs::write(&kept, b"<?php eval($_POST['x']); ?>").expect("write");
    std::fs::write(&removed, b"<?php ?>").expect("write");
    let deadline = std::time::Instant::now() + WITHIN;
    let both_pending = || {
        std::fs::read_to_string(&pending).is_ok_and(|t| {
            t.contains(kept.to_str().expect("utf-8"))
                && t.contains(removed.to_str().expect("utf-8"))
        })
    };
    while !both_pending() {
        assert!(
            std::time::Instant::now() < deadline,
            "the waiting alerts never reached {}",
            pending.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (early, _) = first.alert_until(Duration::from_millis(200), |_| true);
    assert!(
        early.is_none(),
        "no file alert before its 10 s hash delay: {early:?}"
    );
    first.kill();
    std::fs::remove_file(&removed).expect("remove");

    let mut second = RunningSensor::start(&config);
    assert!(
        second.wait_log(WITHIN, |l| l.contains("left waiting for their hash")),
        "{:#?}",
        second.log_seen
    );
    let mut got: Vec<Value> = Vec::new();
    while got.len() < 2 {
        let (alert, _) = second.alert_until(WITHIN, |a| {
            a.doc["rule"]["id"] == "webroot-script-write"
                && a.doc["file"]["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with(www.to_str().expect("utf-8")))
        });
        got.push(alert.expect("a restored file alert").doc);
    }
    let by_path = |p: &std::path::Path| {
        got.iter()
            .find(|a| a["file"]["path"] == p.to_str().expect("utf-8"))
            .unwrap_or_else(|| panic!("no alert for {}: {got:#?}", p.display()))
    };
    let k = by_path(&kept);
    assert_eq!(k["file"]["hash"]["sha256"], sha256(&kept).as_str(), "{k}");
    assert_eq!(k["lineage"]["file_hash_after_restart"], true);
    let r = by_path(&removed);
    assert!(r["file"]["hash"].is_null(), "{r}");
    assert_eq!(r["lineage"]["file_hash_missing"], "gone", "{r}");
    let (status, log) = second.stop();
    assert!(status.success(), "{log:#?}");
    assert!(!pending.exists(), "sent alerts leave the pending file");
}
