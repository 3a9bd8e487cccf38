//! Shared by the `spool` fuzz target and its regression test (sensor-user/tests/): any bytes
//! become a spool directory (framed segments in any order, truncated or garbled, an `ack` file,
//! an unframed segment of an earlier version), which must open, read back exactly what it counts
//! as pending, take an acknowledgement and an append, and reopen with only the new record.

use std::{
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
};

use lineage_sensor::{enrich::Line, sink::spool::Spool};

static RUN: AtomicU64 = AtomicU64::new(0);

/// A private directory removed on drop (no tempfile dependency in the fuzz crate).
struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Chunks of `[kind u8][seq u8][len u16 LE][bytes]`: kind 0 a framed segment, 1 the ack file,
/// 2 an unframed (legacy) segment.
pub fn exercise(input: &[u8]) {
    let dir = Dir(std::env::temp_dir().join(format!(
        "lineage-fuzz-spool-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    )));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).expect("fuzz dir");
    let mut rest = input;
    while rest.len() >= 4 {
        let (kind, seq) = (rest[0] % 3, u64::from(rest[1] % 8));
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]])).min(rest.len() - 4);
        let bytes = &rest[4..4 + len];
        rest = &rest[4 + len..];
        let name = match kind {
            0 => format!("{seq:020}.rec"),
            1 => "ack".to_owned(),
            _ => format!("{seq:020}.ndjson"),
        };
        std::fs::write(dir.0.join(name), bytes).expect("write fuzz file");
    }
    let Ok(mut spool) = Spool::open(&dir.0, 1 << 20) else {
        return;
    };
    let pending = spool.pending();
    let Ok(batch) = spool.read(usize::MAX) else {
        return;
    };
    assert_eq!(
        batch.records.len() as u64,
        pending,
        "every record counted as pending is read back, and nothing else"
    );
    spool.ack(batch.end, pending);
    assert_eq!(spool.pending(), 0);
    let record = Line::from_static(b"{\"after\":1}");
    if spool.append(std::slice::from_ref(&record)).is_err() {
        return;
    }
    drop(spool);
    let mut spool = Spool::open(&dir.0, 1 << 20).expect("reopen what we wrote");
    let batch = spool.read(usize::MAX).expect("read what we wrote");
    assert_eq!(batch.records, vec![record]);
}
