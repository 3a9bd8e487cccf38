//! The on-disk spool: an ordered, bounded log of alerts a sink has not delivered yet.
//!
//! Every alert is appended before it is sent and acknowledged once the receiver took it, so what
//! was in flight survives an outage, a restart and a SIGKILL. The log is a run of segment files
//! (`<seq>.rec`, framed records: length and checksum each, see [`super::frame`]) and an `ack`
//! file naming the first undelivered byte; dropping the oldest when the bound is hit deletes
//! whole segments, which keeps the bound cheap to enforce and every drop countable.
//!
//! The disk may fail (ENOSPC, EIO, a read-only remount). A failed append leaves nothing behind:
//! the segment is cut back to its last whole record, and the next write goes at that offset, so
//! no record is ever torn into another. A failed acknowledgement only delays the `ack` file: the
//! position is kept in memory and written again with the next one (a crash meanwhile resends
//! some alerts, which receivers de-duplicate on `event.id`).

use std::{
    collections::VecDeque,
    fs::{File, OpenOptions},
    io::{Read, Seek, SeekFrom, Write},
    os::{
        fd::AsRawFd,
        unix::fs::{DirBuilderExt, OpenOptionsExt},
    },
    path::{Path, PathBuf},
};

use bytes::Bytes;

use super::{
    SinkError,
    frame::{self, Decoded},
};

#[cfg(test)]
mod compat_tests;
mod repair;

use repair::{recover_segment, remove_legacy, take_legacy};

/// Bytes of one segment, relative to the bound: small enough that dropping one loses little.
const SEGMENTS_PER_BOUND: u64 = 8;
const SEGMENT_SUFFIX: &str = ".rec";
/// Segments of the unframed format of earlier versions (one alert per line), taken over once.
const LEGACY_SUFFIX: &str = ".ndjson";

/// A place in the log: segment sequence number and byte offset within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub seq: u64,
    pub offset: u64,
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    /// Bytes of whole records: the next record is written here.
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
    /// The `ack` file is behind `ack` (its last write failed).
    ack_unsaved: bool,
    /// Damaged records found (cut at open, skipped when read) and not yet reported.
    damaged: u64,
    /// Held for the spool's lifetime: a second sensor on the same directory would interleave.
    _lock: File,
}

/// What a read returned: the records (slices of one buffer read from disk) and the position
/// after the last of them.
pub struct Batch {
    pub records: Vec<Bytes>,
    pub end: Position,
}

fn io_err(path: &Path, source: std::io::Error) -> SinkError {
    SinkError::Spool {
        path: path.to_owned(),
        source,
    }
}

/// Opens a file of the spool without following a link planted in its place.
fn open_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    options
}

