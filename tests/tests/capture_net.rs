//! Connect outcomes from the TCP handshake, unconnected UDP, listeners, and the in-kernel drop of
//! connects outside the server tree: the real programs, against sockets made on purpose.
//! Run as root with one test thread (`cargo xtask test` does both).

use std::{
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket},
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

use integration_tests::{connects, require_root, with_sensor};
use lineage_sensor::{
    config::{CaptureConfig, ConnectEntryMode, ConnectScope},
    event::{ConnectCall, Event, Family, Listen, Proto},
    kernel::connect_entry::ConnectEntry,
};

fn everyone(entry: ConnectEntryMode) -> CaptureConfig {
    CaptureConfig {
        connect_entry: entry,
        connects_from: ConnectScope::Everyone,
        ..CaptureConfig::default()
    }
}

fn listens(events: &[Event]) -> impl Iterator<Item = &Listen> {
    events.iter().filter_map(|e| match e {
        Event::Listen(l) => Some(l),
        _ => None,
    })
}

/// A non-blocking connect() returns EINPROGRESS; its event comes with the handshake's outcome
/// (0, the accept happening later) and the time and thread of the call.
fn nonblocking_connect(addr: SocketAddr) -> (u64, i32) {
    let before = boottime_ns();
    let fd = start_connect(addr);
    assert!(finished(fd, 2000), "the handshake to {addr} never ended");
    // SAFETY: our own fd; gettid has no preconditions.
    unsafe {
        libc::close(fd);
        (before, libc::gettid())
    }
}

/// A `sockaddr_storage` and its length for `addr`.
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage; the casts below stay inside it.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            let sin = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as u16;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as u16;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// A non-blocking TCP socket whose connect() to `addr` has been issued.
fn start_connect(addr: SocketAddr) -> i32 {
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let (sa, len) = sockaddr(addr);
    // SAFETY: plain socket syscalls; the caller owns and closes the fd.
    unsafe {
        let fd = libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let ret = libc::connect(fd, (&raw const sa).cast(), len);
        let err = std::io::Error::last_os_error();
        assert!(
            ret == 0 || err.raw_os_error() == Some(libc::EINPROGRESS),
            "connect: {err}"
        );
        fd
    }
}

/// Whether the fd's connect has finished (either way).
fn finished(fd: i32, wait_ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: a valid pollfd for the call.
    unsafe { libc::poll(&mut pfd, 1, wait_ms) > 0 }
}

fn boottime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Every outcome, on the cgroup hooks (where this machine has them) and on the syscall
/// tracepoint fallback: the events must be the same.
#[test]
fn outcomes_in_progress_and_refused_on_every_mechanism() {
    require_root();
    for entry in [ConnectEntryMode::Auto, ConnectEntryMode::Tracepoint] {
        check_outcomes(entry);
    }
}

fn check_outcomes(entry: ConnectEntryMode) {
    let v4 = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind v4");
    let v6 = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).expect("bind v6");
    let refused_port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let v4_addr = v4.local_addr().expect("addr");
    let v6_addr = v6.local_addr().expect("addr");
    let (seen, (t4, t6, refused_tid)) = with_sensor(everyone(entry), || {
        let t4 = nonblocking_connect(v4_addr);
        let t6 = nonblocking_connect(v6_addr);
        let refused = nonblocking_connect(SocketAddr::from((Ipv4Addr::LOCALHOST, refused_port)));
        (t4, t6, refused.1)
    })
    .expect("sensor");
    let me = std::process::id();
    let mine: Vec<_> = connects(&seen.events).filter(|c| c.pid == me).collect();
    for (addr, (called, tid)) in [(v4_addr, t4), (v6_addr, t6)] {
        let found: Vec<_> = mine.iter().filter(|c| c.dport == addr.port()).collect();
        assert_eq!(found.len(), 1, "{entry:?} {addr}: {mine:?}");
        let c = found[0];
        assert_eq!(
            c.ret, 0,
            "{entry:?}: a completed handshake is a success: {c:?}"
        );
        assert_eq!(c.proto, Proto::Tcp);
        assert_eq!(c.daddr, addr.ip());
        assert_eq!(c.tid as i32, tid, "the calling thread");
        assert!(
            c.ts_ns >= called,
            "the time of the call, not of the outcome"
        );
        assert_eq!(c.call, ConnectCall::Connect);
    }
    let refused: Vec<_> = mine.iter().filter(|c| c.dport == refused_port).collect();
    assert_eq!(refused.len(), 1, "{entry:?}: {mine:?}");
    assert_eq!(refused[0].ret, -libc::ECONNREFUSED, "{entry:?}");
    assert_eq!(refused[0].tid as i32, refused_tid);
    assert_eq!(
        seen.metrics
            .events(lineage_sensor::event::EventKind::Connect) as usize,
        connects(&seen.events).count()
    );
}

