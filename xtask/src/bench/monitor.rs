//! The monitors compared: none, lineage-sensor, auditd and bpftrace. Each is started fresh for
//! one measurement and stopped after it; dropping a [`Running`] monitor stops it and undoes what
//! it changed on the machine (audit rules, audit enabled flag and backlog limit).

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde::Serialize;

use super::{build::Binaries, proc_stat};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MonitorKind {
    #[default]
    None,
    Sensor,
    Auditd,
    Bpftrace,
}

impl MonitorKind {
    pub const ALL: [MonitorKind; 4] = [
        MonitorKind::None,
        MonitorKind::Sensor,
        MonitorKind::Auditd,
        MonitorKind::Bpftrace,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MonitorKind::None => "none",
            MonitorKind::Sensor => "lineage-sensor",
            MonitorKind::Auditd => "auditd",
            MonitorKind::Bpftrace => "bpftrace",
        }
    }
}

/// What a monitor cost and missed during one workload run; `None` where it cannot tell.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MonitorStats {
    pub lost: Option<u64>,
    /// Events the monitor received (the sensor's events_total).
    pub events: Option<u64>,
    pub cpu_secs: Option<f64>,
    pub peak_rss_kib: Option<u64>,
    /// The sensor's hook families and their mechanisms (`family=mechanism, ...`) and how many
    /// syscall tracepoints it attached, from its metrics.
    pub hooks: Option<String>,
    pub syscall_tracepoints: Option<u64>,
}

/// Audit rules the bench adds, in auditctl's syntax (after `-a` / `-d`): Debian's classic
/// execve watch plus connect, both tagged so only these are ever removed.
const AUDIT_RULES: [&[&str]; 2] = [
    &[
        "always,exit",
        "-F",
        "arch=b64",
        "-S",
        "execve",
        "-k",
        "lineage-bench",
    ],
    &[
        "always,exit",
        "-F",
        "arch=b64",
        "-S",
        "connect",
        "-k",
        "lineage-bench",
    ],
];
/// Debian's audit.rules sets this; the kernel's own default (64) drops records at once.
const AUDIT_BACKLOG: &str = "8192";

/// The same exec and connect fields the sensor records, on tracepoints only (no kprobes here).
const BPFTRACE_SCRIPT: &str = r#"
BEGIN { printf("ready\n"); }
tracepoint:syscalls:sys_enter_execve {
  printf("exec ts=%llu pid=%d tid=%d ppid=%d uid=%d gid=%d comm=%s exe=%s argv=",
    nsecs, pid, tid, curtask->real_parent->tgid, uid, gid, comm, str(args->filename));
  join(args->argv);
}
tracepoint:syscalls:sys_enter_connect {
  $sa = (struct sockaddr_in *)args->uservaddr;
  if ($sa->sin_family == 2) {
    printf("connect ts=%llu pid=%d tid=%d uid=%d daddr=%s dport=%d\n",
      nsecs, pid, tid, uid, ntop(2, $sa->sin_addr.s_addr), bswap($sa->sin_port));
  }
}
tracepoint:syscalls:sys_exit_connect { printf("connect_ret pid=%d tid=%d ret=%d\n", pid, tid, args->ret); }
"#;

pub struct Running {
    kind: MonitorKind,
    dir: tempfile::TempDir,
    child: Option<Child>,
    metrics_port: u16,
    audit_restore: Option<AuditStatus>,
    cpu_at_begin: Option<f64>,
    lost_at_begin: Option<u64>,
    events_at_begin: Option<u64>,
}

/// Options that only the latency measurement changes.
#[derive(Default)]
pub struct SensorConfig<'a> {
    /// TOML lines added to the file sink's table.
    pub sink_extra: &'a str,
    /// TOML appended to the bench's config.
    pub extra: &'a str,
}

pub fn start(kind: MonitorKind, bins: &Binaries) -> anyhow::Result<Running> {
    start_with(kind, bins, &SensorConfig::default())
}

