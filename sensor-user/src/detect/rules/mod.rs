//! The rules, one file each: its compiled settings (a shared [`RuleCommon`] plus its own), its
//! decision over an event and the annotated lineage, and its tests. [`Rules`] routes each event
//! to the rules that look at it and collects their [`Finding`]s for the gate.

mod id;

use std::borrow::Cow;

pub use id::{RuleMeta, RuleUnit};

use super::{
    DetectError,
    annotation::{Annotation, Table, self_and_ancestors},
    exclusion::Exclusion,
    family::Families,
    matcher::ExeMatcher,
};
use crate::{
    config::{Config, Exclusion as ExclusionConfig, Severity},
    event::{Connect, File, FileOp},
    lineage::{EntityId, Process},
};

/// What every rule has: whether it runs, how severe its alerts are, and its exclusions.
pub struct RuleCommon {
    pub enabled: bool,
    pub severity: Severity,
    pub exclusions: Vec<Exclusion>,
}

/// The settings every rule's config section has.
pub trait RuleSection {
    fn enabled(&self) -> bool;
    fn severity(&self) -> Severity;
    fn exclude(&self) -> &[ExclusionConfig];
}

/// Implements [`RuleSection`] for a config section with `enabled`, `severity` and `exclude`
/// fields; each rule's file names its own section.
macro_rules! rule_section {
    ($section:ty) => {
        impl super::RuleSection for $section {
            fn enabled(&self) -> bool {
                self.enabled
            }
            fn severity(&self) -> crate::config::Severity {
                self.severity
            }
            fn exclude(&self) -> &[crate::config::Exclusion] {
                &self.exclude
            }
        }
    };
}
use rule_section;

impl RuleCommon {
    /// `field` is the rule's config section (`rules.server_spawned_shell`), for error messages.
    pub fn compile(
        section: &impl RuleSection,
        field: &str,
        families: &Families,
    ) -> Result<Self, DetectError> {
        Ok(Self {
            enabled: section.enabled(),
            severity: section.severity(),
            exclusions: Exclusion::compile_all(
                section.exclude(),
                &format!("{field}.exclude"),
                families,
            )?,
        })
    }
}

