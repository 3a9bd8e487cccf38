//! HTTP(S) POST of alert batches: NDJSON to a webhook; an Elasticsearch/OpenSearch `_bulk`
//! body where each alert is a `create` with `_id` = `event.id`, so a batch sent twice after an
//! outage indexes every alert once; or Splunk HEC envelopes.
//!
//! Secrets (header values, the HEC token) and the TLS files are read on the first attempt and
//! again after SIGHUP ([`Transport::reopen`]); a failure to read them is a delivery failure like
//! a receiver that is down: alerts stay in the spool.

use std::{collections::BTreeMap, io::Read, time::Duration};

use bytes::Bytes;
use serde::Deserialize;

use super::{
    delivery::{Delivered, Transport},
    hec,
    http_body::{Body, Framing},
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

    fn framing(&self) -> Framing<'_> {
        Framing {
            format: self.format,
            index: &self.index,
            hec_index: self.hec_index.as_deref(),
            hostname: &self.hostname,
        }
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
        let mut body = Body::new(&self.framing(), batch);
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
        // With the length given, ureq sends the pieces as one body of that length (not chunked).
        let mut request = ready
            .agent
            .post(&self.url)
            .header("Content-Type", content_type)
            .header("Content-Length", body.content_length());
        for (name, value) in &ready.headers {
            request = request.header(name, value);
        }
        let mut response = match request.send(ureq::SendBody::from_reader(&mut body)) {
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