/// sendto() on an unconnected socket: one event per socket and destination, however many
/// datagrams; a second destination is a second event.
#[test]
fn unconnected_udp_is_reported_once_per_socket_and_destination() {
    require_root();
    let sink = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let other = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let sink6 = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).expect("bind v6");
    let (a, b, c) = (
        sink.local_addr().expect("addr"),
        other.local_addr().expect("addr"),
        sink6.local_addr().expect("addr"),
    );
    let (seen, ()) = with_sensor(everyone(ConnectEntryMode::Auto), || {
        let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        for _ in 0..50 {
            s.send_to(b"x", a).expect("send");
        }
        s.send_to(b"y", b).expect("send");
        let s6 = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).expect("bind v6");
        for _ in 0..5 {
            s6.send_to(b"z", c).expect("send v6");
        }
    })
    .expect("sensor");
    let me = std::process::id();
    let sends: Vec<_> = connects(&seen.events)
        .filter(|e| e.pid == me && e.call == ConnectCall::Sendmsg)
        .collect();
    if let ConnectEntry::Syscall(why) = &seen.connect_entry {
        // Without the cgroup hooks (the VM guests mount no cgroup v2) there is nothing that
        // sees a send without a syscall tracepoint on every syscall; the metrics say so.
        assert!(sends.is_empty(), "{why}: {sends:?}");
        let text = seen.metrics.encode().expect("encode");
        assert!(
            text.contains(r#"lineage_sensor_hook_info{family="udp_send",mechanism="none"} 1"#),
            "{text}"
        );
        return;
    }
    let to = |port: u16| sends.iter().filter(|e| e.dport == port).count();
    assert_eq!(to(a.port()), 1, "50 datagrams, one event: {sends:?}");
    assert_eq!(to(b.port()), 1, "{sends:?}");
    assert_eq!(to(c.port()), 1, "{sends:?}");
    let v6 = sends.iter().find(|e| e.dport == c.port()).expect("v6");
    assert_eq!(
        (v6.family, v6.proto, v6.ret),
        (Family::Inet6, Proto::Udp, 0)
    );
}

