//! The kernel programs, loaded for real, against process and network shapes made on purpose.
//! Run as root with one test thread (`cargo xtask test` does both).

use std::{
    collections::HashMap,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::unix::ffi::OsStrExt,
    process::Command,
};

use integration_tests::{
    TestSensor, connects, execs, exits, forks, kernel_counters::lost_by_kind, require_root,
    with_sensor,
};
use lineage_sensor::{
    config::{CaptureConfig, ConnectEntryMode, ConnectScope},
    escape::unescape,
    event::{EventKind, Family, Proto},
    kernel::connect_entry::ConnectEntry,
};
use sensor_ebpf::kind;

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");

/// `key=value` lines a workload printed.
fn parse_output(stdout: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn pid_of(out: &HashMap<String, String>, key: &str) -> u32 {
    out.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("workload printed no {key}: {out:?}"))
}

#[test]
fn shell_chain_has_exact_lineage_argv_and_uid() {
    require_root();
    let (seen, child) = with_sensor(CaptureConfig::default(), || {
        let mut child = Command::new("sh")
            .args(["-c", "id >/dev/null; /bin/true"])
            .spawn()
            .expect("spawn sh");
        child.wait().expect("wait sh");
        child.id()
    })
    .expect("sensor");
    let me = std::process::id();
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };

    let sh = execs(&seen.events)
        .find(|e| e.pid == child && e.argv.first().map(String::as_str) == Some("sh"))
        .expect("exec of sh");
    assert_eq!(sh.ppid, me, "sh's parent is the test process");
    assert_eq!(sh.argv, ["sh", "-c", "id >/dev/null; /bin/true"]);
    assert_eq!(sh.uid, uid);
    assert!(sh.exe.ends_with("sh"), "{}", sh.exe);

    let id = execs(&seen.events)
        .find(|e| e.ppid == child && e.exe.ends_with("/id"))
        .expect("exec of id below sh");
    assert_eq!(id.argv, ["id"]);
    assert_eq!(id.uid, uid);
    assert!(id.start_ns >= sh.start_ns);
    assert!(
        forks(&seen.events).any(|f| f.pid == id.pid && f.ppid == child),
        "fork of id's process from sh"
    );

    // dash runs the last command of -c in its own process (exec without fork); other shells fork.
    let t = execs(&seen.events)
        .find(|e| e.exe == "/bin/true" && (e.ppid == child || e.pid == child))
        .expect("exec of /bin/true from sh");
    assert_eq!(t.argv, ["/bin/true"]);
    if t.pid == child {
        assert_eq!(t.ppid, me);
        assert_eq!(t.start_ns, sh.start_ns, "exec keeps the process identity");
    }

    for pid in [child, id.pid] {
        let exit = exits(&seen.events)
            .find(|x| x.pid == pid)
            .unwrap_or_else(|| panic!("exit of {pid}"));
        assert_eq!((exit.exit_code, exit.signal), (0, 0));
    }
    assert_eq!(seen.lost, 0);
}

#[test]
fn fork_without_exec_keeps_the_middle_generation() {
    require_root();
    let (seen, output) = with_sensor(CaptureConfig::default(), || {
        Command::new(WORKLOAD)
            .arg("fork-then-spawn")
            .output()
            .expect("run workload")
    })
    .expect("sensor");
    assert!(output.status.success(), "{output:?}");
    let out = parse_output(&output.stdout);
    let (child, grandchild) = (pid_of(&out, "child"), pid_of(&out, "grandchild"));
    let workload = execs(&seen.events)
        .find(|e| e.exe == WORKLOAD)
        .expect("exec of the workload");

    let fork_child = forks(&seen.events)
        .find(|f| f.pid == child)
        .expect("fork of the child");
    assert_eq!(fork_child.ppid, workload.pid);
    assert!(
        !execs(&seen.events).any(|e| e.pid == child),
        "the child never execs"
    );
    let fork_grandchild = forks(&seen.events)
        .find(|f| f.pid == grandchild)
        .expect("fork of the grandchild");
    assert_eq!(
        fork_grandchild.ppid, child,
        "parent -> forked child -> grandchild"
    );
    let exec_grandchild = execs(&seen.events)
        .find(|e| e.pid == grandchild)
        .expect("exec of the grandchild");
    assert_eq!(exec_grandchild.ppid, child);
    assert_eq!(exec_grandchild.exe, "/bin/true");
    assert_eq!(exec_grandchild.start_ns, fork_grandchild.start_ns);
}

