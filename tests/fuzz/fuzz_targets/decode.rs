//! Any bytes as a ring buffer record: the decoder returns an event or an error, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lineage_sensor::kernel::decode::decode;

fuzz_target!(|record: &[u8]| {
    if let Ok(event) = decode(record) {
        // Whatever decodes must serialise to one line of JSON.
        let line = serde_json::to_string(&event).unwrap_or_default();
        assert!(!line.contains('\n'));
    }
});
