//! One process as /proc shows it, read at once while it may still exist. Only procfs is read
//! here (it cannot stall); files a process names (its executable, a script) are read later,
//! beside the alert path ([`super::bundle`]).

use std::{collections::BTreeMap, fs, path::Path};

use serde::Serialize;

use super::sockets::{InetSocket, SocketTable, socket_inode};
use crate::escape::escape_bytes;

/// What a bundle keeps of one process of the ancestry.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessEvidence {
    pub pid: u32,
    pub entity_id: String,
    /// `server`, `ancestor` or `process` (the one the alert is about).
    pub role: &'static str,
    /// False when the process had exited (or its pid was reused) when looked at: only what the
    /// alert itself carries is known of it.
    pub alive: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executable: Option<String>,
    /// The executable was deleted while running (`(deleted)` in /proc).
    pub executable_deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executable_sha256: Option<String>,
    pub args: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    /// Real, effective, saved and filesystem ids, as /proc/PID/status lists them.
    pub uids: Vec<u32>,
    pub gids: Vec<u32>,
    pub fds: Vec<FdEvidence>,
    /// More descriptors were open than `max_fds_per_process`.
    pub fds_truncated: bool,
    /// Names of every environment variable; values are redacted.
    pub env_names: Vec<String>,
    /// Values of the allowlisted request variables (`evidence.env_values`).
    pub env_values: BTreeMap<String, String>,
}

/// One open file descriptor: what it points at, and for an internet socket its addresses.
#[derive(Debug, Clone, Serialize)]
pub struct FdEvidence {
    pub fd: u32,
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<InetSocket>,
}

/// Who the alert says the process is: its pid and start time (nanoseconds since boot).
pub struct Expected<'a> {
    pub pid: u32,
    pub start_ns: Option<u64>,
    pub entity_id: &'a str,
    pub role: &'static str,
    pub args: &'a [String],
}

/// Limits from `[evidence]`.
pub struct Limits<'a> {
    pub max_fds: usize,
    pub env_values: &'a [String],
    pub ticks_per_sec: u64,
}

/// Reads `/proc/<pid>` if it is still the process `expected` names.
pub fn read(proc_root: &Path, expected: &Expected<'_>, limits: &Limits<'_>) -> ProcessEvidence {
    let dir = proc_root.join(expected.pid.to_string());
    let mut out = ProcessEvidence {
        pid: expected.pid,
        entity_id: expected.entity_id.to_owned(),
        role: expected.role,
        alive: false,
        executable: None,
        executable_deleted: false,
        executable_sha256: None,
        args: expected.args.to_vec(),
        working_directory: None,
        uids: Vec::new(),
        gids: Vec::new(),
        fds: Vec::new(),
        fds_truncated: false,
        env_names: Vec::new(),
        env_values: BTreeMap::new(),
    };
    if !same_process(&dir, expected.start_ns, limits.ticks_per_sec) {
        return out;
    }
    out.alive = true;
    if let Ok(exe) = fs::read_link(dir.join("exe")) {
        let text = escape_bytes(exe.as_os_str().as_encoded_bytes());
        out.executable_deleted = text.ends_with(" (deleted)");
        out.executable = Some(text);
    }
    if let Ok(cmdline) = fs::read(dir.join("cmdline")) {
        let cmdline = cmdline.strip_suffix(&[0]).unwrap_or(&cmdline);
        if !cmdline.is_empty() {
            out.args = cmdline.split(|&b| b == 0).map(escape_bytes).collect();
        }
    }
    out.working_directory = fs::read_link(dir.join("cwd"))
        .ok()
        .map(|p| escape_bytes(p.as_os_str().as_encoded_bytes()));
    if let Ok(status) = fs::read_to_string(dir.join("status")) {
        out.uids = ids(&status, "Uid:");
        out.gids = ids(&status, "Gid:");
    }
    read_fds(&dir, limits.max_fds, &mut out);
    if let Ok(environ) = fs::read(dir.join("environ")) {
        for var in environ.split(|&b| b == 0).filter(|v| !v.is_empty()) {
            let (name, value) = match var.iter().position(|&b| b == b'=') {
                Some(i) => (&var[..i], &var[i + 1..]),
                None => (var, &[][..]),
            };
            let name = escape_bytes(name);
            if limits.env_values.contains(&name) {
                out.env_values.insert(name.clone(), escape_bytes(value));
            }
            out.env_names.push(name);
        }
    }
    out
}

