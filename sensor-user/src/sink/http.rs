//! HTTP(S) POST of alert batches: NDJSON to a webhook; an Elasticsearch/OpenSearch `_bulk`
//! body where each alert is a `create` with `_id` = `event.id`, so a batch sent twice after an
//! outage indexes every alert once; or Splunk HEC envelopes.
//!
//! Secrets (header values, the HEC token) and the TLS files are read on the first attempt and
//! again after SIGHUP ([`Transport::reopen`]); a failure to read them is a delivery failure like
//! a receiver that is down: alerts stay in the spool.

use std::{collections::BTreeMap, io::Read, time::Duration};

use bytes::{BufMut as _, Bytes, BytesMut};
use serde::Deserialize;

use super::{
    delivery::{Delivered, Transport},
    hec,
    tls::{self, TlsError},
    tls_stream,
};
use crate::config::{HttpFormat, Secret, SecretError, SinkConfig, SinkTls};

pub struct Http {
    /// Where requests go (with `tls.server_name` in place of the host, when given).
    url: String,
    /// The URL as configured, for messages.
    shown_url: String,
    /// The address connected to, when `tls.server_name` replaced the URL's host.
    pinned: Option<ureq::http::Uri>,
    format: HttpFormat,
    index: String,
    /// The Splunk index when one was configured (else the token's default index applies).
    hec_index: Option<String>,
    headers: BTreeMap<String, Secret>,
    token: Option<Secret>,
    tls: Option<SinkTls>,
    timeout: Duration,
    hostname: String,
    ready: Option<Ready>,
}

/// What is built from the files and variables: dropped on SIGHUP, built again on the next send.
struct Ready {
    agent: ureq::Agent,
    headers: Vec<(String, String)>,
}

