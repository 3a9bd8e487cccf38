//! The real `lineage-sensor run` as a child process: the one harness every test of the running
//! sensor uses. Its stdout alerts are stamped with their arrival and kept only when they belong
//! to the test's own process tree ([`OwnTree`]); its stderr log is kept for failure messages.
//! Killed on drop, so a failing test leaves nothing behind. The directory holding the config is
//! taken as the test's own: programs run from it (fake servers) are the test's.
//!
//! Negative checks end with a sentinel ([`RunningSensor::quiet_until_sentinel`]): after the
//! benign action the test triggers a known attack in the same tree and waits for its alert. The
//! sensor handles events in order, so every alert the benign action could cause has been printed
//! by then: the check takes as long as the sensor needs and no longer, and a late false alert
//! cannot slip past a fixed window.

use std::{
    cell::{Cell, RefCell},
    io::BufRead as _,
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use crate::{alert::Alert, free_port, sensor_binary, tree::OwnTree};

/// How long the sensor may take to attach its programs and say "ready".
const READY_WITHIN: Duration = Duration::from_secs(60);

pub struct RunningSensor {
    child: Option<Child>,
    alerts: mpsc::Receiver<(Instant, String)>,
    log: mpsc::Receiver<String>,
    /// Every log line read so far.
    pub log_seen: Vec<String>,
    pub metrics_port: u16,
    tree: RefCell<OwnTree>,
    /// Alerts of other process trees, skipped (for failure messages).
    foreign: Cell<usize>,
    sentinels: Cell<u32>,
}

impl RunningSensor {
    /// Starts `run --config CONFIG --metrics-listen 127.0.0.1:<free port>` and waits for
    /// "ready"; panics with the log when it does not get there.
    pub fn start(config: &Path) -> RunningSensor {
        Self::start_with(config, &[])
            .unwrap_or_else(|(status, log)| panic!("sensor not ready ({status}): {log:#?}"))
    }

    /// `wrapper` runs the sensor (`setpriv ...`). A sensor that does not become ready is
    /// stopped, and its exit status and log returned.
    pub fn start_with(
        config: &Path,
        wrapper: &[String],
    ) -> Result<RunningSensor, (ExitStatus, Vec<String>)> {
        isolate_baseline(config);
        let metrics_port = free_port();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(sensor_binary());
                c
            }
            None => Command::new(sensor_binary()),
        };
        let mut child = command
            .args(["run", "--config"])
            .arg(config)
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lineage-sensor run");
        let (alert_tx, alerts) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = alert_tx.send((Instant::now(), line));
            }
        });
        let (log_tx, log) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = log_tx.send(line);
            }
        });
        let mut tree = OwnTree::of_this_test();
        // The test's private directory, where it keeps its config and fake servers.
        if let Some(dir) = config.parent() {
            tree.add_dir(dir);
        }
        let mut sensor = RunningSensor {
            child: Some(child),
            alerts,
            log,
            log_seen: Vec::new(),
            metrics_port,
            tree: RefCell::new(tree),
            foreign: Cell::new(0),
            sentinels: Cell::new(0),
        };
        if sensor.wait_log(READY_WITHIN, |l| l.contains("ready: programs attached")) {
            return Ok(sensor);
        }
        // Its stderr closed (it exited), or it hangs: stop it either way.
        let mut child = sensor.child.take().expect("child present");
        let _ = child.kill();
        let status = child.wait().expect("wait for sensor");
        sensor.log_seen.extend(sensor.log.try_iter());
        Err((status, std::mem::take(&mut sensor.log_seen)))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends `sig` to the sensor.
    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child, alive until stopped.
        unsafe { libc::kill(self.pid() as i32, sig) };
    }

    /// A server (or other process) the test started: alerts naming it are the test's.
    pub fn own_pid(&self, pid: u32) {
        self.tree.borrow_mut().add_pid(pid);
    }

    /// A directory the test runs its own programs from (fake servers).
    pub fn own_dir(&self, dir: &Path) {
        self.tree.borrow_mut().add_dir(dir);
    }

    /// Whether a log line matching `want` arrives within `within` (lines seen are kept).
    pub fn wait_log(&mut self, within: Duration, want: impl Fn(&str) -> bool) -> bool {
        if self.log_seen.iter().any(|l| want(l)) {
            return true;
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    let hit = want(&line);
                    self.log_seen.push(line);
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    /// Waits for a log line containing `needle`; panics with the log when none comes.
    pub fn expect_log(&mut self, within: Duration, needle: &str) {
        assert!(
            self.wait_log(within, |l| l.contains(needle)),
            "no log line {needle:?} within {within:?}: {:#?}",
            self.log_seen
        );
    }

    /// The next alert of the test's own tree before `deadline`; alerts of other trees are
    /// skipped. Panics when a stdout line is not one JSON object, or stdout closed.
    pub fn next_alert(&self, deadline: Instant) -> Option<Alert> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.alerts.recv_timeout(left) {
                Ok((at, line)) => {
                    let alert = Alert::parse(at, line).unwrap_or_else(|e| panic!("{e}"));
                    if self.tree.borrow_mut().contains(&alert) {
                        return Some(alert);
                    }
                    self.foreign.set(self.foreign.get() + 1);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => return None,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("the sensor's stdout closed")
                }
            }
        }
    }

    /// The test's alerts that arrived so far, without waiting.
    pub fn alerts_so_far(&self) -> Vec<Alert> {
        let mut got = Vec::new();
        while let Some(alert) = self.next_alert(Instant::now()) {
            got.push(alert);
        }
        got
    }

    /// The first of the test's alerts matching `want` within `within`, and those before it.
    pub fn alert_until(
        &self,
        within: Duration,
        want: impl Fn(&Alert) -> bool,
    ) -> (Option<Alert>, Vec<Alert>) {
        let deadline = Instant::now() + within;
        let mut others = Vec::new();
        while let Some(alert) = self.next_alert(deadline) {
            if want(&alert) {
                return (Some(alert), others);
            }
            others.push(alert);
        }
        (None, others)
    }

    /// Like [`Self::alert_until`], but a missing alert is an error naming what did arrive.
    pub fn expect_alert(
        &self,
        within: Duration,
        what: &str,
        want: impl Fn(&Alert) -> bool,
    ) -> Result<(Alert, Vec<Alert>), String> {
        match self.alert_until(within, want) {
            (Some(alert), others) => Ok((alert, others)),
            (None, others) => Err(format!(
                "no {what} within {within:?}; the test's tree gave {} ({} alerts of other trees)",
                crate::briefs(&others),
                self.foreign.get()
            )),
        }
    }

    /// The test's alerts until `done` says the set is complete, then for `quiet` more so that
    /// a duplicate or an extra alert is caught too; gives up at `within`.
    pub fn collect(
        &self,
        within: Duration,
        quiet: Duration,
        done: impl Fn(&[Alert]) -> bool,
    ) -> Vec<Alert> {
        let deadline = Instant::now() + within;
        let mut got: Vec<Alert> = Vec::new();
        let mut until = deadline;
        while let Some(alert) = self.next_alert(until) {
            got.push(alert);
            if until == deadline && done(&got) {
                until = (Instant::now() + quiet).min(deadline);
            }
        }
        got
    }

    /// A marker no other alert carries, for [`Self::quiet_until_sentinel`].
    pub fn sentinel_marker(&self) -> String {
        let n = self.sentinels.get() + 1;
        self.sentinels.set(n);
        format!("lineage-sentinel-{}-{n}", std::process::id())
    }

    /// The end of a negative check: `trigger` makes the test's own tree do something that must
    /// alert with the given marker in its command line (a server-spawned shell). Returns every
    /// alert of the test's tree that arrived before the sentinel's: what the check judges.
    /// The sentinel not arriving within `within` is an error (the sensor stopped detecting).
    pub fn quiet_until_sentinel(
        &self,
        within: Duration,
        trigger: impl FnOnce(&str) -> Result<(), String>,
    ) -> Result<Vec<Alert>, String> {
        let marker = self.sentinel_marker();
        trigger(&marker).map_err(|e| format!("the sentinel attack failed: {e}"))?;
        let (_, before) = self.expect_alert(within, &format!("sentinel alert {marker}"), |a| {
            a.has_marker(&marker)
        })?;
        Ok(before)
    }

    /// GET of a path on the metrics endpoint: status and body.
    pub fn http_get(&self, path: &str) -> Result<(u16, String), String> {
        crate::receivers::http_get(&format!("http://127.0.0.1:{}{path}", self.metrics_port))
    }

    /// The metrics text; a failed scrape fails the test.
    pub fn metrics(&self) -> String {
        match self.http_get("/metrics") {
            Ok((200, body)) => body,
            other => panic!("GET /metrics: {other:?}"),
        }
    }

    /// SIGTERM, then the exit status and the whole log.
    pub fn stop(mut self) -> (ExitStatus, Vec<String>) {
        let mut child = self.child.take().expect("child present until stopped");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().expect("wait for sensor");
        let mut log = std::mem::take(&mut self.log_seen);
        log.extend(self.log.try_iter());
        (status, log)
    }

    /// SIGTERM, requiring a clean exit; returns the whole log.
    pub fn stop_clean(self) -> Vec<String> {
        let (status, log) = self.stop();
        assert!(
            status.success(),
            "clean exit on SIGTERM: {status}; {log:#?}"
        );
        log
    }

    /// SIGKILL: no drain, no shutdown, as an OOM killer or a hostile root would do it.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RunningSensor {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The host's default baseline state file is never a test's: a habit one test run learned there
/// would silence the same test's alert a learning window later. A config that names it (a copy
/// of deploy/lineage-sensor.toml) or has no `[baseline]` keeps the baseline in memory instead.
fn isolate_baseline(config: &Path) {
    const DEFAULT: &str = "\"/var/lib/lineage-sensor/baseline.toml\"";
    let Ok(text) = std::fs::read_to_string(config) else {
        return;
    };
    let text = if text
        .lines()
        .any(|l| l.trim_start().starts_with("[baseline]"))
    {
        text.replace(DEFAULT, "\"\"")
    } else {
        format!("{text}\n[baseline]\nstate_file = \"\"\n")
    };
    let _ = std::fs::write(config, text);
}
