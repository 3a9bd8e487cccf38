//! The workloads: exec and connect storms from tests/src/bin/workload.rs, nginx under wrk, and
//! tar extracting small files.
//! Each run is timed under every monitor, round after round, the monitors' order rotating.

use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use super::{
    Options, Part,
    build::Binaries,
    monitor::{self, MonitorKind},
    nginx::Nginx,
    proc_stat,
    results::{Sample, WorkloadResult},
    tar_tree::{self, TarTree},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    ExecStorm,
    ShStorm,
    TcpStorm,
    UdpStorm,
    Nginx,
    TarFiles,
    SyscallTax,
}

impl Workload {
    pub const ALL: [Workload; 7] = [
        Workload::ExecStorm,
        Workload::ShStorm,
        Workload::TcpStorm,
        Workload::UdpStorm,
        Workload::Nginx,
        Workload::TarFiles,
        Workload::SyscallTax,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::ExecStorm => "exec storm",
            Workload::ShStorm => "sh -c chains",
            Workload::TcpStorm => "TCP connect storm",
            Workload::UdpStorm => "UDP connect storm",
            Workload::Nginx => "nginx + wrk",
            Workload::TarFiles => "tar -x small files",
            Workload::SyscallTax => "syscall tax (dd bs=1)",
        }
    }

    pub fn part(self) -> Part {
        match self {
            Workload::ExecStorm => Part::ExecStorm,
            Workload::ShStorm => Part::ShChains,
            Workload::TcpStorm => Part::TcpStorm,
            Workload::UdpStorm => Part::UdpStorm,
            Workload::Nginx => Part::Nginx,
            Workload::TarFiles => Part::TarFiles,
            Workload::SyscallTax => Part::SyscallTax,
        }
    }

    /// (what one operation is, how many a run does).
    fn ops(self, options: &Options, tree: Option<&TarTree>) -> (String, usize) {
        let (op, count) = match self {
            Workload::ExecStorm => ("fork+exec of /bin/true", options.execs),
            Workload::ShStorm => ("sh -c 'sh -c true' (3 fork+exec)", options.chains),
            Workload::TcpStorm => ("TCP connect+accept on loopback", options.connects),
            Workload::UdpStorm => ("UDP socket+connect on loopback", options.udp_connects),
            Workload::Nginx => ("HTTP GET of a 612-byte file, 8 connections", 0),
            Workload::SyscallTax => (
                "1-byte read of /dev/zero + 1-byte write to /dev/null (dd bs=1)",
                options.tax_bytes,
            ),
            Workload::TarFiles => {
                let place = tree.map_or_else(String::new, TarTree::place);
                return (
                    format!(
                        "file created by one tar -x ({} B each, {} to a directory, on {place}, outside every watched path)",
                        tar_tree::FILE_BYTES,
                        tar_tree::PER_DIR
                    ),
                    options.files,
                );
            }
        };
        (op.to_owned(), count)
    }
}

pub fn measure(
    workload: Workload,
    bins: &Binaries,
    options: &Options,
) -> anyhow::Result<WorkloadResult> {
    eprintln!("bench: {} ({} rounds)", workload.name(), options.rounds);
    let nginx = match workload {
        Workload::Nginx => Some(Nginx::start()?),
        _ => None,
    };
    let tree = match workload {
        Workload::TarFiles => Some(TarTree::create(options.files)?),
        _ => None,
    };
    let (op, count) = workload.ops(options, tree.as_ref());
    let mut result = WorkloadResult::new(workload.name(), &op, count);
    result.load_1m_at_start = proc_stat::load_average_1m();
    // One unmonitored run first, not counted: it warms caches and takes the first-run costs
    // (page cache, allocator, socket tables) off whichever monitor would come first.
    match (&nginx, &tree) {
        (Some(nginx), _) => nginx.load(1).map(|_| ())?,
        (None, Some(tree)) => tree.extract().map(|_| ())?,
        (None, None) => run_driver(workload, bins, count).map(|_| ())?,
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
            let mut extracted = None;
            let mut sample = match (&nginx, &tree) {
                (Some(nginx), _) => nginx.load(options.nginx_secs)?,
                (None, Some(tree)) => {
                    let (sample, dir) = tree.extract()?;
                    extracted = Some(dir);
                    sample
                }
                (None, None) => run_driver(workload, bins, count)?,
            };
            sample.monitor = kind;
            sample.round = round;
            sample.stats = running.finish()?;
            // Removed with no monitor running: deleting the tree is no part of the workload.
            drop(extracted);
            eprintln!("  round {round} {:<15} {}", kind.name(), sample.brief());
            result.samples.push(sample);
        }
    }
    result.summarise();
    Ok(result)
}

/// Runs the workload driver once; its wall time is the measurement.
fn run_driver(workload: Workload, bins: &Binaries, count: usize) -> anyhow::Result<Sample> {
    if workload == Workload::SyscallTax {
        return syscall_tax(count);
    }
    let sub = match workload {
        Workload::ExecStorm => "storm",
        Workload::ShStorm => "sh-storm",
        Workload::TcpStorm => "tcp-storm",
        Workload::UdpStorm => "udp-storm",
        Workload::Nginx | Workload::TarFiles | Workload::SyscallTax => {
            bail!("{} has no driver", workload.name())
        }
    };
    let run = proc_stat::run_timed(
        Command::new(&bins.workload)
            .args([sub, &count.to_string()])
            .stdout(Stdio::null()),
    )
    .with_context(|| format!("running workload {sub}"))?;
    if !run.success {
        bail!("workload {sub} {count} failed");
    }
    Ok(Sample {
        seconds: Some(run.wall_secs),
        workload_cpu_secs: Some(run.cpu_secs),
        ..Sample::default()
    })
}

/// Two syscalls per byte and nothing else: no exec, no connect, no file the sensor watches. A
/// monitor whose hooks make every syscall of every task take the tracing slow path (any
/// `syscalls:*` tracepoint attached) shows its per-syscall tax here and only here.
fn syscall_tax(bytes: usize) -> anyhow::Result<Sample> {
    let run = proc_stat::run_timed(
        Command::new("dd")
            .args([
                "if=/dev/zero",
                "of=/dev/null",
                "bs=1",
                &format!("count={bytes}"),
                "status=none",
            ])
            .stdout(Stdio::null()),
    )
    .context("running dd")?;
    if !run.success {
        bail!("dd of {bytes} bytes failed");
    }
    Ok(Sample {
        seconds: Some(run.wall_secs),
        workload_cpu_secs: Some(run.cpu_secs),
        ..Sample::default()
    })
}
