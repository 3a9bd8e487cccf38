//! The detect stage of `run`: the engine over the live host. Decoded events in, alerts out;
//! around the engine it seeds the table from /proc, keeps the incident state file ahead of the
//! alerts, and hands the processes the engine found to be servers to the kernel's server tree.

use std::sync::Arc;

use super::{RunError, baseline_state, containers::ContainerWatch, state_files};
use crate::{
    alert::Alert,
    config::Config,
    detect::{Engine, EngineTotals},
    event::Event,
    kernel::Capture,
    lineage::{clock_ticks_per_sec, read_proc},
    metrics::Metrics,
    proc_facts::{ProcFacts, SHELL_DIRS, ShellCopies},
};

pub struct Detector {
    engine: Engine,
    metrics: Arc<Metrics>,
    trim: crate::memory::TrimAfterShrink,
    containers: ContainerWatch,
}

impl Detector {
    /// `engine` (built from `config`) asking this host for listening ports and shell copies,
    /// with the outbound rule's learned destinations loaded.
    pub fn new(engine: Engine, config: &Config, metrics: &Arc<Metrics>) -> Result<Self, RunError> {
        let engine = engine.with_metrics(metrics.clone()).with_server_pids();
        let shells = ShellCopies::scan(SHELL_DIRS, |path| engine.is_shell_file(path));
        log::debug!(
            "{} shell files hashed to recognise copies under other names",
            shells.len()
        );
        let mut engine = engine.with_host_facts(Box::new(ProcFacts::new(
            config.lineage.proc_root.clone(),
            shells,
        )));
        if let Some(path) = &config.rules.server_outbound_unknown.state_file {
            engine.load_learned(path)?;
        }
        baseline_state::load(&mut engine, config)?;
        Ok(Self {
            engine,
            metrics: metrics.clone(),
            trim: crate::memory::TrimAfterShrink::default(),
            containers: ContainerWatch::new(&config.workload),
        })
    }

    /// Containers and running processes, read after the programs are attached (a process
    /// started in between is then in the ring buffer rather than missed).
    pub fn seed(&mut self, config: &Config, capture: &mut Capture) {
        self.containers
            .rescan(&config.lineage.cgroup_root, &mut self.engine);
        if config.lineage.seed_from_proc {
            match read_proc(&config.lineage.proc_root, clock_ticks_per_sec()) {
                Ok(procs) => {
                    log::info!(
                        "seeded {} processes from {}",
                        procs.len(),
                        config.lineage.proc_root.display()
                    );
                    self.engine.seed(procs);
                }
                Err(err) => log::warn!("not seeded from /proc: {err}"),
            }
        }
        self.hand_over_server_pids(capture);
        capture.seed_listeners(&config.lineage.proc_root);
    }

    /// After seeding: restored incidents are matched to the seeded roots.
    pub fn restore_incidents(&mut self, config: &Config) {
        state_files::restore_incidents(&mut self.engine, config);
        self.metrics.set_processes(self.engine.totals().processes);
    }

    /// A batch of events; the alerts are appended to `alerts`. Execs held by execution
    /// prevention are killed or continued through `holds` as the engine judges them.
    pub fn process(
        &mut self,
        batch: &mut Vec<Event>,
        config: &Config,
        alerts: &mut Vec<Alert>,
        mut holds: Option<&mut crate::kernel::hold::Holds>,
    ) {
        self.containers
            .before(batch, &config.lineage.cgroup_root, &mut self.engine);
        for event in batch.drain(..) {
            let ts_ns = event.ts_ns();
            let before = alerts.len();
            let marked = super::holds::MarkedExec::of(&event);
            self.engine.process(event, alerts);
            if let Some(marked) = marked {
                let rules: Vec<_> = self.engine.take_would_alert().collect();
                let produced = alerts.get_mut(before..).unwrap_or_default();
                marked.apply(&rules, produced, holds.as_deref_mut(), &self.metrics);
            }
            if alerts.len() > before {
                let now = crate::clock::boottime_ns();
                let latency = now.saturating_sub(ts_ns) as f64 / 1e9;
                for _ in before..alerts.len() {
                    self.metrics.alert_latency(latency);
                }
            }
        }
        // Before the alerts leave: once an alert is out, a SIGKILL must not lose its incident.
        if let Err(err) = state_files::save_incidents(&mut self.engine, config) {
            log::warn!("{err}");
        }
    }

    /// The one place the engine's server pids reach the kernel: the kernel follows the forks
    /// of a server tree by itself from then on.
    pub fn hand_over_server_pids(&mut self, capture: &mut Capture) {
        capture.add_to_server_tree(self.engine.take_server_pids());
    }

    /// The periodic chores: exits whose grace is over, containers, memory, learned state.
    pub fn housekeeping(&mut self, config: &Config) {
        // A second behind now: records still in the ring are older than that.
        self.engine
            .advance_clock(crate::clock::boottime_ns().saturating_sub(1_000_000_000));
        self.containers
            .rescan(&config.lineage.cgroup_root, &mut self.engine);
        let processes = self.engine.totals().processes;
        self.metrics.set_processes(processes);
        if self.trim.due(processes) {
            self.engine.shrink_to_fit();
            crate::memory::give_back();
        }
        self.save_learned(config);
        baseline_state::save(&mut self.engine, config, &self.metrics);
    }

    /// Logs rather than fails: the learned state is a convenience.
    pub fn save_learned(&mut self, config: &Config) {
        if let Some(path) = &config.rules.server_outbound_unknown.state_file
            && let Err(err) = self.engine.save_learned(path)
        {
            log::warn!("{err}");
        }
    }

    /// A reloaded config's engine takes over: it starts from the running processes (the exit
    /// grace of processes that already ended starts afresh) and carries the open incidents
    /// over, as across a restart.
    pub fn replace(&mut self, mut fresh: Detector, config: &Config, capture: &mut Capture) {
        fresh.seed(config, capture);
        fresh
            .engine
            .restore_incidents(self.engine.incidents_snapshot());
        baseline_state::hand_over(&mut self.engine, &mut fresh.engine);
        *self = fresh;
    }

    /// At shutdown: the learned destinations and open incidents saved; the totals.
    pub fn finish(&mut self, config: &Config) -> Result<EngineTotals, RunError> {
        if let Some(path) = &config.rules.server_outbound_unknown.state_file {
            self.engine.save_learned(path)?;
        }
        baseline_state::save(&mut self.engine, config, &self.metrics);
        if let Err(err) = state_files::save_incidents(&mut self.engine, config) {
            log::warn!("{err}");
        }
        Ok(self.engine.totals())
    }
}
