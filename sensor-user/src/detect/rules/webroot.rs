//! webroot-script-write (T1505.003): a script or page file created, modified, renamed or linked
//! under a web root by something other than a package manager or a configured deployer.
//! Sources: Elastic persistence_web_server_webshell_creation and the linux file-creation rules of
//! elastic/detection-rules; MaxPatrol Unix_Webshell_Created and PTAF_Webshell_Detected; Atomic
//! Red Team T1505.003 test 4 (creat of /var/www/html/<name>.php). Unlike a path-only rule it
//! knows whether a server is above the writer: an upload through the application is the
//! highest-severity case.

use rustc_hash::FxHashSet;

use super::{
    super::{
        DetectError,
        annotation::{Annotation, Table, nearest_server, self_and_ancestors},
        family::Families,
        matcher::{ExeMatcher, PathMatcher, single_exe},
    },
    RuleCommon,
};
use crate::{
    config::{Severity, WebrootScriptWriteConfig},
    lineage::{EntityId, Image, Process},
    path_parts::extension,
};

impl super::RuleUnit for WebrootRule {
    /// What alerts and metrics say about this rule.
    const META: super::RuleMeta = super::RuleMeta {
        id: "webroot-script-write",
        name: "Script or page file written into a web root",
        description: "A file with a script or page extension (php, jsp, aspx, cgi, ...) was \
        created, modified, renamed or linked under a web root by a process that is neither a \
        package manager nor a configured deployer: a web shell being planted. Most \
        severe when the writer is a server process or below one (an upload through a \
        vulnerable application).",
        category: &["process"],
        event_type: &["start"],
        server_optional: true,
    };

    fn compile(config: &crate::config::Config, families: &Families) -> Result<Self, DetectError> {
        Self::new(&config.rules.webroot_script_write, families)
    }

    fn common(&self) -> &RuleCommon {
        &self.common
    }

    fn wants_file(&self, _f: &crate::event::File, in_root: bool) -> bool {
        self.common.enabled && in_root
    }

    fn on_file<'e>(&mut self, cx: &super::FileContext<'_, 'e>, out: &mut Vec<super::Finding<'e>>) {
        let f = cx.file;
        if self.is_script(&f.path)
            && !cx.below_package_manager()
            && !self.is_deployer_chain(cx.table, cx.process.id, f.uid)
        {
            let mut finding =
                super::Finding::about_file(super::RuleId::WebrootScriptWrite, cx.process.id, f);
            finding.severity = Some(self.severity_for(cx.process));
            out.push(finding);
        }
    }
}

super::rule_section!(WebrootScriptWriteConfig);

const FIELD: &str = "rules.webroot_script_write";

struct Deployer {
    executable: Option<ExeMatcher>,
    users: Vec<u32>,
}

pub struct WebrootRule {
    pub common: RuleCommon,
    pub severity_outside_server: Severity,
    roots: PathMatcher,
    extensions: FxHashSet<String>,
    deployers: Vec<Deployer>,
}

