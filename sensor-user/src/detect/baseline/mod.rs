//! The learned baseline: per server (family, executable, application), the command templates
//! ([`template`]) its shells ran while the server was learned. Judged in one place, the gate,
//! and for one kind of finding only: an ordinary server-spawned-shell finding
//! ([`Baseline::applies`]). Recon and download tools, executed written files, module changes,
//! outbound connects, files run from temporary directories or memfds, shell copies, interactive
//! shells and whatever a rule marks `always_alert` never reach it, so no amount of learning can
//! silence them.
//!
//! While a server is learned its shells alert as before and their templates are remembered;
//! once its window is over a known template is counted (`lineage_sensor_alerts_baselined_total`)
//! instead of alerted, and a new one alerts with `lineage.baseline.new`.

mod file;
pub mod template;

use std::collections::{BTreeMap, BTreeSet};

pub use file::{BaselineError, merge_files, read};
use template::Normaliser;

use super::{
    annotation::{Annotation, ServerRef},
    rules::{Finding, RuleId},
};
use crate::{
    config::BaselineConfig,
    lineage::{Image, Process},
};

/// A server as the baseline knows it: its application distinguishes two Java or Python
/// applications that share an executable.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerKey {
    pub family: String,
    pub executable: String,
    /// The jar, main class, module or script (normalised, so a version bump keeps the habits);
    /// empty for a server whose executable is the application (nginx, php-fpm).
    pub application: String,
}

/// What a server was learned to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Habits {
    /// When its learning ends, wall clock ns; None: over.
    pub learning_ends_wall_ns: Option<u64>,
    pub templates: BTreeSet<String>,
}

/// The baseline's verdict on a shell below a server.
#[derive(Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Not judged: the baseline is off, or full.
    Untracked,
    /// The server is being learned: the template is remembered and the shell alerts as before.
    Learning,
    /// Learned, and the template is known: counted, not alerted.
    Known,
    /// Learned, and the template is new: alerts, saying so.
    New(String),
}

/// Sizes for the metrics: servers being learned, servers learned, templates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BaselineStats {
    pub learning: usize,
    pub learned: usize,
    pub templates: usize,
}

#[derive(Debug, Default)]
pub struct Baseline {
    enabled: bool,
    window_ns: u64,
    max_servers: usize,
    max_templates: usize,
    normaliser: Normaliser,
    servers: BTreeMap<ServerKey, Habits>,
    boot_wall_ns: u64,
    /// The engine's first event (its clock): servers already running then were first seen then.
    opened_ns: Option<u64>,
    dirty: bool,
}

/// Longest template remembered (a longer one is judged new once learning is over).
const MAX_TEMPLATE: usize = 4096;

impl Baseline {
    pub fn new(config: &BaselineConfig) -> Self {
        Self {
            enabled: config.enabled,
            window_ns: config.learning_secs.saturating_mul(1_000_000_000),
            max_servers: config.max_servers,
            max_templates: config.max_templates_per_server,
            normaliser: Normaliser::new(&config.volatile_dirs),
            ..Self::default()
        }
    }

    pub fn set_boot_wall_ns(&mut self, boot_wall_ns: u64) {
        self.boot_wall_ns = boot_wall_ns;
    }

    /// The time of the engine's first event (later calls are ignored).
    pub fn open(&mut self, ts_ns: u64) {
        self.opened_ns.get_or_insert(ts_ns);
    }

    /// Whether the baseline may judge this finding: the hook every always-alerting decision
    /// bypasses. Only an ordinary shell below a server qualifies.
    pub fn applies(&self, f: &Finding<'_>, p: &Process<Annotation>) -> bool {
        self.enabled
            && f.rule == RuleId::ServerSpawnedShell
            && !f.always_alert
            && p.annotation.copy_of.is_none()
            && !self.volatile_executable(&p.image.exe)
            && !interactive(&p.image)
    }

    /// Run from a temporary directory or from memory (a memfd, or a descriptor executed by
    /// fexecve, named as the kernel or /proc shows them): dropped there, never a habit.
    fn volatile_executable(&self, exe: &str) -> bool {
        exe.starts_with("/memfd:")
            || exe.starts_with("/dev/fd/")
            || exe.starts_with("/proc/self/fd/")
            || exe.ends_with(" (deleted)")
            || self.normaliser.below_prefix(exe)
    }