impl Spool {
    /// Opens (creating it if needed) the spool in `dir`, cutting torn or garbled records off.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, SinkError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io_err(dir, e))?;
        let lock_path = dir.join("lock");
        let lock = open_options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_err(&lock_path, e))?;
        // SAFETY: a valid, open descriptor.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(SinkError::SpoolBusy {
                path: dir.to_owned(),
            });
        }
        let mut seqs = segment_seqs(dir, SEGMENT_SUFFIX)?;
        seqs.sort_unstable();
        let legacy = take_legacy(dir)?;
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
            ack_unsaved: false,
            damaged: 0,
            _lock: lock,
        };
        for seq in seqs {
            let path = spool.segment_path(seq);
            if seq < ack.seq {
                std::fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
                continue;
            }
            let from = if seq == ack.seq { ack.offset } else { 0 };
            let recovered = recover_segment(&path, from)?;
            spool.damaged += recovered.damaged;
            if seq == ack.seq {
                spool.ack.offset = recovered.from;
            }
            spool.segments.push_back(Segment {
                seq,
                bytes: recovered.bytes,
                pending: recovered.pending,
            });
        }
        if spool
            .segments
            .front()
            .is_none_or(|s| s.seq != spool.ack.seq)
        {
            // The acknowledged segment is gone (fully delivered and removed): start at the next.
            spool.ack = Position {
                seq: spool.segments.front().map_or(ack.seq, |s| s.seq),
                offset: 0,
            };
        }
        if spool.ack != ack {
            // The file must say where reading really starts: records appended at a position it
            // puts behind them would be skipped at the next start.
            spool.save_ack();
        }
        if let Some(legacy) = legacy {
            spool.append(&legacy)?;
            remove_legacy(dir)?;
        }
        Ok(spool)
    }

    fn segment_path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}{SEGMENT_SUFFIX}"))
    }

    /// Alerts not delivered yet.
    pub fn pending(&self) -> u64 {
        self.segments.iter().map(|s| s.pending).sum()
    }

    /// Bytes on disk (segments).
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Damaged records found since the last call (each a torn or garbled record cut off, with
    /// whatever followed it in its segment).
    pub fn take_damaged(&mut self) -> u64 {
        std::mem::take(&mut self.damaged)
    }

    /// Appends records; returns how many of the oldest undelivered ones were dropped to stay
    /// within the bound. On error nothing of `records` is kept and the spool is as before.
    pub fn append(&mut self, records: &[Bytes]) -> Result<u64, SinkError> {
        if records.is_empty() {
            return Ok(0);
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
            let file = open_options()
                .create(true)
                .truncate(false)
                .write(true)
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
        let path = self.dir.join(format!("{:020}{SEGMENT_SUFFIX}", last.seq));
        // At the known end, not O_APPEND: after a failed write the next one overwrites its
        // remains instead of following them.
        let written = match frame::write_at(writer, records, last.bytes) {
            Ok(written) => written,
            Err(err) => {
                // Best effort (shrinking needs no space); what remains is overwritten or cut anyway.
                let _ = writer.set_len(last.bytes);
                return Err(io_err(&path, err));
            }
        };
        last.bytes += written;
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
            self.save_ack();
        }
        dropped
    }

    /// Reads up to `max` undelivered records, oldest first, without consuming them. A damaged
    /// record (the disk changed under the sensor) ends its segment's part of the batch: the rest
    /// of that segment is skipped and counted.
    pub fn read(&mut self, max: usize) -> Result<Batch, SinkError> {
        let mut records = Vec::new();
        let mut end = self.ack;
        let mut damaged = 0;
        for segment in &mut self.segments {
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
            let path = self
                .dir
                .join(format!("{:020}{SEGMENT_SUFFIX}", segment.seq));
            let mut file = open_options()
                .read(true)
                .open(&path)
                .map_err(|e| io_err(&path, e))?;
            file.seek(SeekFrom::Start(start))
                .map_err(|e| io_err(&path, e))?;
            let mut data = Vec::new();
            file.take(segment.bytes - start)
                .read_to_end(&mut data)
                .map_err(|e| io_err(&path, e))?;
            // One buffer per segment read; each record is a view into it.
            let data = Bytes::from(data);
            let mut at = 0;
            let mut here = 0;
            while records.len() < max {
                match frame::decode(&data, at) {
                    Decoded::Record(payload, next) => {
                        records.push(data.slice_ref(payload));
                        at = next;
                        here += 1;
                    }
                    Decoded::End => break,
                    Decoded::Bad => {
                        log::error!(
                            "{}: damaged record at byte {}; skipping the rest of the segment",
                            path.display(),
                            start + at as u64
                        );
                        damaged += 1;
                        // Whatever is left cannot be told apart: the segment ends here.
                        segment.bytes = start + at as u64;
                        segment.pending = here;
                        break;
                    }
                }
            }
            end = Position {
                seq: segment.seq,
                offset: start + at as u64,
            };
        }
        self.damaged += damaged;
        Ok(Batch { records, end })
    }

    /// Marks everything before `end` (a [`Batch::end`]) delivered, removing finished segments.
    /// Never fails: a segment that cannot be removed is removed at the next start, an `ack` file
    /// that cannot be written is written with the next acknowledgement.
    pub fn ack(&mut self, end: Position, delivered: u64) {
        if end <= self.ack {
            return;
        }
        let mut left = delivered;
        while let Some(front) = self.segments.front_mut() {
            if front.seq < end.seq {
                left = left.saturating_sub(front.pending);
                let seq = front.seq;
                self.segments.pop_front();
                let path = self.segment_path(seq);
                if let Err(err) = std::fs::remove_file(&path) {
                    log::warn!("{}: {err}; removed at the next start", path.display());
                }
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
        self.save_ack();
    }

    /// Whether the `ack` file is behind (its last write failed).
    pub fn ack_unsaved(&self) -> bool {
        self.ack_unsaved
    }

    /// Writes the `ack` file; a failure is logged once per episode and retried with the next
    /// acknowledgement or [`Spool::sync`].
    fn save_ack(&mut self) {
        match self.write_ack() {
            Ok(()) => {
                if self.ack_unsaved {
                    log::info!("spool {}: ack file written again", self.dir.display());
                }
                self.ack_unsaved = false;
            }
            Err(err) => {
                if !self.ack_unsaved {
                    log::error!(
                        "{err}; delivery goes on, the position is kept in memory and written \
                         again with the next acknowledgement"
                    );
                }
                self.ack_unsaved = true;
            }
        }
    }

    fn write_ack(&self) -> Result<(), SinkError> {
        let path = self.dir.join("ack");
        let tmp = self.dir.join("ack.tmp");
        let mut file = open_options()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&tmp)
            .map_err(|e| io_err(&tmp, e))?;
        file.write_all(format!("{} {}\n", self.ack.seq, self.ack.offset).as_bytes())
            .map_err(|e| io_err(&tmp, e))?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))
    }

    /// Makes appended records durable (on shutdown and after each batch written), and retries an
    /// `ack` file that could not be written.
    pub fn sync(&mut self) {
        if let Some(writer) = &self.writer {
            let _ = writer.sync_data();
        }
        if self.ack_unsaved {
            self.save_ack();
        }
    }
}

