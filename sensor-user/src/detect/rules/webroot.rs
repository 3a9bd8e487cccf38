//! webroot-script-write (T1505.003): a script or page file created, modified, renamed or linked
//! under a web root by something other than a package manager or a configured deployer.
//! Sources: Elastic persistence_web_server_webshell_creation and the linux file-creation rules of
//! elastic/detection-rules; MaxPatrol Unix_Webshell_Created and PTAF_Webshell_Detected; Atomic
//! Red Team T1505.003 test 4 (creat of /var/www/html/<name>.php). Unlike a path-only rule it
//! knows whether a server is above the writer: an upload through the application is the
//! highest-severity case.

use rustc_hash::FxHashSet;

use super::super::{
    DetectError,
    exclusion::Exclusion,
    family::Families,
    matcher::{ExeMatcher, PathMatcher, single_exe},
};
use crate::{
    config::{Severity, WebrootScriptWriteConfig},
    lineage::Image,
};

const FIELD: &str = "rules.webroot_script_write";

struct Deployer {
    executable: Option<ExeMatcher>,
    users: Vec<u32>,
}

pub struct WebrootRule {
    pub enabled: bool,
    pub severity: Severity,
    pub severity_outside_server: Severity,
    roots: PathMatcher,
    extensions: FxHashSet<String>,
    deployers: Vec<Deployer>,
    pub exclusions: Vec<Exclusion>,
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
            enabled: config.enabled,
            severity: config.severity,
            severity_outside_server: config.severity_outside_server,
            roots: PathMatcher::new(&config.web_roots, &format!("{FIELD}.web_roots"))?,
            extensions,
            deployers,
            exclusions: Exclusion::compile_all(
                &config.exclude,
                &format!("{FIELD}.exclude"),
                families,
            )?,
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

/// The last path component.
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Everything before the last `/` (`/` for a file at the root).
pub fn directory(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => "",
    }
}

/// What follows the file name's last dot; none for dotfiles such as `.htaccess`.
pub fn extension(path: &str) -> Option<&str> {
    let (stem, ext) = file_name(path).rsplit_once('.')?;
    (!stem.is_empty() && !ext.is_empty()).then_some(ext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Deployer as DeployerConfig, DetectConfig};

    fn rule(config: &WebrootScriptWriteConfig) -> WebrootRule {
        let families = Families::new(&DetectConfig::default()).expect("families");
        WebrootRule::new(config, &families).expect("rule")
    }

    fn image(exe: &str) -> Image {
        Image {
            exe: exe.into(),
            argv: vec![exe.into()],
            argv_truncated: false,
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
    fn path_parts() {
        assert_eq!(file_name("/var/www/html/x.php"), "x.php");
        assert_eq!(directory("/var/www/html/x.php"), "/var/www/html");
        assert_eq!(directory("/x.php"), "/");
        assert_eq!(extension("/a/b.tar.gz"), Some("gz"));
        assert_eq!(extension("/a/.htaccess"), None);
        assert_eq!(extension("/a.b/c"), None);
    }
}
