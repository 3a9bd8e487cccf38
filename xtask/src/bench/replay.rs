//! Replay throughput: `lineage-sensor replay` over a generated record of process lifecycles
//! (fork, exec, sometimes connect, exit) below a shell, with a few shells below an nginx worker
//! so the rules fire too. Also runs records for the memory measurement.

use std::{
    fs::File,
    io::{BufWriter, Write as _},
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, bail};
use serde::Serialize;

use super::{build::Binaries, stats::median};

const RUNS: usize = 3;
const T0: u64 = 1_000_000_000_000;
/// Event spacing: 1 ms, a busy host. It sets how many exited processes are still inside the
/// table's 120 s grace period (about 34,000 here), so it shapes the table's cost.
const STEP: u64 = 1_000_000;
const SHELL: u32 = 900;
const NGINX_WORKER: u32 = 801;
const PROGRAMS: [(&str, &str, &[&str]); 5] = [
    ("ls", "/usr/bin/ls", &["ls", "-la", "/var/www/html"]),
    ("cat", "/usr/bin/cat", &["cat", "/etc/hostname"]),
    ("grep", "/usr/bin/grep", &["grep", "-r", "TODO", "src/"]),
    ("git", "/usr/bin/git", &["git", "status", "--porcelain"]),
    (
        "python3",
        "/usr/bin/python3",
        &["python3", "-m", "http.server"],
    ),
];

#[derive(Debug, Clone, Serialize)]
pub struct ReplayResult {
    pub events: usize,
    pub file_bytes: u64,
    pub runs: usize,
    /// Events per CPU second of the (single-threaded) replay: what one core sustains.
    pub events_per_sec: f64,
    pub ns_per_event: f64,
    pub events_per_wall_sec: f64,
    pub alerts: u64,
    pub peak_rss_kib: u64,
}

impl ReplayResult {
    pub fn markdown(&self) -> String {
        format!(
            "`lineage-sensor replay` over {} generated events ({:.0} MB of NDJSON: fork, exec, \
             connect every 4th process, exit, 1 ms apart; 1 in 1000 a shell below an nginx worker), median of \
             {} runs: **{:.0} events/s** per CPU second ({:.0} ns/event; {:.0} events/s wall clock), \
             {} alerts written, peak RSS {:.1} MB.",
            self.events,
            self.file_bytes as f64 / 1e6,
            self.runs,
            self.events_per_sec,
            self.ns_per_event,
            self.events_per_wall_sec,
            self.alerts,
            self.peak_rss_kib as f64 / 1024.0
        )
    }
}

pub fn measure(bins: &Binaries, events: usize) -> anyhow::Result<ReplayResult> {
    eprintln!("bench: replay throughput ({events} events)");
    let dir = tempfile::Builder::new()
        .prefix("lineage-bench-replay-")
        .tempdir()?;
    let record = dir.path().join("record.ndjson");
    let written = write_lifecycles(&record, events)?;
    let mut cpu = Vec::new();
    let mut wall = Vec::new();
    let mut last = None;
    for _ in 0..RUNS {
        let run = run_replay(&bins.sensor, &record, dir.path())?;
        cpu.push(run.cpu_secs);
        wall.push(run.wall_secs);
        last = Some(run);
    }
    let run = last.context("no replay run")?;
    let cpu = median(cpu.into_iter()).unwrap_or(f64::NAN);
    let wall = median(wall.into_iter()).unwrap_or(f64::NAN);
    Ok(ReplayResult {
        events: written,
        file_bytes: std::fs::metadata(&record)?.len(),
        runs: RUNS,
        events_per_sec: written as f64 / cpu,
        ns_per_event: cpu * 1e9 / written as f64,
        events_per_wall_sec: written as f64 / wall,
        alerts: run.alerts,
        peak_rss_kib: run.peak_rss_kib,
    })
}

pub struct ReplayRun {
    pub cpu_secs: f64,
    pub wall_secs: f64,
    pub peak_rss_kib: u64,
    pub alerts: u64,
}

/// One `lineage-sensor replay`, its CPU time and peak RSS from the kernel's rusage of the child.
pub fn run_replay(sensor: &Path, record: &Path, dir: &Path) -> anyhow::Result<ReplayRun> {
    let alerts_path = dir.join("alerts.ndjson");
    let started = Instant::now();
    let child = Command::new(sensor)
        .arg("replay")
        .arg(record)
        .stdin(Stdio::null())
        .stdout(File::create(&alerts_path)?)
        .stderr(File::create(dir.join("replay.log"))?)
        .spawn()
        .context("starting lineage-sensor replay")?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child, which std has not
    // reaped (Child is dropped below without waiting).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall_secs = started.elapsed().as_secs_f64();
    drop(child);
    if pid < 0 || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        let log = std::fs::read_to_string(dir.join("replay.log")).unwrap_or_default();
        bail!("lineage-sensor replay failed (status {status}): {log}");
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let alerts = std::fs::read(&alerts_path)?
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64;
    Ok(ReplayRun {
        cpu_secs: secs(usage.ru_utime) + secs(usage.ru_stime),
        wall_secs,
        // ru_maxrss is in KiB on Linux.
        peak_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        alerts,
    })
}