#[test]
fn threads_are_not_processes() {
    require_root();
    let (seen, output) = with_sensor(CaptureConfig::default(), || {
        Command::new(WORKLOAD)
            .args(["threads", "50"])
            .output()
            .expect("run workload")
    })
    .expect("sensor");
    assert!(output.status.success(), "{output:?}");
    let workload = execs(&seen.events)
        .find(|e| e.exe == WORKLOAD)
        .expect("exec of the workload");
    let from_workload: Vec<_> = forks(&seen.events)
        .filter(|f| f.ppid == workload.pid)
        .collect();
    // 50 threads and one real child: only the child is a new process.
    assert_eq!(
        from_workload.len(),
        1,
        "forks from the workload: {from_workload:?}"
    );
    assert!(
        execs(&seen.events).any(|e| e.pid == from_workload[0].pid && e.exe == "/bin/true"),
        "the one fork is the control child"
    );
    // Each ending thread carries the workload's tgid; only the leader's exit may become an event.
    let workload_exits = exits(&seen.events)
        .filter(|x| x.pid == workload.pid)
        .count();
    assert_eq!(
        workload_exits, 1,
        "one exit for the process, none for its 50 threads"
    );
}

#[test]
fn long_argv_is_cut_at_4_kib_and_flagged_and_bytes_survive() {
    require_root();
    let odd = std::ffi::OsStr::from_bytes(b"\xff\xfe\\x41 \x1b[31m");
    let long = "A".repeat(10 * 1024);
    let (seen, status) = with_sensor(CaptureConfig::default(), || {
        Command::new("/bin/true")
            .arg(odd)
            .arg(&long)
            .status()
            .expect("run true")
    })
    .expect("sensor");
    assert!(status.success());
    let e = execs(&seen.events)
        .find(|e| {
            e.exe == "/bin/true"
                && e.argv.len() >= 2
                && e.argv[2..].iter().any(|a| a.starts_with("AAAA"))
        })
        .expect("exec with the long argument");
    assert!(e.argv_truncated, "10 KiB of arguments must be flagged");
    let expected: Vec<u8> = [b"/bin/true".as_slice(), odd.as_bytes(), long.as_bytes()].join(&0u8);
    assert_eq!(
        e.argv_bytes,
        expected.len() as u64 + 1,
        "size of the whole block, NUL included"
    );
    let got: Vec<u8> = e
        .argv
        .iter()
        .map(|a| unescape(a).expect("lossless text"))
        .collect::<Vec<_>>()
        .join(&0u8);
    assert_eq!(got.len(), 4096, "exactly the first 4 KiB");
    assert_eq!(got[..], expected[..4096]);
    assert_eq!(unescape(&e.argv[1]).expect("unescape"), odd.as_bytes());
}

/// With the default `connect_entry = "auto"`: the cgroup hooks wherever a cgroup v2 hierarchy
/// is mounted (as on the development and CI machines), the tracepoint where none is (the VM
/// kernels' initramfs).
#[test]
fn connects_report_destination_transport_and_result() {
    let entry = check_connects(CaptureConfig {
        connects_from: ConnectScope::Everyone,
        ..CaptureConfig::default()
    });
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let cgroup2_root = mountinfo
        .lines()
        .any(|l| l.contains(" - cgroup2 ") && l.split(' ').nth(3) == Some("/"));
    if cgroup2_root {
        assert!(matches!(entry, ConnectEntry::Cgroup(_)), "{entry}");
    } else {
        assert!(matches!(entry, ConnectEntry::Syscall(_)), "{entry}");
    }
}

