//! The engine: events in, alerts out. Owns the lineage table, the compiled rules, incidents and
//! the rate limiter; deterministic (its only clock is the events' time), so `replay` gives the
//! same alerts every time.

use std::{fmt, sync::Arc};

use super::{
    DetectError,
    exclusion::{Subject, any_matches},
    family::Families,
    host_facts::HostFacts,
    incident::{Incidents, digest_hex},
    matcher::ExeMatcher,
    rate_limit::{RateLimiter, Verdict},
    rules::{
        RuleId,
        module_change::ModuleRule,
        outbound::OutboundRule,
        recon::ReconRule,
        shell::ShellRule,
        webroot::{WebrootRule, directory, extension, file_name},
        written_exec::{Writer, WrittenFiles},
    },
    tag::{ServerRef, Tag},
};
use crate::{
    alert::{self, Alert},
    config::{Config, Severity, Technique},
    event::{Connect, Event, Family as NetFamily, File, FileOp},
    lineage::{EntityId, Limits, Process, ProcessTable, SeedProcess},
    metrics::Metrics,
};
use rustc_hash::FxHashMap;

/// Where the events come from: names the host in alerts and turns event times into wall time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostInfo {
    pub hostname: String,
    /// Wall clock time of boot, ns since the epoch (a record header's `boot_wall_ns`).
    pub boot_wall_ns: u64,
}

/// What the engine did, for the shutdown report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineTotals {
    pub events: u64,
    pub alerts: [u64; RuleId::ALL.len()],
    pub suppressed: [u64; RuleId::ALL.len()],
    pub excluded: [u64; RuleId::ALL.len()],
    pub processes: usize,
    pub evicted: u64,
}

impl fmt::Display for EngineTotals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "events: {}; alerts:", self.events)?;
        for (i, rule) in RuleId::ALL.iter().enumerate() {
            write!(
                f,
                " {}={} (suppressed {}, excluded {})",
                rule.as_str(),
                self.alerts[i],
                self.suppressed[i],
                self.excluded[i]
            )?;
        }
        write!(
            f,
            "; processes tracked: {}; evicted: {}",
            self.processes, self.evicted
        )
    }
}

pub struct Engine {
    table: ProcessTable<Tag>,
    families: Families,
    shell: ShellRule,
    recon: ReconRule,
    outbound: OutboundRule,
    webroot: WebrootRule,
    module: ModuleRule,
    written: WrittenFiles,
    package_managers: ExeMatcher,
    incidents: Incidents,
    rate: RateLimiter,
    host: HostInfo,
    metrics: Option<Arc<Metrics>>,
    totals: EngineTotals,
    scratch: Vec<usize>,
    owners: Vec<usize>,
    /// Only in `run`: see [`HostFacts`].
    facts: Option<Box<dyn HostFacts>>,
    /// When each process's listening sockets were last read (event time), so that a busy shell
    /// script below an unknown parent does not read /proc for every command.
    listen_checked: FxHashMap<EntityId, u64>,
    /// Only in `run` (see [`Engine::with_server_pids`]): processes found to be servers or below
    /// one since the last [`Engine::take_server_pids`], for the kernel's server tree.
    collect_server_pids: bool,
    server_pids: Vec<u32>,
}

/// How long a process found listening on none of the `listen_ports` is not asked again.
const LISTEN_RECHECK_NS: u64 = 10_000_000_000;
/// Bound on [`Engine::listen_checked`]; it is simply cleared when full.
const LISTEN_CHECKED_MAX: usize = 16_384;
/// Ancestors asked for listening sockets, nearest first.
const LISTEN_ANCESTORS_MAX: usize = 32;

