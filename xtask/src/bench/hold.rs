//! What execution prevention costs a server's execs: a copy of the workload binary named `nginx`
//! (confirmed as a server before it starts) fork+execs `/bin/true` N times in a row, a helper
//! no rule alerts on, so that in enforce every one is held at exec, judged and continued. Timed
//! with no monitor, with the sensor detecting (`[prevention]` off) and with it enforcing,
//! interleaved round by round; the difference per exec is the hold's round trip.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use serde::Serialize;

use super::{
    build::Binaries,
    monitor::{self, MonitorKind, SensorConfig},
    stats::median,
};

/// The fake server waits this long before its execs: the sensor reads its exec and confirms it.
const CONFIRM: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    NoSensor,
    Detect,
    Enforce,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::NoSensor, Mode::Detect, Mode::Enforce];

    fn label(self) -> &'static str {
        match self {
            Mode::NoSensor => "no sensor",
            Mode::Detect => "sensor, prevention off",
            Mode::Enforce => "sensor, prevention enforce",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HoldRow {
    pub mode: &'static str,
    /// Median over rounds of the wall time per exec (fork, exec, wait).
    pub us_per_exec: f64,
    /// Execs the sensor held in the last round (enforce: should be every one).
    pub held: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HoldResult {
    pub execs: usize,
    pub rounds: usize,
    pub rows: Vec<HoldRow>,
}

impl HoldResult {
    pub fn markdown(&self) -> String {
        let base = self.rows.first().map(|r| r.us_per_exec);
        let mut md = format!(
            "A copy of the workload binary named `nginx`, confirmed as a server, fork+execs \
             `/bin/true` {} times in a row (no rule alerts on it: in enforce each is held at \
             exec, judged and continued); median of {} rounds, modes interleaved.\n\n\
             | sensor | per exec | added per exec | held |\n|---|---|---|---|",
            self.execs, self.rounds
        );
        for r in &self.rows {
            let added = base
                .filter(|_| r.mode != Mode::NoSensor.label())
                .map_or(String::new(), |b| format!("{:+.0} µs", r.us_per_exec - b));
            md.push_str(&format!(
                "\n| {} | {:.0} µs | {} | {} |",
                r.mode,
                r.us_per_exec,
                added,
                r.held.map_or(String::new(), |h| h.to_string())
            ));
        }
        md
    }
}

pub fn measure(bins: &Binaries, execs: usize, rounds: usize) -> anyhow::Result<HoldResult> {
    eprintln!("bench: execution prevention's hold ({execs} execs below a server, {rounds} rounds)");
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); Mode::ALL.len()];
    let mut held = vec![None; Mode::ALL.len()];
    for round in 0..rounds {
        for i in 0..Mode::ALL.len() {
            let at = (i + round) % Mode::ALL.len();
            let (us, h) = once(bins, Mode::ALL[at], execs)?;
            times[at].push(us);
            held[at] = h;
        }
    }
    let rows = Mode::ALL
        .iter()
        .enumerate()
        .map(|(i, mode)| HoldRow {
            mode: mode.label(),
            us_per_exec: median(times[i].iter().copied()).unwrap_or(f64::NAN),
            held: held[i],
        })
        .collect();
    Ok(HoldResult {
        execs,
        rounds,
        rows,
    })
}

/// One run: µs per exec, and what the sensor held.
fn once(bins: &Binaries, mode: Mode, execs: usize) -> anyhow::Result<(f64, Option<u64>)> {
    let kind = if mode == Mode::NoSensor {
        MonitorKind::None
    } else {
        MonitorKind::Sensor
    };
    let extra = if mode == Mode::Enforce {
        "[prevention]\nmode = \"enforce\"\n"
    } else {
        ""
    };
    let sensor = monitor::start_with(
        kind,
        bins,
        &SensorConfig {
            sink_extra: "",
            extra,
        },
    )?;
    let server = sensor.dir().join("nginx");
    std::fs::copy(&bins.workload, &server).context("copying the workload as nginx")?;
    let started = Instant::now();
    let status = Command::new(&server)
        .args([
            "paced",
            &CONFIRM.as_millis().to_string(),
            &execs.to_string(),
            "0",
            "/bin/true",
        ])
        .stdout(Stdio::null())
        .status()
        .context("running the fake server")?;
    let elapsed = started.elapsed().saturating_sub(CONFIRM);
    anyhow::ensure!(status.success(), "the fake server failed: {status}");
    let held = sensor.metrics().map(|m| m.held);
    drop(sensor);
    Ok((elapsed.as_secs_f64() * 1e6 / execs as f64, held))
}