/// The same events through the sys_enter_connect tracepoint.
#[test]
fn connects_through_the_syscall_tracepoint_are_the_same() {
    let entry = check_connects(CaptureConfig {
        connect_entry: ConnectEntryMode::Tracepoint,
        connects_from: ConnectScope::Everyone,
        ..CaptureConfig::default()
    });
    assert!(matches!(entry, ConnectEntry::Syscall(_)), "{entry}");
}

fn check_connects(config: CaptureConfig) -> ConnectEntry {
    require_root();
    let v4 = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind v4");
    let v6 = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).expect("bind v6");
    let refused_port = {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        l.local_addr().expect("addr").port()
    };
    let (v4_port, v6_port) = (
        v4.local_addr().expect("addr").port(),
        v6.local_addr().expect("addr").port(),
    );
    let udp_port = 53_535;
    let (seen, ()) = with_sensor(config, || {
        let _a = TcpStream::connect((Ipv4Addr::LOCALHOST, v4_port)).expect("connect v4");
        let _b = TcpStream::connect((Ipv6Addr::LOCALHOST, v6_port)).expect("connect v6");
        let mapped = SocketAddr::from((Ipv4Addr::LOCALHOST.to_ipv6_mapped(), v4_port));
        let _c = TcpStream::connect(mapped).expect("connect v4-mapped v6");
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, refused_port)).is_err());
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind udp");
        udp.connect((Ipv4Addr::LOCALHOST, udp_port))
            .expect("connect udp");
    })
    .expect("sensor");
    let me = std::process::id();
    let mine: Vec<_> = connects(&seen.events).filter(|c| c.pid == me).collect();
    let find = |port: u16, proto: Proto| {
        mine.iter()
            .filter(|c| c.dport == port && c.proto == proto)
            .copied()
            .collect::<Vec<_>>()
    };

    let v4c = find(v4_port, Proto::Tcp);
    assert_eq!(
        v4c.len(),
        2,
        "direct and v4-mapped connects to {v4_port}: {mine:?}"
    );
    for c in &v4c {
        assert_eq!(
            (c.family, c.daddr.to_string(), c.ret),
            (Family::Inet, "127.0.0.1".into(), 0)
        );
        // SAFETY: gettid has no preconditions.
        assert!(c.tid > 0);
    }
    let v6c = find(v6_port, Proto::Tcp);
    assert_eq!(v6c.len(), 1, "{mine:?}");
    assert_eq!(
        (v6c[0].family, v6c[0].daddr.to_string(), v6c[0].ret),
        (Family::Inet6, "::1".into(), 0)
    );
    let refused = find(refused_port, Proto::Tcp);
    assert_eq!(refused.len(), 1, "{mine:?}");
    assert_eq!(refused[0].ret, -libc::ECONNREFUSED);
    assert!(!refused[0].attempted());
    let udp = find(udp_port, Proto::Udp);
    assert_eq!(udp.len(), 1, "{mine:?}");
    assert_eq!((udp[0].family, udp[0].ret), (Family::Inet, 0));
    seen.connect_entry
}

#[test]
fn reused_pid_is_told_apart_by_start_time() {
    require_root();
    let (seen, pids) = with_sensor(CaptureConfig::default(), || {
        let mut first = Command::new("/bin/true").spawn().expect("spawn");
        let pid = first.id();
        first.wait().expect("wait");
        // Ask the kernel for the same pid again: the next pid it hands out is ns_last_pid + 1.
        for _ in 0..50 {
            std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())
                .expect("write ns_last_pid (needs root)");
            let mut second = Command::new("/bin/true").spawn().expect("spawn");
            second.wait().expect("wait");
            if second.id() == pid {
                return Some(pid);
            }
        }
        None
    })
    .expect("sensor");
    let pid = pids.expect("the kernel never reused the pid in 50 tries");
    let runs: Vec<_> = execs(&seen.events)
        .filter(|e| e.pid == pid && e.exe == "/bin/true")
        .collect();
    assert_eq!(runs.len(), 2, "two processes with pid {pid}: {runs:?}");
    assert_ne!(runs[0].start_ns, runs[1].start_ns);
    for run in runs {
        assert!(
            exits(&seen.events).any(|x| x.pid == pid && x.start_ns == run.start_ns),
            "the exit names the process it ends by start time"
        );
    }
}