/// What an alert is about besides its process.
#[derive(Default)]
struct Context<'a> {
    connect: Option<&'a Connect>,
    file: Option<&'a str>,
    /// For alerts about a file event: `event.action` and `event.type`.
    action: Option<(&'static str, &'static [&'static str])>,
    /// Overrides the rule's severity.
    severity: Option<Severity>,
    /// Overrides the incident root (the writer's tree for an executed file).
    root: Option<EntityId>,
}

impl Engine {
    pub fn new(config: &Config, host: HostInfo) -> Result<Self, DetectError> {
        let families = Families::new(&config.detect)?;
        let shell = ShellRule::new(&config.rules.server_spawned_shell, &families)?;
        let recon = ReconRule::new(&config.rules.server_spawned_recon, &families)?;
        let outbound = OutboundRule::new(&config.rules.server_outbound_unknown, &families)?;
        let webroot = WebrootRule::new(&config.rules.webroot_script_write, &families)?;
        let module = ModuleRule::new(&config.rules.server_module_change, &families)?;
        let written = WrittenFiles::new(&config.rules.server_written_file_executed);
        let package_managers =
            ExeMatcher::new(&config.detect.package_managers, "detect.package_managers")?;
        let limits = Limits {
            exit_grace_ns: config.lineage.exit_grace_secs.saturating_mul(1_000_000_000),
            max_entries: config.lineage.max_processes,
            ..Limits::default()
        };
        Ok(Self {
            table: ProcessTable::new(limits),
            families,
            shell,
            recon,
            outbound,
            webroot,
            module,
            written,
            package_managers,
            incidents: Incidents::new(config.incidents.span_secs),
            rate: RateLimiter::new(config.rate_limit.window_secs, config.rate_limit.max_tracked),
            host,
            metrics: None,
            totals: EngineTotals::default(),
            scratch: Vec::new(),
            owners: Vec::new(),
            facts: None,
            listen_checked: FxHashMap::default(),
            collect_server_pids: false,
            server_pids: Vec::new(),
        })
    }

    /// Counts alerts in `lineage_sensor_alerts_total` and friends.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Time passes without events (`run`'s timer, in the events' clock): exited processes whose
    /// grace is over leave the table.
    pub fn advance_clock(&mut self, now_ns: u64) {
        self.table.advance(now_ns);
    }

    /// Gives back what a past peak of processes left allocated (see [`crate::memory`]).
    pub fn shrink_to_fit(&mut self) {
        self.table.shrink_to_fit();
        self.listen_checked.shrink_to_fit();
    }

    /// Lets the engine ask the live host (families' `listen_ports`, shells copied under another
    /// name).
    pub fn with_host_facts(mut self, facts: Box<dyn HostFacts>) -> Self {
        self.facts = Some(facts);
        self
    }

    /// Collects the pids of processes classified as servers (and, when seeding, of those below
    /// one) for [`Engine::take_server_pids`].
    pub fn with_server_pids(mut self) -> Self {
        self.collect_server_pids = true;
        self
    }

    /// The pids collected since the last call (see [`Engine::with_server_pids`]).
    pub fn take_server_pids(&mut self) -> std::vec::Drain<'_, u32> {
        self.server_pids.drain(..)
    }

    /// Whether `path` names a shell by the shell rule's list (for finding the shells whose copies
    /// [`HostFacts::shell_copied_to`] recognises).
    pub fn is_shell_file(&self, path: &str) -> bool {
        self.shell.is_shell_file(path)
    }

    pub fn set_host(&mut self, host: HostInfo) {
        self.host = host;
    }

    pub fn set_containers(&mut self, containers: rustc_hash::FxHashMap<u64, Arc<str>>) {
        self.table.set_containers(containers);
    }

    pub fn totals(&self) -> EngineTotals {
        let stats = self.table.stats();
        EngineTotals {
            processes: self.table.len(),
            evicted: stats.evicted_after_grace + stats.evicted_over_cap,
            ..self.totals.clone()
        }
    }

    /// The open incidents, for `run` to keep across a restart (incidents.state_file).
    pub fn incidents_snapshot(&self) -> super::IncidentSnapshot {
        self.incidents.snapshot(self.host.boot_wall_ns)
    }

    /// Continues the incidents a previous run left open on this boot; returns how many.
    pub fn restore_incidents(&mut self, snapshot: super::IncidentSnapshot) -> usize {
        self.incidents.restore(snapshot, self.host.boot_wall_ns)
    }

    /// Whether incidents changed since the last call (then the state file is due).
    pub fn incidents_changed(&mut self) -> bool {
        self.incidents.take_dirty()
    }

    /// Loads the outbound rule's learned destinations.
    pub fn load_learned(&mut self, path: &std::path::Path) -> Result<(), DetectError> {
        self.outbound.learned.load(path)
    }

    /// Saves the outbound rule's learned destinations.
    pub fn save_learned(&mut self, path: &std::path::Path) -> Result<(), DetectError> {
        self.outbound.learned.save(path)
    }

    /// Adds processes read from /proc (oldest first), classifying each as if it had just exec'd
    /// (tagged, never alerted on). A shell below a server is tagged as such: after a restart, the
    /// tools a web shell started before the restart goes on to run must still be seen below it.
    pub fn seed(&mut self, procs: Vec<SeedProcess>) {
        for p in procs {
            let id = self.table.seed(p);
            self.annotate(id, true);
            // Forked before the programs were attached: the kernel cannot have followed them.
            if self.collect_server_pids
                && let Some(p) = self.table.get(id)
                && p.annotation.family.is_none()
                && p.annotation.server.is_some()
            {
                self.server_pids.push(id.pid);
            }
        }
    }

    /// Feeds one event; alerts are appended to `out`.
    pub fn process(&mut self, event: Event, out: &mut Vec<Alert>) {
        self.totals.events += 1;
        match event {
            Event::Fork(f) => {
                let uid = f.uid;
                let (id, new) = self.table.fork(f);
                // fork copies the parent's credentials, so the child's uid is the parent's uid now:
                // a worker that dropped privileges without exec (php-fpm pool, apache2 child,
                // gunicorn --user, postgres backend) was forked as root and is known here as such.
                if let Some(parent) = self.table.parent(id).map(|pp| pp.id)
                    && let Some(pp) = self.table.get_mut(parent)
                    && pp.exited_ns.is_none()
                {
                    pp.uid = uid;
                }
                let linked_late = !new
                    && self
                        .table
                        .get(id)
                        .is_some_and(|p| p.execs > 0 && p.parent.is_some());
                if new {
                    self.inherit(id);
                } else if linked_late {
                    // Its exec came before its fork: evaluate it now that its ancestry is known.
                    let ts = self.table.get(id).map_or(0, |p| p.last_seen_ns);
                    if self
                        .table
                        .get(id)
                        .is_some_and(|p| p.annotation.server.is_none())
                    {
                        self.on_exec(id, ts, out);
                    }
                }
            }
            Event::Exec(e) => {
                let ts = e.ts_ns;
                let id = self.table.exec(e);
                if let Some(p) = self.table.get_mut(id) {
                    p.annotation.listening = None;
                }
                self.on_exec(id, ts, out);
            }
            Event::Exit(x) => {
                self.table.exit(&x);
            }
            Event::Connect(c) => self.on_connect(&c, out),
            Event::File(f) => self.on_file(&f, out),
            // Listeners are known to the kernel (its server tree); no rule reads them yet.
            Event::Listen(_) => {}
        }
    }

    /// A forked child: same image and family as its parent, whose server link now runs through
    /// the parent.
    fn inherit(&mut self, id: EntityId) {
        let server = server_above(self.table.parent(id));
        let below = self
            .table
            .parent(id)
            .is_some_and(|pp| pp.annotation.below_shell || pp.annotation.shell_below_server);
        if let Some(p) = self.table.get_mut(id) {
            p.annotation.server = server;
            p.annotation.below_shell = below;
        }
    }

    /// Recomputes a process's tag from its image and its parent's tag.
    fn annotate(&mut self, id: EntityId, evaluate_shell: bool) -> Option<()> {
        let p = self.table.get(id)?;
        let image = p.image.clone();
        let listening = p.annotation.listening;
        let parent = self.table.parent(id);
        let mut server = server_above(parent);
        let below_shell =
            parent.is_some_and(|pp| pp.annotation.below_shell || pp.annotation.shell_below_server);
        let family = self
            .families
            .classify(&image, &mut self.scratch, &mut self.owners)
            .or(listening.map(|(f, _)| f));
        let transparent = self.families.is_transparent(&image);
        let mut copy_of = None;
        let mut shell = false;
        // Nothing to evaluate for the common exec: no server above and no way to find one.
        let can_discover = server.is_none() && self.can_discover();
        if evaluate_shell && family.is_none() && (server.is_some() || can_discover) {
            let by_name = self
                .shell
                .is_shell(&image, &mut self.scratch, &mut self.owners);
            if can_discover
                && (by_name
                    || self
                        .recon
                        .is_tool(&image, &mut self.scratch, &mut self.owners))
                && self.discover_listeners(id, false)
            {
                server = server_above(self.table.parent(id));
            }
            if server.is_some() {
                shell = by_name;
                if !shell && let Some(facts) = self.facts.as_mut() {
                    copy_of = facts.shell_copied_to(id.pid, &image.exe);
                    shell = copy_of.is_some();
                }
            }
        }
        // Servers only: their children join the kernel's tree at fork, and a short-lived child
        // added from here could already be gone, leaving a stale entry.
        if self.collect_server_pids && family.is_some() {
            self.server_pids.push(id.pid);
        }
        let p = self.table.get_mut(id)?;
        p.annotation = Tag {
            family,
            transparent,
            shell_below_server: shell,
            below_shell,
            server,
            listening,
            copy_of,
        };
        Some(())
    }

    /// Whether servers can be found by listening port: in `run`, with some family listing ports.
    fn can_discover(&self) -> bool {
        self.facts.is_some() && self.families.has_listen_ports()
    }

    /// A shell or recon tool (or, with `include_self`, a connect) with no known server above:
    /// asks the host whether an ancestor (or the process itself) listens on a family's
    /// `listen_ports` (a server renamed or run from an unusual path). Marks every such process
    /// and re-tags the chain from the top; true if any was found.
    fn discover_listeners(&mut self, id: EntityId, include_self: bool) -> bool {
        if !self.can_discover() {
            return false;
        }
        let now = self.table.get(id).map_or(0, |p| p.last_seen_ns);
        // init holds the sockets of socket-activated services: it is never a server.
        let chain: Vec<EntityId> = self
            .table
            .get(id)
            .filter(|_| include_self)
            .into_iter()
            .chain(self.table.ancestors(id).take(LISTEN_ANCESTORS_MAX))
            .filter(|a| a.exited_ns.is_none() && a.id.pid > 2)
            .map(|a| a.id)
            .collect();
        if self.listen_checked.len() >= LISTEN_CHECKED_MAX {
            self.listen_checked.clear();
        }
        let mut found = false;
        for &a in &chain {
            if self
                .table
                .get(a)
                .is_some_and(|p| p.annotation.family.is_some())
            {
                continue;
            }
            if self
                .listen_checked
                .get(&a)
                .is_some_and(|&t| now.saturating_sub(t) < LISTEN_RECHECK_NS)
            {
                continue;
            }
            self.listen_checked.insert(a, now);
            let families = &self.families;
            let Some(facts) = self.facts.as_mut() else {
                return false;
            };
            let ports =
                facts.listening_ports(a.pid, &|port| families.by_listen_port(port).is_some());
            let hit = ports
                .iter()
                .find_map(|&port| families.by_listen_port(port).map(|f| (f, port)));
            if let Some(hit) = hit
                && let Some(p) = self.table.get_mut(a)
            {
                p.annotation.listening = Some(hit);
                found = true;
            }
        }
        if found {
            for &a in chain.iter().rev() {
                self.annotate(a, false);
            }
        }
        found
    }

    fn on_exec(&mut self, id: EntityId, ts_ns: u64, out: &mut Vec<Alert>) {
        if self.annotate(id, true).is_none() {
            return;
        }
        let Some(p) = self.table.get(id) else { return };
        // The only additions to every exec's cost: a glob-set lookup on the name, and a map
        // lookup skipped while no server-written file is tracked.
        let tool = self.module.is_tool(&p.image);
        let executed = self
            .written
            .executed(&p.image)
            .map(|(path, w)| (path.to_owned(), w));
        if tool && !self.below_package_manager(id) {
            self.emit(
                RuleId::ServerModuleChange,
                id,
                ts_ns,
                Context::default(),
                out,
            );
        }
        if let Some((path, writer)) = executed {
            self.emit(
                RuleId::ServerWrittenFileExecuted,
                id,
                ts_ns,
                Context {
                    file: Some(&path),
                    root: Some(writer.root),
                    ..Context::default()
                },
                out,
            );
        }
        let Some(p) = self.table.get(id) else { return };
        let tag = &p.annotation;
        // Nothing below a server (the common case), a server starting a server (nginx binary
        // upgrade) and jspawnhelper itself are not evaluated further.
        if tag.server.is_none() || tag.family.is_some() || tag.transparent {
            return;
        }
        if tag.shell_below_server {
            if self.shell.enabled {
                self.emit(
                    RuleId::ServerSpawnedShell,
                    id,
                    ts_ns,
                    Context::default(),
                    out,
                );
            }
            return;
        }
        if !self.recon.enabled {
            return;
        }
        let started_by_server =
            effective_parent(&self.table, id).is_some_and(|pp| pp.annotation.family.is_some());
        if !(started_by_server || tag.below_shell) {
            return;
        }
        let image = p.image.clone();
        if self
            .recon
            .is_tool(&image, &mut self.scratch, &mut self.owners)
        {
            self.emit(
                RuleId::ServerSpawnedRecon,
                id,
                ts_ns,
                Context::default(),
                out,
            );
        }
    }

    /// File events feed the file rules (webroot-script-write, server-module-change) and the
    /// record of server-written files.
    fn on_file(&mut self, f: &File, out: &mut Vec<Alert>) {
        if !f.succeeded() {
            return;
        }
        let in_root =
            (self.webroot.enabled || self.written.enabled) && self.webroot.in_root(&f.path);
        let module = self.module.is_module_path(&f.path);
        if !in_root && !module {
            return;
        }
        let Some(id) = self.table.live(f.pid).map(|p| p.id) else {
            return;
        };
        // The writer's uid now, as for connects: a worker may have dropped privileges.
        let Some(p) = self.table.get_mut(id) else {
            return;
        };
        p.uid = f.uid;
        let server = nearest_server(p);
        let action = file_action(f);
        let ctx = || Context {
            file: Some(&f.path),
            action: Some(action),
            ..Context::default()
        };
        if in_root {
            match &server {
                Some(s) => self.written.record(
                    &f.path,
                    Writer {
                        process: id,
                        root: s.root,
                    },
                ),
                None => self.written.forget(&f.path),
            }
            if self.webroot.enabled
                && self.webroot.is_script(&f.path)
                && !self.below_package_manager(id)
                && !self.is_deployer(id, f.uid)
            {
                let severity = if server.is_some() {
                    self.webroot.severity
                } else {
                    self.webroot.severity_outside_server
                };
                let ctx = Context {
                    severity: Some(severity),
                    ..ctx()
                };
                self.emit(RuleId::WebrootScriptWrite, id, f.ts_ns, ctx, out);
            }
        }
        if module && !self.below_package_manager(id) {
            self.emit(RuleId::ServerModuleChange, id, f.ts_ns, ctx(), out);
        }
    }

    /// The process or one of its ancestors is a package manager.
    fn below_package_manager(&self, id: EntityId) -> bool {
        let pm = &self.package_managers;
        self.table
            .get(id)
            .into_iter()
            .chain(self.table.ancestors(id))
            .any(|p| pm.is_match(&p.image.exe, p.image.name()))
    }

    fn is_deployer(&self, id: EntityId, uid: u32) -> bool {
        let chain: Vec<&crate::lineage::Image> = self
            .table
            .get(id)
            .into_iter()
            .chain(self.table.ancestors(id))
            .map(|p| &*p.image)
            .collect();
        self.webroot.is_deployer(uid, &chain)
    }

    fn on_connect(&mut self, c: &Connect, out: &mut Vec<Alert>) {
        if !self.outbound.enabled || (!self.outbound.include_failed && !c.attempted()) {
            return;
        }
        let Some(live) = self.table.live(c.pid).map(|p| p.id) else {
            return;
        };
        // The caller's uid now: a worker that dropped privileges since its fork must be judged
        // (exclusions by user) and reported as the user it runs as.
        let Some(p) = self.table.get_mut(live) else {
            return;
        };
        p.uid = c.uid;
        // A renamed server dialing out is known only by its listening port: ask (at most every
        // 10 s per process, and only when some family lists ports).
        if p.annotation.family.is_none() && p.annotation.server.is_none() && self.can_discover() {
            self.discover_listeners(live, true);
        }
        let Some(p) = self.table.get(live) else {
            return;
        };
        let family = match (&p.annotation.family, &p.annotation.server) {
            (Some(f), _) => *f,
            (None, Some(s)) => s.family,
            (None, None) => return,
        };
        let id = p.id;
        let wall = self.host.boot_wall_ns.saturating_add(c.ts_ns);
        let name = self.families.name(family).to_owned();
        if self
            .outbound
            .is_unknown(family, &name, c.daddr, c.dport, wall)
        {
            let ctx = Context {
                connect: Some(c),
                ..Context::default()
            };
            self.emit(RuleId::ServerOutboundUnknown, id, c.ts_ns, ctx, out);
        }
    }

    fn emit(
        &mut self,
        rule: RuleId,
        id: EntityId,
        ts_ns: u64,
        ctx: Context<'_>,
        out: &mut Vec<Alert>,
    ) {
        let i = rule.index();
        let Some(p) = self.table.get(id) else { return };
        let server = nearest_server(p);
        if server.is_none() && !rule.server_optional() {
            return;
        }
        let parent = effective_parent(&self.table, id);
        let subject = Subject {
            family: server.as_ref().map(|s| s.family),
            parent: parent.map(|pp| &*pp.image),
            image: &p.image,
            uid: p.uid,
        };
        let (exclusions, severity) = match rule {
            RuleId::ServerSpawnedShell => (&self.shell.exclusions[..], self.shell.severity),
            RuleId::ServerSpawnedRecon => (&self.recon.exclusions[..], self.recon.severity),
            RuleId::ServerOutboundUnknown => {
                (&self.outbound.exclusions[..], self.outbound.severity)
            }
            RuleId::WebrootScriptWrite => (&self.webroot.exclusions[..], self.webroot.severity),
            RuleId::ServerModuleChange => (&self.module.exclusions[..], self.module.severity),
            RuleId::ServerWrittenFileExecuted => (&[][..], self.written.severity),
        };
        let severity = ctx.severity.unwrap_or(severity);
        if any_matches(exclusions, &subject) {
            self.totals.excluded[i] += 1;
            return;
        }
        let family_name = server.as_ref().map_or("", |s| self.families.name(s.family));
        let command_line = p.image.command_line();
        // The connect's destination, or the file: part of the alert's identity and rate key.
        let destination = match (ctx.connect, ctx.file) {
            (Some(c), _) => format!("{}:{}", c.daddr, c.dport),
            (None, Some(path)) => path.to_owned(),
            (None, None) => String::new(),
        };
        let key = RateLimiter::key(&[
            rule.as_str(),
            family_name,
            parent.map_or("", |pp| pp.image.exe.as_str()),
            &p.image.exe,
            &command_line,
            &destination,
        ]);
        let suppressed_before = match self.rate.check(key, ts_ns) {
            Verdict::Emit { suppressed_before } => suppressed_before,
            Verdict::Suppress => {
                self.totals.suppressed[i] += 1;
                if let Some(m) = &self.metrics {
                    m.alert_suppressed(rule.as_str());
                }
                return;
            }
        };
        // Without a server, the writer's top ancestor below init roots the incident.
        let root = ctx
            .root
            .or(server.as_ref().map(|s| s.root))
            .unwrap_or_else(|| top_below_init(&self.table, p));
        let incident = self.incidents.assign(&self.host.hostname, root, ts_ns);
        let boot = self.host.boot_wall_ns;
        let technique = match rule {
            RuleId::ServerModuleChange => None,
            RuleId::WebrootScriptWrite | RuleId::ServerWrittenFileExecuted => {
                Some(Technique::WebShell)
            }
            _ => server.as_ref().map(|s| self.families.technique(s.family)),
        };
        let event_id = digest_hex(&[
            rule.as_str().as_bytes(),
            id.to_string().as_bytes(),
            &ts_ns.to_le_bytes(),
            destination.as_bytes(),
        ]);
        let chain = match &server {
            Some(s) => ancestry(&self.table, p, s.root),
            None => ancestry_below_init(&self.table, p),
        };
        let ancestry = chain
            .into_iter()
            .map(|a| alert::Ancestor {
                pid: a.id.pid,
                entity_id: a.id.to_string(),
                executable: a.image.exe.clone(),
                args: a.image.argv.clone(),
                user: alert::User {
                    id: a.uid.to_string(),
                },
                start: alert::rfc3339(boot.saturating_add(a.id.start_ns)),
            })
            .collect();
        let connect = ctx.connect;
        let alert = Alert {
            timestamp: alert::rfc3339(boot.saturating_add(ts_ns)),
            event: alert::AlertEvent {
                kind: "alert",
                category: match ctx.action {
                    Some(_) => vec!["file"],
                    None => rule.category().to_vec(),
                },
                kind_type: match ctx.action {
                    Some((_, types)) => types.to_vec(),
                    None => rule.event_type().to_vec(),
                },
                id: event_id,
                severity: severity.score(),
                module: "lineage_sensor",
                dataset: "lineage_sensor.alert",
                outcome: connect.map(|c| if c.attempted() { "success" } else { "failure" }),
                action: ctx.action.map(|(action, _)| action),
            },
            rule: alert::RuleInfo {
                id: rule.as_str(),
                name: rule.name(),
                description: rule.description(),
            },
            threat: threat(technique),
            process: alert::ProcessInfo {
                pid: id.pid,
                entity_id: id.to_string(),
                executable: p.image.exe.clone(),
                name: p.image.name().to_owned(),
                args: p.image.argv.clone(),
                command_line,
                user: alert::User {
                    id: p.uid.to_string(),
                },
                start: alert::rfc3339(boot.saturating_add(id.start_ns)),
                parent: parent.map(|pp| alert::ParentInfo {
                    pid: pp.id.pid,
                    entity_id: pp.id.to_string(),
                    executable: pp.image.exe.clone(),
                    name: pp.image.name().to_owned(),
                    args: pp.image.argv.clone(),
                    command_line: pp.image.command_line(),
                    user: alert::User {
                        id: pp.uid.to_string(),
                    },
                    start: alert::rfc3339(boot.saturating_add(pp.id.start_ns)),
                }),
            },
            file: ctx.file.map(|path| alert::FileInfo {
                path: path.to_owned(),
                name: file_name(path).to_owned(),
                directory: directory(path).to_owned(),
                extension: extension(path).map(str::to_owned),
                hash: None,
            }),
            destination: connect.map(|c| alert::Destination {
                ip: c.daddr,
                port: c.dport,
            }),
            network: connect.map(|c| alert::Network {
                transport: c.proto.as_str(),
                kind: match c.family {
                    NetFamily::Inet => "ipv4",
                    NetFamily::Inet6 => "ipv6",
                },
            }),
            host: alert::Host {
                hostname: self.host.hostname.clone(),
            },
            container: p
                .container_id
                .as_ref()
                .map(|c| alert::Container { id: c.to_string() }),
            lineage: alert::LineageInfo {
                incident: alert::Incident { id: incident },
                severity,
                server: server.as_ref().map(|s| alert::Server {
                    family: family_name.to_owned(),
                    pid: s.id.pid,
                    entity_id: s.id.to_string(),
                    executable: s.image.exe.clone(),
                    listen_port: s.listen_port,
                }),
                ancestry,
                suppressed_count: suppressed_before,
                args_truncated: p.image.argv_truncated,
                shell_copy_of: p.annotation.copy_of.as_deref().map(str::to_owned),
            },
        };
        self.totals.alerts[i] += 1;
        if let Some(m) = &self.metrics {
            m.alert(rule.as_str());
        }
        out.push(alert);
    }
}

