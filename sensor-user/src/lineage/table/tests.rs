//! The process table's unit tests.

use super::*;

const S: u64 = 1_000_000_000;

fn fork(ts: u64, pid: u32, ppid: u32, start: u64) -> Fork {
    Fork {
        ts_ns: ts,
        pid,
        tid: ppid,
        ppid,
        start_ns: start,
        uid: 0,
        gid: 0,
        comm: "x".into(),
        cgroup_id: 0,
    }
}

fn exec(ts: u64, pid: u32, ppid: u32, start: u64, exe: &str) -> Exec {
    Exec {
        ts_ns: ts,
        pid,
        tid: pid,
        ppid,
        start_ns: start,
        uid: 33,
        gid: 33,
        euid: 33,
        comm: exe.rsplit('/').next().unwrap_or(exe).into(),
        exe: exe.into(),
        argv: vec![exe.into()],
        argv_truncated: false,
        argv_bytes: 0,
        cgroup_id: 0,
        exe_dev: None,
        exe_ino: None,
        exe_nlink: None,
        hold: None,
    }
}

fn exit(ts: u64, pid: u32, start: u64) -> Exit {
    Exit {
        ts_ns: ts,
        pid,
        start_ns: start,
        exit_code: 0,
        signal: 0,
    }
}

fn chain(t: &ProcessTable<()>, id: EntityId) -> Vec<String> {
    t.ancestors(id).map(|p| p.image.exe.clone()).collect()
}

fn table() -> ProcessTable<()> {
    ProcessTable::new(Limits {
        exit_grace_ns: 10 * S,
        max_entries: 1000,
        seed_tolerance_ns: 20_000_000,
    })
}

#[test]
fn forked_child_inherits_image_until_exec() {
    let mut t = table();
    let nginx = t.exec(exec(1, 10, 1, 1, "/usr/sbin/nginx"));
    let (worker, new) = t.fork(fork(2, 11, 10, 2));
    assert!(new);
    assert_eq!(t.get(worker).expect("worker").image.exe, "/usr/sbin/nginx");
    let sh = t.exec(exec(3, 11, 10, 2, "/bin/sh"));
    assert_eq!(sh, worker);
    assert_eq!(chain(&t, sh), ["/usr/sbin/nginx"]);
    assert_eq!(
        t.get(nginx).expect("nginx").image.exe,
        "/usr/sbin/nginx",
        "parent unchanged"
    );
}

#[test]
fn exited_entries_leave_when_time_passes_without_events() {
    let mut t = table();
    t.exec(exec(1, 10, 1, 1, "/usr/sbin/nginx"));
    t.exec(exec(2, 20, 10, 2, "/bin/true"));
    t.exit(&exit(3, 20, 2));
    assert_eq!(t.len(), 2, "within its grace");
    t.advance(3 + 10 * S - 1);
    assert_eq!(t.len(), 2);
    t.advance(3 + 10 * S);
    assert_eq!(t.len(), 1, "the grace is over: only the live server stays");
    t.advance(5);
    assert_eq!(t.len(), 1, "the clock never goes back");
}

#[test]
fn exec_without_fork_links_to_the_live_parent() {
    let mut t = table();
    t.exec(exec(1, 10, 1, 1, "/usr/sbin/apache2"));
    let sh = t.exec(exec(5, 20, 10, 4, "/bin/sh"));
    assert_eq!(chain(&t, sh), ["/usr/sbin/apache2"]);
    assert_eq!(t.get(sh).expect("sh").execs, 1);
}

#[test]
fn exec_before_fork_gets_its_parent_when_the_fork_arrives() {
    let mut t = table();
    t.exec(exec(1, 10, 1, 1, "/usr/sbin/php-fpm8.2"));
    // The exec names a parent pid that is not (yet) known.
    let sh = t.exec(exec(3, 20, 15, 2, "/bin/sh"));
    assert!(chain(&t, sh).is_empty());
    t.exec(exec(4, 15, 10, 1, "/usr/sbin/php-fpm8.2"));
    let (id, new) = t.fork(fork(2, 20, 15, 2));
    assert_eq!((id, new), (sh, false));
    assert_eq!(
        chain(&t, sh),
        ["/usr/sbin/php-fpm8.2", "/usr/sbin/php-fpm8.2"]
    );
    assert_eq!(
        t.get(sh).expect("sh").image.exe,
        "/bin/sh",
        "the fork does not undo the exec"
    );
}