/// The kernel's lost counter for `kind`, read with bpftool from the maps this test process
/// holds open (the in-process sensor's), independently of the sensor's own reading.
fn kernel_lost(kind: u32) -> u64 {
    lost_by_kind(std::process::id()).unwrap_or_else(|e| panic!("reading LOST with bpftool: {e}"))
        [kind as usize]
}

#[test]
fn exec_storm_loses_nothing_at_the_default_ring_size() {
    require_root();
    const N: usize = 5000;
    let (seen, (output, workload_pid, kernel_execs_lost)) =
        with_sensor(CaptureConfig::default(), || {
            let child = Command::new(WORKLOAD)
                .args(["storm", &N.to_string()])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("run workload");
            let pid = child.id();
            let output = child.wait_with_output().expect("wait for workload");
            (output, pid, kernel_lost(kind::EXEC))
        })
        .expect("sensor");
    assert!(output.status.success(), "{output:?}");
    // Counted independently: the workload made exactly N execs, each a child of its own.
    let children = execs(&seen.events)
        .filter(|e| e.ppid == workload_pid && e.exe == "/bin/true")
        .count();
    let forked = forks(&seen.events)
        .filter(|f| f.ppid == workload_pid)
        .count();
    assert_eq!(children, N, "every exec of the workload's tree delivered");
    assert_eq!(forked, N, "every fork of the workload's tree delivered");
    assert_eq!(kernel_execs_lost, 0, "the kernel counted no exec lost");
    assert!(
        seen.metrics.lost(EventKind::Exec) >= kernel_execs_lost,
        "the sensor reports what the kernel counted"
    );
}

#[test]
fn a_full_ring_is_counted_never_silent() {
    require_root();
    const N: usize = 300;
    // One page, and a consumer that reads nothing until the storm is over: the ring must fill.
    let sensor = TestSensor::start_stalled(CaptureConfig {
        ring_buffer_bytes: 4096,
        ..CaptureConfig::default()
    })
    .expect("sensor");
    let child = Command::new(WORKLOAD)
        .args(["storm", &N.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run workload");
    // The workload's own pid: its exec record may be among the lost ones.
    let workload_pid = child.id();
    let output = child.wait_with_output().expect("wait for workload");
    // Read while the ring is still full and the programs attached; it only grows from here.
    let kernel_execs_lost = kernel_lost(kind::EXEC);
    let seen = sensor.stop().expect("stop");
    assert!(output.status.success());
    // Counted independently: the workload made exactly N execs of /bin/true.
    let delivered = execs(&seen.events)
        .filter(|e| e.ppid == workload_pid && e.exe == "/bin/true")
        .count() as u64;
    assert!(
        delivered < N as u64,
        "a 4 KiB ring cannot hold {N} execs, yet all were delivered"
    );
    // The kernel's count is system-wide (other processes' lost execs add to it), so it is a
    // lower bound per tree only: every exec of this tree is delivered or counted.
    assert!(
        delivered + kernel_execs_lost >= N as u64,
        "every exec is delivered or counted: {delivered} delivered, {kernel_execs_lost} lost"
    );
    // The sensor's metric is read from the kernel after the read above: it holds at least that.
    let metric = seen.metrics.lost(EventKind::Exec);
    assert!(
        metric >= kernel_execs_lost && kernel_execs_lost > 0,
        "the metric reports the kernel's count: metric {metric}, kernel {kernel_execs_lost}"
    );
    // What did arrive is whole.
    for e in execs(&seen.events).filter(|e| e.exe == "/bin/true") {
        assert_eq!(e.argv, ["/bin/true"]);
    }
}