/// `event.action` and `event.type` of a file event. An open with O_CREAT may have opened an
/// existing file: the kernel side does not say which, so it counts as a creation.
fn file_action(f: &File) -> (&'static str, &'static [&'static str]) {
    match f.op {
        FileOp::Open if f.flags & File::O_CREAT != 0 => ("creation", &["creation"]),
        FileOp::Open => ("modification", &["change"]),
        FileOp::Rename => ("rename", &["change"]),
        FileOp::Link => ("link", &["creation"]),
        FileOp::Symlink => ("symlink", &["creation"]),
    }
}

/// The process's outermost known ancestor below init (pid 1), or the process itself.
fn top_below_init(table: &ProcessTable<Tag>, p: &Process<Tag>) -> EntityId {
    table
        .ancestors(p.id)
        .take_while(|a| a.id.pid != 1)
        .last()
        .map_or(p.id, |a| a.id)
}

/// From the top ancestor below init down to `p`, transparent launchers left out.
fn ancestry_below_init<'a>(
    table: &'a ProcessTable<Tag>,
    p: &'a Process<Tag>,
) -> Vec<&'a Process<Tag>> {
    let mut chain = vec![p];
    chain.extend(
        table
            .ancestors(p.id)
            .take_while(|a| a.id.pid != 1)
            .filter(|a| !a.annotation.transparent),
    );
    chain.reverse();
    chain
}

