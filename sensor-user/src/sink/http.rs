//! HTTP POST of NDJSON batches: a generic webhook, or an Elasticsearch/OpenSearch `_bulk`
//! endpoint where each alert is a `create` with `_id` = `event.id`, so a batch sent twice after
//! an outage indexes every alert once.

use std::{collections::BTreeMap, io::Read, time::Duration};

use serde::Deserialize;

use super::delivery::{Delivered, Transport};
use crate::config::HttpFormat;

pub struct Http {
    url: String,
    format: HttpFormat,
    index: String,
    headers: BTreeMap<String, String>,
    agent: ureq::Agent,
}

#[derive(Deserialize)]
struct IdOnly {
    event: IdEvent,
}

#[derive(Deserialize)]
struct IdEvent {
    id: String,
}

/// The parts of a `_bulk` response that tell which items failed.
#[derive(Deserialize)]
struct BulkResponse {
    errors: bool,
    #[serde(default)]
    items: Vec<BTreeMap<String, BulkItem>>,
}

#[derive(Deserialize)]
struct BulkItem {
    status: u16,
}

/// Bytes of a response body read at most (error text, `_bulk` item statuses).
const RESPONSE_MAX: u64 = 16 << 20;

impl Http {
    pub fn new(
        url: String,
        format: HttpFormat,
        index: String,
        headers: BTreeMap<String, String>,
        timeout: Duration,
    ) -> Http {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .new_agent();
        Http {
            url,
            format,
            index,
            headers,
            agent,
        }
    }

    fn body(&self, batch: &[Vec<u8>]) -> Vec<u8> {
        let mut body = Vec::with_capacity(batch.iter().map(|r| r.len() + 96).sum());
        for record in batch {
            if self.format == HttpFormat::ElasticsearchBulk {
                let id = serde_json::from_slice::<IdOnly>(record)
                    .map(|r| r.event.id)
                    .ok();
                let action = serde_json::json!({ "create": { "_index": self.index, "_id": id } });
                // A Value always serialises.
                let _ = serde_json::to_writer(&mut body, &action);
                body.push(b'\n');
            }
            body.extend_from_slice(record);
            body.push(b'\n');
        }
        body
    }
}

impl Transport for Http {
    fn send(&mut self, batch: &[Vec<u8>]) -> Result<Delivered, String> {
        let body = self.body(batch);
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/x-ndjson");
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let mut response = request
            .send(&body[..])
            .map_err(|e| format!("POST {}: {e}", self.url))?;
        let status = response.status();
        let mut text = String::new();
        let _ = response
            .body_mut()
            .as_reader()
            .take(RESPONSE_MAX)
            .read_to_string(&mut text);
        if !status.is_success() {
            let excerpt: String = text.chars().take(200).collect();
            return Err(format!("POST {}: HTTP {status}: {excerpt}", self.url));
        }
        if self.format != HttpFormat::ElasticsearchBulk {
            return Ok(Delivered::default());
        }
        bulk_outcome(&text).map_err(|e| format!("POST {}: {e}", self.url))
    }
}

/// 409 means the alert is indexed already (a re-send); 429 and 5xx are worth a retry of the
/// batch; other item errors (a mapping conflict) would fail forever and are dropped.
fn bulk_outcome(text: &str) -> Result<Delivered, String> {
    let response: BulkResponse = serde_json::from_str(text)
        .map_err(|e| format!("not an Elasticsearch _bulk response ({e})"))?;
    if !response.errors {
        return Ok(Delivered::default());
    }
    let mut delivered = Delivered::default();
    for status in response
        .items
        .iter()
        .flat_map(|item| item.values().map(|i| i.status))
    {
        match status {
            200..=299 | 409 => {}
            429 | 500..=599 => return Err(format!("_bulk item status {status}: retrying")),
            _ => delivered.rejected += 1,
        }
    }
    if delivered.rejected > 0 {
        log::warn!(
            "http sink: Elasticsearch refused {} alerts for good (see its _bulk response)",
            delivered.rejected
        );
    }
    Ok(delivered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_body_pairs_a_create_with_the_event_id() {
        let sink = Http::new(
            "http://127.0.0.1:9200/_bulk".into(),
            HttpFormat::ElasticsearchBulk,
            "alerts".into(),
            BTreeMap::new(),
            Duration::from_secs(1),
        );
        let body = sink.body(&[br#"{"event":{"id":"abc"}}"#.to_vec()]);
        assert_eq!(
            String::from_utf8(body).expect("utf-8"),
            "{\"create\":{\"_id\":\"abc\",\"_index\":\"alerts\"}}\n{\"event\":{\"id\":\"abc\"}}\n"
        );
    }

    #[test]
    fn bulk_duplicates_count_as_delivered_and_overload_is_retried() {
        let dup =
            r#"{"errors":true,"items":[{"create":{"status":201}},{"create":{"status":409}}]}"#;
        assert_eq!(bulk_outcome(dup), Ok(Delivered { rejected: 0 }));
        let busy = r#"{"errors":true,"items":[{"create":{"status":429}}]}"#;
        assert!(bulk_outcome(busy).is_err());
        let bad =
            r#"{"errors":true,"items":[{"create":{"status":400}},{"create":{"status":201}}]}"#;
        assert_eq!(bulk_outcome(bad), Ok(Delivered { rejected: 1 }));
        assert!(bulk_outcome("<html>").is_err());
    }
}
