//! The rules, one file each: its compiled settings (a shared [`RuleCommon`] plus its own), its
//! decision over an event and the annotated lineage, and its tests. [`Rules`] routes each event
//! to the rules that look at it and collects their [`Finding`]s for the gate.

mod id;
pub mod module_change;
pub mod outbound;
pub mod recon;
pub mod shell;
pub mod webroot;
pub mod written_exec;

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
    config::{
        Config, Exclusion as ExclusionConfig, Severity,
    },
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
        }
    }

    /// About a file event: its path and what was done to it.
    fn about_file(rule: RuleId, process: EntityId, f: &'e File) -> Self {
        Self {
            file: Some(Cow::Borrowed(&f.path)),
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
    module: bool,
}

impl FileInterest {
    pub fn any(self) -> bool {
        self.in_root || self.module
    }
}

// The registry: the one place a rule is named outside its own file. Its order is the order of
// `RuleId::ALL` (per-rule totals in the shutdown report); the order of alerts within one event is
// the routing's, below.
id::registry! {
    rules {
        ServerSpawnedShell => shell: shell::ShellRule,
        ServerSpawnedRecon => recon: recon::ReconRule,
        ServerOutboundUnknown => outbound: outbound::OutboundRule,
        WebrootScriptWrite => webroot: webroot::WebrootRule,
        ServerModuleChange => module: module_change::ModuleRule,
        ServerWrittenFileExecuted => written: written_exec::WrittenFiles,
    }
    shared {
        package_managers: ExeMatcher,
        scratch: Vec<usize>,
        owners: Vec<usize>,
    }
}

impl Rules {
    pub fn new(config: &Config, families: &Families) -> Result<Self, DetectError> {
        let package_managers =
            ExeMatcher::new(&config.detect.package_managers, "detect.package_managers")?;
        Self::compile_units(config, families, package_managers, Vec::new(), Vec::new())
    }

    /// An exec (or a fork that linked an earlier exec late), after annotation.
    pub fn on_exec(&mut self, table: &Table, id: EntityId, ts_ns: u64, out: &mut Vec<Finding<'_>>) {
        let Some(p) = table.get(id) else { return };
        // The only additions to every exec's cost: a glob-set lookup on the name, and a map
        // lookup skipped while no server-written file is tracked.
        if self.module.is_tool(&p.image) && !self.below_package_manager(table, id) {
            out.push(Finding::new(RuleId::ServerModuleChange, id, ts_ns));
        }
        if let Some(f) = self.written.on_exec(p, ts_ns) {
            out.push(f);
        }
        if !below_server(&p.annotation) {
            return;
        }
        if self.shell.fires(p) {
            out.push(Finding::new(RuleId::ServerSpawnedShell, id, ts_ns));
        } else if self
            .recon
            .fires(table, p, &mut self.scratch, &mut self.owners)
        {
            out.push(Finding::new(RuleId::ServerSpawnedRecon, id, ts_ns));
        }
    }

    /// Whether a file event concerns any rule; the others are dropped before the lineage.
    pub fn file_interest(&self, f: &File) -> FileInterest {
        if !f.succeeded() {
            return FileInterest {
                in_root: false,
                module: false,
            };
        }
        FileInterest {
            in_root: (self.webroot.common.enabled || self.written.common.enabled)
                && self.webroot.in_root(&f.path),
            module: self.module.is_module_path(&f.path),
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
        let Some(p) = table.get(id) else { return };
        if interest.in_root {
            self.written.on_write(p, &f.path);
            if self.webroot.common.enabled
                && self.webroot.is_script(&f.path)
                && !self.below_package_manager(table, id)
                && !self.webroot.is_deployer_chain(table, id, f.uid)
            {
                let mut finding = Finding::about_file(RuleId::WebrootScriptWrite, id, f);
                finding.severity = Some(self.webroot.severity_for(p));
                out.push(finding);
            }
        }
        if interest.module && !self.below_package_manager(table, id) {
            out.push(Finding::about_file(RuleId::ServerModuleChange, id, f));
        }
    }

    /// A connect by the live process `p` (whose server, if any, is known by now).
    pub fn on_connect<'e>(
        &mut self,
        p: &Process<Annotation>,
        families: &Families,
        c: &'e Connect,
        boot_wall_ns: u64,
        out: &mut Vec<Finding<'e>>,
    ) {
        if self.outbound.fires(p, families, c, boot_wall_ns) {
            out.push(Finding {
                connect: Some(c),
                ..Finding::new(RuleId::ServerOutboundUnknown, p.id, c.ts_ns)
            });
        }
    }

    /// The process or one of its ancestors is a package manager.
    fn below_package_manager(&self, table: &Table, id: EntityId) -> bool {
        let pm = &self.package_managers;
        self_and_ancestors(table, id).any(|p| pm.is_match(&p.image.exe, p.image.name()))
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
}
