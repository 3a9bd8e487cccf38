//! What one workload measured: each run under each monitor, and the medians and ratios per
//! monitor over the rounds.

use std::fmt::Write as _;

use serde::Serialize;

use super::{
    monitor::{MonitorKind, MonitorStats},
    stats::median,
};

/// One workload run under one monitor.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    pub monitor: MonitorKind,
    pub round: usize,
    /// Wall time of the driver (exec and connect storms) or of tar.
    pub seconds: Option<f64>,
    /// User + system time of the driver or tar and the children it waited for.
    pub workload_cpu_secs: Option<f64>,
    /// nginx: requests/s and 99th percentile latency as wrk measured them.
    pub rps: Option<f64>,
    pub p99_ms: Option<f64>,
    pub stats: MonitorStats,
}

impl Sample {
    pub fn brief(&self) -> String {
        let mut s = match (self.seconds, self.rps, self.p99_ms) {
            (Some(secs), _, _) => format!("{secs:.3} s"),
            (_, Some(rps), Some(p99)) => format!("{rps:.0} req/s, p99 {p99:.2} ms"),
            _ => String::new(),
        };
        if let Some(cpu) = self.workload_cpu_secs {
            let _ = write!(s, " (cpu {cpu:.3} s)");
        }
        if let Some(lost) = self.stats.lost {
            let _ = write!(s, ", lost {lost}");
        }
        if let Some(cpu) = self.stats.cpu_secs {
            let _ = write!(s, ", monitor cpu {cpu:.2} s");
        }
        s
    }
}

/// Medians over the rounds for one monitor, and the cost against the unmonitored median.
#[derive(Debug, Clone, Serialize)]
pub struct MonitorSummary {
    pub monitor: MonitorKind,
    pub median_seconds: Option<f64>,
    pub median_rps: Option<f64>,
    pub median_p99_ms: Option<f64>,
    /// Slowdown against no monitor, in percent: more time, or fewer requests/s.
    pub overhead_pct: Option<f64>,
    /// Added wall time per operation, in microseconds.
    pub added_us_per_op: Option<f64>,
    pub median_workload_cpu_secs: Option<f64>,
    /// More CPU time of the workload against no monitor, in percent.
    pub workload_cpu_overhead_pct: Option<f64>,
    pub lost_total: Option<u64>,
    pub median_events: Option<f64>,
    pub median_cpu_secs: Option<f64>,
    pub max_peak_rss_kib: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkloadResult {
    pub name: String,
    pub operation: String,
    pub ops_per_run: usize,
    pub load_1m_at_start: f64,
    pub summary: Vec<MonitorSummary>,
    pub samples: Vec<Sample>,
}

impl WorkloadResult {
    pub fn new(name: &str, operation: &str, ops_per_run: usize) -> Self {
        Self {
            name: name.into(),
            operation: operation.into(),
            ops_per_run,
            load_1m_at_start: f64::NAN,
            summary: Vec::new(),
            samples: Vec::new(),
        }
    }

    pub fn summarise(&mut self) {
        let of = |kind: MonitorKind| self.samples.iter().filter(move |s| s.monitor == kind);
        let base = of(MonitorKind::None).collect::<Vec<_>>();
        let base_secs = median(base.iter().filter_map(|s| s.seconds));
        let base_rps = median(base.iter().filter_map(|s| s.rps));
        let base_cpu = median(base.iter().filter_map(|s| s.workload_cpu_secs));
        self.summary = MonitorKind::ALL
            .iter()
            .map(|&kind| {
                let secs = median(of(kind).filter_map(|s| s.seconds));
                let rps = median(of(kind).filter_map(|s| s.rps));
                let overhead_pct = match (secs, base_secs, rps, base_rps) {
                    (Some(t), Some(b), _, _) => Some((t / b - 1.0) * 100.0),
                    (_, _, Some(r), Some(b)) => Some((b / r - 1.0) * 100.0),
                    _ => None,
                };
                let added_us_per_op = secs
                    .zip(base_secs)
                    .filter(|_| self.ops_per_run > 0)
                    .map(|(t, b)| (t - b) / self.ops_per_run as f64 * 1e6);
                let cpu = median(of(kind).filter_map(|s| s.workload_cpu_secs));
                let lost: Vec<u64> = of(kind).filter_map(|s| s.stats.lost).collect();
                MonitorSummary {
                    monitor: kind,
                    median_seconds: secs,
                    median_rps: rps,
                    median_p99_ms: median(of(kind).filter_map(|s| s.p99_ms)),
                    overhead_pct,
                    added_us_per_op,
                    median_workload_cpu_secs: cpu,
                    workload_cpu_overhead_pct: cpu
                        .zip(base_cpu)
                        .map(|(c, b)| (c / b - 1.0) * 100.0),
                    lost_total: (!lost.is_empty()).then(|| lost.iter().sum()),
                    median_events: median(
                        of(kind).filter_map(|s| s.stats.events.map(|e| e as f64)),
                    ),
                    median_cpu_secs: median(of(kind).filter_map(|s| s.stats.cpu_secs)),
                    max_peak_rss_kib: of(kind).filter_map(|s| s.stats.peak_rss_kib).max(),
                }
            })
            .collect();
    }

    pub fn summary_of(&self, kind: MonitorKind) -> Option<&MonitorSummary> {
        self.summary.iter().find(|s| s.monitor == kind)
    }
}
