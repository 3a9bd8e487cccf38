//! Placing fanotify's file events among the ring buffer's events of the same batch.
//!
//! fanotify is drained before the ring's last read, so the fork and exec of every writer are in
//! the batch or an earlier one; what is left is the place in the batch. A file event goes after
//! the last exec or fork of its writer that its estimated time does not precede (the writer is
//! then known to the lineage table under the image that wrote), and before the first later
//! event (an exec of the file just written must come after the write).

use crate::event::{Event, File};

/// How far a file's change time may lag the syscall that set it: the kernel's coarse clock
/// ticks at most every 10 ms (HZ=100).
const COARSE_NS: u64 = 10_000_000;

/// Inserts `files` (in the order fanotify gave them) into `events[from..]`.
pub fn merge(events: &mut Vec<Event>, from: usize, files: Vec<File>) {
    let mut floor = from;
    for mut file in files {
        let mut after = floor;
        let mut first_birth = None;
        for (i, e) in events.iter().enumerate().skip(from) {
            let birth = matches!(e, Event::Exec(_) | Event::Fork(_)) && e.pid() == file.pid;
            if birth {
                first_birth.get_or_insert(i);
                if e.ts_ns() <= file.ts_ns.saturating_add(COARSE_NS) {
                    after = after.max(i + 1);
                }
            }
        }
        // The writer appears only later in the batch than its write's coarse time says: it
        // cannot have written before it existed.
        if after == floor
            && let Some(i) = first_birth
        {
            after = after.max(i + 1);
        }
        if after > from {
            file.ts_ns = file.ts_ns.max(events[after - 1].ts_ns());
        }
        let at = events[after..]
            .iter()
            .position(|e| e.ts_ns() > file.ts_ns)
            .map_or(events.len(), |p| after + p);
        events.insert(at, Event::File(file));
        floor = at + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Exec, FileOp, Fork};

    fn exec(ts: u64, pid: u32, exe: &str) -> Event {
        Event::Exec(Exec {
            ts_ns: ts,
            pid,
            tid: pid,
            ppid: 1,
            start_ns: 1,
            uid: 0,
            gid: 0,
            euid: 0,
            comm: "x".into(),
            exe: exe.into(),
            argv: Vec::new(),
            argv_truncated: false,
            argv_bytes: 0,
            cgroup_id: 0,
            exe_dev: None,
            exe_ino: None,
            exe_nlink: None,
            hold: None,
        })
    }

    fn fork(ts: u64, pid: u32) -> Event {
        Event::Fork(Fork {
            ts_ns: ts,
            pid,
            tid: pid,
            ppid: 1,
            start_ns: ts,
            uid: 0,
            gid: 0,
            comm: "sh".into(),
            cgroup_id: 0,
        })
    }

    fn file(ts: u64, pid: u32, path: &str) -> File {
        File {
            ts_ns: ts,
            pid,
            tid: pid,
            uid: 0,
            op: FileOp::Open,
            path: path.into(),
            path_truncated: false,
            source: None,
            flags: 0,
            ret: 0,
            dev: None,
            ino: None,
        }
    }

    fn order(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                Event::Exec(x) => format!("exec {} {}", x.pid, x.exe),
                Event::Fork(f) => format!("fork {}", f.pid),
                Event::File(f) => format!("file {} {}", f.pid, f.path),
                other => format!("{:?}", other.kind()),
            })
            .collect()
    }

    #[test]
    fn a_write_goes_after_its_writer_appears_and_before_the_exec_of_what_it_wrote() {
        // The writer (7) forks and execs, writes /w/x.sh (coarse change time 1 ms before its
        // exec), then 8 execs the script.
        let mut events = vec![
            fork(100, 7),
            exec(2_000_000, 7, "/bin/tee"),
            exec(9_000_000, 8, "/w/x.sh"),
        ];
        merge(&mut events, 0, vec![file(1_000_000, 7, "/w/x.sh")]);
        assert_eq!(
            order(&events),
            [
                "fork 7",
                "exec 7 /bin/tee",
                "file 7 /w/x.sh",
                "exec 8 /w/x.sh"
            ]
        );
        assert_eq!(
            events[2].ts_ns(),
            2_000_000,
            "never before its writer's exec"
        );
    }

    #[test]
    fn a_writer_that_execs_long_after_writing_keeps_the_image_that_wrote() {
        let mut events = vec![
            exec(1_000, 7, "/bin/sh"),
            exec(500_000_000, 7, "/usr/bin/other"),
        ];
        merge(
            &mut events,
            0,
            vec![file(2_000, 7, "/w/a"), file(3_000, 9, "/w/b")],
        );
        assert_eq!(
            order(&events),
            [
                "exec 7 /bin/sh",
                "file 7 /w/a",
                "file 9 /w/b",
                "exec 7 /usr/bin/other"
            ]
        );
    }

    #[test]
    fn events_before_the_batch_start_are_left_alone() {
        let mut events = vec![exec(50, 7, "/old"), exec(60, 8, "/new")];
        merge(&mut events, 1, vec![file(10, 7, "/w/a")]);
        assert_eq!(
            order(&events),
            ["exec 7 /old", "file 7 /w/a", "exec 8 /new"]
        );
    }
}
