//! `[lineage]`: the process table.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Process table settings.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LineageConfig {
    /// How long an exited process stays in the table, so late or reordered events (a child's
    /// exec after its parent's exit) still find their ancestry.
    pub exit_grace_secs: u64,
    /// Hard cap on table entries. Past it, exited entries go first, then the live entries seen
    /// least recently (their exits were lost); memory stays bounded under any churn.
    pub max_processes: usize,
    /// `run` reads the running processes from /proc at start-up, so servers started before the
    /// sensor are known. (`replay` does so only with `--seed-proc`.)
    pub seed_from_proc: bool,
    /// Where procfs is mounted (a host's /proc seen from a container is often /host/proc).
    pub proc_root: PathBuf,
    /// Where the cgroup2 hierarchy is mounted; scanned to turn cgroup ids into container ids.
    /// Ignored when it does not exist.
    pub cgroup_root: PathBuf,
}

impl Default for LineageConfig {
    fn default() -> Self {
        Self {
            exit_grace_secs: 120,
            max_processes: 200_000,
            seed_from_proc: true,
            proc_root: PathBuf::from("/proc"),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
        }
    }
}
