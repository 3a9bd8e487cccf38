//! The `record` file format (docs/events.md): an optional header line, then one [`Event`] as
//! JSON per line.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::event::Event;

mod container;
mod fast;

pub use container::ContainerLine;

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

    pub fn write_container(&mut self, line: &ContainerLine) -> Result<(), RecordError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, line)?;
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

    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }

    pub fn flush(&mut self) -> Result<(), RecordError> {
        self.out.flush()?;
        Ok(())
    }
}

/// Most `container` lines kept between two events.
const MAX_PENDING_CONTAINERS: usize = 65_536;

/// Reads events from NDJSON, skipping blank lines; a header line is kept in [`Self::header`].
/// Errors carry the 1-based line number.
pub struct RecordReader<R> {
    input: R,
    /// One buffer for every line: replay reads millions of them.
    line: Vec<u8>,
    line_no: usize,
    header: Option<RecordHeader>,
    /// `container` lines read since the last [`Self::take_containers`].
    containers: Vec<ContainerLine>,
}

impl<R: BufRead> RecordReader<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            line: Vec::with_capacity(1024),
            line_no: 0,
            header: None,
            containers: Vec::new(),
        }
    }

    /// The record's header, once the line holding it has been read (it is the first line of
    /// files written by `record`).
    pub fn header(&self) -> Option<&RecordHeader> {
        self.header.as_ref()
    }

    /// The `container` lines read before the event [`Iterator::next`] last returned, oldest
    /// first.
    pub fn take_containers(&mut self) -> Vec<ContainerLine> {
        std::mem::take(&mut self.containers)
    }
}

impl<R: BufRead> Iterator for RecordReader<R> {
    type Item = Result<Event, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            // Most lines are events as `record` writes them, read where they lie in the input's
            // buffer. A line the fast path declines, or one that runs past the buffer's end,
            // takes the general path below.
            match self.input.fill_buf() {
                Ok(buf) => {
                    if let Some((event, len)) = fast::line(buf) {
                        self.input.consume(len);
                        self.line_no += 1;
                        return Some(Ok(event));
                    }
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                // As read_until would report it: nothing of the line was read.
                Err(source) => {
                    self.line_no += 1;
                    return Some(Err(RecordError::Read {
                        line: self.line_no,
                        source,
                    }));
                }
            }
            self.line.clear();
            let read = self.input.read_until(b'\n', &mut self.line);
            self.line_no += 1;
            let line_no = self.line_no;
            match read {
                Ok(0) => return None,
                Ok(_) => {}
                Err(source) => {
                    return Some(Err(RecordError::Read {
                        line: line_no,
                        source,
                    }));
                }
            }
            let text = self.line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            match parse_line(text) {
                Ok(Line::Event(event)) => return Some(Ok(event)),
                Ok(Line::Header(header)) => self.header = Some(header),
                // More between two events than any host has containers: not kept.
                Ok(Line::Container(line)) if self.containers.len() < MAX_PENDING_CONTAINERS => {
                    self.containers.push(line);
                }
                Ok(Line::Container(_)) => {}
                Err(source) => {
                    return Some(Err(RecordError::Parse {
                        line: line_no,
                        source,
                    }));
                }
            }
        }
    }
}

enum Line {
    Event(Event),
    Header(RecordHeader),
    Container(ContainerLine),
}

