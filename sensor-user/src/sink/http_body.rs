//! An HTTP request body made of pieces: each alert is the `Bytes` every sink shares, and only the
//! framing around it (`_bulk`'s action line, HEC's envelope, the newlines) is written here, into
//! one buffer split into pieces. ureq reads the pieces in turn with the length announced in
//! `Content-Length`, so the wire is the same as a body joined in one buffer, without that copy of
//! every alert.

use std::{collections::VecDeque, io::Read};

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use serde::Deserialize;

use super::hec;
use crate::config::HttpFormat;

/// How the sink frames each alert.
pub struct Framing<'a> {
    pub format: HttpFormat,
    /// `_bulk`'s index.
    pub index: &'a str,
    /// HEC's `index`, when one was configured.
    pub hec_index: Option<&'a str>,
    /// HEC's `host`.
    pub hostname: &'a str,
}

#[derive(Deserialize)]
struct IdOnly {
    event: IdEvent,
}

#[derive(Deserialize)]
struct IdEvent {
    id: String,
}

/// A request body: its pieces in order, and their total length.
pub struct Body {
    pieces: VecDeque<Bytes>,
    len: u64,
}

impl Body {
    /// The body of `batch` framed as `framing` says.
    pub fn new(framing: &Framing<'_>, batch: &[Bytes]) -> Body {
        let mut frames = BytesMut::with_capacity(batch.len() * 160);
        let mut pieces = VecDeque::with_capacity(batch.len() * 3);
        for record in batch {
            match framing.format {
                HttpFormat::ElasticsearchBulk => {
                    let id = serde_json::from_slice::<IdOnly>(record)
                        .map(|r| r.event.id)
                        .ok();
                    let action =
                        serde_json::json!({ "create": { "_index": framing.index, "_id": id } });
                    // A Value always serialises.
                    let _ = serde_json::to_writer((&mut frames).writer(), &action);
                    frames.put_u8(b'\n');
                    pieces.push_back(frames.split().freeze());
                    pieces.push_back(record.clone());
                    frames.put_u8(b'\n');
                }
                HttpFormat::SplunkHec => {
                    hec::envelope_head(record, framing.hostname, framing.hec_index, &mut frames);
                    pieces.push_back(frames.split().freeze());
                    pieces.push_back(record.clone());
                    frames.extend_from_slice(b"}\n");
                }
                HttpFormat::Ndjson => {
                    pieces.push_back(record.clone());
                    frames.put_u8(b'\n');
                }
            }
            pieces.push_back(frames.split().freeze());
        }
        let len = pieces.iter().map(|p| p.len() as u64).sum();
        Body { pieces, len }
    }

    /// Bytes in the body.
    pub fn content_length(&self) -> u64 {
        self.len
    }

    #[cfg(test)]
    fn pieces(&self) -> impl Iterator<Item = &Bytes> {
        self.pieces.iter()
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            let Some(front) = self.pieces.front_mut() else {
                break;
            };
            let take = front.len().min(buf.len() - filled);
            buf[filled..filled + take].copy_from_slice(&front[..take]);
            front.advance(take);
            if front.is_empty() {
                self.pieces.pop_front();
            }
            filled += take;
        }
        Ok(filled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"{"@timestamp":"2023-11-14T22:13:20.123456789Z","event":{"id":"a1"}}"#;
    const B: &str = r#"{"event":{"kind":"alert"}}"#;

    fn framing(format: HttpFormat) -> Framing<'static> {
        Framing {
            format,
            index: "alerts",
            hec_index: Some("security"),
            hostname: "web-1",
        }
    }

    fn batch() -> Vec<Bytes> {
        [A, B]
            .iter()
            .map(|r| Bytes::from_static(r.as_bytes()))
            .collect()
    }

    /// The body as ureq reads it, in reads of `chunk` bytes.
    fn read_all(mut body: Body, chunk: usize) -> String {
        let announced = body.content_length();
        let mut out = Vec::new();
        let mut buf = vec![0; chunk];
        loop {
            let n = body.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(
            out.len() as u64,
            announced,
            "Content-Length is the body's length"
        );
        String::from_utf8(out).expect("utf-8")
    }

    /// The bodies of every format, byte for byte as they have always been sent, however ureq
    /// sizes its reads.
    #[test]
    fn bodies_are_byte_identical_in_every_format() {
        for chunk in [1, 7, 64, 8192] {
            assert_eq!(
                read_all(Body::new(&framing(HttpFormat::Ndjson), &batch()), chunk),
                format!("{A}\n{B}\n")
            );
            assert_eq!(
                read_all(
                    Body::new(&framing(HttpFormat::ElasticsearchBulk), &batch()),
                    chunk
                ),
                format!(
                    "{{\"create\":{{\"_id\":\"a1\",\"_index\":\"alerts\"}}}}\n{A}\n\
                     {{\"create\":{{\"_id\":null,\"_index\":\"alerts\"}}}}\n{B}\n"
                )
            );
            let fields = "\"host\":\"web-1\",\"source\":\"lineage-sensor\",\
                          \"sourcetype\":\"lineage-sensor:alert\",\"index\":\"security\"";
            assert_eq!(
                read_all(Body::new(&framing(HttpFormat::SplunkHec), &batch()), chunk),
                format!(
                    "{{\"time\":1700000000.123,{fields},\"event\":{A}}}\n{{{fields},\"event\":{B}}}\n"
                )
            );
        }
        assert_eq!(
            Body::new(&framing(HttpFormat::Ndjson), &[]).content_length(),
            0
        );
    }

    /// Each alert goes into the body as the buffer the sinks share, not as a copy.
    #[test]
    fn alerts_are_not_copied_into_the_body() {
        for format in [
            HttpFormat::Ndjson,
            HttpFormat::ElasticsearchBulk,
            HttpFormat::SplunkHec,
        ] {
            let records = batch();
            let body = Body::new(&framing(format), &records);
            for record in &records {
                assert!(
                    body.pieces().any(|p| p.as_ptr() == record.as_ptr()),
                    "{format:?}: an alert was copied"
                );
            }
        }
    }
}
