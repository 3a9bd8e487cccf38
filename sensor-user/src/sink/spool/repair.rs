//! Repairs at start-up: cutting torn or garbled records off a segment, and taking over the
//! unframed segments of earlier versions.

use std::path::Path;

use super::{
    LEGACY_SUFFIX, Position, SinkError, frame, io_err, open_options, read_ack, segment_seqs,
};

/// The undelivered whole lines of an unframed spool of an earlier version (the `ack` file then
/// named a line boundary in the same way), oldest first; `None` when there is none. The `ack`
/// file is reset with them; the caller removes the old segments once they are taken over.
pub(super) fn take_legacy(dir: &Path) -> Result<Option<Vec<bytes::Bytes>>, SinkError> {
    let mut seqs = segment_seqs(dir, LEGACY_SUFFIX)?;
    if seqs.is_empty() {
        return Ok(None);
    }
    seqs.sort_unstable();
    let ack_path = dir.join("ack");
    let ack = read_ack(&ack_path).unwrap_or(Position { seq: 0, offset: 0 });
    let mut records = Vec::new();
    for seq in seqs.into_iter().filter(|&s| s >= ack.seq) {
        let path = dir.join(format!("{seq:020}{LEGACY_SUFFIX}"));
        let data = bytes::Bytes::from(std::fs::read(&path).map_err(|e| io_err(&path, e))?);
        let from = if seq == ack.seq {
            ack.offset as usize
        } else {
            0
        };
        let complete = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if let Some(lines) = data.get(from..complete) {
            records.extend(
                lines
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(|line| data.slice_ref(line)),
            );
        }
    }
    match std::fs::remove_file(&ack_path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(io_err(&ack_path, err)),
        _ => Ok(Some(records)),
    }
}

pub(super) fn remove_legacy(dir: &Path) -> Result<(), SinkError> {
    for seq in segment_seqs(dir, LEGACY_SUFFIX)? {
        let path = dir.join(format!("{seq:020}{LEGACY_SUFFIX}"));
        std::fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
    }
    Ok(())
}

/// A segment as found at start.
pub(super) struct Recovered {
    /// Bytes of whole records (the file is cut to this).
    pub(super) bytes: u64,
    /// Whole records from `from` on.
    pub(super) pending: u64,
    /// The acknowledged offset moved to the record boundary at or after it (a garbled `ack`
    /// file must not make the reader start mid-record).
    pub(super) from: u64,
    /// 1 when a torn or garbled record was cut off.
    pub(super) damaged: u64,
}

/// Scans a segment; a torn or garbled record (a write cut by a crash or a full disk, or a
/// damaged disk) is cut off with everything after it, logged and counted.
pub(super) fn recover_segment(path: &Path, from: u64) -> Result<Recovered, SinkError> {
    let data = std::fs::read(path).map_err(|e| io_err(path, e))?;
    let scan = frame::scan(&data);
    let mut damaged = 0;
    if scan.good_len < data.len() {
        log::warn!(
            "{}: cutting a torn or garbled record ({} bytes from byte {})",
            path.display(),
            data.len() - scan.good_len,
            scan.good_len
        );
        damaged = 1;
        let file = open_options()
            .write(true)
            .open(path)
            .map_err(|e| io_err(path, e))?;
        file.set_len(scan.good_len as u64)
            .map_err(|e| io_err(path, e))?;
    }
    let from = scan
        .starts
        .iter()
        .map(|&s| s as u64)
        .find(|&s| s >= from)
        .unwrap_or(scan.good_len as u64);
    let pending = scan.starts.iter().filter(|&&s| s as u64 >= from).count() as u64;
    Ok(Recovered {
        bytes: scan.good_len as u64,
        pending,
        from,
        damaged,
    })
}