/// A rule's verdict that an event should alert, before the gate (exclusions, rate limit,
/// incident) has its say.
pub struct Finding<'e> {
    pub rule: RuleId,
    pub process: EntityId,
    pub ts_ns: u64,
    pub connect: Option<&'e Connect>,
    pub file: Option<Cow<'e, str>>,
    /// For alerts about a file event: `event.action` and `event.type`.
    pub action: Option<(&'static str, &'static [&'static str])>,
    /// Overrides the rule's severity.
    pub severity: Option<Severity>,
    /// Overrides the incident root (the writer's tree for an executed file).
    pub root: Option<EntityId>,
    /// Alerts whether or not the server's learned baseline knows the command: the hook every
    /// always-alerting decision (payloads, interactive shells) sets (see detect::baseline).
    pub always_alert: bool,
}

impl<'e> Finding<'e> {
    pub fn new(rule: RuleId, process: EntityId, ts_ns: u64) -> Self {
        Self {
            rule,
            process,
            ts_ns,
            connect: None,
            file: None,
            action: None,
            severity: None,
            root: None,
            always_alert: false,
        }
    }

    /// About a file event: its path and what was done to it.
    fn about_file(rule: RuleId, process: EntityId, f: &'e File) -> Self {
        Self {
            // The tail of a truncated path is shown behind "…" so that nobody reads it as a
            // path from the root.
            file: Some(if f.path_truncated {
                Cow::Owned(format!("…{}", f.path))
            } else {
                Cow::Borrowed(&f.path)
            }),
            action: Some(file_action(f)),
            ..Self::new(rule, process, f.ts_ns)
        }
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

/// A process with a server above it that is neither a server itself (nginx binary upgrade) nor
/// a transparent launcher (jspawnhelper): what the process rules look at.
fn below_server(a: &Annotation) -> bool {
    a.server.is_some() && a.family.is_none() && !a.transparent
}

/// Which file rules a path concerns.
#[derive(Clone, Copy)]
pub struct FileInterest {
    in_root: bool,
    /// One bit per [`RuleId::index`].
    wanting: u64,
}

impl FileInterest {
    pub fn any(self) -> bool {
        self.wanting != 0
    }
}

/// What a rule sees of an exec.
pub struct ExecContext<'a> {
    pub table: &'a Table,
    pub process: &'a Process<Annotation>,
    pub ts_ns: u64,
    package_managers: &'a ExeMatcher,
}

impl ExecContext<'_> {
    /// The process or one of its ancestors is a package manager.
    pub fn below_package_manager(&self) -> bool {
        below_package_manager(self.package_managers, self.table, self.process.id)
    }
}

/// What a rule sees of a file event.
pub struct FileContext<'a, 'e> {
    pub table: &'a Table,
    pub file: &'e File,
    /// The writer, live.
    pub process: &'a Process<Annotation>,
    /// The path is under a web root.
    pub in_root: bool,
    package_managers: &'a ExeMatcher,
}

impl FileContext<'_, '_> {
    /// The writer or one of its ancestors is a package manager.
    pub fn below_package_manager(&self) -> bool {
        below_package_manager(self.package_managers, self.table, self.process.id)
    }
}

/// What a rule sees of a connect.
pub struct ConnectContext<'a, 'e> {
    pub process: &'a Process<Annotation>,
    pub families: &'a Families,
    pub connect: &'e Connect,
    pub boot_wall_ns: u64,
}

fn below_package_manager(pm: &ExeMatcher, table: &Table, id: EntityId) -> bool {
    self_and_ancestors(table, id).any(|p| pm.is_match(&p.image.exe, p.image.name()))
}

// The registry: the one place a rule is named outside its own file (the engine also reads the
// shell and outbound rules' tables for annotation and the learned allowlist). The list order is
// the order of the alerts one event raises (an exec: module tool, executed file, shell, recon; a
// file event: script write, module change); the numbers, never renumbered, are each rule's
// position in `RuleId::ALL`, the order of the per-rule totals.
id::registry! {
    WebrootScriptWrite = 3 => webroot: webroot::WebrootRule,
    ServerModuleChange = 4 => module: module_change::ModuleRule,
    ServerWrittenFileExecuted = 5 => written: written_exec::WrittenFiles,
    ServerSpawnedShell = 0 => shell: shell::ShellRule,
    ServerSpawnedRecon = 1 => recon: recon::ReconRule,
    ServerOutboundUnknown = 2 => outbound: outbound::OutboundRule,
    ServerTempFileExecuted = 6 => temp_exec: temp_exec::TempExecRule,
}

/// The compiled rules and what they share, routing each event to them.
pub struct Rules {
    pub units: Units,
    package_managers: ExeMatcher,
}

impl Rules {
    pub fn new(config: &Config, families: &Families) -> Result<Self, DetectError> {
        Ok(Self {
            units: Units::compile(config, families)?,
            package_managers: ExeMatcher::new(
                &config.detect.package_managers,
                "detect.package_managers",
            )?,
        })
    }

    pub fn common(&self, rule: RuleId) -> &RuleCommon {
        self.units.common(rule)
    }

    /// An exec (or a fork that linked an earlier exec late), after annotation.
    pub fn on_exec(&mut self, table: &Table, id: EntityId, ts_ns: u64, out: &mut Vec<Finding<'_>>) {
        let Some(process) = table.get(id) else { return };
        let cx = ExecContext {
            table,
            process,
            ts_ns,
            package_managers: &self.package_managers,
        };
        self.units.on_exec(&cx, out);
    }

    /// Whether a file event concerns any rule; the others are dropped before the lineage.
    pub fn file_interest(&self, f: &File) -> FileInterest {
        if !f.succeeded() {
            return FileInterest {
                in_root: false,
                wanting: 0,
            };
        }
        // The web roots are the script-write rule's setting; the executed-file rule reads them too.
        // A path the kernel and /proc could not complete lost its start: it is judged as under a
        // web root, since a planted file must not escape by being deep (its alert says so).
        let in_root = f.path_truncated || self.units.webroot.in_root(&f.path);
        FileInterest {
            in_root,
            wanting: self.units.wanting_file(f, in_root),
        }
    }

    /// A successful file event that [`Rules::file_interest`] selected, by the live process `id`.
    pub fn on_file<'e>(
        &mut self,
        table: &Table,
        f: &'e File,
        id: EntityId,
        interest: FileInterest,
        out: &mut Vec<Finding<'e>>,
    ) {
        let Some(process) = table.get(id) else { return };
        let cx = FileContext {
            table,
            file: f,
            process,
            in_root: interest.in_root,
            package_managers: &self.package_managers,
        };
        self.units.on_file(&cx, interest.wanting, out);
    }

    /// Whether a connect concerns any rule; the others are dropped before the lineage.
    pub fn wants_connect(&self, c: &Connect) -> bool {
        self.units.wants_connect(c)
    }

    /// A connect by the live process `p` (whose server, if any, is known by now).
    pub fn on_connect<'e>(
        &mut self,
        process: &Process<Annotation>,
        families: &Families,
        connect: &'e Connect,
        boot_wall_ns: u64,
        out: &mut Vec<Finding<'e>>,
    ) {
        let cx = ConnectContext {
            process,
            families,
            connect,
            boot_wall_ns,
        };
        self.units.on_connect(&cx, out);
    }
}

#[cfg(test)]
mod tests {
    use super::RuleId;
    use crate::event::Event;
    use crate::{
        config::Config,
        detect::{Engine, HostInfo, test_support::*},
    };

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

    #[test]
    fn totals_keep_their_order() {
        let ids = RuleId::ALL.map(RuleId::as_str);
        assert_eq!(
            ids,
            [
                "server-spawned-shell",
                "server-spawned-recon",
                "server-outbound-unknown",
                "webroot-script-write",
                "server-module-change",
                "server-written-file-executed",
                "server-temp-file-executed",
            ]
        );
    }

    /// The registry's order is the order of the alerts one event raises.
    #[test]
    fn alerts_of_one_exec_keep_the_registry_order() {
        let mut engine = Engine::new(&Config::default(), HostInfo::default()).expect("engine");
        let mut alerts = Vec::new();
        engine.process(
            exec(1, 10, 1, "/usr/sbin/php-fpm8.2", &["php-fpm"]),
            &mut alerts,
        );
        engine.process(write(2, 10, "/var/www/html/up/x.sh"), &mut alerts);
        alerts.clear();
        engine.process(
            exec(3, 11, 10, "/bin/sh", &["sh", "/var/www/html/up/x.sh"]),
            &mut alerts,
        );
        let rules: Vec<&str> = alerts.iter().map(|a| a.rule.id).collect();
        assert_eq!(
            rules,
            ["server-written-file-executed", "server-spawned-shell"]
        );
    }
}
