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
            self.learn(alert);
        }
        ours
    }

    /// Remembers the alert's processes that are the test's: the ancestry below the test process
    /// when it is in there (those above it, a shell or session the test runs under, are shared
    /// with other programs), else the whole chain, which then starts at a server of the test.
    /// pid 1 and 0 are never the test's (an orphan's parent is init).
    fn learn(&mut self, alert: &Alert) {
        let doc = &alert.doc;
        let ancestry: Vec<u64> = doc["lineage"]["ancestry"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["pid"].as_u64()).collect())
            .unwrap_or_default();
        let below = match ancestry.iter().position(|&p| p == self.test_pid) {
            Some(at) => &ancestry[at..],
            None => &ancestry[..],
        };
        let own = below
            .iter()
            .copied()
            .chain(doc["process"]["pid"].as_u64())
            .filter(|&p| p > 1);
        self.known.extend(own);
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn alert(process: u64, parent: u64, ancestry: &[(u64, &str)]) -> Alert {
        let ancestry: Vec<serde_json::Value> = ancestry
            .iter()
            .map(|(pid, exe)| serde_json::json!({"pid": pid, "executable": exe}))
            .collect();
        let doc = serde_json::json!({
            "process": {"pid": process, "executable": "/bin/sh", "parent": {"pid": parent}},
            "lineage": {"ancestry": ancestry},
        });
        Alert::parse(Instant::now(), doc.to_string()).expect("alert")
    }

    /// A pid far above any real one: never alive, never anyone's parent.
    const GONE: u64 = 4_000_000_000;

    #[test]
    fn the_tests_own_processes_are_its_and_the_session_above_it_is_not() {
        let mut tree = OwnTree::of_this_test();
        let me = u64::from(std::process::id());
        // A shell the test ran: the session above the test is in its ancestry.
        let session = GONE + 1;
        assert!(tree.contains(&alert(
            GONE + 2,
            me,
            &[
                (session, "/bin/bash"),
                (me, "/x/test"),
                (GONE + 2, "/bin/sh")
            ]
        )));
        // Another program of the same session is not the test's.
        assert!(!tree.contains(&alert(
            GONE + 3,
            session,
            &[(session, "/bin/bash"), (GONE + 3, "/bin/sh")]
        )));
        // An orphan's parent is init: that does not make every orphan the test's.
        assert!(!tree.contains(&alert(GONE + 4, 1, &[(GONE + 4, "/bin/sh")])));
    }

    #[test]
    fn programs_run_from_the_tests_directory_are_its_after_they_exit() {
        let dir = tempfile::tempdir().expect("dir");
        let server = dir.path().join("nginx");
        let server = server.to_str().expect("utf-8");
        let mut tree = OwnTree::of_this_test();
        assert!(!tree.contains(&alert(
            GONE + 6,
            GONE + 5,
            &[(GONE + 5, server), (GONE + 6, "/bin/sh")]
        )));
        tree.add_dir(dir.path());
        assert!(tree.contains(&alert(
            GONE + 6,
            GONE + 5,
            &[(GONE + 5, server), (GONE + 6, "/bin/sh")]
        )));
        // Learned: the tool the shell ran, whose chain names only pids now.
        assert!(tree.contains(&alert(
            GONE + 7,
            GONE + 6,
            &[(GONE + 6, "/bin/sh"), (GONE + 7, "/usr/bin/id")]
        )));
        // A registered server is the test's.
        tree.add_pid(12);
        assert!(tree.contains(&alert(
            GONE + 9,
            GONE + 8,
            &[(12, "/usr/sbin/nginx"), (GONE + 9, "/bin/sh")]
        )));
    }
}