fn segment_seqs(dir: &Path, suffix: &str) -> Result<Vec<u64>, SinkError> {
    Ok(std::fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            name.to_str()?.strip_suffix(suffix)?.parse().ok()
        })
        .collect())
}

fn read_ack(path: &Path) -> Option<Position> {
    let mut text = String::new();
    open_options()
        .read(true)
        .open(path)
        .ok()?
        .take(64)
        .read_to_string(&mut text)
        .ok()?;
    let (seq, offset) = text.trim().split_once(' ')?;
    Some(Position {
        seq: seq.parse().ok()?,
        offset: offset.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
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
        spool.ack(first.end, 2);
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
            spool.ack(batch.end, 1);
            spool.append(&[rec("c")]).expect("append");
        }
        let mut spool = Spool::open(dir.path(), 1 << 20).expect("reopen");
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

    fn segment(dir: &Path, seq: u64) -> PathBuf {
        dir.join(format!("{seq:020}{SEGMENT_SUFFIX}"))
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut spool = Spool::open(dir.path(), 1 << 20).expect("open");
            spool.append(&[rec("a")]).expect("append");
        }
        // Half a record, as a write cut by a full disk or a crash leaves it.
        let mut half = Vec::new();
        frame::encode(b"{\"half\":1}", &mut half);
        half.truncate(half.len() - 3);
        let mut file = OpenOptions::new()
            .append(true)
            .open(segment(dir.path(), 0))
            .expect("segment");
        file.write_all(&half).expect("torn write");
        drop(file);
        let mut spool = Spool::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(spool.take_damaged(), 1);
        assert_eq!(texts(&spool.read(10).expect("read")), ["a"]);
        spool.append(&[rec("b")]).expect("append");
        assert_eq!(texts(&spool.read(10).expect("read")), ["a", "b"]);
        assert_eq!(spool.take_damaged(), 0);
    }

    #[test]
    fn a_garbled_record_ends_its_segment_and_a_garbled_ack_is_realigned() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut spool = Spool::open(dir.path(), 1 << 20).expect("open");
            spool
                .append(&[rec("first"), rec("second"), rec("third")])
                .expect("append");
        }
        let path = segment(dir.path(), 0);
        let mut data = std::fs::read(&path).expect("read");
        let second = frame::scan(&data).starts[1];
        data[second + frame::HEADER] ^= 1;
        std::fs::write(&path, &data).expect("garble");
        // An ack pointing into the middle of the first record.
        std::fs::write(dir.path().join("ack"), "0 3\n").expect("ack");
        let mut spool = Spool::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(spool.take_damaged(), 1);
        assert_eq!(spool.pending(), 0, "only whole records after the ack");
        spool.append(&[rec("fourth")]).expect("append");
        assert_eq!(texts(&spool.read(10).expect("read")), ["fourth"]);
    }

    #[test]
    fn an_unframed_spool_of_an_earlier_version_is_taken_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join(format!("{:020}{LEGACY_SUFFIX}", 3)),
            b"{\"a\":1}\n{\"b\":2}\n{\"torn",
        )
        .expect("legacy");
        std::fs::write(dir.path().join("ack"), "3 8\n").expect("ack");
        let mut spool = Spool::open(dir.path(), 1 << 20).expect("open");
        assert_eq!(texts(&spool.read(10).expect("read")), ["{\"b\":2}"]);
        drop(spool);
        let mut spool = Spool::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(texts(&spool.read(10).expect("read")), ["{\"b\":2}"]);
    }

    #[test]
    fn the_oldest_are_dropped_and_counted_at_the_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        // 8 segments of 8 KiB: 100-byte records, 82 per segment.
        let mut spool = Spool::open(dir.path(), 65536).expect("open");
        let record = [b'x'; 99];
        let mut dropped = 0;
        let total = 2000u64;
        for i in 0..total {
            let mut r = format!("{i:06}").into_bytes();
            r.extend_from_slice(&record[6..]);
            dropped += spool.append(&[Bytes::from(r)]).expect("append");
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
