//! The `record` file format (docs/events.md): an optional header line, then one [`Event`] as
//! JSON per line.

use std::io::{BufRead, Lines, Write};

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// The first line of a record: what is needed to replay it as it happened live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "header")]
pub struct RecordHeader {
    /// Format version of the lines that follow; 1 for now.
    pub format: u32,
    /// Wall clock time of boot, in nanoseconds since the Unix epoch: `ts_ns + boot_wall_ns` is an
    /// event's wall clock time.
    pub boot_wall_ns: u64,
    pub hostname: String,
}

impl RecordHeader {
    /// The header for a recording on this host now.
    pub fn here() -> Self {
        Self {
            format: 1,
            boot_wall_ns: crate::clock::boot_wall_ns(),
            hostname: crate::clock::hostname(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("line {line}: {source}")]
    Parse {
        line: usize,
        source: serde_json::Error,
    },
    #[error("line {line}: {source}")]
    Read { line: usize, source: std::io::Error },
    #[error("writing record: {0}")]
    Write(#[from] std::io::Error),
    #[error("serialising event: {0}")]
    Serialise(#[from] serde_json::Error),
}

/// Writes events as NDJSON.
pub struct RecordWriter<W: Write> {
    out: W,
    line: Vec<u8>,
}

impl<W: Write> RecordWriter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            line: Vec::with_capacity(1024),
        }
    }

    pub fn write_header(&mut self, header: &RecordHeader) -> Result<(), RecordError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, header)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        Ok(())
    }

    pub fn write(&mut self, event: &Event) -> Result<(), RecordError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, event)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), RecordError> {
        self.out.flush()?;
        Ok(())
    }
}

/// Reads events from NDJSON, skipping blank lines; a header line is kept in [`Self::header`].
/// Errors carry the 1-based line number.
pub struct RecordReader<R> {
    lines: Lines<R>,
    line_no: usize,
    header: Option<RecordHeader>,
}

impl<R: BufRead> RecordReader<R> {
    pub fn new(input: R) -> Self {
        Self {
            lines: input.lines(),
            line_no: 0,
            header: None,
        }
    }

    /// The record's header, once the line holding it has been read (it is the first line of
    /// files written by `record`).
    pub fn header(&self) -> Option<&RecordHeader> {
        self.header.as_ref()
    }
}

impl<R: BufRead> Iterator for RecordReader<R> {
    type Item = Result<Event, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let line = self.lines.next()?;
            self.line_no += 1;
            let line_no = self.line_no;
            let text = match line {
                Ok(text) => text,
                Err(source) => {
                    return Some(Err(RecordError::Read {
                        line: line_no,
                        source,
                    }));
                }
            };
            if text.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Event>(&text) {
                Ok(event) => return Some(Ok(event)),
                // Only a line that is not an event is tried as a header, keeping the common
                // path to one parse.
                Err(source) => match serde_json::from_str::<RecordHeader>(&text) {
                    Ok(header) => self.header = Some(header),
                    Err(_) => {
                        return Some(Err(RecordError::Parse {
                            line: line_no,
                            source,
                        }));
                    }
                },
            }
        }
    }
}

/// Reads the events of a record (see [`RecordReader`]).
pub fn read_events<R: BufRead>(input: R) -> RecordReader<R> {
    RecordReader::new(input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Exit, Fork};

    #[test]
    fn written_events_read_back() {
        let events = vec![
            Event::Fork(Fork {
                ts_ns: 1,
                pid: 2,
                tid: 1,
                ppid: 1,
                start_ns: 1,
                uid: 0,
                gid: 0,
                comm: "a\nb".into(),
                cgroup_id: 3,
            }),
            Event::Exit(Exit {
                ts_ns: 2,
                pid: 2,
                start_ns: 1,
                exit_code: 1,
                signal: 0,
            }),
        ];
        let mut writer = RecordWriter::new(Vec::new());
        let header = RecordHeader::here();
        writer.write_header(&header).expect("header");
        for e in &events {
            writer.write(e).expect("write");
        }
        let bytes = writer.out;
        assert_eq!(
            bytes.iter().filter(|&&b| b == b'\n').count(),
            3,
            "one line per event"
        );
        let mut reader = read_events(&bytes[..]);
        let back: Vec<Event> = reader.by_ref().collect::<Result<_, _>>().expect("read");
        assert_eq!(back, events);
        assert_eq!(reader.header(), Some(&header));
    }

    #[test]
    fn bad_line_is_reported_with_its_number() {
        let input = "{\"type\":\"exit\",\"ts_ns\":1,\"pid\":1,\"exit_code\":0}\n\nnot json\n";
        let results: Vec<_> = read_events(input.as_bytes()).collect();
        assert_eq!(results.len(), 2);
        let err = results[1].as_ref().expect_err("bad line");
        assert!(err.to_string().starts_with("line 3:"), "{err}");
    }
}