/// listen() is an event naming the process, address and port; and in `run`'s scope
/// (server trees only) a process that listens is in the tree, so its connects are kept while
/// those of this (non-listening) thread before it listened are dropped in the kernel.
#[test]
fn listeners_are_reported_and_join_the_server_tree() {
    require_root();
    let target = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let target_port = target.local_addr().expect("addr").port();
    let config = CaptureConfig {
        connects_from: ConnectScope::ServerTrees,
        ..CaptureConfig::default()
    };
    // A child process, so that joining the tree does not depend on what this test process did
    // in earlier tests; it makes only plain syscalls between fork and _exit.
    let (seen, (child, port)) = with_sensor(config, || {
        // Not a TcpListener: this process must not listen while the sensor watches.
        let port = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let target = SocketAddr::from((Ipv4Addr::LOCALHOST, target_port));
        let (any6, any6_len) = sockaddr(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)));
        // SAFETY: the child makes only async-signal-safe syscalls, then _exit.
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork");
        if child == 0 {
            // SAFETY: see above.
            unsafe {
                let before = start_connect(target);
                finished(before, 2000);
                let l = libc::socket(libc::AF_INET6, libc::SOCK_STREAM, 0);
                if libc::bind(l, (&raw const any6).cast(), any6_len) != 0 || libc::listen(l, 8) != 0
                {
                    libc::_exit(2);
                }
                let after = start_connect(target);
                finished(after, 2000);
                libc::_exit(0);
            }
        }
        let mut status = 0;
        // SAFETY: our own child.
        unsafe { libc::waitpid(child, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child: {status}"
        );
        (child as u32, port)
    })
    .expect("sensor");
    let listened: Vec<_> = listens(&seen.events).filter(|l| l.pid == child).collect();
    assert_eq!(listened.len(), 1, "{listened:?}");
    let l = listened[0];
    assert_eq!(
        (l.family, l.port, l.proto),
        (Family::Inet6, port, Proto::Tcp)
    );
    assert_eq!(l.addr.to_string(), "::");
    let dialed: Vec<_> = connects(&seen.events)
        .filter(|c| c.pid == child && c.dport == target_port)
        .collect();
    assert_eq!(
        dialed.len(),
        1,
        "only the connect after listen(): {dialed:?}"
    );
    assert!(dialed[0].ts_ns > l.ts_ns);
}

/// An attempt that the caller gives up on before the handshake ends (here: a listener whose
/// backlog is full never answers) is reported when the socket is closed, as ECONNABORTED.
#[test]
fn an_attempt_closed_before_its_handshake_ends_is_reported_aborted() {
    require_root();
    // A listener with a full backlog drops further SYNs: the handshake never ends by itself.
    let blocker = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    // SAFETY: our own listening fd; listen() again only changes its backlog.
    unsafe { libc::listen(blocker.as_raw_fd(), 0) };
    let addr = blocker.local_addr().expect("addr");
    let (seen, ()) = with_sensor(everyone(ConnectEntryMode::Auto), || {
        // Fill the backlog, then close one that hangs in SYN_SENT.
        let mut filling = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let fd = start_connect(addr);
            if !finished(fd, 300) {
                // SAFETY: our own fd. Still in SYN_SENT: closing it aborts the attempt.
                unsafe { libc::close(fd) };
                break;
            }
            filling.push(fd);
            assert!(Instant::now() < deadline, "the backlog never filled");
        }
        for fd in filling {
            // SAFETY: our own fds.
            unsafe { libc::close(fd) };
        }
    })
    .expect("sensor");
    let me = std::process::id();
    let to: Vec<_> = connects(&seen.events)
        .filter(|c| c.pid == me && c.dport == addr.port())
        .collect();
    assert!(
        to.iter().any(|c| c.ret == -libc::ECONNABORTED),
        "no aborted attempt: {to:?}"
    );
    assert!(
        to.iter()
            .all(|c| c.ret == 0 || c.ret == -libc::ECONNABORTED),
        "{to:?}"
    );
}

