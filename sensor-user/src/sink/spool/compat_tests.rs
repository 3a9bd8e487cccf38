//! The on-disk format is a promise to the next version: a spool written before an upgrade must
//! be read after it, and what is appended now must be what earlier versions wrote.

use super::*;

/// Three records (`{"a":1}`, an empty one, and one with non-ASCII bytes) exactly as the
/// framed format has always written them: `len u32 LE | CRC-32 u32 LE | payload`.
const SEGMENT_HEX: &str = "07000000afac1b567b2261223a317d000000000000000015000000ceeeca3d\
                           7b226576656e74223a7b226964223a22c3a9227d7d";
const RECORDS: [&[u8]; 3] = [
    b"{\"a\":1}",
    b"",
    "{\"event\":{\"id\":\"\u{e9}\"}}".as_bytes(),
];

fn fixture() -> Vec<u8> {
    (0..SEGMENT_HEX.len() / 2)
        .map(|i| u8::from_str_radix(&SEGMENT_HEX[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn a_spool_written_by_an_earlier_version_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(format!("{:020}{SEGMENT_SUFFIX}", 0)),
        fixture(),
    )
    .expect("segment");
    std::fs::write(dir.path().join("ack"), "0 0\n").expect("ack");
    let mut spool = Spool::open(dir.path(), 1 << 20).expect("open");
    assert_eq!(spool.pending(), 3);
    assert_eq!(spool.take_damaged(), 0);
    let batch = spool.read(10).expect("read");
    let got: Vec<&[u8]> = batch.records.iter().map(|r| &r[..]).collect();
    assert_eq!(got, RECORDS);
}

#[test]
fn appended_records_are_written_byte_for_byte_as_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path(), 1 << 20).expect("open");
    let records: Vec<_> = RECORDS.iter().map(|r| r.to_vec().into()).collect();
    spool.append(&records).expect("append");
    drop(spool);
    let written =
        std::fs::read(dir.path().join(format!("{:020}{SEGMENT_SUFFIX}", 0))).expect("segment");
    assert_eq!(written, fixture());
}