pub fn start_with(
    kind: MonitorKind,
    bins: &Binaries,
    sensor_config: &SensorConfig,
) -> anyhow::Result<Running> {
    let dir = tempfile::Builder::new()
        .prefix("lineage-bench-")
        .tempdir()
        .context("creating a temp dir")?;
    let mut running = Running {
        kind,
        dir,
        child: None,
        metrics_port: 0,
        audit_restore: None,
        cpu_at_begin: None,
        lost_at_begin: None,
        events_at_begin: None,
    };
    match kind {
        MonitorKind::None => {}
        MonitorKind::Sensor => running.start_sensor(&bins.sensor, sensor_config)?,
        MonitorKind::Auditd => running.start_auditd()?,
        MonitorKind::Bpftrace => running.start_bpftrace()?,
    }
    Ok(running)
}

impl Running {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The file the sensor writes its alerts to.
    pub fn alerts_path(&self) -> PathBuf {
        self.dir.path().join("alerts.ndjson")
    }

    /// Marks the start of the workload: counters are read relative to here.
    pub fn begin(&mut self) {
        if let Some(pid) = self.pid() {
            proc_stat::reset_peak_rss(pid);
            self.cpu_at_begin = proc_stat::cpu_seconds(pid);
        }
        match self.kind {
            MonitorKind::Sensor => {
                let m = self.sensor_metrics();
                self.lost_at_begin = m.as_ref().map(|m| m.lost);
                self.events_at_begin = m.as_ref().map(|m| m.events);
            }
            MonitorKind::Auditd => self.lost_at_begin = AuditStatus::read().map(|s| s.lost),
            _ => {}
        }
    }

    /// Ends the workload: lets the monitor catch up, reads its counters, then stops it.
    pub fn finish(mut self) -> anyhow::Result<MonitorStats> {
        if self.kind == MonitorKind::None {
            return Ok(MonitorStats::default());
        }
        self.settle();
        let pid = self.pid();
        let mut stats = MonitorStats {
            cpu_secs: pid
                .and_then(proc_stat::cpu_seconds)
                .zip(self.cpu_at_begin)
                .map(|(now, then)| now - then),
            peak_rss_kib: pid.and_then(|p| proc_stat::status_kib(p, "VmHWM")),
            ..MonitorStats::default()
        };
        match self.kind {
            MonitorKind::Sensor => {
                if let Some(m) = self.sensor_metrics() {
                    stats.lost = self.lost_at_begin.map(|b| m.lost.saturating_sub(b));
                    stats.events = self.events_at_begin.map(|b| m.events.saturating_sub(b));
                    stats.hooks = Some(m.hooks);
                    stats.syscall_tracepoints = Some(m.syscall_tracepoints);
                }
            }
            MonitorKind::Auditd => {
                stats.lost = AuditStatus::read()
                    .zip(self.lost_at_begin)
                    .map(|(s, b)| s.lost.saturating_sub(b));
            }
            MonitorKind::Bpftrace => {
                self.stop();
                stats.lost = Some(self.bpftrace_lost());
            }
            MonitorKind::None => {}
        }
        self.stop();
        Ok(stats)
    }