    /// Learns or judges the shell `p` below `server` (of family `family`) at `ts_ns`.
    pub fn judge(
        &mut self,
        family: &str,
        server: &ServerRef,
        p: &Process<Annotation>,
        ts_ns: u64,
    ) -> Judgement {
        let key = ServerKey {
            family: family.to_owned(),
            executable: server.image.exe.clone(),
            application: self.application(&server.image),
        };
        let now = self.boot_wall_ns.saturating_add(ts_ns);
        let template = self.normaliser.template(&p.image);
        if !self.servers.contains_key(&key) {
            if self.servers.len() >= self.max_servers {
                return Judgement::Untracked;
            }
            // First seen when it started, or when the sensor did if it was running already.
            let seen = server.id.start_ns.max(self.opened_ns.unwrap_or(ts_ns));
            let ends = self
                .boot_wall_ns
                .saturating_add(seen)
                .saturating_add(self.window_ns);
            self.servers.insert(
                key.clone(),
                Habits {
                    learning_ends_wall_ns: Some(ends),
                    templates: BTreeSet::new(),
                },
            );
            self.dirty = true;
        }
        let Some(habits) = self.servers.get_mut(&key) else {
            return Judgement::Untracked;
        };
        let learning = habits.learning_ends_wall_ns.is_some_and(|end| now < end);
        if learning {
            if template.len() <= MAX_TEMPLATE
                && habits.templates.len() < self.max_templates
                && habits.templates.insert(template)
            {
                self.dirty = true;
            }
            Judgement::Learning
        } else if habits.templates.contains(&template) {
            Judgement::Known
        } else {
            Judgement::New(template)
        }
    }

    /// The server's application: a jar, module, main class or script, normalised.
    fn application(&self, image: &Image) -> String {
        let mut args = image.argv.iter().skip(1);
        let mut out = String::new();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "-jar" | "-m" | "--module" => {
                    if let Some(app) = args.next() {
                        self.normaliser.push_arg(app, &mut out);
                    }
                    return out;
                }
                // Options whose value is not the application.
                "-cp" | "-classpath" | "--class-path" | "-p" | "--module-path" | "-b"
                | "--bind" | "-c" | "--config" | "-w" | "--workers" => {
                    args.next();
                }
                a if a.starts_with('-') => {}
                a if a.contains(['/', '.', ':']) => {
                    self.normaliser.push_arg(a, &mut out);
                    return out;
                }
                _ => {}
            }
        }
        out
    }

    /// Ends every server's learning now: `replay --baseline` after its learning record, and
    /// `baseline merge --close` for a file a team has reviewed.
    pub fn close_learning(&mut self) {
        for habits in self.servers.values_mut() {
            habits.learning_ends_wall_ns = None;
        }
        self.dirty = true;
    }

    /// Takes in another host's (or a file's) habits: templates add up, and a server's learning
    /// ends when the earlier of the two says.
    pub fn merge(&mut self, other: BTreeMap<ServerKey, Habits>) {
        for (key, theirs) in other {
            if !self.servers.contains_key(&key) && self.servers.len() >= self.max_servers {
                continue;
            }
            let ours = self.servers.entry(key).or_insert_with(|| Habits {
                learning_ends_wall_ns: theirs.learning_ends_wall_ns,
                templates: BTreeSet::new(),
            });
            ours.learning_ends_wall_ns =
                match (ours.learning_ends_wall_ns, theirs.learning_ends_wall_ns) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    _ => None,
                };
            for t in theirs.templates {
                if ours.templates.len() >= self.max_templates {
                    break;
                }
                ours.templates.insert(t);
            }
        }
        self.dirty = true;
    }

    /// Everything learned, to hand to another engine (a reload) or to merge.
    pub fn take_servers(&mut self) -> BTreeMap<ServerKey, Habits> {
        std::mem::take(&mut self.servers)
    }

    pub fn stats(&self, now_wall_ns: u64) -> BaselineStats {
        let mut s = BaselineStats::default();
        for habits in self.servers.values() {
            if habits
                .learning_ends_wall_ns
                .is_some_and(|end| now_wall_ns < end)
            {
                s.learning += 1;
            } else {
                s.learned += 1;
            }
            s.templates += habits.templates.len();
        }
        s
    }
}

/// `sh -i`, `bash --interactive`: a shell for a person, never an application's habit.
fn interactive(image: &Image) -> bool {
    image.argv.iter().skip(1).any(|a| {
        a == "-i"
            || a == "--interactive"
            || (a.len() > 2
                && a.starts_with('-')
                && !a.starts_with("--")
                && a[1..].chars().all(|c| c.is_ascii_alphabetic())
                && a.contains('i'))
    })
}
#[cfg(test)]
mod tests;