impl WebrootRule {
    pub fn new(
        config: &WebrootScriptWriteConfig,
        families: &Families,
    ) -> Result<Self, DetectError> {
        let mut extensions = FxHashSet::default();
        for (i, ext) in config.extensions.iter().enumerate() {
            if ext.is_empty() || ext.contains(['.', '/']) {
                return Err(DetectError::invalid(
                    &format!("{FIELD}.extensions[{i}]"),
                    format!("{ext:?}: give the extension without its dot, e.g. \"php\""),
                ));
            }
            extensions.insert(ext.to_ascii_lowercase());
        }
        let deployers = config
            .deployers
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let field = format!("{FIELD}.deployers[{i}]");
                if d.executable.is_none() && d.users.is_empty() {
                    return Err(DetectError::invalid(
                        &field,
                        "a deployer needs an executable, users, or both",
                    ));
                }
                Ok(Deployer {
                    executable: d
                        .executable
                        .as_deref()
                        .map(|e| single_exe(e, &format!("{field}.executable")))
                        .transpose()?,
                    users: d.users.clone(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            common: RuleCommon::compile(config, FIELD, families)?,
            severity_outside_server: config.severity_outside_server,
            roots: PathMatcher::new(&config.web_roots, &format!("{FIELD}.web_roots"))?,
            extensions,
            deployers,
        })
    }

    pub fn in_root(&self, path: &str) -> bool {
        self.roots.is_match(path)
    }

    /// The file name's extension is one of the configured script extensions.
    pub fn is_script(&self, path: &str) -> bool {
        extension(path).is_some_and(|ext| {
            if ext.bytes().any(|b| b.is_ascii_uppercase()) {
                self.extensions.contains(&ext.to_ascii_lowercase())
            } else {
                self.extensions.contains(ext)
            }
        })
    }

    /// Critical below a server (an upload through the application), less so elsewhere.
    pub fn severity_for(&self, writer: &Process<Annotation>) -> Severity {
        if nearest_server(writer).is_some() {
            self.common.severity
        } else {
            self.severity_outside_server
        }
    }

    /// The writer `id` (of real uid `uid`) or an ancestor is a configured deployer.
    pub fn is_deployer_chain(&self, table: &Table, id: EntityId, uid: u32) -> bool {
        let chain: Vec<&Image> = self_and_ancestors(table, id).map(|p| &*p.image).collect();
        self.is_deployer(uid, &chain)
    }

    /// `chain` is the writer's image followed by its ancestors' images.
    pub fn is_deployer(&self, uid: u32, chain: &[&Image]) -> bool {
        self.deployers.iter().any(|d| {
            (d.users.is_empty() || d.users.contains(&uid))
                && d.executable.as_ref().is_none_or(|m| {
                    chain
                        .iter()
                        .any(|image| m.is_match(&image.exe, image.name()))
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Deployer as DeployerConfig, DetectConfig};
    use crate::{
        config::Config,
        detect::{Engine, HostInfo, test_support::*},
    };

    fn rule(config: &WebrootScriptWriteConfig) -> WebrootRule {
        let families = Families::new(&DetectConfig::default()).expect("families");
        WebrootRule::new(config, &families).expect("rule")
    }

    fn image(exe: &str) -> Image {
        Image {
            exe: exe.into(),
            argv: vec![exe.into()],
            argv_truncated: false,
            exe_id: None,
        }
    }

    #[test]
    fn roots_and_extensions() {
        let r = rule(&WebrootScriptWriteConfig::default());
        for p in [
            "/var/www/html/uploads/x.php",
            "/var/www/x.PHP",
            "/srv/www/a/b.phtml",
            "/var/lib/tomcat9/webapps/ROOT/cmd.jsp",
            "/opt/lampp/htdocs/s.php5",
            "/home/alice/public_html/x.cgi",
            "/usr/share/nginx/html/a.shtml",
        ] {
            assert!(r.in_root(p) && r.is_script(p), "{p}");
        }
        assert!(r.in_root("/var/www/html/index.html"));
        assert!(!r.is_script("/var/www/html/index.html"));
        assert!(!r.is_script("/var/www/html/.htaccess"));
        assert!(!r.is_script("/var/www/html/php"));
        assert!(!r.in_root("/var/wwwx/a.php"));
        assert!(!r.in_root("/home/alice/src/public_html/x.php"));
        assert!(!r.in_root("/tmp/x.php"));
        assert!(r.in_root("/var/www"));
    }

    #[test]
    fn deployers_match_user_and_executable_anywhere_in_the_chain() {
        let config = WebrootScriptWriteConfig {
            deployers: vec![
                DeployerConfig {
                    comment: "CI pushes with rsync as deploy".into(),
                    executable: Some("rsync".into()),
                    users: vec![1001],
                },
                DeployerConfig {
                    comment: "gitlab-runner and its children".into(),
                    executable: Some("gitlab-runner".into()),
                    users: vec![],
                },
            ],
            ..WebrootScriptWriteConfig::default()
        };
        let r = rule(&config);
        let (rsync, cp, runner) = (
            image("/usr/bin/rsync"),
            image("/usr/bin/cp"),
            image("/usr/bin/gitlab-runner"),
        );
        assert!(r.is_deployer(1001, &[&rsync]));
        assert!(!r.is_deployer(33, &[&rsync]), "rsync as www-data");
        assert!(r.is_deployer(999, &[&cp, &runner]));
        assert!(!r.is_deployer(1001, &[&cp]));
    }

    #[test]
    fn bad_settings_name_the_field() {
        let families = Families::new(&DetectConfig::default()).expect("families");
        let mut config = WebrootScriptWriteConfig::default();
        config.extensions.push(".php".into());
        let err = WebrootRule::new(&config, &families).err().expect("dot");
        assert!(err.to_string().contains("extensions[21]"), "{err}");
        let mut config = WebrootScriptWriteConfig::default();
        config.deployers.push(DeployerConfig::default());
        let err = WebrootRule::new(&config, &families).err().expect("empty");
        assert!(err.to_string().contains("deployers[0]"), "{err}");
        let mut config = WebrootScriptWriteConfig::default();
        config.web_roots.push("htdocs".into());
        let err = WebrootRule::new(&config, &families)
            .err()
            .expect("relative");
        assert!(err.to_string().contains("web_roots[8]"), "{err}");
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
        assert_eq!(engine.totals().alerts, [0, 0, 0, 2, 0, 0, 0]);
    }

    #[test]
    fn a_truncated_path_counts_as_in_a_web_root_and_its_alert_says_so() {
        let mut engine = Engine::new(&Config::default(), HostInfo::default()).expect("engine");
        let mut alerts = Vec::new();
        engine.process(
            exec(1, 10, 1, "/usr/sbin/php-fpm8.2", &["php-fpm"]),
            &mut alerts,
        );
        let mut tail = write(2, 10, "/d59/x.php");
        engine.process(tail.clone(), &mut alerts);
        assert!(alerts.is_empty(), "a whole path outside the roots");
        if let crate::event::Event::File(f) = &mut tail {
            f.path_truncated = true;
        }
        engine.process(tail, &mut alerts);
        assert_eq!(alerts.len(), 1);
        let a = serde_json::to_value(&alerts[0]).expect("json");
        assert_eq!(a["rule"]["id"], "webroot-script-write");
        assert_eq!(a["file"]["path"], "…/d59/x.php");
    }
}
