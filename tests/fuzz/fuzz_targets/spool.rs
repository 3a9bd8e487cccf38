//! Any bytes as a spool directory (segments reordered, truncated, garbled; a bad ack; a legacy
//! segment): opening, reading, acknowledging and appending never panic and never return a record
//! the spool did not count. See ../harness/spool.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/spool.rs"]
mod harness;

fuzz_target!(|input: &[u8]| harness::exercise(input));