/// Why the sink cannot send yet.
#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error("headers.{header}: {source}")]
    Header { header: String, source: SecretError },
    #[error("token: {0}")]
    Token(SecretError),
    #[error(transparent)]
    Tls(#[from] TlsError),
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

/// Resolves the configured URL's host while requests name `tls.server_name`: the certificate is
/// checked against (and SNI and Host carry) the server name, the connection goes to the address.
#[derive(Debug)]
struct Pinned(ureq::http::Uri);

impl ureq::unversioned::resolver::Resolver for Pinned {
    fn resolve(
        &self,
        _uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        ureq::unversioned::resolver::DefaultResolver::default().resolve(&self.0, config, timeout)
    }
}

impl Http {
    /// A sink for `sink` (validated: an http sink with a URL).
    pub fn new(sink: &SinkConfig, timeout: Duration) -> Http {
        let shown_url = sink.url.clone().unwrap_or_default();
        let format = sink.format.unwrap_or_default();
        let mut url = shown_url.clone();
        if format == HttpFormat::SplunkHec
            && let Ok(uri) = shown_url.parse::<ureq::http::Uri>()
            && matches!(uri.path(), "" | "/")
        {
            url = format!("{}{}", url.trim_end_matches('/'), hec::PATH);
        }
        let mut pinned = None;
        if let Some(name) = sink.tls.as_ref().and_then(|t| t.server_name.as_deref())
            && let Ok(uri) = url.parse::<ureq::http::Uri>()
            && let Some(authority) = uri.authority()
        {
            let port = authority.port().map_or(String::new(), |p| format!(":{p}"));
            let renamed = url.replacen(authority.as_str(), &format!("{name}{port}"), 1);
            pinned = Some(uri);
            url = renamed;
        }
        Http {
            url,
            shown_url,
            pinned,
            format,
            index: sink.index().to_owned(),
            hec_index: sink.index.clone(),
            headers: sink.headers.clone(),
            token: sink.token.clone(),
            tls: sink.tls.clone(),
            timeout,
            hostname: crate::clock::hostname(),
            ready: None,
        }
    }

    fn setup(&self) -> Result<Ready, SetupError> {
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(self.timeout))
            .http_status_as_error(false);
        if self.url.starts_with("https://") {
            config = config.tls_config(tls::ureq_config(&self.tls.clone().unwrap_or_default())?);
        }
        let config = config.build();
        let agent = match &self.pinned {
            Some(uri) => ureq::Agent::with_parts(
                config,
                ureq::unversioned::transport::DefaultConnector::new(),
                Pinned(uri.clone()),
            ),
            None => config.new_agent(),
        };
        let mut headers = Vec::with_capacity(self.headers.len() + 1);
        for (name, value) in &self.headers {
            let value = value.resolve().map_err(|source| SetupError::Header {
                header: name.clone(),
                source,
            })?;
            headers.push((name.clone(), value));
        }
        if let Some(token) = &self.token {
            let token = token.resolve().map_err(SetupError::Token)?;
            headers.push(("Authorization".into(), format!("Splunk {token}")));
        }
        Ok(Ready { agent, headers })
    }

    /// The request body: ureq sends a body of known length from one buffer, so each alert is
    /// copied once, here, into it (and no more into a batch of its own beforehand).
    fn body(&self, batch: &[Bytes]) -> Bytes {
        let mut body = BytesMut::with_capacity(batch.iter().map(|r| r.len() + 96).sum());
        for record in batch {
            match self.format {
                HttpFormat::ElasticsearchBulk => {
                    let id = serde_json::from_slice::<IdOnly>(record)
                        .map(|r| r.event.id)
                        .ok();
                    let action =
                        serde_json::json!({ "create": { "_index": self.index, "_id": id } });
                    // A Value always serialises.
                    let _ = serde_json::to_writer((&mut body).writer(), &action);
                    body.put_u8(b'\n');
                    body.extend_from_slice(record);
                }
                HttpFormat::SplunkHec => {
                    hec::envelope(record, &self.hostname, self.hec_index.as_deref(), &mut body);
                }
                HttpFormat::Ndjson => body.extend_from_slice(record),
            }
            body.put_u8(b'\n');
        }
        body.freeze()
    }

    /// A failed request in words: TLS problems say which certificate and why.
    fn describe(&self, err: &ureq::Error) -> String {
        let tls = self.tls.clone().unwrap_or_default();
        let name = tls.server_name.clone().unwrap_or_else(|| {
            self.url
                .parse::<ureq::http::Uri>()
                .ok()
                .and_then(|u| u.host().map(str::to_owned))
                .unwrap_or_default()
        });
        let found = match err {
            ureq::Error::Rustls(e) => Some(e),
            ureq::Error::Io(io) => tls::rustls_error(io),
            _ => None,
        };
        if let Some(e) = found {
            return format!(
                "POST {}: TLS: {}",
                self.shown_url,
                tls::explain(e, &name, &tls)
            );
        }
        // Only a connection cut after it was made: a refused or timed-out connect would just
        // fail (or wait) again.
        if let ureq::Error::Io(io) = err
            && matches!(
                io.kind(),
                std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::UnexpectedEof
            )
            && self.url.starts_with("https://")
            && let Some(why) = self.address().and_then(|address| {
                let tls = SinkTls {
                    server_name: Some(name.clone()),
                    ..tls.clone()
                };
                tls_stream::diagnose(&address, &tls, self.timeout)
            })
        {
            return format!("POST {}: {err}; {why}", self.shown_url);
        }
        format!("POST {}: {err}", self.shown_url)
    }

    /// `host:port` connected to.
    fn address(&self) -> Option<String> {
        let uri = match &self.pinned {
            Some(uri) => uri.clone(),
            None => self.url.parse::<ureq::http::Uri>().ok()?,
        };
        let authority = uri.authority()?;
        Some(format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(443)
        ))
    }
}

