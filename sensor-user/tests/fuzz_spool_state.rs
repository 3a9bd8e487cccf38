//! The seeds and saved crashes of the `spool` and `state` fuzz targets (tests/fuzz/) through the
//! real spool reader and state loaders, on every test run.

use std::path::{Path, PathBuf};

use lineage_sensor::{
    config::Config,
    detect::{Engine, HostInfo, IncidentSnapshot},
    enrich::pending,
};

#[path = "../../tests/fuzz/harness/spool.rs"]
mod harness;

fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz");
    let mut found = Vec::new();
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.file_name().is_some_and(|n| n != "README") {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn spool_reader_survives_every_saved_input() {
    let saved = inputs("spool");
    assert!(!saved.is_empty(), "the spool seeds are missing");
    for path in saved {
        harness::exercise(&std::fs::read(&path).expect("read input"));
    }
}

#[test]
fn state_loaders_survive_every_saved_input() {
    let saved = inputs("state");
    assert!(!saved.is_empty(), "the state seeds are missing");
    let mut parsed = 0;
    for path in saved {
        let bytes = std::fs::read(&path).expect("read input");
        if let Ok(snapshot) = serde_json::from_slice::<IncidentSnapshot>(&bytes) {
            let mut engine =
                Engine::new(&Config::default(), HostInfo::default()).expect("default engine");
            engine.restore_incidents(snapshot);
            parsed += 1;
        }
        parsed += usize::from(pending::parse(&bytes).is_ok());
    }
    assert!(
        parsed >= 2,
        "the seeds hold a valid snapshot and a valid pending list"
    );
}
