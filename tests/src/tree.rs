//! Which alerts belong to the running test: those about a process of its own tree.
//!
//! An alert's ancestry starts at the outermost server (or the top ancestor below init), so the
//! test process itself is named only by alerts with no server above them. The rest are matched
//! by what the test knows: pids it registered (the servers it started), executables under
//! directories it registered (the fake servers copied into its temp dir, which stay recognisable
//! after they exit, a double fork's re-parented shell included), and live processes whose parent
//! chain in /proc reaches the test. Other programs on the host, other test runs among them, never
//! make a test fail, and no alert of the test's own tree is dropped for being rooted elsewhere.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
};

use crate::alert::Alert;

#[derive(Debug)]
pub struct OwnTree {
    test_pid: u64,
    known: HashSet<u64>,
    dirs: Vec<PathBuf>,
}

impl Default for OwnTree {
    fn default() -> Self {
        Self::of_this_test()
    }
}

impl OwnTree {
    pub fn of_this_test() -> OwnTree {
        let test_pid = u64::from(std::process::id());
        OwnTree {
            test_pid,
            known: HashSet::from([test_pid]),
            dirs: Vec::new(),
        }
    }

    /// A process the test started (a server): alerts naming it belong to the test.
    pub fn add_pid(&mut self, pid: u32) {
        self.known.insert(u64::from(pid));
    }

    /// A directory only the test runs programs from.
    pub fn add_dir(&mut self, dir: &Path) {
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
        self.dirs.push(dir);
    }

    /// Whether the alert is about a process of the test's tree. Its pids are remembered when it
    /// is, so later alerts of the same tree match even after those processes have exited.
    pub fn contains(&mut self, alert: &Alert) -> bool {
        let pids = alert.pids();
        let ours = pids.iter().any(|p| self.known.contains(p))
            || alert
                .executables()
                .iter()
                .any(|e| self.dirs.iter().any(|d| Path::new(e).starts_with(d)))
            || pids.iter().any(|&p| self.descends_from_test(p));
        if ours {
            self.known.extend(pids);
        }
        ours
    }

    /// Walks the live parent chain of `pid` up to init.
    fn descends_from_test(&self, pid: u64) -> bool {
        let mut current = pid;
        // Bounded: a chain deeper than this is not a test's.
        for _ in 0..64 {
            if current == self.test_pid {
                return true;
            }
            match parent_of(current) {
                Some(parent) if parent > 1 => current = parent,
                _ => return false,
            }
        }
        false
    }
}

/// The parent pid from /proc/PID/stat (field 4, after the parenthesised command, which may
/// itself hold spaces and parentheses).
fn parent_of(pid: u64) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}
