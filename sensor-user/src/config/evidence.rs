//! `[evidence]`: what `run` keeps of an incident while its processes still exist.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Environment variables whose values a bundle keeps: what CGI and FastCGI children inherit about
/// the request. Every other variable is kept by name only, since values hold secrets.
pub const DEFAULT_ENV_VALUES: [&str; 12] = [
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "REQUEST_METHOD",
    "REQUEST_URI",
    "SCRIPT_FILENAME",
    "SCRIPT_NAME",
    "HTTP_HOST",
    "HTTP_USER_AGENT",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_REAL_IP",
    "SERVER_ADDR",
    "SERVER_PORT",
];

/// Evidence bundles: on the first alert of each incident and on each file alert, `run` snapshots
/// the ancestry from the server down out of /proc (command lines, working directories,
/// executables and their sha256, users, open files and sockets, environment variable names),
/// the client connection where the host shows it, and a bounded copy of the script involved, into
/// one JSON file per incident. `replay` keeps none.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EvidenceConfig {
    /// Whether bundles are kept. The client fields (`client.ip`) are filled either way.
    pub enabled: bool,
    /// Directory of the bundles, created mode 0700 at start-up. Refused when group or others
    /// may read, write or enter it, or when a directory above it is writable by others: bundles
    /// hold command lines, addresses and script contents.
    pub dir: PathBuf,
    /// Largest bundle, in bytes (4096 to 67108864). Open files, environment names and the script
    /// copy are cut to fit, and the bundle says so.
    pub max_bundle_bytes: u64,
    /// Most bytes all bundles may take together (0 to 2^40); the oldest are deleted to make room.
    /// 0 keeps no bundle at all, only the client fields.
    pub max_total_bytes: u64,
    /// Bundles older than this are deleted, in seconds (60 to 31536000).
    pub retention_secs: u64,
    /// Longest copy of the script the server executed or wrote, in bytes (0 to 4194304).
    pub script_max_bytes: u64,
    /// Most open file descriptors listed per process (0 to 65536).
    pub max_fds_per_process: u64,
    /// Environment variables whose values are kept (all others by name only). Names, compared
    /// exactly.
    pub env_values: Vec<String>,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: PathBuf::from("/var/lib/lineage-sensor/evidence"),
            max_bundle_bytes: 1 << 20,
            max_total_bytes: 256 << 20,
            retention_secs: 30 * 86_400,
            script_max_bytes: 64 << 10,
            max_fds_per_process: 256,
            env_values: DEFAULT_ENV_VALUES.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

impl EvidenceConfig {
    /// Whether bundles are written at all (the client fields are filled either way).
    pub fn keeps_bundles(&self) -> bool {
        self.enabled && self.max_total_bytes > 0
    }
}
