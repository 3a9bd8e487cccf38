//! The alert document: one JSON object per line with Elastic Common Schema (ECS) field names, so
//! Elastic, Splunk and OpenSearch ingest it as it is. Fields outside ECS live under `lineage.`.
//!
//! Text comes from the kernel in the lossless escaped form of [`crate::escape`] and serde_json
//! escapes quotes and control characters, so a crafted argv can neither end the line nor forge a
//! field.

mod build;
pub mod workload;

use std::net::IpAddr;

use serde::Serialize;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::config::Severity;

pub use build::{AlertInput, FileEvent};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Alert {
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    pub event: AlertEvent,
    pub rule: RuleInfo,
    pub threat: Threat,
    pub process: ProcessInfo,
    /// The file a file rule is about (absent for the process and network rules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<Destination>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    pub host: Host,
    /// ECS `client.*`: who sent the request the server was handling (`run` only; how it was
    /// found is in `lineage.client`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<Client>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    /// ECS `orchestrator.*`: the Kubernetes pod of the container (see [`workload`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orchestrator: Option<Orchestrator>,
    pub lineage: LineageInfo,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AlertEvent {
    /// Always `alert`.
    pub kind: &'static str,
    pub category: Vec<&'static str>,
    #[serde(rename = "type")]
    pub kind_type: Vec<&'static str>,
    /// Stable across replays and restarts (rule, entity id, event time): receivers de-duplicate
    /// on it.
    pub id: String,
    /// 21 low, 47 medium, 73 high, 99 critical.
    pub severity: u8,
    pub module: &'static str,
    pub dataset: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    /// File rules: `creation` (opened with O_CREAT), `modification`, `rename` or `link`.
    /// Connects judged by prevention: `blocked` or `would-block`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RuleInfo {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Threat {
    pub framework: &'static str,
    pub tactic: NamedId,
    pub technique: Technique,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NamedId {
    pub id: &'static str,
    pub name: &'static str,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Technique {
    pub id: &'static str,
    pub name: &'static str,
    /// Absent where only the technique applies (server modules: T1505 itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtechnique: Option<NamedId>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct User {
    /// ECS keeps ids as strings.
    pub id: String,
}

/// ECS `process.*`, also used for `process.parent` and each of `lineage.ancestry` (which leave
/// out `name` and `command_line`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub entity_id: String,
    pub executable: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub args: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_line: Option<String>,
    pub user: User,
    pub start: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<Box<ProcessInfo>>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Destination {
    pub ip: IpAddr,
    pub port: u16,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Network {
    pub transport: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Host {
    pub hostname: String,
}

pub use workload::{Container, ContainerImage, Orchestrator, OrchestratorResource};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LineageInfo {
    pub incident: Incident,
    pub severity: Severity,
    /// The nearest server above (or at) the process; absent for a file rule's alert about a
    /// process with no server above it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<Server>,
    /// From the outermost server down to the process itself; with no server, from the process's
    /// top ancestor below init (pid 1).
    pub ancestry: Vec<ProcessInfo>,
    /// Identical alerts held back by rate limiting since the previous one was emitted.
    pub suppressed_count: u64,
    /// The process's argv was longer than the kernel keeps; `process.args` holds its start.
    pub args_truncated: bool,
    /// The process is a shell by content: its file is a copy of this shell (`run` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell_copy_of: Option<String>,
    /// For a shell running a `-c` payload: its commands, as the shell splits them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<ShellInfo>,
    /// What about the process always alerts below a server (`interactive-shell`,
    /// `download-to-shell`, `decode-to-shell`, `dev-tcp`, `chmod-and-run`, `temp-exec`,
    /// `fileless`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub indicators: Vec<&'static str>,
    /// `run` only: why a file alert has no `file.hash` (`too_large`, `not_regular`,
    /// `symlink_in_path`, `gone`, `unreadable`, `deadline`, `busy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_hash_missing: Option<&'static str>,
    /// Present when the server's learned baseline is over and did not know this command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineInfo>,
    /// `run` only: how `client.*` was found, or why it could not be.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientSource>,
    /// `run` only: the incident's evidence bundle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<EvidenceRef>,
    /// `run` only: why `container.name`, `container.image` and the pod's names are absent for a
    /// process in a container (`pending`: the runtime's state was not read within
    /// `workload.lookup_wait_ms`; `not_found`; `error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload_missing: Option<&'static str>,
}

/// `lineage.baseline`: the learned habits of the server had no such command.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BaselineInfo {
    /// Always true: a known command is not alerted.
    pub new: bool,
    /// The command as the baseline learns it (see docs/detection.md), to add it if it is normal.
    pub template: String,
}

/// ECS `client.*`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Client {
    pub ip: IpAddr,
    pub port: u16,
}

/// How the client of a request was found (`lineage.client`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClientSource {
    /// `accepted_socket`: the worker holds one connection accepted on its listening port, the
    /// client's; `proxied_tcp`: the worker's connection came from a front server on this host,
    /// whose own client connection was followed; `cgi_env`: REMOTE_ADDR that the server passed
    /// to a CGI child; `none`: not found (see `reason`).
    pub method: &'static str,
    /// `exact` (one connection, no doubt), `likely` (the front server had one client connection
    /// when looked at), `reported` (the server's own word, in the environment), `ambiguous`
    /// (several candidates: `client.*` is absent), `none`.
    pub confidence: &'static str,
    /// Client connections seen where the choice was made.
    pub candidates: u32,
    /// The front server's pid and executable when the request was proxied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub front_pid: Option<u32>,
    /// Why nothing better was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// `lineage.evidence`: the bundle holding this incident's snapshot.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EvidenceRef {
    /// The bundle's id (also its file name, with `.json`).
    pub id: String,
    /// Where it is, on this host.
    pub path: String,
    /// `written`, `earlier` (this incident's bundle was written by an earlier alert), or why it
    /// could not be kept: `disk_full`, `write_error`, `over_budget`.
    pub status: &'static str,
}

/// ECS `file.*`. The path is as the kernel resolved it, in the escaped form of
/// [`crate::escape`].
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FileInfo {
    pub path: String,
    pub name: String,
    pub directory: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
    /// Only `run` fills this, shortly after the write (see `hash_delay_ms`), and only for a
    /// regular file reached without any symbolic link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<FileHash>,
    /// ECS `file.type` as `run` found it when hashing: `file`, `dir`, `symlink`, and beyond ECS's
    /// list `fifo`, `socket`, `char_device`, `block_device`. Absent in `replay`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub file_type: Option<&'static str>,
    /// ECS `file.target_path`: where a symbolic link points (escaped); the target is never read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_path: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FileHash {
    pub sha256: String,
}

/// `lineage.shell`: a shell payload split into simple commands (words, then redirections).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ShellInfo {
    pub commands: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Incident {
    pub id: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Server {
    pub family: String,
    pub pid: u32,
    pub entity_id: String,
    pub executable: String,
    /// Recognised by listening on this port (a family's `listen_ports`), not by its executable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen_port: Option<u16>,
    /// The server's own container (ECS `container.*` fields) when the process runs in another
    /// one: the server of a sidecar, or of a shell entered with `kubectl exec`. Absent when both
    /// run in the same container, or both on the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    /// The server runs on the host (in no container) and the process in a container.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub on_host: bool,
}

/// RFC 3339 UTC time with nanoseconds, from nanoseconds since the Unix epoch.
pub fn rfc3339(wall_ns: u64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(wall_ns))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| String::from("1970-01-01T00:00:00Z"))
}

impl Alert {
    /// The alert as JSON on one line (no newline: each output frames it its own way).
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        serde_json::to_writer(out, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
    }
}
