//! Where alerts go (`[output]`) and where health is served (`[metrics]`).

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf};

use serde::{Deserialize, Serialize};

use super::output_secrets::{Secret, SinkTls};

/// Alert delivery: the sinks and the spool they share a directory for.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Each sink with a spool keeps it in `<spool_dir>/<sink name>/`; created at start-up
    /// (mode 0700). Only used by sinks whose `spool_max_bytes` is not 0.
    pub spool_dir: PathBuf,
    /// The sinks, all fed every alert. Giving `[[output.sinks]]` replaces the default, which is
    /// one stdout sink.
    pub sinks: Vec<SinkConfig>,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            spool_dir: PathBuf::from("/var/lib/lineage-sensor/spool"),
            sinks: vec![SinkConfig::stdout()],
        }
    }
}

/// Which kind of receiver a sink talks to.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// NDJSON on standard output, for container log collectors.
    Stdout,
    /// NDJSON appended to `path`; reopened on SIGHUP so that logrotate can move it away.
    File,
    /// RFC 5424 syslog to `address`; the alert JSON is the message.
    Syslog,
    /// HTTP POST of NDJSON batches to `url` (a webhook, or Elasticsearch `_bulk`).
    Http,
}

impl SinkKind {
    /// The name in `type`, and the default sink name.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Stdout => "stdout",
            SinkKind::File => "file",
            SinkKind::Syslog => "syslog",
            SinkKind::Http => "http",
        }
    }
}

/// Syslog transport.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SyslogProtocol {
    /// TCP with octet-counting framing (RFC 6587 3.4.1): delivery is acknowledged by TCP.
    #[default]
    Tcp,
    /// One datagram per alert (RFC 5426): fire and forget, nothing is known to arrive.
    Udp,
    /// TLS (RFC 5425, port 6514 by convention), octet-counted like tcp; see `tls`.
    Tls,
}

/// The body an HTTP sink posts.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HttpFormat {
    /// One alert per line (`application/x-ndjson`): webhooks, Vector, Fluent Bit, Logstash.
    #[default]
    Ndjson,
    /// Elasticsearch/OpenSearch `_bulk`: a `create` action with `_id` = `event.id` before each
    /// alert, so a re-sent alert is refused as a duplicate instead of indexed twice.
    ElasticsearchBulk,
    /// Splunk HTTP Event Collector: `{"time","host","source","sourcetype","event"}` envelopes
    /// posted to `/services/collector/event` with `Authorization: Splunk <token>`.
    SplunkHec,
}

/// One sink. Fields that do not apply to its `type` are refused by validation.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// stdout, file, syslog or http.
    #[serde(rename = "type")]
    pub kind: SinkKind,
    /// Unique; the `sink` label of the sink metrics and the spool's directory name. Letters,
    /// digits, '-' and '_'. Defaults to the type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// file: the file alerts are appended to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// syslog: `host:port` of the receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// syslog: tcp (default), udp or tls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<SyslogProtocol>,
    /// syslog: facility number 0-23 (default 10, authpriv: security messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facility: Option<u8>,
    /// http: `https://host:port/path` (or `http://`) to POST to. splunk_hec: the collector's
    /// base URL; `/services/collector/event` is added when the URL has no path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// http: ndjson (default), elasticsearch_bulk or splunk_hec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<HttpFormat>,
    /// http with elasticsearch_bulk: the index (or data stream) written to; with splunk_hec:
    /// the Splunk index (the token's default index when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// http: extra request headers; a value is a string or `{ file = "..." }` /
    /// `{ env = "..." }` (with an optional `prefix`), read at start and on SIGHUP.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Secret>,
    /// http with splunk_hec: the HEC token, sent as `Authorization: Splunk <token>`; best
    /// `{ file = "..." }` or `{ env = "..." }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// TLS settings of an `https://` http sink or a syslog sink with protocol tls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<SinkTls>,
    /// The most alerts sent in one request (http) or one write (the others).
    #[serde(default = "defaults::batch_max_events")]
    pub batch_max_events: usize,
    /// Connect, send and response timeout for network sinks, in seconds.
    #[serde(default = "defaults::timeout_secs")]
    pub timeout_secs: u64,
    /// Alerts held in memory between the detection loop and the sink. When full, the oldest
    /// is dropped and counted in `lineage_sensor_sink_dropped_total`.
    #[serde(default = "defaults::queue_max_events")]
    pub queue_max_events: usize,
    /// Bound of the on-disk spool. Every alert is written to the spool before it is sent and
    /// removed once the receiver took it, so alerts survive an outage and a restart. When full,
    /// the oldest are dropped and counted. 0 = no spool (memory only). Default: 0 for stdout,
    /// 64 MiB for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spool_max_bytes: Option<u64>,
    /// Longest wait between two delivery attempts; the wait starts at 0.25 s and doubles.
    #[serde(default = "defaults::retry_max_secs")]
    pub retry_max_secs: u64,
}

