//! Results: medians and ratios per monitor, the targets' standing, and the markdown, JSON and
//! SVG files written under bench/results/.

use std::{fmt::Write as _, path::Path};

use serde::Serialize;

use super::{
    Options, Part, chart, delivery::DeliveryResult, hold::HoldResult, latency::LatencyResult,
    machine::Machine, monitor::MonitorKind, replay::ReplayResult, results::WorkloadResult,
    rss::RssResult,
};

#[derive(Debug, Clone, Serialize)]
pub struct RunOptions {
    pub rounds: usize,
    pub execs: usize,
    pub chains: usize,
    pub connects: usize,
    pub udp_connects: usize,
    pub nginx_secs: u32,
    pub files: usize,
    pub tax_bytes: usize,
    pub replay_events: usize,
    pub delivery_alerts: u64,
    pub tracked: usize,
    pub alerts: usize,
    pub quick: bool,
    /// `--only`: empty when everything ran.
    pub only: Vec<Part>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub target: String,
    pub value: String,
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub options: RunOptions,
    pub workloads: Vec<WorkloadResult>,
    pub latency: Vec<LatencyResult>,
    pub replay: Option<ReplayResult>,
    pub delivery: Option<DeliveryResult>,
    pub hold: Option<HoldResult>,
    pub rss: Option<RssResult>,
    pub targets: Vec<Target>,
}

impl Report {
    pub fn new(machine: Machine, o: &Options) -> Self {
        Self {
            machine,
            options: RunOptions {
                rounds: o.rounds,
                execs: o.execs,
                chains: o.chains,
                connects: o.connects,
                udp_connects: o.udp_connects,
                nginx_secs: o.nginx_secs,
                files: o.files,
                tax_bytes: o.tax_bytes,
                replay_events: o.replay_events,
                delivery_alerts: o.delivery_alerts,
                tracked: o.tracked,
                alerts: o.alerts,
                quick: o.quick,
                only: o.only.clone(),
            },
            workloads: Vec::new(),
            latency: Vec::new(),
            replay: None,
            delivery: None,
            hold: None,
            rss: None,
            targets: Vec::new(),
        }
    }

    pub fn write(&mut self, dir: &Path) -> anyhow::Result<()> {
        self.targets = self.targets();
        std::fs::write(
            dir.join("results.json"),
            serde_json::to_string_pretty(self)?,
        )?;
        std::fs::write(dir.join("results.md"), self.markdown())?;
        std::fs::write(
            dir.join("overhead.svg"),
            chart::overhead_svg(&self.workloads),
        )?;
        Ok(())
    }

    fn workload(&self, name: &str) -> Option<&WorkloadResult> {
        self.workloads.iter().find(|w| w.name == name)
    }

    fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        let overhead = |w: &str, k| {
            self.workload(w)
                .and_then(|w| w.summary_of(k))
                .and_then(|s| s.overhead_pct)
        };
        let exec = overhead("exec storm", MonitorKind::Sensor);
        let others =
            [MonitorKind::Auditd, MonitorKind::Bpftrace].map(|k| overhead("exec storm", k));
        targets.push(Target {
            target: "exec storm overhead <= 5%, below auditd and bpftrace".into(),
            value: format!(
                "{} (auditd {}, bpftrace {})",
                pct(exec),
                pct(others[0]),
                pct(others[1])
            ),
            met: exec.map(|e| e <= 5.0 && others.iter().all(|o| o.is_none_or(|o| e < o))),
        });
        for w in ["TCP connect storm", "UDP connect storm"] {
            let o = overhead(w, MonitorKind::Sensor);
            targets.push(Target {
                target: format!("{w} overhead <= 5%"),
                value: pct(o),
                met: o.map(|o| o <= 5.0),
            });
        }
        let lost = self
            .workload("exec storm")
            .and_then(|w| w.summary_of(MonitorKind::Sensor))
            .and_then(|s| s.lost_total);
        targets.push(Target {
            target: "zero events lost in the exec storm (default ring size)".into(),
            value: lost.map_or("n/a".into(), |l| format!("{l} lost")),
            met: lost.map(|l| l == 0),
        });
        // The default configuration is what the target is about; the worse of the two servers.
        let p99 = self
            .latency
            .iter()
            .filter(|l| l.sink == super::latency::SINKS[0].0)
            .filter_map(|l| l.p99_ms)
            .max_by(f64::total_cmp);
        targets.push(Target {
            target: "exec-to-alert p99 < 20 ms".into(),
            value: p99.map_or("n/a".into(), |p| format!("{p:.2} ms")),
            met: p99.map(|p| p < 20.0),
        });
        let rate = self.replay.as_ref().map(|r| r.events_per_sec);
        targets.push(Target {
            target: "replay >= 1,000,000 events/s on one core".into(),
            value: rate.map_or("n/a".into(), |r| format!("{r:.0} events/s")),
            met: rate.map(|r| r >= 1e6),
        });
        let rss = self.rss.as_ref().and_then(|r| r.live_peak_rss_kib);
        targets.push(Target {
            target: "RSS < 40 MB with 10,000 tracked processes (live sensor)".into(),
            value: rss.map_or("n/a".into(), |k| format!("{:.1} MB", k as f64 / 1024.0)),
            met: rss.map(|k| (k as f64) * 1024.0 < 40e6),
        });
        targets
    }

    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(md, "# lineage-sensor benchmark\n");
        let _ = writeln!(
            md,
            "Run {} on {} ({} cores, {:.1} GiB, kernel {}, {}); load average (1 min) {:.2} at the start.\n",
            m.date,
            m.cpu,
            m.cores,
            m.memory_kib as f64 / 1048576.0,
            m.kernel,
            m.rustc,
            m.load_1m_at_start
        );
        let o = &self.options;
        let mut flags = if o.quick {
            " --quick".to_owned()
        } else if o.rounds != 3 {
            format!(" --rounds {}", o.rounds)
        } else {
            String::new()
        };
        for part in &o.only {
            if let Some(name) = clap::ValueEnum::to_possible_value(part) {
                let _ = write!(flags, " --only {}", name.get_name());
            }
        }
        let _ = writeln!(
            md,
            "`cargo xtask bench{flags}`: {} rounds, monitors interleaved; medians over rounds; overhead is against the unmonitored median of the same workload. A benchmark, not a test: nothing here is asserted.\n",
            o.rounds
        );
        let _ = writeln!(md, "## Targets\n\n| target | measured | |\n|---|---|---|");
        for t in &self.targets {
            let verdict = match t.met {
                Some(true) => "met",
                Some(false) => "**missed**",
                None => "not measured",
            };
            let _ = writeln!(md, "| {} | {} | {} |", t.target, t.value, verdict);
        }
        let _ = writeln!(
            md,
            "\n## Overhead\n\n![overhead per monitor](overhead.svg)\n"
        );
        for w in &self.workloads {
            let _ = writeln!(
                md,
                "### {}\n\n{}{}; load average {:.2} at the start.\n",
                w.name,
                if w.ops_per_run > 0 {
                    format!("{} × ", w.ops_per_run)
                } else {
                    String::new()
                },
                w.operation,
                w.load_1m_at_start
            );
            if let Some(stats) = w
                .samples
                .iter()
                .map(|s| &s.stats)
                .find(|s| s.hooks.is_some())
            {
                let _ = writeln!(
                    md,
                    "lineage-sensor hooks: {}; syscall tracepoints attached: {}.\n",
                    stats.hooks.as_deref().unwrap_or("?"),
                    stats
                        .syscall_tracepoints
                        .map_or_else(|| "?".to_owned(), |n| n.to_string())
                );
            }
            let _ = writeln!(
                md,
                "| monitor | median | overhead | added per op | workload CPU | events read | events lost | monitor CPU | monitor peak RSS |\n|---|---|---|---|---|---|---|---|---|"
            );
            for s in &w.summary {
                let median = match (s.median_seconds, s.median_rps, s.median_p99_ms) {
                    (Some(t), _, _) => format!("{t:.3} s"),
                    (_, Some(r), Some(p)) => format!("{r:.0} req/s, p99 {p:.2} ms"),
                    _ => "n/a".into(),
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    s.monitor.name(),
                    median,
                    if s.monitor == MonitorKind::None {
                        "baseline".into()
                    } else {
                        pct(s.overhead_pct)
                    },
                    s.added_us_per_op
                        .filter(|_| s.monitor != MonitorKind::None)
                        .map_or("".into(), |u| format!("{u:+.1} µs")),
                    match (s.median_workload_cpu_secs, s.workload_cpu_overhead_pct) {
                        (Some(c), Some(o)) if s.monitor != MonitorKind::None => {
                            format!("{c:.3} s ({o:+.1}%)")
                        }
                        (Some(c), _) => format!("{c:.3} s"),
                        _ => String::new(),
                    },
                    s.median_events.map_or("".into(), |e| format!("{e:.0}")),
                    s.lost_total.map_or("".into(), |l| l.to_string()),
                    s.median_cpu_secs.map_or("".into(), |c| format!("{c:.2} s")),
                    s.max_peak_rss_kib
                        .map_or("".into(), |k| format!("{:.1} MB", k as f64 / 1024.0)),
                );
            }
            md.push('\n');
        }
        if !self.latency.is_empty() {
            let _ = writeln!(
                md,
                "## Exec-to-alert latency\n\n{}",
                LatencyResult::markdown_intro()
            );
            for l in &self.latency {
                let _ = writeln!(md, "{}", l.markdown_row());
            }
            md.push('\n');
        }
        if let Some(r) = &self.replay {
            let _ = writeln!(md, "## Replay throughput\n\n{}\n", r.markdown());
        }
        if let Some(r) = &self.delivery {
            let _ = writeln!(md, "## Delivery to three sinks\n\n{}\n", r.markdown());
        }
        if let Some(r) = &self.hold {
            let _ = writeln!(
                md,
                "## Execution prevention: the hold at exec\n\n{}\n",
                r.markdown()
            );
        }
        if let Some(r) = &self.rss {
            let _ = writeln!(
                md,
                "## Memory with many tracked processes\n\n{}\n",
                r.markdown()
            );
        }
        md
    }
}

pub fn pct(value: Option<f64>) -> String {
    value.map_or("n/a".into(), |v| format!("{v:+.1}%"))
}
