//! The engine: events in, alerts out, as a pipeline read top to bottom. Each event updates the
//! lineage table and its annotations ([`Annotator`]), goes to the rules that look at it
//! ([`Rules`]), and each finding passes the [`Gate`] (exclusions, rate limit, incident) before
//! [`Alert::build`] makes the document. Deterministic (its only clock is the events' time), so
//! `replay` gives the same alerts every time.

use std::sync::Arc;

use super::{
    DetectError, HostFacts, IncidentSnapshot,
    annotation::Table,
    annotator::Annotator,
    family::Families,
    gate::{Gate, Sighting},
    incident::Incidents,
    rate_limit::RateLimiter,
    report::{self, EngineTotals, HostInfo},
    rules::{Finding, Rules},
};
use crate::{
    alert::Alert,
    config::Config,
    event::{Connect, Event, Fork, Listen},
    lineage::{EntityId, Limits, ProcessTable, SeedProcess},
    metrics::Metrics,
};

pub struct Engine {
    table: Table,
    families: Families,
    annotator: Annotator,
    rules: Rules,
    gate: Gate,
    host: HostInfo,
    events: u64,
}

impl Engine {
    pub fn new(config: &Config, host: HostInfo) -> Result<Self, DetectError> {
        let families = Families::new(&config.detect)?;
        let rules = Rules::new(config, &families)?;
        let limits = Limits {
            exit_grace_ns: config.lineage.exit_grace_secs.saturating_mul(1_000_000_000),
            max_entries: config.lineage.max_processes,
            ..Limits::default()
        };
        let mut gate = Gate::new(
            Incidents::new(config.incidents.span_secs),
            RateLimiter::new(config.rate_limit.window_secs, config.rate_limit.max_tracked),
        );
        gate.baseline = super::baseline::Baseline::new(&config.baseline);
        gate.baseline.set_boot_wall_ns(host.boot_wall_ns);
        Ok(Self {
            table: ProcessTable::new(limits),
            families,
            annotator: Annotator::default(),
            rules,
            gate,
            host,
            events: 0,
        })
    }

