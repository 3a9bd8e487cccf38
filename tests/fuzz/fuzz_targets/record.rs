//! Any bytes as a `record` file: the reader yields events or line-numbered errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lineage_sensor::record::read_events;

fuzz_target!(|input: &[u8]| {
    for _ in read_events(input) {}
});