/// A pid is reused: the start time from /proc/PID/stat (clock ticks) must be the alert's, to
/// within one tick.
fn same_process(dir: &Path, start_ns: Option<u64>, ticks_per_sec: u64) -> bool {
    let Ok(stat) = fs::read(dir.join("stat")) else {
        return false;
    };
    let Some(start_ns) = start_ns else {
        return true;
    };
    let Some(ticks) = stat_start_ticks(&stat) else {
        return false;
    };
    let tick_ns = 1_000_000_000 / ticks_per_sec.max(1);
    let seen = ticks.saturating_mul(tick_ns);
    seen.abs_diff(start_ns) <= tick_ns
}

/// Field 22 of /proc/PID/stat, found after the last ')' since comm may hold anything.
fn stat_start_ticks(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

fn ids(status: &str, key: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|rest| {
            rest.split_ascii_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn read_fds(dir: &Path, max: usize, out: &mut ProcessEvidence) {
    let Ok(entries) = fs::read_dir(dir.join("fd")) else {
        return;
    };
    let mut fds: Vec<(u32, String)> = entries
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.parse().ok()?;
            let link = fs::read_link(e.path()).ok()?;
            Some((n, escape_bytes(link.as_os_str().as_encoded_bytes())))
        })
        .collect();
    fds.sort_unstable();
    out.fds_truncated = fds.len() > max;
    fds.truncate(max);
    let sockets = fds
        .iter()
        .any(|(_, t)| t.starts_with("socket:"))
        .then(|| SocketTable::read(dir));
    out.fds = fds
        .into_iter()
        .map(|(fd, target)| FdEvidence {
            fd,
            socket: sockets
                .as_ref()
                .zip(socket_inode(&target))
                .and_then(|(table, inode)| table.get(inode).copied()),
            target,
        })
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_read_with_its_files_and_only_allowlisted_values() {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let me = std::process::id();
        let stat = fs::read(format!("/proc/{me}/stat")).expect("stat");
        let ticks = crate::lineage::clock_ticks_per_sec();
        let start_ns = stat_start_ticks(&stat).expect("start") * (1_000_000_000 / ticks);
        let args = [String::from("x")];
        let expected = Expected {
            pid: me,
            start_ns: Some(start_ns),
            entity_id: "e",
            role: "process",
            args: &args,
        };
        let allow = [String::from("PATH")];
        let limits = Limits {
            max_fds: 4096,
            env_values: &allow,
            ticks_per_sec: ticks,
        };
        let seen = read(Path::new("/proc"), &expected, &limits);
        assert!(seen.alive);
        assert!(seen.executable.is_some());
        let path = file.path().to_string_lossy().into_owned();
        assert!(seen.fds.iter().any(|f| f.target == path), "{:?}", seen.fds);
        assert!(seen.env_names.iter().any(|n| n == "PATH"));
        assert_eq!(seen.env_values.keys().collect::<Vec<_>>(), vec!["PATH"]);
        assert!(seen.uids.len() == 4 && seen.gids.len() == 4);

        // Another start time: a reused pid is not the process the alert names.
        let other = Expected {
            start_ns: Some(start_ns + 5_000_000_000),
            ..expected
        };
        let seen = read(Path::new("/proc"), &other, &limits);
        assert!(!seen.alive && seen.fds.is_empty() && seen.env_names.is_empty());
        assert_eq!(seen.args, args);
    }
}