    /// Counts alerts in `lineage_sensor_alerts_total` and friends.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        metrics.preset_rules(&super::RuleId::ALL.map(super::RuleId::as_str));
        self.gate.set_metrics(metrics);
        self
    }

    /// Lets the engine ask the live host (families' `listen_ports`, shells copied under another
    /// name).
    pub fn with_host_facts(mut self, facts: Box<dyn HostFacts>) -> Self {
        self.annotator.set_host_facts(facts);
        self
    }

    /// Collects the pids of processes classified as servers (and, when seeding, of those below
    /// one) for [`Engine::take_server_pids`].
    pub fn with_server_pids(mut self) -> Self {
        self.annotator.collect_server_pids();
        self
    }

    /// The pids collected since the last call (see [`Engine::with_server_pids`]).
    pub fn take_server_pids(&mut self) -> std::vec::Drain<'_, u32> {
        self.annotator.take_server_pids()
    }

    /// The rules that would have alerted (exclusions and baseline passed, rate limit or not)
    /// since the last call; see [`Gate::would_alert`].
    pub fn take_would_alert(&mut self) -> std::vec::Drain<'_, super::RuleId> {
        self.gate.would_alert.drain(..)
    }

    /// Time passes without events (`run`'s timer, in the events' clock): exited processes whose
    /// grace is over leave the table.
    pub fn advance_clock(&mut self, now_ns: u64) {
        self.table.advance(now_ns);
    }

    /// Gives back what a past peak of processes left allocated (see [`crate::memory`]).
    pub fn shrink_to_fit(&mut self) {
        self.table.shrink_to_fit();
        self.annotator.shrink_to_fit();
    }

    /// Whether `path` names a shell by the shell rule's list (for finding the shells whose copies
    /// [`HostFacts::shell_copied_to`] recognises).
    pub fn is_shell_file(&self, path: &str) -> bool {
        self.rules.units.shell.is_shell_file(path)
    }

    pub fn set_host(&mut self, host: HostInfo) {
        self.gate.baseline.set_boot_wall_ns(host.boot_wall_ns);
        self.host = host;
    }

    pub fn set_containers(
        &mut self,
        containers: rustc_hash::FxHashMap<u64, Arc<crate::lineage::ContainerRef>>,
    ) {
        self.table.containers_mut().set(containers);
    }

    /// One container more, beside the last scan (a record's `container` line in `replay`).
    pub fn add_container(&mut self, cgroup_id: u64, container: Arc<crate::lineage::ContainerRef>) {
        self.table.containers_mut().add(cgroup_id, container);
    }

    /// The runtime's names of container `id`, which exclusions can match from now on.
    pub fn set_container_names(&mut self, id: &str, names: Arc<crate::lineage::ContainerNames>) {
        self.table.containers_mut().set_names(id, names);
    }

    pub fn totals(&self) -> EngineTotals {
        EngineTotals::new(self.events, &self.gate.counts, &self.table)
    }

    /// The open incidents, for `run` to keep across a restart (incidents.state_file).
    pub fn incidents_snapshot(&self) -> IncidentSnapshot {
        self.gate.incidents.snapshot(self.host.boot_wall_ns)
    }

    /// Continues the incidents a previous run left open on this boot; returns how many.
    pub fn restore_incidents(&mut self, snapshot: IncidentSnapshot) -> usize {
        self.gate
            .incidents
            .restore(snapshot, self.host.boot_wall_ns)
    }

    /// Whether incidents changed since the last call (then the state file is due).
    pub fn incidents_changed(&mut self) -> bool {
        self.gate.incidents.take_dirty()
    }

    /// Loads the outbound rule's learned destinations.
    pub fn load_learned(&mut self, path: &std::path::Path) -> Result<(), DetectError> {
        self.rules.units.outbound.learned.load(path)
    }

    /// Saves the outbound rule's learned destinations.
    pub fn save_learned(&mut self, path: &std::path::Path) -> Result<(), DetectError> {
        self.rules.units.outbound.learned.save(path)
    }

    /// The learned baseline (see [`super::baseline`]): loading, saving, merging, its sizes.
    pub fn baseline(&mut self) -> &mut super::baseline::Baseline {
        &mut self.gate.baseline
    }

    /// Adds processes read from /proc (oldest first), classifying each as if it had just exec'd
    /// (annotated, never alerted on). A shell below a server is annotated as such: after a
    /// restart, the tools a web shell started before the restart goes on to run must still be
    /// seen below it.
    pub fn seed(&mut self, procs: Vec<SeedProcess>) {
        for p in procs {
            let id = self.table.seed(p);
            let (families, rules) = (&self.families, &self.rules);
            self.annotator.seeded(&mut self.table, families, rules, id);
        }
    }

    /// Feeds one event; alerts are appended to `out`.
    pub fn process(&mut self, event: Event, out: &mut Vec<Alert>) {
        self.events += 1;
        self.gate.would_alert.clear();
        if self.events == 1 {
            self.gate.baseline.open(event.ts_ns());
        }
        let mut findings = Vec::new();
        match event {
            Event::Fork(f) => self.on_fork(f, &mut findings),
            Event::Exec(e) => {
                let ts = e.ts_ns;
                let id = self.table.exec(e);
                if let Some(p) = self.table.get_mut(id) {
                    p.annotation.listening = None;
                }
                self.on_exec(id, ts, &mut findings);
            }
            Event::Exit(x) => {
                self.table.exit(&x);
            }
            Event::Connect(c) => {
                self.on_connect(&c, &mut findings);
                self.raise_all(findings, out);
                return;
            }
            Event::File(f) => {
                let interest = self.rules.file_interest(&f);
                if interest.any()
                    && let Some(id) = self.live_as(f.pid, f.uid)
                {
                    self.rules
                        .on_file(&self.table, &f, id, interest, &mut findings);
                }
                self.raise_all(findings, out);
                return;
            }
            Event::Listen(l) => self.on_listen(&l),
        }
        self.raise_all(findings, out);
    }

    fn on_fork(&mut self, f: Fork, findings: &mut Vec<Finding<'_>>) {
        let uid = f.uid;
        let (id, new) = self.table.fork(f);
        // fork copies the parent's credentials, so the child's uid is the parent's uid now: a
        // worker that dropped privileges without exec (php-fpm pool, apache2 child, gunicorn
        // --user, postgres backend) was forked as root and is known here as such.
        if let Some(parent) = self.table.parent(id).map(|pp| pp.id)
            && let Some(pp) = self.table.get_mut(parent)
            && pp.exited_ns.is_none()
        {
            pp.uid = uid;
        }
        if new {
            self.annotator.inherit(&mut self.table, id);
        } else if let Some(p) = self.table.get(id)
            && p.execs > 0
            && p.parent.is_some()
            && p.annotation.server.is_none()
        {
            // Its exec came before its fork: evaluate it now that its ancestry is known.
            let ts = p.last_seen_ns;
            self.on_exec(id, ts, findings);
        }
    }

    /// A process put a socket into LISTEN: a server by role from now on (its forks too),
    /// unless it already is one or gives shells by design.
    fn on_listen(&mut self, l: &Listen) {
        let Some(id) = self.table.live(l.pid).map(|p| p.id) else {
            return;
        };
        let (families, rules) = (&self.families, &self.rules);
        self.annotator
            .listening(&mut self.table, families, rules, id, l.port);
    }

    fn on_connect<'e>(&mut self, c: &'e Connect, findings: &mut Vec<Finding<'e>>) {
        if !self.rules.wants_connect(c) {
            return;
        }
        let Some(id) = self.live_as(c.pid, c.uid) else {
            return;
        };
        // A renamed server dialing out is known only by its listening port: ask (at most every
        // 10 s per process, and only when some family lists ports).
        let unknown = self
            .table
            .get(id)
            .is_some_and(|p| p.annotation.family.is_none() && p.annotation.server.is_none());
        if unknown && self.annotator.can_discover(&self.families) {
            let (families, rules) = (&self.families, &self.rules);
            self.annotator
                .discover_listeners(&mut self.table, families, rules, id, true);
        }
        if let Some(p) = self.table.get(id) {
            let boot = self.host.boot_wall_ns;
            self.rules.on_connect(p, &self.families, c, boot, findings);
        }
    }

    /// The live process `pid`, whose uid is `uid` now: a worker that dropped privileges since its
    /// fork must be judged (exclusions by user) and reported as the user it runs as.
    fn live_as(&mut self, pid: u32, uid: u32) -> Option<EntityId> {
        let id = self.table.live(pid)?.id;
        self.table.get_mut(id)?.uid = uid;
        Some(id)
    }

    fn on_exec(&mut self, id: EntityId, ts_ns: u64, findings: &mut Vec<Finding<'_>>) {
        let (families, rules) = (&self.families, &self.rules);
        if self
            .annotator
            .annotate(&mut self.table, families, rules, id, true)
            .is_some()
        {
            self.rules.on_exec(&self.table, id, ts_ns, findings);
        }
    }

    /// Each finding through the gate and, if it passes, into an alert.
    fn raise_all(&mut self, findings: Vec<Finding<'_>>, out: &mut Vec<Alert>) {
        for f in findings {
            let Some(s) = Sighting::resolve(&self.table, &self.families, &f) else {
                continue;
            };
            let common = self.rules.common(f.rule);
            if let Some(admitted) =
                self.gate
                    .admit(common, &f, &s, &self.table, &self.host.hostname)
            {
                out.push(report::alert(
                    &f,
                    &s,
                    admitted,
                    &self.table,
                    &self.families,
                    &self.host,
                ));
            }
        }
    }
}
