//! Splunk HTTP Event Collector: each alert wrapped as `{"time","host","source","sourcetype",
//! "event"}` (several per request, concatenated), posted to `/services/collector/event`.

use std::fmt::Write as _;

use bytes::{BufMut as _, BytesMut};
use serde::Deserialize;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// The endpoint added to a collector URL given without a path.
pub const PATH: &str = "/services/collector/event";
/// `source` of every event: which program sent it.
pub const SOURCE: &str = "lineage-sensor";
/// `sourcetype`: how Splunk should parse the event (JSON, our schema).
pub const SOURCETYPE: &str = "lineage-sensor:alert";

#[derive(Deserialize)]
struct Stamp {
    #[serde(rename = "@timestamp")]
    timestamp: String,
}

/// The alert's time as HEC wants it: epoch seconds with milliseconds, or None when the alert
/// has none (HEC then uses the arrival time).
fn epoch(record: &[u8]) -> Option<String> {
    let stamp: Stamp = serde_json::from_slice(record).ok()?;
    let t = OffsetDateTime::parse(&stamp.timestamp, &Rfc3339).ok()?;
    let millis = t.unix_timestamp_nanos() / 1_000_000;
    Some(format!("{}.{:03}", millis / 1000, millis % 1000))
}

/// Appends the envelope of `record` (one alert's JSON) up to where the alert goes, so that the
/// body can take the alert's own buffer; the envelope then ends with `}`.
pub fn envelope_head(record: &[u8], host: &str, index: Option<&str>, out: &mut BytesMut) {
    out.put_u8(b'{');
    if let Some(time) = epoch(record) {
        let _ = write!(out, "\"time\":{time},");
    }
    let mut field = |name: &str, value: &str| {
        // A string always serialises.
        let _ = serde_json::to_writer((&mut *out).writer(), name);
        out.put_u8(b':');
        let _ = serde_json::to_writer((&mut *out).writer(), value);
        out.put_u8(b',');
    };
    field("host", host);
    field("source", SOURCE);
    field("sourcetype", SOURCETYPE);
    if let Some(index) = index {
        field("index", index);
    }
    out.extend_from_slice(b"\"event\":");
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    text: String,
}

/// A 2xx response is an acknowledgement when its `code` is 0 ("Success").
pub fn outcome(text: &str) -> Result<(), String> {
    let response: Response =
        serde_json::from_str(text).map_err(|e| format!("not a Splunk HEC response ({e})"))?;
    if response.code == 0 {
        Ok(())
    } else {
        Err(format!(
            "Splunk HEC code {}: {}",
            response.code, response.text
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(record: &[u8], host: &str, index: Option<&str>, out: &mut BytesMut) {
        envelope_head(record, host, index, out);
        out.extend_from_slice(record);
        out.put_u8(b'}');
    }

    #[test]
    fn envelope_carries_time_host_source_and_the_alert() {
        let alert = br#"{"@timestamp":"2023-11-14T22:13:20.123456789Z","event":{"id":"x"}}"#;
        let mut out = BytesMut::new();
        envelope(alert, "web-1", Some("security"), &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(v["time"].as_f64(), Some(1_700_000_000.123));
        assert_eq!(v["host"], "web-1");
        assert_eq!(v["source"], SOURCE);
        assert_eq!(v["sourcetype"], SOURCETYPE);
        assert_eq!(v["index"], "security");
        assert_eq!(v["event"]["event"]["id"], "x");
        let mut plain = BytesMut::new();
        envelope(alert, "web-1", None, &mut plain);
        let v: serde_json::Value = serde_json::from_slice(&plain).expect("JSON");
        assert!(
            v.get("index").is_none(),
            "the token's default index applies"
        );
        assert!(outcome(r#"{"text":"Success","code":0}"#).is_ok());
        assert!(outcome(r#"{"text":"Invalid token","code":4}"#).is_err());
    }
}