mod defaults {
    /// `batch_max_events`: most alerts per request or write.
    pub fn batch_max_events() -> usize {
        500
    }
    /// `timeout_secs`: connect, send and response timeout.
    pub fn timeout_secs() -> u64 {
        10
    }
    /// `queue_max_events`: the in-memory queue's bound.
    pub fn queue_max_events() -> usize {
        10_000
    }
    /// `retry_max_secs`: the longest wait between attempts.
    pub fn retry_max_secs() -> u64 {
        30
    }
}

/// Default spool bound of sinks that have one.
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 64 << 20;

impl SinkConfig {
    /// The default sink: alerts on stdout, no spool.
    pub fn stdout() -> Self {
        Self {
            kind: SinkKind::Stdout,
            name: None,
            path: None,
            address: None,
            protocol: None,
            facility: None,
            url: None,
            format: None,
            index: None,
            headers: BTreeMap::new(),
            token: None,
            tls: None,
            batch_max_events: defaults::batch_max_events(),
            timeout_secs: defaults::timeout_secs(),
            queue_max_events: defaults::queue_max_events(),
            spool_max_bytes: None,
            retry_max_secs: defaults::retry_max_secs(),
        }
    }

    /// `name`, or the type's name when not given.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.kind.as_str())
    }

    /// `spool_max_bytes`, or its default for the type (0 for stdout).
    pub fn spool_max_bytes(&self) -> u64 {
        self.spool_max_bytes.unwrap_or(match self.kind {
            SinkKind::Stdout => 0,
            _ => DEFAULT_SPOOL_MAX_BYTES,
        })
    }

    /// `facility`, or 10 (authpriv).
    pub fn facility(&self) -> u8 {
        self.facility.unwrap_or(10)
    }

    /// `index`, or "lineage-sensor-alerts".
    pub fn index(&self) -> &str {
        self.index.as_deref().unwrap_or("lineage-sensor-alerts")
    }
}

/// The HTTP endpoint for Prometheus and the orchestrator's probes.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `/metrics`, `/healthz` and `/readyz`.
    pub enabled: bool,
    /// Address and port to listen on; `--metrics-listen` overrides it. Loopback by default:
    /// in Kubernetes, set it to the pod IP or 0.0.0.0 for the scraper.
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9727)),
        }
    }
}