/// The metrics say what each hook family runs on, and how many syscall tracepoints are
/// attached: none when nothing is watched, file hooks are off or on fanotify (connect entry on
/// the cgroup hooks), some when the file hooks are pinned to the tracepoints, more when
/// connect() is pinned to them too.
#[test]
fn hook_metrics_count_the_syscall_tracepoints() {
    require_root();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let cgroup2_root = mountinfo
        .lines()
        .any(|l| l.contains(" - cgroup2 ") && l.split(' ').nth(3) == Some("/"));
    let attached = |config: CaptureConfig| -> (f64, String) {
        let (seen, ()) = with_sensor(config, || {}).expect("sensor");
        let text = seen.metrics.encode().expect("encode");
        let n = integration_tests::metric(&text, "lineage_sensor_syscall_tracepoints_attached")
            .expect("the gauge");
        (n, text)
    };
    let watched = CaptureConfig {
        watch_paths: vec!["/var/www".into()],
        ..CaptureConfig::default()
    };
    let connect_base = if cgroup2_root { 0.0 } else { 2.0 };
    let fanotify =
        integration_tests::file_mechanisms().contains(&lineage_sensor::config::FileHooks::Fanotify);
    let (auto, text) = attached(watched.clone());
    if fanotify {
        // Where fanotify loads, watching paths attaches no syscall tracepoint at all.
        assert_eq!(auto, connect_base, "{text}");
        assert!(
            text.contains(r#"lineage_sensor_hook_info{family="file",mechanism="fanotify"} 1"#),
            "{text}"
        );
    }
    let watched = CaptureConfig {
        file_hooks: lineage_sensor::config::FileHooks::Tracepoint,
        ..watched
    };
    let (with_files, text) = attached(watched.clone());
    assert!(with_files > connect_base, "{text}");
    assert!(
        text.contains(
            r#"lineage_sensor_hook_info{family="file",mechanism="syscall_tracepoint"} 1"#
        ),
        "{text}"
    );
    let (off, text) = attached(CaptureConfig {
        file_hooks: lineage_sensor::config::FileHooks::Off,
        ..watched.clone()
    });
    assert!(
        text.contains(r#"lineage_sensor_hook_info{family="file",mechanism="none"} 1"#),
        "{text}"
    );
    let (pinned, _) = attached(CaptureConfig {
        connect_entry: ConnectEntryMode::Tracepoint,
        ..watched
    });
    // Where auto could not attach the cgroup hooks (no cgroup v2: the VM guests), it already
    // uses the two connect tracepoints.
    let connect_tracepoints = if cgroup2_root { 2.0 } else { 0.0 };
    assert_eq!(
        pinned,
        with_files + connect_tracepoints,
        "sys_enter_connect and sys_exit_connect"
    );
    let (nothing_watched, text) = attached(CaptureConfig::default());
    if cgroup2_root {
        assert_eq!(off, 0.0, "{text}");
        assert_eq!(nothing_watched, 0.0, "{text}");
        assert!(
            text.contains(
                r#"lineage_sensor_hook_info{family="connect",mechanism="cgroup_sock_addr"} 1"#
            ),
            "{text}"
        );
    } else {
        assert_eq!(off, 2.0);
        assert_eq!(nothing_watched, 2.0);
    }
}

/// A process that was already listening when the sensor started is put in the server tree from
/// /proc (the kernel never saw its listen()), so in `run`'s scope the connects of a child it
/// forks later are kept; without the seeding they would be dropped.
#[test]
fn processes_listening_before_the_start_are_seeded_into_the_server_tree() {
    require_root();
    let target = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let target = target.local_addr().expect("addr");
    // This test process listens before the programs are attached.
    let _listening = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let config = CaptureConfig {
        connects_from: ConnectScope::ServerTrees,
        ..CaptureConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let metrics = std::sync::Arc::new(lineage_sensor::metrics::Metrics::new().expect("metrics"));
    let (seeded, child, events) = runtime.block_on(async {
        let mut capture = lineage_sensor::kernel::Capture::start(&config, metrics).expect("start");
        let seeded = capture.seed_listeners(std::path::Path::new("/proc"));
        // SAFETY: the child makes only async-signal-safe syscalls, then _exit.
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork");
        if child == 0 {
            // SAFETY: see above.
            unsafe {
                let fd = start_connect(target);
                finished(fd, 2000);
                libc::_exit(0);
            }
        }
        // SAFETY: our own child.
        unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
        let mut events = Vec::new();
        capture.detach();
        while let Ok(read) =
            tokio::time::timeout(Duration::from_millis(300), capture.next_batch(&mut events)).await
        {
            read.expect("read");
        }
        (seeded, child as u32, events)
    });
    assert!(seeded >= 1, "this process listens");
    let dialed = connects(&events)
        .filter(|c| c.pid == child && c.dport == target.port())
        .count();
    assert_eq!(dialed, 1, "the listener's child's connect is kept");
}
