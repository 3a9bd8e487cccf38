//! The on-disk spool: an ordered, bounded log of alerts a sink has not delivered yet.
//!
//! Every alert is appended before it is sent and acknowledged once the receiver took it, so what
//! was in flight survives an outage, a restart and a SIGKILL. The log is a run of segment files
//! (`<seq>.ndjson`, one alert per line) and an `ack` file naming the first undelivered byte;
//! dropping the oldest when the bound is hit deletes whole segments, which keeps the bound cheap
//! to enforce and every drop countable.

use std::{
    collections::VecDeque,
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Read, Seek, SeekFrom, Write},
    os::{
        fd::AsRawFd,
        unix::fs::{DirBuilderExt, OpenOptionsExt},
    },
    path::{Path, PathBuf},
};

use super::SinkError;

/// Bytes of one segment, relative to the bound: small enough that dropping one loses little.
const SEGMENTS_PER_BOUND: u64 = 8;

/// A place in the log: segment sequence number and byte offset within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub seq: u64,
    pub offset: u64,
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    bytes: u64,
    /// Records in the segment at or after the ack position.
    pending: u64,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_max: u64,
    segments: VecDeque<Segment>,
    writer: Option<File>,
    ack: Position,
    /// Held for the spool's lifetime: a second sensor on the same directory would interleave.
    _lock: File,
}

/// What a read returned: the records and the position after the last of them.
pub struct Batch {
    pub records: Vec<Vec<u8>>,
    pub end: Position,
}

fn io_err(path: &Path, source: std::io::Error) -> SinkError {
    SinkError::Spool {
        path: path.to_owned(),
        source,
    }
}

