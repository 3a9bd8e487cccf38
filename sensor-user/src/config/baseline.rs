//! `[baseline]`: the habits each server is learned by (the command templates its shells run),
//! so that an application's own helpers stop alerting once learned. See docs/detection.md.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[baseline]`: per server (family, executable and application), the command templates its
/// shells and inline interpreters run while it is learned; afterwards a known template is
/// counted instead of alerted, and a new one alerts with `lineage.baseline.new`. Only the
/// server-spawned-shell rule's ordinary findings are judged; recon tools, files from temporary
/// directories, shell copies and what the rules mark as always alerting never are.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineConfig {
    /// Whether shells are judged against the baseline at all.
    pub enabled: bool,
    /// How long a server is learned, from when the sensor first sees it (or from when the fleet
    /// first saw it, for a server in a `load`ed file). The default, a week, covers weekly jobs.
    pub learning_secs: u64,
    /// `run` keeps the baseline here (rewritten every 10 s when it changed, and at shutdown),
    /// so a restart or a SIGKILL neither forgets what was learned nor restarts the window. The
    /// file is the plain TOML that `load` reads: copy it off a host to export its habits. An
    /// empty path keeps the baseline in memory only. `replay` never reads it.
    pub state_file: PathBuf,
    /// Baseline files merged in at start (a fleet's merged export, e.g. from a ConfigMap): their
    /// templates are known, and their servers' windows end when the fleet's did.
    pub load: Vec<PathBuf>,
    /// Where an argument path is data, not part of the command: an absolute prefix (`/tmp`) or
    /// a directory name anywhere in a path (`uploads`). What follows it becomes `<path>`.
    pub volatile_dirs: Vec<String>,
    /// Servers remembered; past it, a new server is not learned (its shells alert).
    pub max_servers: usize,
    /// Templates remembered per server; past it, new templates are not learned.
    pub max_templates_per_server: usize,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            learning_secs: 7 * 86_400,
            state_file: PathBuf::from("/var/lib/lineage-sensor/baseline.toml"),
            load: Vec::new(),
            volatile_dirs: [
                "/tmp",
                "/var/tmp",
                "/dev/shm",
                "/run/user",
                "tmp",
                "temp",
                "upload",
                "uploads",
                "cache",
                ".cache",
                "sessions",
            ]
            .map(str::to_owned)
            .to_vec(),
            max_servers: 1_000,
            max_templates_per_server: 500,
        }
    }
}
