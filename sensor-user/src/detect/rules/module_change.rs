//! server-module-change (T1505, ATT&CK analytic AN1508): a file created or modified where a
//! server loads code or configuration from (Apache and Nginx modules, PHP's php.ini and conf.d,
//! where auto_prepend_file runs a file before every script, Tomcat's lib and conf), or a
//! module-enabling tool (a2enmod, apxs, phpenmod) run, with no package manager in the ancestry.
//! Module enabling creates symlinks: both the tool's exec and the symlinks it creates under the
//! watched paths show it (a symlink made by hand, without the tool, is seen by the latter alone).

use super::{
    super::{
        DetectError,
        family::Families,
        matcher::{ExeMatcher, PathMatcher},
    },
    RuleCommon,
};
use crate::{config::ServerModuleChangeConfig, lineage::Image};

impl super::RuleUnit for ModuleRule {
    /// What alerts and metrics say about this rule.
    const META: super::RuleMeta = super::RuleMeta {
        id: "server-module-change",
        name: "Server module or configuration changed",
        description: "A file was created or modified in a web or application server's module or \
        configuration directories (Apache or Nginx modules, php.ini and conf.d, Tomcat \
        lib and conf), or a module-enabling tool (a2enmod, apxs, phpenmod) ran, with no \
        package manager among its ancestors: a rogue module or a configuration that \
        makes the server run the attacker's code.",
        category: &["process"],
        event_type: &["start"],
        server_optional: true,
    };

    fn compile(config: &crate::config::Config, families: &Families) -> Result<Self, DetectError> {
        Self::new(&config.rules.server_module_change, families)
    }

    fn common(&self) -> &RuleCommon {
        &self.common
    }

    /// Checked on every exec: a glob set lookup on the file name, nothing allocated.
    fn on_exec<'e>(&mut self, cx: &super::ExecContext<'_>, out: &mut Vec<super::Finding<'e>>) {
        if self.is_tool(&cx.process.image) && !cx.below_package_manager() {
            out.push(super::Finding::new(
                super::RuleId::ServerModuleChange,
                cx.process.id,
                cx.ts_ns,
            ));
        }
    }

    fn wants_file(&self, f: &crate::event::File, _in_root: bool) -> bool {
        self.is_module_path(&f.path)
    }

    fn on_file<'e>(&mut self, cx: &super::FileContext<'_, 'e>, out: &mut Vec<super::Finding<'e>>) {
        if !cx.below_package_manager() {
            out.push(super::Finding::about_file(
                super::RuleId::ServerModuleChange,
                cx.process.id,
                cx.file,
            ));
        }
    }
}

super::rule_section!(ServerModuleChangeConfig);

const FIELD: &str = "rules.server_module_change";

pub struct ModuleRule {
    pub common: RuleCommon,
    paths: PathMatcher,
    tools: ExeMatcher,
}

impl ModuleRule {
    pub fn new(
        config: &ServerModuleChangeConfig,
        families: &Families,
    ) -> Result<Self, DetectError> {
        Ok(Self {
            common: RuleCommon::compile(config, FIELD, families)?,
            paths: PathMatcher::new(&config.paths, &format!("{FIELD}.paths"))?,
            tools: ExeMatcher::new(&config.tools, &format!("{FIELD}.tools"))?,
        })
    }

    pub fn is_module_path(&self, path: &str) -> bool {
        self.common.enabled && self.paths.is_match(path)
    }

    /// Checked on every exec: a glob set lookup on the file name, nothing allocated.
    pub fn is_tool(&self, image: &Image) -> bool {
        self.common.enabled && self.tools.is_match(&image.exe, image.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DetectConfig;

    #[test]
    fn module_paths_and_tools() {
        let families = Families::new(&DetectConfig::default()).expect("families");
        let rule = ModuleRule::new(&ServerModuleChangeConfig::default(), &families).expect("rule");
        for p in [
            "/usr/lib/apache2/modules/mod_backdoor.so",
            "/etc/apache2/mods-enabled/backdoor.load",
            "/etc/php/8.2/fpm/php.ini",
            "/etc/php/8.2/cli/conf.d/99-prepend.ini",
            "/etc/nginx/modules-enabled/50-evil.conf",
            "/var/lib/tomcat9/lib/evil.jar",
            "/etc/tomcat9/server.xml",
        ] {
            assert!(rule.is_module_path(p), "{p}");
        }
        for p in [
            "/etc/php/8.2/fpm/php-fpm.conf",
            "/etc/apache2/sites-enabled/000-default.conf",
            "/var/www/html/x.php",
            "/usr/lib/apache2/modulesx/a.so",
        ] {
            assert!(!rule.is_module_path(p), "{p}");
        }
        let image = |exe: &str| Image {
            exe: exe.into(),
            argv: vec![exe.into()],
            argv_truncated: false,
            exe_id: None,
        };
        assert!(rule.is_tool(&image("/usr/sbin/a2enmod")));
        assert!(rule.is_tool(&image("/usr/bin/apxs2")));
        assert!(!rule.is_tool(&image("/usr/sbin/a2query")));
        let off = ModuleRule::new(
            &ServerModuleChangeConfig {
                enabled: false,
                ..ServerModuleChangeConfig::default()
            },
            &families,
        )
        .expect("rule");
        assert!(!off.is_tool(&image("/usr/sbin/a2enmod")));
        assert!(!off.is_module_path("/etc/php/8.2/fpm/php.ini"));
    }
}
