//! The `record` file format: one [`Event`] as JSON per line (docs/events.md).

use std::io::{BufRead, Write};

use crate::event::Event;

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

/// Reads events from NDJSON, skipping blank lines. Errors carry the 1-based line number.
pub fn read_events<R: BufRead>(input: R) -> impl Iterator<Item = Result<Event, RecordError>> {
    input
        .lines()
        .enumerate()
        .filter_map(|(index, line)| {
            let line_no = index + 1;
            match line {
                Err(source) => Some(Err(RecordError::Read {
                    line: line_no,
                    source,
                })),
                Ok(text) if text.trim().is_empty() => None,
                Ok(text) => Some(serde_json::from_str(&text).map_err(|source| {
                    RecordError::Parse {
                        line: line_no,
                        source,
                    }
                })),
            }
        })
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
        for e in &events {
            writer.write(e).expect("write");
        }
        let bytes = writer.out;
        assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 2, "one line per event");
        let back: Vec<Event> = read_events(&bytes[..]).collect::<Result<_, _>>().expect("read");
        assert_eq!(back, events);
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
