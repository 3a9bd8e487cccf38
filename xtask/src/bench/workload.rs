//! The workloads: exec and connect storms from tests/src/bin/workload.rs, and nginx under wrk.
//! Each run is timed under every monitor, round after round, the monitors' order rotating.

use std::{
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, bail};

use super::{
    Options,
    build::Binaries,
    monitor::{self, MonitorKind},
    nginx::Nginx,
    proc_stat,
    report::{Sample, WorkloadResult},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    ExecStorm,
    ShStorm,
    TcpStorm,
    UdpStorm,
    Nginx,
}

impl Workload {
    pub const ALL: [Workload; 5] = [
        Workload::ExecStorm,
        Workload::ShStorm,
        Workload::TcpStorm,
        Workload::UdpStorm,
        Workload::Nginx,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::ExecStorm => "exec storm",
            Workload::ShStorm => "sh -c chains",
            Workload::TcpStorm => "TCP connect storm",
            Workload::UdpStorm => "UDP connect storm",
            Workload::Nginx => "nginx + wrk",
        }
    }

    /// (what one operation is, how many a run does).
    fn ops(self, options: &Options) -> (&'static str, usize) {
        match self {
            Workload::ExecStorm => ("fork+exec of /bin/true", options.execs),
            Workload::ShStorm => ("sh -c 'sh -c true' (3 fork+exec)", options.chains),
            Workload::TcpStorm => ("TCP connect+accept on loopback", options.connects),
            Workload::UdpStorm => ("UDP socket+connect on loopback", options.udp_connects),
            Workload::Nginx => ("HTTP GET of a 612-byte file, 8 connections", 0),
        }
    }
}

pub fn measure(
    workload: Workload,
    bins: &Binaries,
    options: &Options,
) -> anyhow::Result<WorkloadResult> {
    let (op, count) = workload.ops(options);
    eprintln!("bench: {} ({} rounds)", workload.name(), options.rounds);
    let nginx = match workload {
        Workload::Nginx => Some(Nginx::start()?),
        _ => None,
    };
    let mut result = WorkloadResult::new(workload.name(), op, count);
    result.load_1m_at_start = proc_stat::load_average_1m();
    // One unmonitored run first, not counted: it warms caches and takes the first-run costs
    // (page cache, allocator, socket tables) off whichever monitor would come first.
    match &nginx {
        Some(nginx) => nginx.load(1).map(|_| ())?,
        None => run_driver(workload, bins, count).map(|_| ())?,
    }
    let monitors = MonitorKind::ALL;
    for round in 0..options.rounds {
        for i in 0..monitors.len() {
            let kind = monitors[(round + i) % monitors.len()];
            let mut running =
                monitor::start(kind, bins).with_context(|| format!("starting {}", kind.name()))?;
            // Let the monitor finish its own start-up work (the sensor's /proc scan) first.
            std::thread::sleep(std::time::Duration::from_millis(500));
            running.begin();
            let mut sample = match (&nginx, workload) {
                (Some(nginx), _) => nginx.load(options.nginx_secs)?,
                (None, _) => run_driver(workload, bins, count)?,
            };
            sample.monitor = kind;
            sample.round = round;
            sample.stats = running.finish()?;
            eprintln!("  round {round} {:<15} {}", kind.name(), sample.brief());
            result.samples.push(sample);
        }
    }
    result.summarise();
    Ok(result)
}

/// Runs the workload driver once; its wall time is the measurement.
fn run_driver(workload: Workload, bins: &Binaries, count: usize) -> anyhow::Result<Sample> {
    let sub = match workload {
        Workload::ExecStorm => "storm",
        Workload::ShStorm => "sh-storm",
        Workload::TcpStorm => "tcp-storm",
        Workload::UdpStorm => "udp-storm",
        Workload::Nginx => bail!("nginx has no driver"),
    };
    let started = Instant::now();
    let status = Command::new(&bins.workload)
        .args([sub, &count.to_string()])
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("running workload {sub}"))?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("workload {sub} {count} failed: {status}");
    }
    Ok(Sample {
        seconds: Some(seconds),
        ..Sample::default()
    })
}