/// The server link a child of `parent` gets: the parent itself if it is a server, else the
/// parent's own link.
fn server_above(parent: Option<&Process<Tag>>) -> Option<Arc<ServerRef>> {
    parent.and_then(nearest_server)
}

/// The port a server was recognised by, when it was not recognised by its executable.
fn listen_port(p: &Process<Tag>, family: super::family::FamilyId) -> Option<u16> {
    p.annotation
        .listening
        .filter(|(f, _)| *f == family)
        .map(|(_, port)| port)
}

/// The server an alert is about: the process itself when it is one, else the nearest above.
fn nearest_server(p: &Process<Tag>) -> Option<Arc<ServerRef>> {
    match p.annotation.family {
        Some(family) => Some(Arc::new(ServerRef {
            id: p.id,
            family,
            image: p.image.clone(),
            root: p.annotation.server.as_ref().map_or(p.id, |s| s.root),
            listen_port: listen_port(p, family),
        })),
        None => p.annotation.server.clone(),
    }
}

/// The parent, skipping transparent launchers (jspawnhelper).
fn effective_parent(table: &ProcessTable<Tag>, id: EntityId) -> Option<&Process<Tag>> {
    table.ancestors(id).find(|a| !a.annotation.transparent)
}

/// From the incident's root server down to `p`, transparent launchers left out; stops early if
/// an ancestor was evicted.
fn ancestry<'a>(
    table: &'a ProcessTable<Tag>,
    p: &'a Process<Tag>,
    root: EntityId,
) -> Vec<&'a Process<Tag>> {
    let mut chain = vec![p];
    if p.id != root {
        for a in table.ancestors(p.id) {
            if !a.annotation.transparent {
                chain.push(a);
            }
            if a.id == root {
                break;
            }
        }
    }
    chain.reverse();
    chain
}