    /// Waits until the monitor has gone quiet (its CPU time stops growing), at most 5 s: work
    /// it still does for the workload is part of its cost.
    fn settle(&self) {
        let Some(pid) = self.pid() else { return };
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut last = proc_stat::cpu_seconds(pid);
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            let now = proc_stat::cpu_seconds(pid);
            if now == last {
                return;
            }
            last = now;
        }
    }

    fn start_sensor(&mut self, sensor: &Path, config: &SensorConfig) -> anyhow::Result<()> {
        let dir = self.dir.path();
        let config_path = dir.join("sensor.toml");
        std::fs::write(
            &config_path,
            format!(
                "[incidents]\nstate_file = {state:?}\n\n[output]\nspool_dir = {spool:?}\n\n[[output.sinks]]\ntype = \"file\"\npath = {alerts:?}\n{sink_extra}\n{extra}",
                state = dir.join("incidents.json"),
                spool = dir.join("spool"),
                alerts = self.alerts_path(),
                sink_extra = config.sink_extra,
                extra = config.extra,
            ),
        )?;
        self.metrics_port = free_port()?;
        let log = File::create(dir.join("sensor.log"))?;
        let child = Command::new(sensor)
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{}", self.metrics_port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", sensor.display()))?;
        self.child = Some(child);
        let ready = format!("http://127.0.0.1:{}/readyz", self.metrics_port);
        self.wait_until("lineage-sensor ready", Duration::from_secs(60), || {
            ureq::get(&ready).call().is_ok()
        })
        .with_context(|| self.log_tail("sensor.log"))
    }

    fn start_auditd(&mut self) -> anyhow::Result<()> {
        let before = AuditStatus::read().context("auditctl -s")?;
        if before.pid != 0 {
            bail!(
                "an audit daemon (pid {}) is already running; the bench leaves it alone: stop it first",
                before.pid
            );
        }
        let dir = self.dir.path();
        // Debian's own configuration, logging into the temp dir and never suspending on a full
        // disk (a suspended auditd would make the numbers meaningless, not safer).
        let debian = std::fs::read_to_string("/etc/audit/auditd.conf").unwrap_or_default();
        let mut conf = String::new();
        for line in debian.lines() {
            let key = line.split('=').next().unwrap_or("").trim();
            let replaced = match key {
                "log_file" => format!("log_file = {}", dir.join("audit.log").display()),
                "space_left" => "space_left = 2".into(),
                "admin_space_left" => "admin_space_left = 1".into(),
                k if k.ends_with("_action") && k != "overflow_action" => format!("{k} = IGNORE"),
                _ => line.to_owned(),
            };
            conf.push_str(&replaced);
            conf.push('\n');
        }
        std::fs::write(dir.join("auditd.conf"), conf)?;
        let out = File::create(dir.join("auditd.out"))?;
        let child = Command::new("auditd")
            .arg("-n")
            .arg("-c")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting auditd")?;
        let pid = child.id();
        self.child = Some(child);
        // From here on, Drop restores the flags even if a later step fails.
        self.audit_restore = Some(before);
        self.wait_until("auditd registered", Duration::from_secs(20), || {
            AuditStatus::read().is_some_and(|s| s.pid == pid)
        })
        .with_context(|| self.log_tail("auditd.out"))?;
        crate::cmd::run(
            Command::new("auditctl")
                .args(["-b", AUDIT_BACKLOG])
                .stdout(Stdio::null()),
        )?;
        for rule in AUDIT_RULES {
            crate::cmd::run(
                Command::new("auditctl")
                    .arg("-a")
                    .args(rule)
                    .stdout(Stdio::null()),
            )?;
        }
        Ok(())
    }

    fn start_bpftrace(&mut self) -> anyhow::Result<()> {
        let dir = self.dir.path();
        let script = dir.join("trace.bt");
        std::fs::write(&script, BPFTRACE_SCRIPT)?;
        let out = dir.join("trace.out");
        let child = Command::new("bpftrace")
            .arg(&script)
            // The longest strings bpftrace allows, so exe paths are not cut at 64 bytes.
            .env("BPFTRACE_STRLEN", "200")
            .stdin(Stdio::null())
            .stdout(File::create(&out)?)
            .stderr(File::create(dir.join("trace.err"))?)
            .spawn()
            .context("starting bpftrace")?;
        self.child = Some(child);
        self.wait_until("bpftrace attached", Duration::from_secs(120), || {
            std::fs::read_to_string(&out).is_ok_and(|s| s.contains("ready"))
        })
        .with_context(|| self.log_tail("trace.err"))
    }

    fn wait_until(
        &mut self,
        what: &str,
        within: Duration,
        mut done: impl FnMut() -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if done() {
                return Ok(());
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("waiting for {what}: the monitor exited ({status})");
            }
            if Instant::now() > deadline {
                bail!("waiting for {what}: not within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "{name}: {}",
            lines[lines.len().saturating_sub(20)..].join("\n")
        )
    }

    fn sensor_metrics(&self) -> Option<SensorMetrics> {
        sensor_metrics(self.metrics_port)
    }

    fn bpftrace_lost(&self) -> u64 {
        let mut lost = 0;
        for name in ["trace.out", "trace.err"] {
            let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            for line in text.lines() {
                // bpftrace reports "Lost N events" when its perf buffers overflowed.
                if let Some(n) = line
                    .trim()
                    .strip_prefix("Lost ")
                    .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
                {
                    lost += n;
                }
            }
        }
        lost
    }

    /// Stops the monitor the way an operator would (SIGTERM; SIGINT for bpftrace, which then
    /// prints its totals) and undoes its changes. Idempotent.
    fn stop(&mut self) {
        if self.kind == MonitorKind::Auditd && self.audit_restore.is_some() {
            for rule in AUDIT_RULES {
                let _ = Command::new("auditctl")
                    .arg("-d")
                    .args(rule)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        if let Some(mut child) = self.child.take() {
            let signal = if self.kind == MonitorKind::Bpftrace {
                libc::SIGINT
            } else {
                libc::SIGTERM
            };
            // SAFETY: signalling our own child, which has not been reaped yet.
            unsafe { libc::kill(child.id() as i32, signal) };
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        if let Some(before) = self.audit_restore.take() {
            let _ = Command::new("auditctl")
                .args(["-b", &before.backlog_limit.to_string()])
                .stdout(Stdio::null())
                .status();
            let _ = Command::new("auditctl")
                .args(["-e", &before.enabled.to_string()])
                .stdout(Stdio::null())
                .status();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct SensorMetrics {
    pub lost: u64,
    pub events: u64,
    pub processes: u64,
    /// `family=mechanism` of every `lineage_sensor_hook_info` series, comma-separated.
    pub hooks: String,
    pub syscall_tracepoints: u64,
    /// Execs held at exec by `[prevention] mode = "enforce"`, however the hold ended.
    pub held: u64,
}

/// The sensor's counters from its Prometheus endpoint (sums over labels).
pub fn sensor_metrics(port: u16) -> Option<SensorMetrics> {
    let text = ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()?;
    let sum = |name: &str| -> u64 {
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    let label = |line: &str, name: &str| -> Option<String> {
        let start = line.find(&format!("{name}=\""))? + name.len() + 2;
        let len = line[start..].find('"')?;
        Some(line[start..start + len].to_owned())
    };
    let hooks: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("lineage_sensor_hook_info{"))
        .filter_map(|l| {
            Some(format!(
                "{}={}",
                label(l, "family")?,
                label(l, "mechanism")?
            ))
        })
        .collect();
    Some(SensorMetrics {
        lost: sum("lineage_sensor_events_lost_total"),
        events: sum("lineage_sensor_events_total"),
        processes: sum("lineage_sensor_processes_tracked"),
        hooks: hooks.join(", "),
        syscall_tracepoints: sum("lineage_sensor_syscall_tracepoints_attached"),
        held: sum("lineage_sensor_exec_holds_total"),
    })
}

impl Running {
    pub fn metrics(&self) -> Option<SensorMetrics> {
        self.sensor_metrics()
    }
}

/// The fields of `auditctl -s` the bench reads and restores.
struct AuditStatus {
    enabled: u32,
    pid: u32,
    backlog_limit: u32,
    lost: u64,
}

impl AuditStatus {
    fn read() -> Option<Self> {
        let text = crate::cmd::output(Command::new("auditctl").arg("-s"))?;
        let field = |name: &str| -> Option<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        Some(Self {
            enabled: u32::try_from(field("enabled")?).ok()?,
            pid: u32::try_from(field("pid")?).ok()?,
            backlog_limit: u32::try_from(field("backlog_limit")?).ok()?,
            lost: field("lost")?,
        })
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