/// Writes the header and the processes every record starts with: a login shell and an nginx
/// master with one worker.
fn write_prelude(out: &mut impl std::io::Write) -> std::io::Result<u64> {
    writeln!(
        out,
        r#"{{"type":"header","format":1,"boot_wall_ns":1790000000000000000,"hostname":"bench"}}"#
    )?;
    let mut ts = T0;
    for (pid, ppid, comm, exe, argv) in [
        (SHELL, 1, "bash", "/usr/bin/bash", r#"["-bash"]"#),
        (
            800,
            1,
            "nginx",
            "/usr/sbin/nginx",
            r#"["nginx: master process /usr/sbin/nginx"]"#,
        ),
    ] {
        writeln!(
            out,
            r#"{{"type":"fork","ts_ns":{ts},"pid":{pid},"tid":{ppid},"ppid":{ppid},"start_ns":{ts},"uid":0,"gid":0,"comm":"init","cgroup_id":1}}"#
        )?;
        writeln!(
            out,
            r#"{{"type":"exec","ts_ns":{},"pid":{pid},"tid":{pid},"ppid":{ppid},"start_ns":{ts},"uid":0,"gid":0,"euid":0,"comm":"{comm}","exe":"{exe}","argv":{argv},"argv_truncated":false,"argv_bytes":20,"cgroup_id":1}}"#,
            ts + 1
        )?;
        ts += STEP;
    }
    writeln!(
        out,
        r#"{{"type":"fork","ts_ns":{ts},"pid":{NGINX_WORKER},"tid":800,"ppid":800,"start_ns":{ts},"uid":33,"gid":33,"comm":"nginx","cgroup_id":1}}"#
    )?;
    Ok(ts + STEP)
}

/// At least `events` events of short-lived processes; returns how many were written.
fn write_lifecycles(path: &Path, events: usize) -> anyhow::Result<usize> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut ts = write_prelude(&mut out)?;
    let mut written = 5;
    let mut pid = 1000u32;
    let mut i = 0usize;
    while written < events {
        // Pids wrap below pid_max, as on a real host; exited entries make way.
        pid = if pid >= 32_000 { 1000 } else { pid + 1 };
        let attack = i % 1000 == 999;
        let ppid = if attack { NGINX_WORKER } else { SHELL };
        let start = ts;
        writeln!(
            out,
            r#"{{"type":"fork","ts_ns":{ts},"pid":{pid},"tid":{ppid},"ppid":{ppid},"start_ns":{start},"uid":1000,"gid":1000,"comm":"bash","cgroup_id":1}}"#
        )?;
        ts += STEP;
        let (comm, exe, argv): (&str, &str, &[&str]) = if attack {
            ("sh", "/bin/sh", &["/bin/sh", "-c", "id"])
        } else {
            PROGRAMS[i % PROGRAMS.len()]
        };
        let argv_json = serde_json::to_string(argv)?;
        writeln!(
            out,
            r#"{{"type":"exec","ts_ns":{ts},"pid":{pid},"tid":{pid},"ppid":{ppid},"start_ns":{start},"uid":1000,"gid":1000,"euid":1000,"comm":"{comm}","exe":"{exe}","argv":{argv_json},"argv_truncated":false,"argv_bytes":{},"cgroup_id":1}}"#,
            argv.iter().map(|a| a.len() + 1).sum::<usize>()
        )?;
        ts += STEP;
        written += 3;
        if i.is_multiple_of(4) {
            writeln!(
                out,
                r#"{{"type":"connect","ts_ns":{ts},"pid":{pid},"tid":{pid},"uid":1000,"family":"inet","daddr":"10.0.{}.{}","dport":443,"proto":"tcp","ret":-115}}"#,
                (i / 250) % 250,
                i % 250
            )?;
            ts += STEP;
            written += 1;
        }
        writeln!(
            out,
            r#"{{"type":"exit","ts_ns":{ts},"pid":{pid},"start_ns":{start},"exit_code":0,"signal":0}}"#
        )?;
        ts += STEP;
        i += 1;
    }
    out.flush()?;
    Ok(written)
}

/// `live` processes forked below the shell that exec `sleep` and never exit.
pub fn write_live(path: &Path, live: usize) -> anyhow::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut ts = write_prelude(&mut out)?;
    for n in 0..live {
        let pid = 1000 + n as u32;
        writeln!(
            out,
            r#"{{"type":"fork","ts_ns":{ts},"pid":{pid},"tid":{SHELL},"ppid":{SHELL},"start_ns":{ts},"uid":1000,"gid":1000,"comm":"bash","cgroup_id":1}}"#
        )?;
        writeln!(
            out,
            r#"{{"type":"exec","ts_ns":{},"pid":{pid},"tid":{pid},"ppid":{SHELL},"start_ns":{ts},"uid":1000,"gid":1000,"euid":1000,"comm":"sleep","exe":"/usr/bin/sleep","argv":["sleep","600"],"argv_truncated":false,"argv_bytes":10,"cgroup_id":1}}"#,
            ts + 1
        )?;
        ts += STEP;
    }
    out.flush()?;
    Ok(())
}
