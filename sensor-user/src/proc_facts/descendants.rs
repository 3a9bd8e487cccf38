//! A process's descendants and liveness from /proc: what the kernel's server tree needs when a
//! server is confirmed after it has already forked (its workers were forked before the mark was
//! in, so the fork program had nothing to copy to them).

use std::path::Path;

/// Every descendant of `pid` (children of all its threads, recursively), at most `limit`.
/// Relies on `/proc/PID/task/TID/children` (CONFIG_PROC_CHILDREN, on in distribution kernels);
/// without it the list is empty, as if nothing had been forked.
pub fn descendants(proc_root: &Path, pid: u32, limit: usize) -> Vec<u32> {
    let mut found = Vec::new();
    let mut next = vec![pid];
    while let Some(p) = next.pop() {
        for child in children(proc_root, p) {
            if found.len() >= limit {
                return found;
            }
            if !found.contains(&child) && child != pid {
                found.push(child);
                next.push(child);
            }
        }
    }
    found
}

fn children(proc_root: &Path, pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(proc_root.join(pid.to_string()).join("task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The process runs (not exited, not a zombie): its exit has not been traced yet, so an entry
/// the kernel's exit program removes can safely be added for it.
pub fn alive(proc_root: &Path, pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")) else {
        return false;
    };
    // The state follows the command's closing parenthesis, which may itself contain ") ".
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
        .is_some_and(|state| !matches!(state, 'Z' | 'X' | 'x'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(root: &Path, pid: u32, state: char, children: &[(u32, &str)]) {
        let dir = root.join(pid.to_string());
        std::fs::create_dir_all(dir.join("task")).expect("mkdir");
        std::fs::write(dir.join("stat"), format!("{pid} (a) b) {state} 1 2 3\n")).expect("stat");
        for (tid, list) in children {
            let task = dir.join("task").join(tid.to_string());
            std::fs::create_dir_all(&task).expect("mkdir task");
            std::fs::write(task.join("children"), list).expect("children");
        }
    }

    #[test]
    fn descendants_of_every_thread_recursively_and_bounded() {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        process(r, 10, 'S', &[(10, "11 12 "), (13, "14 ")]);
        process(r, 11, 'S', &[(11, "15 ")]);
        process(r, 12, 'S', &[(12, "")]);
        process(r, 14, 'S', &[(14, "")]);
        process(r, 15, 'S', &[(15, "")]);
        let mut all = descendants(r, 10, 100);
        all.sort_unstable();
        assert_eq!(all, vec![11, 12, 14, 15]);
        assert_eq!(descendants(r, 10, 2).len(), 2);
        assert!(
            descendants(r, 99, 100).is_empty(),
            "a gone process has none"
        );
    }

    #[test]
    fn zombies_and_gone_processes_are_not_alive() {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        process(r, 20, 'S', &[]);
        process(r, 21, 'Z', &[]);
        assert!(alive(r, 20));
        assert!(!alive(r, 21));
        assert!(!alive(r, 22));
    }
}