/// Parses one line. Lines as `record` writes them start with their `type` tag and are read by
/// [`fast`]; a line it declines (escapes, unknown fields, ...) is read by serde_json into the
/// struct the tag selects: serde reads an internally tagged enum by first buffering every field
/// of the object into owned values. Anything else (the tag later in the object, spaces) takes the
/// generic path. All three give the same result for the same line.
fn parse_line(bytes: &[u8]) -> Result<Line, serde_json::Error> {
    if let Some(event) = fast::event(bytes) {
        return Ok(Line::Event(event));
    }
    // One UTF-8 check of the whole line is cheaper than serde_json's check of every key and
    // value it reads from a byte slice; invalid UTF-8 still fails as a JSON error.
    let Ok(text) = std::str::from_utf8(bytes) else {
        return serde_json::from_slice::<Event>(bytes).map(Line::Event);
    };
    if let Some(rest) = text.strip_prefix("{\"type\":\"")
        && let Some((tag, _)) = rest.split_once('"')
    {
        // The variant structs ignore the `type` key they do not have.
        let by_tag = match tag {
            "exec" => Some(serde_json::from_str(text).map(Event::Exec)),
            "fork" => Some(serde_json::from_str(text).map(Event::Fork)),
            "exit" => Some(serde_json::from_str(text).map(Event::Exit)),
            "connect" => Some(serde_json::from_str(text).map(Event::Connect)),
            "file" => Some(serde_json::from_str(text).map(Event::File)),
            "listen" => Some(serde_json::from_str(text).map(Event::Listen)),
            "header" => return serde_json::from_str(text).map(Line::Header),
            "container" => return serde_json::from_str(text).map(Line::Container),
            _ => None,
        };
        if let Some(parsed) = by_tag {
            return parsed.map(Line::Event);
        }
    }
    match serde_json::from_str::<Event>(text) {
        Ok(event) => Ok(Line::Event(event)),
        // Only a line that is not an event is tried as a header, keeping the common path to one
        // parse.
        Err(err) => serde_json::from_str::<RecordHeader>(text)
            .map(Line::Header)
            .or_else(|_| serde_json::from_str::<ContainerLine>(text).map(Line::Container))
            .map_err(|_| err),
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

    /// Lines that run past the reader's buffer, blank lines, CRLF, a header and lines the fast
    /// path declines, read through buffers of every small size: the same as through one big
    /// buffer.
    #[test]
    fn buffer_size_does_not_matter() {
        let input = concat!(
            "{\"type\":\"header\",\"format\":1,\"boot_wall_ns\":5,\"hostname\":\"h\"}\n",
            "{\"type\":\"exit\",\"ts_ns\":1,\"pid\":7,\"start_ns\":1,\"exit_code\":0,\"signal\":0}\n",
            "\n",
            "{\"type\":\"fork\",\"ts_ns\":2,\"pid\":8,\"tid\":7,\"ppid\":7,\"start_ns\":2,\"uid\":0,\"gid\":0,\"comm\":\"a\\\\b\",\"cgroup_id\":1}\r\n",
            "{\"type\":\"exit\",\"ts_ns\":3,\"pid\":8,\"start_ns\":2,\"exit_code\":0,\"signal\":0}\r\n",
            "  {\"ts_ns\":4,\"pid\":7,\"exit_code\":1,\"type\":\"exit\"}\n",
            "{\"type\":\"exit\",\"ts_ns\":5,\"pid\":9,\"start_ns\":2,\"exit_code\":0,\"signal\":0}",
        );
        let read = |capacity: usize| {
            let mut reader = read_events(std::io::BufReader::with_capacity(
                capacity,
                input.as_bytes(),
            ));
            let events: Vec<Event> = reader.by_ref().collect::<Result<_, _>>().expect("read");
            (events, reader.header().cloned())
        };
        let (events, header) = read(1 << 16);
        assert_eq!(events.len(), 5);
        assert_eq!(header.map(|h| h.boot_wall_ns), Some(5));
        for capacity in 1..input.len() {
            assert_eq!(read(capacity), read(1 << 16), "capacity {capacity}");
        }
        let bad = "{\"type\":\"exit\",\"ts_ns\":1,\"pid\":7,\"start_ns\":1,\"exit_code\":0,\"signal\":0}\nnope\n";
        for capacity in 1..bad.len() {
            let results: Vec<_> =
                read_events(std::io::BufReader::with_capacity(capacity, bad.as_bytes())).collect();
            assert_eq!(results.len(), 2);
            let err = results[1].as_ref().expect_err("bad line");
            assert!(err.to_string().starts_with("line 2:"), "{err}");
        }
    }

    #[test]
    fn tag_anywhere_and_crlf_read_the_same() {
        let tag_first = "{\"type\":\"exit\",\"ts_ns\":1,\"pid\":7,\"exit_code\":0}\r\n";
        let tag_last = " {\"ts_ns\":1, \"pid\":7, \"exit_code\":0, \"type\":\"exit\"}\n";
        let a: Vec<Event> = read_events(tag_first.as_bytes())
            .collect::<Result<_, _>>()
            .expect("tag first");
        let b: Vec<Event> = read_events(tag_last.as_bytes())
            .collect::<Result<_, _>>()
            .expect("tag last");
        assert_eq!(a, b);
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn header_without_trailing_newline_and_bad_tag() {
        let header = "{\"type\":\"header\",\"format\":1,\"boot_wall_ns\":5,\"hostname\":\"h\"}";
        let mut reader = read_events(header.as_bytes());
        assert!(reader.next().is_none());
        assert_eq!(reader.header().map(|h| h.boot_wall_ns), Some(5));
        let bogus = "{\"type\":\"bogus\",\"ts_ns\":1}\n{\"type\":\"exit\"}\n";
        let results: Vec<_> = read_events(bogus.as_bytes()).collect();
        assert_eq!(results.len(), 2);
        assert!(results.iter().all(Result::is_err), "{results:?}");
    }
}
