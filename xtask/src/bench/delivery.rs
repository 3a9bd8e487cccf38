//! The delivery path: alerts per second to three sinks at once (a file, an HTTP receiver and a
//! syslog TCP receiver on 127.0.0.1, each with its default spool), driven by
//! tests/src/bin/sink_load.rs with alerts encoded before the clock starts.

use std::process::Command;

use anyhow::{Context as _, bail};
use serde::Serialize;

use super::{build::Binaries, stats::median};

const RUNS: usize = 3;

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryResult {
    pub alerts: u64,
    pub runs: usize,
    /// Alerts every one of the three sinks delivered per wall-clock second (median of runs).
    pub alerts_per_sec: f64,
    /// The same per CPU second of the whole process (sinks and the two receivers).
    pub alerts_per_cpu_sec: f64,
    /// Each run's wall-clock rate, in the order run.
    pub per_run: Vec<f64>,
}

impl DeliveryResult {
    pub fn markdown(&self) -> String {
        let runs: Vec<String> = self.per_run.iter().map(|r| format!("{r:.0}")).collect();
        format!(
            "{} alerts of about 1.3 KB each, handed to three sinks at once (file; HTTP NDJSON and \
             syslog TCP to receivers on 127.0.0.1 in the same process; each sink with its \
             default spool), median of {} runs: **{:.0} alerts/s** delivered by every sink \
             ({:.0} alerts per CPU second of sinks and receivers together; runs: {}).",
            self.alerts,
            self.runs,
            self.alerts_per_sec,
            self.alerts_per_cpu_sec,
            runs.join(", ")
        )
    }
}

pub fn measure(bins: &Binaries, alerts: u64) -> anyhow::Result<DeliveryResult> {
    eprintln!("bench: delivery to three sinks ({alerts} alerts)");
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..RUNS {
        let output = Command::new(&bins.sink_load)
            .arg(alerts.to_string())
            .output()
            .context("starting sink_load")?;
        if !output.status.success() {
            bail!(
                "sink_load failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let field = |name: &str| -> anyhow::Result<f64> {
            text.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
                .with_context(|| format!("sink_load printed no {name}: {text}"))
        };
        wall.push(field("wall_secs")?);
        cpu.push(field("cpu_secs")?);
    }
    let rate = |secs: f64| alerts as f64 / secs;
    Ok(DeliveryResult {
        alerts,
        runs: RUNS,
        alerts_per_sec: rate(median(wall.iter().copied()).unwrap_or(f64::NAN)),
        alerts_per_cpu_sec: rate(median(cpu.into_iter()).unwrap_or(f64::NAN)),
        per_run: wall.into_iter().map(rate).collect(),
    })
}