impl Spool {
    /// Opens (creating it if needed) the spool in `dir`, recovering from a torn last line.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, SinkError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io_err(dir, e))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| io_err(&lock_path, e))?;
        // SAFETY: a valid, open descriptor.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(SinkError::SpoolBusy {
                path: dir.to_owned(),
            });
        }
        let mut seqs: Vec<u64> = std::fs::read_dir(dir)
            .map_err(|e| io_err(dir, e))?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name();
                name.to_str()?.strip_suffix(".ndjson")?.parse().ok()
            })
            .collect();
        seqs.sort_unstable();
        let ack = read_ack(&dir.join("ack")).unwrap_or(Position {
            seq: seqs.first().copied().unwrap_or(0),
            offset: 0,
        });
        let mut spool = Spool {
            dir: dir.to_owned(),
            max_bytes,
            segment_max: (max_bytes / SEGMENTS_PER_BOUND).max(4096),
            segments: VecDeque::new(),
            writer: None,
            ack,
            _lock: lock,
        };
        for seq in seqs {
            let path = spool.segment_path(seq);
            if seq < ack.seq {
                std::fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
                continue;
            }
            let from = if seq == ack.seq { ack.offset } else { 0 };
            let (bytes, pending) = recover_segment(&path, from)?;
            spool.segments.push_back(Segment {
                seq,
                bytes,
                pending,
            });
        }
        if spool.segments.front().is_none_or(|s| s.seq != ack.seq) {
            // The acknowledged segment is gone (fully delivered and removed): start at the next.
            spool.ack = Position {
                seq: spool.segments.front().map_or(ack.seq, |s| s.seq),
                offset: 0,
            };
        }
        Ok(spool)
    }

    fn segment_path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.ndjson"))
    }

    /// Alerts not delivered yet.
    pub fn pending(&self) -> u64 {
        self.segments.iter().map(|s| s.pending).sum()
    }

    /// Bytes on disk (segments).
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Appends records; returns how many of the oldest undelivered ones were dropped to stay
    /// within the bound.
    pub fn append(&mut self, records: &[std::sync::Arc<[u8]>]) -> Result<u64, SinkError> {
        if records.is_empty() {
            return Ok(0);
        }
        let mut buf = Vec::new();
        for record in records {
            buf.extend_from_slice(record);
            buf.push(b'\n');
        }
        let full = self
            .segments
            .back()
            .is_none_or(|s| s.bytes >= self.segment_max);
        if full || self.writer.is_none() {
            let seq = if full {
                self.segments.back().map_or(self.ack.seq, |s| s.seq + 1)
            } else {
                self.segments.back().map_or(self.ack.seq, |s| s.seq)
            };
            let path = self.segment_path(seq);
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| io_err(&path, e))?;
            self.writer = Some(file);
            if full {
                self.segments.push_back(Segment {
                    seq,
                    bytes: 0,
                    pending: 0,
                });
            }
        }
        let (Some(writer), Some(last)) = (self.writer.as_mut(), self.segments.back_mut()) else {
            return Ok(0);
        };
        let path = self.dir.join(format!("{:020}.ndjson", last.seq));
        writer.write_all(&buf).map_err(|e| io_err(&path, e))?;
        last.bytes += buf.len() as u64;
        last.pending += records.len() as u64;
        Ok(self.enforce_bound())
    }

    /// Drops whole oldest segments while over the bound; the newest is always kept.
    fn enforce_bound(&mut self) -> u64 {
        let mut dropped = 0;
        while self.bytes() > self.max_bytes && self.segments.len() > 1 {
            let Some(oldest) = self.segments.pop_front() else {
                break;
            };
            dropped += oldest.pending;
            let _ = std::fs::remove_file(self.segment_path(oldest.seq));
            self.ack = Position {
                seq: self.segments.front().map_or(oldest.seq + 1, |s| s.seq),
                offset: 0,
            };
        }
        if dropped > 0 {
            let _ = self.write_ack();
        }
        dropped
    }

    /// Reads up to `max` undelivered records, oldest first, without consuming them.
    pub fn read(&self, max: usize) -> Result<Batch, SinkError> {
        let mut records = Vec::new();
        let mut end = self.ack;
        for segment in &self.segments {
            if records.len() >= max {
                break;
            }
            let start = if segment.seq == self.ack.seq {
                self.ack.offset
            } else {
                0
            };
            if start >= segment.bytes {
                continue;
            }
            let path = self.segment_path(segment.seq);
            let mut file = File::open(&path).map_err(|e| io_err(&path, e))?;
            file.seek(SeekFrom::Start(start))
                .map_err(|e| io_err(&path, e))?;
            let mut reader = BufReader::new(file.take(segment.bytes - start));
            let mut offset = start;
            while records.len() < max {
                let mut line = Vec::new();
                let n = reader
                    .read_until(b'\n', &mut line)
                    .map_err(|e| io_err(&path, e))?;
                if n == 0 || line.last() != Some(&b'\n') {
                    break;
                }
                offset += n as u64;
                line.pop();
                records.push(line);
            }
            end = Position {
                seq: segment.seq,
                offset,
            };
        }
        Ok(Batch { records, end })
    }

    /// Marks everything before `end` (a [`Batch::end`]) delivered, removing finished segments.
    pub fn ack(&mut self, end: Position, delivered: u64) -> Result<(), SinkError> {
        if end <= self.ack {
            return Ok(());
        }
        let mut left = delivered;
        while let Some(front) = self.segments.front_mut() {
            if front.seq < end.seq {
                left = left.saturating_sub(front.pending);
                let seq = front.seq;
                self.segments.pop_front();
                let path = self.segment_path(seq);
                std::fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
                if self.segments.is_empty() {
                    self.writer = None;
                }
            } else {
                if front.seq == end.seq {
                    front.pending = front.pending.saturating_sub(left);
                }
                break;
            }
        }
        self.ack = end;
        // The segment being written stays; a fully delivered older one is gone already.
        self.write_ack()
    }

    fn write_ack(&self) -> Result<(), SinkError> {
        let path = self.dir.join("ack");
        let tmp = self.dir.join("ack.tmp");
        std::fs::write(&tmp, format!("{} {}\n", self.ack.seq, self.ack.offset))
            .map_err(|e| io_err(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))
    }

    /// Makes appended records durable (on shutdown and after each batch written).
    pub fn sync(&mut self) {
        if let Some(writer) = &self.writer {
            let _ = writer.sync_data();
        }
    }
}

fn read_ack(path: &Path) -> Option<Position> {
    let text = std::fs::read_to_string(path).ok()?;
    let (seq, offset) = text.trim().split_once(' ')?;
    Some(Position {
        seq: seq.parse().ok()?,
        offset: offset.parse().ok()?,
    })
}

