//! Any bytes as a ring buffer record: the decoder returns an event or an error, never panics;
//! and an event it accepts survives the record format: written by `record`, read back equal,
//! and written again to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lineage_sensor::{
    event::Event,
    kernel::decode::decode,
    record::{RecordWriter, read_events},
};

fn encode(event: &Event) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = RecordWriter::new(&mut out);
    writer.write(event).expect("every decoded event serialises");
    writer.flush().expect("flush to memory");
    out
}

fuzz_target!(|record: &[u8]| {
    if let Ok(event) = decode(record) {
        let line = encode(&event);
        assert_eq!(
            line.iter().filter(|&&b| b == b'\n').count(),
            1,
            "one line per event"
        );
        let back: Vec<Event> = read_events(&line[..])
            .collect::<Result<_, _>>()
            .expect("a written event reads back");
        assert_eq!(back, std::slice::from_ref(&event), "the event round-trips");
        assert_eq!(encode(&back[0]), line, "and re-encodes to the same bytes");
    }
});
