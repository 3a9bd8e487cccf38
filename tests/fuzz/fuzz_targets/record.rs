//! Any bytes as a `record` file: the reader yields events or line-numbered errors, never
//! panics; and every event it accepts, written again, reads back equal and re-encodes to the
//! same bytes (the written form is canonical).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lineage_sensor::{
    event::Event,
    record::{RecordWriter, read_events},
};

fn encode(event: &Event) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = RecordWriter::new(&mut out);
    writer.write(event).expect("every accepted event serialises");
    writer.flush().expect("flush to memory");
    out
}

fuzz_target!(|input: &[u8]| {
    for event in read_events(input).flatten() {
        let line = encode(&event);
        let back: Vec<Event> = read_events(&line[..])
            .collect::<Result<_, _>>()
            .expect("a written event reads back");
        assert_eq!(back, [event], "the event round-trips");
        assert_eq!(encode(&back[0]), line, "and re-encodes to the same bytes");
    }
});