/// Size of a segment and the complete records from `from` on; a torn last line (a write cut
/// by a crash) is cut off.
fn recover_segment(path: &Path, from: u64) -> Result<(u64, u64), SinkError> {
    let data = std::fs::read(path).map_err(|e| io_err(path, e))?;
    let complete = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if complete < data.len() {
        log::warn!(
            "{}: cutting a torn last record ({} bytes)",
            path.display(),
            data.len() - complete
        );
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| io_err(path, e))?;
        file.set_len(complete as u64).map_err(|e| io_err(path, e))?;
    }
    let from = (from as usize).min(complete);
    let pending = data[from..complete].iter().filter(|&&b| b == b'\n').count() as u64;
    Ok((complete as u64, pending))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn rec(s: &str) -> Arc<[u8]> {
        Arc::from(s.as_bytes())
    }

    fn texts(batch: &Batch) -> Vec<String> {
        batch
            .records
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect()
    }

    #[test]
    fn records_come_back_in_order_until_acknowledged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spool = Spool::open(dir.path(), 1 << 20).expect("open");
        spool
            .append(&[rec("a"), rec("b"), rec("c")])
            .expect("append");
        let first = spool.read(2).expect("read");
        assert_eq!(texts(&first), ["a", "b"]);
        assert_eq!(texts(&spool.read(10).expect("read")), ["a", "b", "c"]);
        spool.ack(first.end, 2).expect("ack");
        assert_eq!(spool.pending(), 1);
        assert_eq!(texts(&spool.read(10).expect("read")), ["c"]);
    }

    #[test]
    fn a_reopened_spool_replays_what_was_not_acknowledged() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut spool = Spool::open(dir.path(), 1 << 20).expect("open");
            spool.append(&[rec("a"), rec("b")]).expect("append");
            let batch = spool.read(1).expect("read");
            spool.ack(batch.end, 1).expect("ack");
            spool.append(&[rec("c")]).expect("append");
        }
        let spool = Spool::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(spool.pending(), 2);
        assert_eq!(texts(&spool.read(10).expect("read")), ["b", "c"]);
    }

    #[test]
    fn a_second_opener_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _first = Spool::open(dir.path(), 1 << 20).expect("open");
        assert!(matches!(
            Spool::open(dir.path(), 1 << 20),
            Err(SinkError::SpoolBusy { .. })
        ));
    }

    #[test]
    fn a_torn_last_record_is_cut_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut spool = Spool::open(dir.path(), 1 << 20).expect("open");
            spool.append(&[rec("a")]).expect("append");
        }
        let segment = dir.path().join(format!("{:020}.ndjson", 0));
        let mut file = OpenOptions::new()
            .append(true)
            .open(&segment)
            .expect("segment");
        file.write_all(b"{\"half").expect("torn write");
        drop(file);
        let mut spool = Spool::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(texts(&spool.read(10).expect("read")), ["a"]);
        spool.append(&[rec("b")]).expect("append");
        assert_eq!(texts(&spool.read(10).expect("read")), ["a", "b"]);
    }

    #[test]
    fn the_oldest_are_dropped_and_counted_at_the_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        // 8 segments of 8 KiB: 100-byte records, 82 per segment.
        let mut spool = Spool::open(dir.path(), 65536).expect("open");
        let record: Arc<[u8]> = Arc::from(vec![b'x'; 99]);
        let mut dropped = 0;
        let total = 2000u64;
        for i in 0..total {
            let mut r = format!("{i:06}").into_bytes();
            r.extend_from_slice(&record[6..]);
            dropped += spool.append(&[Arc::from(r)]).expect("append");
        }
        assert!(spool.bytes() <= 65536 + 8192, "{}", spool.bytes());
        assert!(dropped > 0);
        assert_eq!(
            dropped + spool.pending(),
            total,
            "every record is either kept or counted"
        );
        let batch = spool.read(1).expect("read");
        let oldest_kept = String::from_utf8_lossy(&batch.records[0][..6]).into_owned();
        assert_eq!(oldest_kept.parse::<u64>().expect("number"), dropped);
    }
}
