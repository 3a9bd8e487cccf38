//! `cargo xtask bench`: what the sensor costs, side by side with auditd and bpftrace.
//!
//! A benchmark, not a test: it measures and reports, and never fails on a timing. Every workload
//! runs under every monitor in turn, round after round (A B C D, B C D A, ...), so slow drifts of
//! a shared machine (other builds, thermal) spread over all monitors instead of biasing one.
//! Medians per monitor are compared with the unmonitored median of the same workload.

mod build;
mod chart;
mod delivery;
mod hold;
mod latency;
mod machine;
mod monitor;
mod nginx;
mod proc_stat;
mod replay;
mod report;
mod results;
mod rss;
mod stats;
mod tar_tree;
mod workload;

use std::path::PathBuf;

use anyhow::bail;

use crate::{apt, cmd, setup};

use report::Report;
use workload::Workload;

#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Rounds of every monitor over every workload (medians are taken over them).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// fork+exec of /bin/true per exec-storm run.
    #[arg(long, default_value_t = 3000)]
    pub execs: usize,
    /// Shell chains per sh-storm run (each is three fork+exec).
    #[arg(long, default_value_t = 800)]
    pub chains: usize,
    /// Connects per TCP connect-storm run.
    #[arg(long, default_value_t = 20000)]
    pub connects: usize,
    /// Connects per UDP connect-storm run (far cheaper than TCP's, so more of them).
    #[arg(long, default_value_t = 100_000)]
    pub udp_connects: usize,
    /// Seconds of load per nginx run.
    #[arg(long, default_value_t = 4)]
    pub nginx_secs: u32,
    /// Single-byte reads of /dev/zero (each with a single-byte write to /dev/null) per
    /// syscall-tax run: a job made of nothing but cheap syscalls, so that a per-syscall cost of
    /// the monitor shows alone.
    #[arg(long, default_value_t = 1_000_000)]
    pub tax_bytes: usize,
    /// Small files in the tree that each tar-files run extracts.
    #[arg(long, default_value_t = 20_000)]
    pub files: usize,
    /// Events in the generated record that `replay` reads.
    #[arg(long, default_value_t = 1_000_000)]
    pub replay_events: usize,
    /// Alerts handed to the three sinks per delivery run.
    #[arg(long, default_value_t = 100_000)]
    pub delivery_alerts: u64,
    /// Live processes for the RSS measurement.
    #[arg(long, default_value_t = 10_000)]
    pub tracked: usize,
    /// Server-spawned shells timed from kernel event to written alert.
    #[arg(long, default_value_t = 200)]
    pub alerts: usize,
    /// Execs below a server per execution-prevention run (held and continued in enforce).
    #[arg(long, default_value_t = 2000)]
    pub held_execs: usize,
    /// A smoke run: one round and small counts (numbers are not meaningful).
    #[arg(long)]
    pub quick: bool,
    /// Run only this workload or measurement (repeatable); everything when not given.
    #[arg(long, value_enum)]
    pub only: Vec<Part>,
    /// Where the markdown, JSON and SVG go.
    #[arg(long, default_value = "bench/results")]
    pub out: PathBuf,
}

/// What `--only` selects: one workload, or one of the measurements that follow them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    ExecStorm,
    ShChains,
    TcpStorm,
    UdpStorm,
    Nginx,
    TarFiles,
    SyscallTax,
    Latency,
    Replay,
    Rss,
    Delivery,
    Hold,
}

impl Options {
    fn effective(mut self) -> Self {
        if self.quick {
            self.rounds = 1;
            self.execs = self.execs.min(500);
            self.chains = self.chains.min(100);
            self.connects = self.connects.min(2000);
            self.udp_connects = self.udp_connects.min(10_000);
            self.nginx_secs = self.nginx_secs.min(1);
            self.files = self.files.min(2000);
            self.tax_bytes = self.tax_bytes.min(100_000);
            self.replay_events = self.replay_events.min(100_000);
            self.delivery_alerts = self.delivery_alerts.min(10_000);
            self.tracked = self.tracked.min(1000);
            self.alerts = self.alerts.min(20);
            self.held_execs = self.held_execs.min(200);
        }
        self.rounds = self.rounds.max(1);
        self
    }

    fn runs(&self, part: Part) -> bool {
        self.only.is_empty() || self.only.contains(&part)
    }
}

pub fn bench(options: Options) -> anyhow::Result<()> {
    // `cargo xtask` runs through `cargo run`, which puts target/ and toolchain directories in
    // LD_LIBRARY_PATH. Inherited by the workloads, it made every exec of /bin/true look for its
    // libraries there first: 42 openat calls instead of 2, a baseline 27% slower and an exec
    // cost no production host has. Nothing the bench starts needs it.
    // SAFETY: called first thing, while xtask has no other thread that could read the
    // environment.
    unsafe { std::env::remove_var("LD_LIBRARY_PATH") };
    let options = options.effective();
    if !cmd::is_root() {
        bail!(
            "bench loads eBPF programs and audit rules: run it as root (sudo -E cargo xtask bench)"
        );
    }
    setup::setup()?;
    apt::ensure(&["auditd", "bpftrace", "nginx", "wrk", "util-linux"])?;
    let bins = build::release_binaries()?;
    let mut report = Report::new(machine::describe(), &options);

    let out = if options.out.is_absolute() {
        options.out.clone()
    } else {
        cmd::workspace_root().join(&options.out)
    };
    std::fs::create_dir_all(&out)?;

    for workload in Workload::ALL {
        if !options.runs(workload.part()) {
            continue;
        }
        report
            .workloads
            .push(workload::measure(workload, &bins, &options)?);
        // Partial results survive an interrupted run.
        report.write(&out)?;
    }
    if options.runs(Part::Latency) {
        for server in latency::Server::ALL {
            for sink in latency::SINKS {
                report
                    .latency
                    .push(latency::measure(&bins, options.alerts, sink, server)?);
            }
        }
    }
    if options.runs(Part::Hold) {
        report.hold = Some(hold::measure(&bins, options.held_execs, options.rounds)?);
    }
    if options.runs(Part::Replay) {
        report.replay = Some(replay::measure(&bins, options.replay_events)?);
    }
    if options.runs(Part::Delivery) {
        report.delivery = Some(delivery::measure(&bins, options.delivery_alerts)?);
    }
    if options.runs(Part::Rss) {
        report.rss = Some(rss::measure(&bins, options.tracked)?);
    }
    report.write(&out)?;
    eprintln!("\n{}", report.markdown());
    eprintln!("bench: results in {}", out.display());
    Ok(())
}
