//! Feeding sinks directly (as the sensor's detection loop does) with alert lines made here, so
//! that every alert a test expects is known.

use std::path::Path;

use lineage_sensor::{config::Config, enrich::Line};

/// One alert line, as the sensor writes them (the fields the sinks read, and a unique id).
pub fn alert(id: &str) -> Line {
    Line::from(
        format!(
            r#"{{"@timestamp":"2026-12-05T05:00:00.123456789Z","event":{{"id":"{id}","severity":73}},"rule":{{"id":"server-spawned-shell"}},"process":{{"args":["sh","-c","{id}"]}}}}"#
        )
        .into_bytes(),
    )
}

/// `n` alert ids starting with `prefix`, in order.
pub fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:04}")).collect()
}

/// A config with `sinks` (TOML text) and its spool in `dir`.
pub fn config(dir: &Path, sinks: &str) -> Config {
    let text = format!(
        "[output]\nspool_dir = \"{}\"\n\n{sinks}",
        dir.join("spool").display()
    );
    Config::parse(&text, Path::new("tls-test.toml")).expect("valid config")
}
