//! Any text as a config file: parsed and validated, or refused with a message, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use lineage_sensor::config::Config;

fuzz_target!(|input: &[u8]| {
    if let Ok(text) = std::str::from_utf8(input) {
        let _ = Config::parse(text, Path::new("fuzz.toml"));
    }
});