impl Transport for Http {
    fn send(&mut self, batch: &[Bytes]) -> Result<Delivered, String> {
        let body = self.body(batch);
        if self.ready.is_none() {
            let ready = self
                .setup()
                .map_err(|e| format!("{}: {e}", self.shown_url))?;
            self.ready = Some(ready);
        }
        let Some(ready) = &self.ready else {
            return Err("not set up".into());
        };
        let content_type = match self.format {
            HttpFormat::SplunkHec => "application/json",
            _ => "application/x-ndjson",
        };
        let mut request = ready
            .agent
            .post(&self.url)
            .header("Content-Type", content_type);
        for (name, value) in &ready.headers {
            request = request.header(name, value);
        }
        let mut response = match request.send(&body[..]) {
            Ok(response) => response,
            Err(err) => return Err(self.describe(&err)),
        };
        let status = response.status();
        let mut text = String::new();
        let _ = response
            .body_mut()
            .as_reader()
            .take(RESPONSE_MAX)
            .read_to_string(&mut text);
        if !status.is_success() {
            let excerpt: String = text.chars().take(200).collect();
            return Err(format!("POST {}: HTTP {status}: {excerpt}", self.shown_url));
        }
        match self.format {
            HttpFormat::ElasticsearchBulk => {
                bulk_outcome(&text).map_err(|e| format!("POST {}: {e}", self.shown_url))
            }
            HttpFormat::SplunkHec => hec::outcome(&text)
                .map(|()| Delivered::default())
                .map_err(|e| format!("POST {}: {e}", self.shown_url)),
            HttpFormat::Ndjson => Ok(Delivered::default()),
        }
    }

    /// SIGHUP: read the secrets and certificates again before the next request.
    fn reopen(&mut self) {
        self.ready = None;
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
        let mut config = SinkConfig::stdout();
        config.url = Some("http://127.0.0.1:9200/_bulk".into());
        config.format = Some(HttpFormat::ElasticsearchBulk);
        config.index = Some("alerts".into());
        let sink = Http::new(&config, Duration::from_secs(1));
        let body = sink.body(&[Bytes::from_static(br#"{"event":{"id":"abc"}}"#)]);
        assert_eq!(
            String::from_utf8(body.to_vec()).expect("utf-8"),
            "{\"create\":{\"_id\":\"abc\",\"_index\":\"alerts\"}}\n{\"event\":{\"id\":\"abc\"}}\n"
        );
    }

    fn batch(records: &[&'static str]) -> Vec<Bytes> {
        records
            .iter()
            .map(|r| Bytes::from_static(r.as_bytes()))
            .collect()
    }

    /// The bodies of every format, byte for byte as they have always been sent.
    #[test]
    fn bodies_are_byte_identical_in_every_format() {
        const A: &str = r#"{"@timestamp":"2023-11-14T22:13:20.123456789Z","event":{"id":"a1"}}"#;
        const B: &str = r#"{"event":{"kind":"alert"}}"#;
        let mut config = SinkConfig::stdout();
        config.url = Some("http://127.0.0.1:9/x".into());
        let mut sink = Http::new(&config, Duration::from_secs(1));
        sink.hostname = "web-1".into();
        let records = batch(&[A, B]);
        assert_eq!(sink.body(&records), format!("{A}\n{B}\n").into_bytes());

        sink.format = HttpFormat::ElasticsearchBulk;
        sink.index = "alerts".into();
        assert_eq!(
            String::from_utf8(sink.body(&records).to_vec()).expect("utf-8"),
            format!(
                "{{\"create\":{{\"_id\":\"a1\",\"_index\":\"alerts\"}}}}\n{A}\n\
                 {{\"create\":{{\"_id\":null,\"_index\":\"alerts\"}}}}\n{B}\n"
            )
        );

        sink.format = HttpFormat::SplunkHec;
        sink.hec_index = Some("security".into());
        let fields = "\"host\":\"web-1\",\"source\":\"lineage-sensor\",\
                      \"sourcetype\":\"lineage-sensor:alert\",\"index\":\"security\"";
        assert_eq!(
            String::from_utf8(sink.body(&records).to_vec()).expect("utf-8"),
            format!(
                "{{\"time\":1700000000.123,{fields},\"event\":{A}}}\n{{{fields},\"event\":{B}}}\n"
            )
        );
        assert!(sink.body(&[]).is_empty());
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
