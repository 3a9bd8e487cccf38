//! The real `lineage-sensor run`, its stdout alerts stamped with the instant they arrived so the
//! suite can report the latency from a request to its alert.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc::{self, Receiver},
    time::{Duration, Instant},
};

use integration_tests::sensor_binary;
use serde_json::Value;

pub struct Alert {
    pub at: Instant,
    pub doc: Value,
}

impl Alert {
    pub fn rule(&self) -> &str {
        self.doc["rule"]["id"].as_str().unwrap_or("")
    }

    pub fn root_pid(&self) -> Option<u64> {
        self.doc["lineage"]["ancestry"][0]["pid"].as_u64()
    }

    pub fn incident(&self) -> &str {
        self.doc["lineage"]["incident"]["id"].as_str().unwrap_or("")
    }

    pub fn args(&self) -> Vec<String> {
        self.doc["process"]["args"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn executable(&self) -> &str {
        self.doc["process"]["executable"].as_str().unwrap_or("")
    }

    /// One line for a failure message.
    pub fn brief(&self) -> String {
        let file = self.doc["file"]["path"]
            .as_str()
            .map_or_else(String::new, |p| format!(" file={p}"));
        format!(
            "{} {} {:?}{file} root={:?} server={} incident={}",
            self.rule(),
            self.executable(),
            self.args(),
            self.root_pid(),
            self.doc["lineage"]["server"]["executable"],
            self.incident()
        )
    }
}

pub struct Sensor {
    child: Child,
    alerts: Receiver<Alert>,
    log: Receiver<String>,
}

impl Sensor {
    pub fn start(config: &Path) -> Sensor {
        let mut child = Command::new(sensor_binary())
            // An ephemeral metrics port: a sensor already running on the host must not collide.
            .args(["run", "--metrics-listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lineage-sensor run");
        let (alert_tx, alerts) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let at = Instant::now();
                let doc: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                let _ = alert_tx.send(Alert { at, doc });
            }
        });
        let (log_tx, log) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = log_tx.send(line);
            }
        });
        let sensor = Sensor { child, alerts, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        while !seen.iter().any(|l: &String| l.contains("ready")) {
            match sensor
                .log
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => seen.push(line),
                Err(_) => panic!("sensor never became ready: {seen:#?}"),
            }
        }
        sensor
    }

    /// Alerts rooted in one of `roots` (the servers this test started: other tests or programs
    /// on the host must not make this one fail) until `done` says the set is complete, then for
    /// `quiet` more so that a duplicate or an extra alert is caught too; gives up at `within`.
    pub fn collect(
        &self,
        roots: &[u32],
        within: Duration,
        quiet: Duration,
        done: impl Fn(&[Alert]) -> bool,
    ) -> Vec<Alert> {
        let deadline = Instant::now() + within;
        let mut got: Vec<Alert> = Vec::new();
        let mut quiet_until: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let until = quiet_until.unwrap_or(deadline).min(deadline);
            if now >= until {
                return got;
            }
            match self.alerts.recv_timeout(until - now) {
                Ok(alert) => {
                    if alert
                        .root_pid()
                        .is_some_and(|p| roots.iter().any(|&r| u64::from(r) == p))
                    {
                        got.push(alert);
                        if quiet_until.is_none() && done(&got) {
                            quiet_until = Some(Instant::now() + quiet);
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => return got,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("the sensor's stdout closed: {:#?}", self.log_lines())
                }
            }
        }
    }

    fn log_lines(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