/// `None`: the technique alone (T1505 Server Software Component), for server modules.
fn threat(technique: Option<Technique>) -> alert::Threat {
    let sub = technique.map(|t| match t {
        Technique::WebShell => alert::NamedId {
            id: "T1505.003",
            name: "Web Shell",
        },
        Technique::SqlStoredProcedures => alert::NamedId {
            id: "T1505.001",
            name: "SQL Stored Procedures",
        },
    });
    alert::Threat {
        framework: "MITRE ATT&CK",
        tactic: alert::NamedId {
            id: "TA0003",
            name: "Persistence",
        },
        technique: alert::Technique {
            id: "T1505",
            name: "Server Software Component",
            subtechnique: sub,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Exec, Fork};

    fn exec(ts: u64, pid: u32, ppid: u32, exe: &str, argv: &[&str]) -> Event {
        Event::Exec(Exec {
            ts_ns: ts,
            pid,
            tid: pid,
            ppid,
            start_ns: ts,
            uid: 33,
            gid: 33,
            euid: 33,
            comm: "x".into(),
            exe: exe.into(),
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            argv_truncated: false,
            argv_bytes: 0,
            cgroup_id: 0,
        })
    }

    #[test]
    fn crafted_argv_cannot_break_the_line_or_forge_fields() {
        let mut engine = Engine::new(
            &Config::default(),
            HostInfo {
                hostname: "web\n01".into(),
                boot_wall_ns: 1_700_000_000_000_000_000,
            },
        )
        .expect("engine");
        let mut alerts = Vec::new();
        engine.process(exec(1, 10, 1, "/usr/sbin/nginx", &["nginx"]), &mut alerts);
        let evil = "id\n{\"rule\":{\"id\":\"forged\"}}\r\u{1b}[31m\"\\xff\u{0}";
        engine.process(exec(2, 11, 10, "/bin/sh", &["sh", "-c", evil]), &mut alerts);
        assert_eq!(alerts.len(), 1);
        let mut line = Vec::new();
        alerts[0].to_line(&mut line).expect("serialise");
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        assert_eq!(line.last(), Some(&b'\n'));
        assert!(!line.contains(&0x1b) && !line.contains(&b'\r') && !line.contains(&0));
        let v: serde_json::Value = serde_json::from_slice(&line).expect("valid JSON");
        assert_eq!(v["rule"]["id"], "server-spawned-shell");
        assert_eq!(v["process"]["args"][2], evil, "argv kept verbatim");
        assert_eq!(v["host"]["hostname"], "web\n01");
        assert_eq!(v["event"]["kind"], "alert");
        assert_eq!(v["threat"]["technique"]["subtechnique"]["id"], "T1505.003");
        assert_eq!(v["lineage"]["ancestry"][0]["executable"], "/usr/sbin/nginx");
        assert_eq!(v["process"]["parent"]["executable"], "/usr/sbin/nginx");
        assert_eq!(v["process"]["user"]["id"], "33");
        assert!(
            v["@timestamp"]
                .as_str()
                .is_some_and(|t| t.starts_with("2023-11-14T22:13:20"))
        );
    }

    #[test]
    fn server_pids_are_servers_and_what_was_below_them_at_seed() {
        let seeded = |pid, ppid, exe: &str| crate::lineage::SeedProcess {
            pid,
            ppid,
            start_ns: u64::from(pid),
            uid: 0,
            comm: "x".into(),
            exe: exe.into(),
            argv: vec![exe.into()],
            container_id: None,
        };
        let mut engine = Engine::new(&Config::default(), HostInfo::default())
            .expect("engine")
            .with_server_pids();
        engine.seed(vec![
            seeded(1, 0, "/sbin/init"),
            seeded(10, 1, "/usr/sbin/apache2"),
            seeded(11, 10, "/bin/sh"),
            seeded(12, 1, "/usr/sbin/cron"),
        ]);
        let mut pids: Vec<u32> = engine.take_server_pids().collect();
        pids.sort_unstable();
        assert_eq!(pids, [10, 11], "the server and the shell already below it");
        assert_eq!(engine.take_server_pids().count(), 0, "taken once");

        let mut alerts = Vec::new();
        engine.process(exec(20, 30, 1, "/usr/sbin/nginx", &["nginx"]), &mut alerts);
        engine.process(fork(21, 31, 30), &mut alerts);
        engine.process(
            exec(22, 31, 30, "/bin/sh", &["sh", "-c", "id"]),
            &mut alerts,
        );
        engine.process(
            exec(23, 32, 12, "/bin/sh", &["sh", "-c", "backup"]),
            &mut alerts,
        );
        // The kernel follows nginx's forks itself: only the server is handed over.
        assert_eq!(engine.take_server_pids().collect::<Vec<_>>(), [30]);

        let mut plain = Engine::new(&Config::default(), HostInfo::default()).expect("engine");
        plain.process(exec(1, 30, 1, "/usr/sbin/nginx", &["nginx"]), &mut alerts);
        assert_eq!(
            plain.take_server_pids().count(),
            0,
            "only collected when asked for"
        );
    }

    #[test]
    fn forks_of_a_server_tree_share_one_incident_root() {
        let mut engine = Engine::new(&Config::default(), HostInfo::default()).expect("engine");
        let mut alerts = Vec::new();
        engine.process(
            exec(1, 10, 1, "/usr/sbin/php-fpm8.2", &["php-fpm: master"]),
            &mut alerts,
        );
        for (i, worker) in [(0u64, 11u32), (1, 12)] {
            engine.process(
                Event::Fork(Fork {
                    ts_ns: 2 + i,
                    pid: worker,
                    tid: 10,
                    ppid: 10,
                    start_ns: 2 + i,
                    uid: 33,
                    gid: 33,
                    comm: "php-fpm8.2".into(),
                    cgroup_id: 0,
                }),
                &mut alerts,
            );
        }
        engine.process(exec(5, 20, 11, "/bin/sh", &["sh", "-c", "a"]), &mut alerts);
        engine.process(exec(6, 21, 12, "/bin/sh", &["sh", "-c", "b"]), &mut alerts);
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[0].lineage.incident, alerts[1].lineage.incident);
        let server = |i: usize| {
            alerts[i]
                .lineage
                .server
                .as_ref()
                .map(|s| s.entity_id.clone())
        };
        assert!(server(0).is_some());
        assert_ne!(server(0), server(1));
        assert_ne!(alerts[0].event.id, alerts[1].event.id);
        assert_eq!(engine.totals().alerts, [2, 0, 0, 0, 0, 0]);
    }

    fn write(ts: u64, pid: u32, path: &str) -> Event {
        Event::File(File {
            ts_ns: ts,
            pid,
            tid: pid,
            uid: 33,
            op: FileOp::Open,
            path: path.into(),
            path_truncated: false,
            source: None,
            flags: 0o1101,
            ret: 3,
        })
    }

    #[test]
    fn file_alerts_carry_file_fields_and_optional_server() {
        let mut engine = Engine::new(&Config::default(), HostInfo::default()).expect("engine");
        let mut alerts = Vec::new();
        engine.process(
            exec(1, 10, 1, "/usr/sbin/php-fpm8.2", &["php-fpm"]),
            &mut alerts,
        );
        engine.process(write(2, 10, "/var/www/html/up/x.PHP"), &mut alerts);
        engine.process(exec(3, 20, 1, "/usr/sbin/cron", &["cron"]), &mut alerts);
        engine.process(exec(4, 21, 20, "/bin/sh", &["sh", "-c", "x"]), &mut alerts);
        engine.process(write(5, 21, "/var/www/html/y.php"), &mut alerts);
        engine.process(write(6, 21, "/var/www/html/y.txt"), &mut alerts);
        assert_eq!(alerts.len(), 2);
        let v = |i: usize| serde_json::to_value(&alerts[i]).expect("json");
        let (a, b) = (v(0), v(1));
        assert_eq!(a["rule"]["id"], "webroot-script-write");
        assert_eq!(a["file"]["path"], "/var/www/html/up/x.PHP");
        assert_eq!(a["file"]["name"], "x.PHP");
        assert_eq!(a["file"]["directory"], "/var/www/html/up");
        assert_eq!(a["file"]["extension"], "PHP");
        assert_eq!(a["event"]["action"], "creation");
        assert_eq!(a["event"]["category"][0], "file");
        assert_eq!(a["event"]["severity"], 99);
        assert_eq!(a["lineage"]["server"]["executable"], "/usr/sbin/php-fpm8.2");
        assert!(b["lineage"].get("server").is_none(), "{b}");
        assert_eq!(b["event"]["severity"], 47);
        assert_eq!(b["lineage"]["ancestry"][0]["executable"], "/usr/sbin/cron");
        assert_eq!(b["lineage"]["ancestry"][1]["executable"], "/bin/sh");
        assert_ne!(a["lineage"]["incident"], b["lineage"]["incident"]);
        assert_eq!(engine.totals().alerts, [0, 0, 0, 2, 0, 0]);
    }

    #[test]
    fn file_rule_exclusions_package_managers_and_failures() {
        let mut config = Config::default();
        config
            .rules
            .webroot_script_write
            .exclude
            .push(crate::config::Exclusion {
                comment: "the CMS updater".into(),
                family: Some("php".into()),
                users: vec![33],
                ..crate::config::Exclusion::default()
            });
        let mut engine = Engine::new(&config, HostInfo::default()).expect("engine");
        let mut alerts = Vec::new();
        engine.process(
            exec(1, 10, 1, "/usr/sbin/php-fpm8.2", &["php-fpm"]),
            &mut alerts,
        );
        engine.process(write(2, 10, "/var/www/html/x.php"), &mut alerts);
        engine.process(
            exec(3, 30, 1, "/usr/bin/dpkg", &["dpkg", "-i"]),
            &mut alerts,
        );
        engine.process(exec(4, 31, 30, "/bin/sh", &["sh", "postinst"]), &mut alerts);
        engine.process(write(5, 31, "/var/www/html/y.php"), &mut alerts);
        engine.process(write(6, 31, "/etc/php/8.2/fpm/php.ini"), &mut alerts);
        engine.process(
            exec(7, 32, 31, "/usr/sbin/a2enmod", &["a2enmod"]),
            &mut alerts,
        );
        let mut failed = write(8, 31, "/var/www/html/z.php");
        if let Event::File(f) = &mut failed {
            f.pid = 10;
            f.ret = -13;
        }
        engine.process(failed, &mut alerts);
        assert!(alerts.is_empty(), "{alerts:?}");
        assert_eq!(
            engine.totals().excluded[RuleId::WebrootScriptWrite.index()],
            1
        );
    }

    /// Answers as a host would: `listeners` pid -> ports, `copies` exe -> shell.
    #[derive(Default)]
    struct FakeHost {
        listeners: Vec<(u32, u16)>,
        copies: Vec<(&'static str, &'static str)>,
        asked: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl HostFacts for FakeHost {
        fn listening_ports(&mut self, pid: u32, wanted: &dyn Fn(u16) -> bool) -> Vec<u16> {
            self.asked
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.listeners
                .iter()
                .filter(|(p, port)| *p == pid && wanted(*port))
                .map(|(_, port)| *port)
                .collect()
        }

        fn shell_copied_to(&mut self, _pid: u32, exe: &str) -> Option<Arc<str>> {
            self.copies
                .iter()
                .find(|(e, _)| *e == exe)
                .map(|(_, shell)| Arc::from(*shell))
        }
    }

    fn fork(ts: u64, pid: u32, ppid: u32) -> Event {
        Event::Fork(Fork {
            ts_ns: ts,
            pid,
            tid: ppid,
            ppid,
            start_ns: ts,
            uid: 33,
            gid: 33,
            comm: "x".into(),
            cgroup_id: 0,
        })
    }

    #[test]
    fn a_renamed_server_is_found_by_its_listening_port() {
        let mut config = Config::default();
        config.detect.families[1].listen_ports = vec![8080];
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let host = FakeHost {
            // The master and its forked worker both hold the socket; init holds one too.
            listeners: vec![(10, 8080), (11, 8080), (1, 8080)],
            asked: asked.clone(),
            ..FakeHost::default()
        };
        let mut engine = Engine::new(&config, HostInfo::default())
            .expect("engine")
            .with_host_facts(Box::new(host));
        let mut alerts = Vec::new();
        engine.process(
            exec(1, 10, 1, "/opt/app/bin/httpd-x", &["httpd-x"]),
            &mut alerts,
        );
        engine.process(fork(2, 11, 10), &mut alerts);
        engine.process(exec(3, 20, 11, "/bin/sh", &["sh", "-c", "id"]), &mut alerts);
        engine.process(exec(4, 21, 20, "/usr/bin/id", &["id"]), &mut alerts);
        // A shell from an unrelated daemon: init's socket does not make init a server.
        engine.process(exec(5, 30, 1, "/usr/sbin/cron", &["cron"]), &mut alerts);
        engine.process(
            exec(6, 31, 30, "/bin/sh", &["sh", "-c", "backup"]),
            &mut alerts,
        );
        engine.process(
            exec(7, 32, 30, "/bin/sh", &["sh", "-c", "backup"]),
            &mut alerts,
        );
        let rules: Vec<&str> = alerts.iter().map(|a| a.rule.id).collect();
        assert_eq!(
            rules,
            ["server-spawned-shell", "server-spawned-recon"],
            "{alerts:#?}"
        );
        let v = serde_json::to_value(&alerts[0]).expect("json");
        let family = config.detect.families[1].name.clone();
        assert_eq!(v["lineage"]["server"]["family"], family.as_str());
        assert_eq!(v["lineage"]["server"]["listen_port"], 8080);
        assert_eq!(
            v["lineage"]["ancestry"][0]["executable"],
            "/opt/app/bin/httpd-x"
        );
        assert_eq!(alerts[0].lineage.incident, alerts[1].lineage.incident);
        // cron was asked once; the second backup shell within 10 s did not ask again.
        let before = asked.load(std::sync::atomic::Ordering::Relaxed);
        engine.process(
            exec(8, 33, 30, "/bin/sh", &["sh", "-c", "backup"]),
            &mut alerts,
        );
        assert_eq!(asked.load(std::sync::atomic::Ordering::Relaxed), before);
    }

    #[test]
    fn listen_ports_are_not_asked_for_without_host_facts_or_ports() {
        let mut config = Config::default();
        config.detect.families[1].listen_ports = vec![8080];
        let mut engine = Engine::new(&config, HostInfo::default()).expect("engine");
        let mut alerts = Vec::new();
        engine.process(
            exec(1, 10, 1, "/opt/app/bin/httpd-x", &["httpd-x"]),
            &mut alerts,
        );
        engine.process(exec(2, 20, 10, "/bin/sh", &["sh", "-c", "id"]), &mut alerts);
        assert!(alerts.is_empty(), "replay has no host to ask: {alerts:?}");
        config.detect.families[0].listen_ports = vec![8080];
        let err = Engine::new(&config, HostInfo::default())
            .err()
            .expect("port twice");
        assert!(
            err.to_string()
                .contains("detect.families[1].listen_ports[0]"),
            "{err}"
        );
    }

    #[test]
    fn a_shell_copied_under_another_name_is_a_shell() {
        let host = FakeHost {
            copies: vec![("/tmp/kworker", "/usr/bin/dash")],
            ..FakeHost::default()
        };
        let mut engine = Engine::new(&Config::default(), HostInfo::default())
            .expect("engine")
            .with_host_facts(Box::new(host));
        let mut alerts = Vec::new();
        engine.process(exec(1, 10, 1, "/usr/sbin/nginx", &["nginx"]), &mut alerts);
        engine.process(
            exec(2, 20, 10, "/tmp/kworker", &["kworker", "-c", "x"]),
            &mut alerts,
        );
        engine.process(exec(3, 21, 10, "/tmp/other", &["other"]), &mut alerts);
        // Outside a server, a copy is nobody's business.
        engine.process(exec(4, 30, 1, "/tmp/kworker", &["kworker"]), &mut alerts);
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        let v = serde_json::to_value(&alerts[0]).expect("json");
        assert_eq!(v["rule"]["id"], "server-spawned-shell");
        assert_eq!(v["process"]["executable"], "/tmp/kworker");
        assert_eq!(v["lineage"]["shell_copy_of"], "/usr/bin/dash");
    }

    #[test]
    fn a_renamed_server_dialing_out_is_found_by_its_listening_port() {
        let mut config = Config::default();
        config.detect.families[1].listen_ports = vec![8080];
        let host = FakeHost {
            listeners: vec![(10, 8080)],
            ..FakeHost::default()
        };
        let mut engine = Engine::new(&config, HostInfo::default())
            .expect("engine")
            .with_host_facts(Box::new(host));
        let mut alerts = Vec::new();
        let connect = |ts: u64, pid: u32| {
            Event::Connect(Connect {
                ts_ns: ts,
                pid,
                tid: pid,
                uid: 33,
                family: NetFamily::Inet,
                daddr: std::net::IpAddr::from([198, 51, 100, 7]),
                dport: 4444,
                proto: crate::event::Proto::Tcp,
                ret: 0,
                call: crate::event::ConnectCall::Connect,
            })
        };
        engine.process(
            exec(1, 10, 1, "/opt/app/bin/httpd-x", &["httpd-x"]),
            &mut alerts,
        );
        engine.process(exec(2, 20, 1, "/usr/bin/curl", &["curl"]), &mut alerts);
        engine.process(connect(3, 20), &mut alerts);
        assert!(alerts.is_empty(), "not a server: {alerts:?}");
        engine.process(connect(4, 10), &mut alerts);
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        let v = serde_json::to_value(&alerts[0]).expect("json");
        assert_eq!(v["rule"]["id"], "server-outbound-unknown");
        assert_eq!(v["lineage"]["server"]["listen_port"], 8080);
        assert_eq!(v["destination"]["port"], 4444);
    }
}