#[test]
fn pid_reuse_is_told_apart_by_start_time() {
    let mut t = table();
    t.exec(exec(1, 10, 1, 1, "/usr/sbin/nginx"));
    let old = t.exec(exec(2, 30, 10, 2, "/bin/sh"));
    // The old pid-30's exit was lost; a new pid 30 appears under another parent.
    t.exec(exec(3, 40, 1, 3, "/usr/sbin/cron"));
    let (new, _) = t.fork(fork(4, 30, 40, 4));
    assert_ne!(old, new);
    assert_eq!(t.live(30).map(|p| p.id), Some(new));
    assert_eq!(chain(&t, new), ["/usr/sbin/cron"]);
    assert!(t.get(old).expect("old kept for grace").exited_ns.is_some());
    // An exit naming the old start time ends the old one, not the new.
    t.exit(&exit(5, 30, 2));
    assert!(t.live(30).is_some());
}

#[test]
fn a_process_that_execs_twice_keeps_its_identity_and_parent() {
    let mut t = table();
    t.exec(exec(1, 10, 1, 1, "/usr/lib/jvm/bin/java"));
    t.fork(fork(2, 11, 10, 2));
    let a = t.exec(exec(3, 11, 10, 2, "/usr/lib/jvm/lib/jspawnhelper"));
    let b = t.exec(exec(4, 11, 10, 2, "/bin/sh"));
    assert_eq!(a, b);
    let p = t.get(b).expect("entry");
    assert_eq!((p.execs, p.image.exe.as_str()), (2, "/bin/sh"));
    assert_eq!(chain(&t, b), ["/usr/lib/jvm/bin/java"]);
}

#[test]
fn orphans_keep_their_parent_at_birth_when_reparented_to_init() {
    let mut t = table();
    t.exec(exec(1, 10, 1, 1, "/usr/sbin/apache2"));
    t.fork(fork(2, 11, 10, 2));
    t.exec(exec(3, 11, 10, 2, "/bin/sh"));
    t.fork(fork(4, 12, 11, 4));
    t.exit(&exit(5, 11, 2));
    // Re-parented to init: the exec reports ppid 1.
    let payload = t.exec(exec(6, 12, 1, 4, "/tmp/.x"));
    assert_eq!(t.get(payload).expect("payload").ppid, 1);
    assert_eq!(chain(&t, payload), ["/bin/sh", "/usr/sbin/apache2"]);
}

#[test]
fn exited_processes_stay_for_the_grace_period_then_go() {
    let mut t = table();
    let a = t.exec(exec(S, 10, 1, 1, "/usr/sbin/nginx"));
    t.exit(&exit(2 * S, 10, 1));
    assert!(t.live(10).is_none());
    t.exec(exec(11 * S, 20, 1, 11 * S, "/bin/true"));
    assert!(t.get(a).is_some(), "9 s after exit: still resolvable");
    t.exec(exec(13 * S, 21, 1, 13 * S, "/bin/true"));
    assert!(t.get(a).is_none(), "11 s after exit: evicted");
    assert_eq!(t.stats().evicted_after_grace, 1);
}

#[test]
fn memory_stays_bounded_under_churn_with_lost_exits() {
    let mut t: ProcessTable<()> = ProcessTable::new(Limits {
        exit_grace_ns: 3600 * S,
        max_entries: 1024,
        seed_tolerance_ns: 0,
    });
    for i in 0..100_000u32 {
        let ts = u64::from(i) + 1;
        t.fork(fork(ts, 1000 + i, 1, ts));
        if i % 2 == 0 {
            t.exit(&exit(ts, 1000 + i, ts));
        }
    }
    assert!(t.len() <= 1024, "{} entries", t.len());
    assert!(t.live.len() <= 1024);
    assert!(t.exited.len() <= 1024, "{} queued exits", t.exited.len());
}

#[test]
fn seeded_processes_match_kernel_start_times_within_a_tick() {
    let mut t = table();
    let nginx = t.seed(SeedProcess {
        pid: 10,
        ppid: 1,
        start_ns: 1_230_000_000,
        uid: 0,
        comm: "nginx".into(),
        exe: "/usr/sbin/nginx".into(),
        argv: vec!["nginx: master process".into()],
        container: None,
    });
    let worker = t.seed(SeedProcess {
        pid: 11,
        ppid: 10,
        start_ns: 1_240_000_000,
        uid: 33,
        comm: "nginx".into(),
        exe: "/usr/sbin/nginx".into(),
        argv: vec!["nginx: worker process".into()],
        container: None,
    });
    assert_eq!(t.parent(worker).map(|p| p.id), Some(nginx));
    // The kernel's exact start time of the worker differs by a few ms.
    t.fork(fork(5 * S, 50, 11, 5 * S));
    let sh = t.exec(exec(5 * S + 1, 50, 11, 5 * S, "/bin/sh"));
    assert_eq!(chain(&t, sh), ["/usr/sbin/nginx", "/usr/sbin/nginx"]);
    t.exit(&exit(6 * S, 11, 1_243_000_000));
    assert!(t.live(11).is_none(), "exit matched the seeded entry");
}
