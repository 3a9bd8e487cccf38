//! Every fuzz seed and every input that once crashed a fuzz target (tests/fuzz/) goes through
//! the real decoder, record reader and config parser here, on every test run.

use std::path::{Path, PathBuf};

use lineage_sensor::{
    config::Config,
    event::Event,
    kernel::decode::decode,
    record::{RecordWriter, read_events},
};

/// The fuzz targets' property: an accepted event, written by `record`, reads back equal and
/// re-encodes to the same bytes.
fn round_trips(event: &Event, path: &Path) {
    let encode = |event: &Event| {
        let mut out = Vec::new();
        let mut writer = RecordWriter::new(&mut out);
        writer
            .write(event)
            .expect("every accepted event serialises");
        writer.flush().expect("flush to memory");
        out
    };
    let line = encode(event);
    let back: Vec<Event> = read_events(&line[..])
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| {
            panic!(
                "{}: a written event does not read back: {e}",
                path.display()
            )
        });
    assert_eq!(
        back,
        std::slice::from_ref(event),
        "{}: round trip",
        path.display()
    );
    assert_eq!(encode(&back[0]), line, "{}: re-encoding", path.display());
}

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
    let mut decoded = 0;
    for path in saved {
        let bytes = std::fs::read(&path).expect("read input");
        if let Ok(event) = decode(&bytes) {
            decoded += 1;
            let line = serde_json::to_string(&event).expect("serialise");
            assert!(!line.contains('\n'), "{}", path.display());
            round_trips(&event, &path);
        }
    }
    assert!(
        decoded > 0,
        "some seeds decode, so the round trip is exercised"
    );
}

#[test]
fn record_reader_survives_every_saved_input() {
    let saved = inputs("record");
    assert!(!saved.is_empty(), "the record seeds are missing");
    let mut events = 0;
    for path in saved {
        let bytes = std::fs::read(&path).expect("read input");
        for event in read_events(&bytes[..]).flatten() {
            round_trips(&event, &path);
            events += 1;
        }
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
