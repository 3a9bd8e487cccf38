//! Every fuzz seed and every input that once crashed a fuzz target (tests/fuzz/) goes through
//! the real decoder, record reader and config parser here, on every test run.

use std::path::{Path, PathBuf};

use lineage_sensor::{config::Config, kernel::decode::decode, record::read_events};

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
fn decoder_survives_every_saved_input() {
    let saved = inputs("decode");
    assert!(!saved.is_empty(), "the decode seeds are missing");
    for path in saved {
        let bytes = std::fs::read(&path).expect("read input");
        if let Ok(event) = decode(&bytes) {
            let line = serde_json::to_string(&event).expect("serialise");
            assert!(!line.contains('\n'), "{}", path.display());
        }
    }
}

#[test]
fn record_reader_survives_every_saved_input() {
    let saved = inputs("record");
    assert!(!saved.is_empty(), "the record seeds are missing");
    let mut events = 0;
    for path in saved {
        let bytes = std::fs::read(&path).expect("read input");
        events += read_events(&bytes[..]).filter(Result::is_ok).count();
    }
    assert!(events > 0, "the seeds hold valid events");
}

#[test]
fn config_parser_survives_every_saved_input() {
    let saved = inputs("config");
    assert!(!saved.is_empty(), "the config seeds are missing");
    for path in saved {
        let bytes = std::fs::read(&path).expect("read input");
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = Config::parse(text, &path);
        }
    }
}