impl OutputConfig {
    /// Checks what the types cannot express; returns the dotted field and the problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.sinks.is_empty() {
            return Err((
                "output.sinks".into(),
                "no sink: alerts would go nowhere (leave the list out for stdout)".into(),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, sink) in self.sinks.iter().enumerate() {
            let field = |name: &str| format!("output.sinks[{i}].{name}");
            let name = sink.name();
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err((
                    field("name"),
                    format!("{name:?}: use 1-64 letters, digits, '-' or '_'"),
                ));
            }
            if !names.insert(name) {
                return Err((
                    field("name"),
                    format!("{name:?} is used by two sinks; give each a unique name"),
                ));
            }
            let kind = sink.kind;
            let only_for = |present: bool, what: &str, allowed: &[SinkKind]| {
                if present && !allowed.contains(&kind) {
                    Err((
                        field(what),
                        format!("does not apply to a {} sink", kind.as_str()),
                    ))
                } else {
                    Ok(())
                }
            };
            only_for(sink.path.is_some(), "path", &[SinkKind::File])?;
            only_for(sink.address.is_some(), "address", &[SinkKind::Syslog])?;
            only_for(sink.protocol.is_some(), "protocol", &[SinkKind::Syslog])?;
            only_for(sink.facility.is_some(), "facility", &[SinkKind::Syslog])?;
            only_for(sink.url.is_some(), "url", &[SinkKind::Http])?;
            only_for(sink.format.is_some(), "format", &[SinkKind::Http])?;
            only_for(sink.index.is_some(), "index", &[SinkKind::Http])?;
            only_for(!sink.headers.is_empty(), "headers", &[SinkKind::Http])?;
            only_for(sink.token.is_some(), "token", &[SinkKind::Http])?;
            only_for(
                sink.tls.is_some(),
                "tls",
                &[SinkKind::Http, SinkKind::Syslog],
            )?;
            if let Some(tls) = &sink.tls {
                let secure = match kind {
                    SinkKind::Http => sink
                        .url
                        .as_deref()
                        .is_some_and(|u| u.starts_with("https://")),
                    _ => sink.protocol == Some(SyslogProtocol::Tls),
                };
                if !secure {
                    return Err((
                        field("tls"),
                        "only used with an https:// url or protocol = \"tls\"".into(),
                    ));
                }
                tls.check()
                    .map_err(|(key, message)| (format!("output.sinks[{i}].tls.{key}"), message))?;
            }
            let required = |present: bool, what: &str| {
                if present {
                    Ok(())
                } else {
                    Err((
                        field(what),
                        format!("required for a {} sink", kind.as_str()),
                    ))
                }
            };
            match kind {
                SinkKind::Stdout => {}
                SinkKind::File => required(sink.path.is_some(), "path")?,
                SinkKind::Syslog => {
                    required(sink.address.is_some(), "address")?;
                    let address = sink.address.as_deref().unwrap_or_default();
                    if address
                        .rsplit_once(':')
                        .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
                    {
                        return Err((field("address"), format!("{address:?} is not host:port")));
                    }
                    if sink.facility() > 23 {
                        return Err((
                            field("facility"),
                            format!("{} is not a syslog facility (0-23)", sink.facility()),
                        ));
                    }
                }
                SinkKind::Http => {
                    required(sink.url.is_some(), "url")?;
                    let url = sink.url.as_deref().unwrap_or_default();
                    if !(url.starts_with("https://") || url.starts_with("http://"))
                        || url.parse::<ureq::http::Uri>().is_err()
                    {
                        return Err((
                            field("url"),
                            format!("{url:?} is not an https:// (or http://) URL"),
                        ));
                    }
                    if sink.format.unwrap_or_default() == HttpFormat::Ndjson && sink.index.is_some()
                    {
                        return Err((
                            field("index"),
                            "only used with format = \"elasticsearch_bulk\" or \"splunk_hec\""
                                .into(),
                        ));
                    }
                    let hec = sink.format == Some(HttpFormat::SplunkHec);
                    if hec != sink.token.is_some() {
                        return Err((
                            field("token"),
                            if hec {
                                "required with format = \"splunk_hec\"".into()
                            } else {
                                "only used with format = \"splunk_hec\"".into()
                            },
                        ));
                    }
                    if let Some(token) = &sink.token {
                        token.check().map_err(|message| (field("token"), message))?;
                    }
                    for (header, value) in &sink.headers {
                        let header_field = format!("output.sinks[{i}].headers.{header}");
                        value
                            .check()
                            .map_err(|message| (header_field.clone(), message))?;
                        let valid_value = match value {
                            Secret::Inline(v) => v.parse::<ureq::http::HeaderValue>().is_ok(),
                            Secret::From(_) => true,
                        };
                        if header.parse::<ureq::http::HeaderName>().is_err() || !valid_value {
                            return Err((
                                format!("output.sinks[{i}].headers.{header}"),
                                "not a valid HTTP header".into(),
                            ));
                        }
                    }
                }
            }
            if sink.batch_max_events == 0 {
                return Err((field("batch_max_events"), "must be at least 1".into()));
            }
            if sink.queue_max_events == 0 {
                return Err((field("queue_max_events"), "must be at least 1".into()));
            }
            if sink.timeout_secs == 0 {
                return Err((field("timeout_secs"), "must be at least 1".into()));
            }
            if sink.retry_max_secs == 0 {
                return Err((field("retry_max_secs"), "must be at least 1".into()));
            }
            let spool = sink.spool_max_bytes();
            if spool != 0 && spool < 65536 {
                return Err((
                    field("spool_max_bytes"),
                    format!("{spool} is too small (0 for no spool, or at least 65536)"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigError};

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn sinks_parse_with_their_fields() {
        let config = parse(
            r#"
[[output.sinks]]
type = "syslog"
name = "siem"
address = "siem.example:6514"
protocol = "udp"

[[output.sinks]]
type = "http"
url = "http://127.0.0.1:9200/_bulk"
format = "elasticsearch_bulk"
headers = { Authorization = "ApiKey abc" }
spool_max_bytes = 0
"#,
        )
        .expect("valid");
        let sinks = &config.output.sinks;
        assert_eq!(sinks[0].name(), "siem");
        assert_eq!(sinks[0].spool_max_bytes(), super::DEFAULT_SPOOL_MAX_BYTES);
        assert_eq!(sinks[1].name(), "http");
        assert_eq!(sinks[1].spool_max_bytes(), 0);
        assert_eq!(sinks[1].index(), "lineage-sensor-alerts");
    }

    #[test]
    fn bad_sinks_name_the_field() {
        let cases = [
            ("[output]\nsinks = []\n", "output.sinks"),
            (
                "[[output.sinks]]\ntype = \"file\"\n",
                "output.sinks[0].path",
            ),
            (
                "[[output.sinks]]\ntype = \"stdout\"\npath = \"/x\"\n",
                "output.sinks[0].path",
            ),
            (
                "[[output.sinks]]\ntype = \"syslog\"\naddress = \"nohost\"\n",
                "output.sinks[0].address",
            ),
            (
                "[[output.sinks]]\ntype = \"syslog\"\naddress = \"h:514\"\nfacility = 24\n",
                "output.sinks[0].facility",
            ),
            (
                "[[output.sinks]]\ntype = \"http\"\nurl = \"ftp://x/\"\n",
                "output.sinks[0].url",
            ),
            (
                "[[output.sinks]]\ntype = \"http\"\nurl = \"http://x/\"\nindex = \"a\"\n",
                "output.sinks[0].index",
            ),
            (
                "[[output.sinks]]\ntype = \"stdout\"\n\n[[output.sinks]]\ntype = \"stdout\"\n",
                "output.sinks[1].name",
            ),
            (
                "[[output.sinks]]\ntype = \"stdout\"\nname = \"a b\"\n",
                "output.sinks[0].name",
            ),
            (
                "[[output.sinks]]\ntype = \"file\"\npath = \"/x\"\nspool_max_bytes = 10\n",
                "output.sinks[0].spool_max_bytes",
            ),
            (
                "[[output.sinks]]\ntype = \"stdout\"\nqueue_max_events = 0\n",
                "output.sinks[0].queue_max_events",
            ),
        ];
        for (text, field) in cases {
            let err = parse(text).expect_err(field);
            assert!(matches!(err, ConfigError::Invalid { .. }), "{err}");
            assert!(
                err.to_string().contains(&format!("{field}:")),
                "{err} should name {field}"
            );
        }
        let msg = parse("[[output.sinks]]\ntype = \"kafka\"\n")
            .expect_err("unknown type")
            .to_string();
        assert!(msg.starts_with("test.toml:2:"), "{msg}");
        let msg = parse("[metrics]\nlisten = \"localhost\"\n")
            .expect_err("not an address")
            .to_string();
        assert!(msg.starts_with("test.toml:2:"), "{msg}");
    }
}
