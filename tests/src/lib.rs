//! Harness for the privileged tests: the real programs loaded in-process ([`capture`]), the
//! real `lineage-sensor run` as a child ([`sensor`]) whose alerts are judged only when they
//! belong to the test's own process tree ([`tree`]), and the receivers it delivers to
//! ([`receivers`]).

pub mod alert;
pub mod capture;
pub mod cgroup;
pub mod cri;
pub mod https_receiver;
pub mod kernel_counters;
pub mod netns;
pub mod pki;
pub mod receivers;
pub mod sensor;
pub mod sink_feed;
pub mod tree;

pub use alert::{Alert, briefs};
pub use capture::{Collected, TestSensor, with_sensor};
pub use sensor::RunningSensor;
pub use tree::OwnTree;

use lineage_sensor::event::Event;

/// Fails clearly when the tests are not run as root (they load eBPF programs).
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the integration tests load eBPF programs and must run as root: use `cargo xtask test`"
    );
}

pub fn execs(events: &[Event]) -> impl Iterator<Item = &lineage_sensor::event::Exec> {
    events.iter().filter_map(|e| match e {
        Event::Exec(x) => Some(x),
        _ => None,
    })
}

pub fn forks(events: &[Event]) -> impl Iterator<Item = &lineage_sensor::event::Fork> {
    events.iter().filter_map(|e| match e {
        Event::Fork(x) => Some(x),
        _ => None,
    })
}

pub fn exits(events: &[Event]) -> impl Iterator<Item = &lineage_sensor::event::Exit> {
    events.iter().filter_map(|e| match e {
        Event::Exit(x) => Some(x),
        _ => None,
    })
}

pub fn files(events: &[Event]) -> impl Iterator<Item = &lineage_sensor::event::File> {
    events.iter().filter_map(|e| match e {
        Event::File(x) => Some(x),
        _ => None,
    })
}

pub fn connects(events: &[Event]) -> impl Iterator<Item = &lineage_sensor::event::Connect> {
    events.iter().filter_map(|e| match e {
        Event::Connect(x) => Some(x),
        _ => None,
    })
}

/// The `lineage-sensor` binary of this build: `LINEAGE_SENSOR_BIN`, or the one next to the test
/// executable's `deps/` directory (`cargo xtask test` builds it before the tests).
pub fn sensor_binary() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("LINEAGE_SENSOR_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("test executable is in target/<profile>/deps");
    let binary = profile_dir.join("lineage-sensor");
    assert!(
        binary.exists(),
        "{} not built: run `cargo build -p sensor-user` first (cargo xtask test does)",
        binary.display()
    );
    binary
}

/// A private temporary directory named after `prefix`, removed when dropped.
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
}

/// The value of one series in a metrics text, e.g. `lineage_sensor_sink_sent_total{sink="x"}`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A free loopback port for a sensor's metrics endpoint.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A scratch directory every user may enter (a least-privilege sensor runs as nobody), removed
/// first if a previous run left it.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lineage-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A copy of the test workload named `name` (`nginx`...) in `dir`: families match the executed
/// file's name, so what it spawns is a server's child.
pub fn fake_server(workload: &str, dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let server = dir.join(name);
    std::fs::copy(workload, &server).unwrap_or_else(|e| panic!("copy workload as {name}: {e}"));
    server
}

/// Config text that turns rate limiting off: each marker is its own alert anyway, but nothing
/// may be held back. The sink tests start their configs with it.
pub const NO_RATE_LIMIT: &str = "[rate_limit]\nwindow_secs = 0\n\n";

/// The fake server runs `sh -c` with a unique marker: exactly one server-spawned-shell alert.
pub fn marked_alert(server: &std::path::Path, marker: &str) {
    server_shell(server, &format!("echo {marker} >/dev/null")).expect("the fake server's shell");
}

/// The fake server runs `sh -c CMD` and exits: one server-spawned shell (with `cmd` as its
/// marker). A server that fails is an error.
pub fn server_shell(server: &std::path::Path, cmd: &str) -> Result<(), String> {
    let status = std::process::Command::new(server)
        .args(["shell", cmd])
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("run {}: {e}", server.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} shell {cmd:?}: {status}", server.display()))
    }
}

/// The file mechanisms this machine loads, each as the `capture.file_hooks` setting that pins
/// it: the syscall tracepoints always, fanotify where the kernel and privileges allow a
/// FAN_REPORT_DFID_NAME group (probed the way the sensor probes it, never by kernel version).
/// Every file test runs once per entry.
pub fn file_mechanisms() -> Vec<lineage_sensor::config::FileHooks> {
    use lineage_sensor::config::FileHooks;
    let mut out = vec![FileHooks::Tracepoint];
    // SAFETY: plain flags; the descriptor is closed right away.
    let fd = unsafe {
        libc::fanotify_init(
            libc::FAN_CLASS_NOTIF | libc::FAN_CLOEXEC | libc::FAN_REPORT_DFID_NAME,
            libc::O_RDONLY as libc::c_uint,
        )
    };
    if fd >= 0 {
        // SAFETY: our own descriptor.
        unsafe { libc::close(fd) };
        out.push(FileHooks::Fanotify);
    } else {
        eprintln!(
            "fanotify refused here ({}): file tests run on the syscall tracepoints only",
            std::io::Error::last_os_error()
        );
    }
    out
}

/// The `[capture]` table that pins `mechanism`, to put at the head of a sensor.toml.
pub fn file_hooks_toml(mechanism: lineage_sensor::config::FileHooks) -> String {
    let name = serde_json::to_value(mechanism)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    format!("[capture]\nfile_hooks = \"{name}\"\n")
}
