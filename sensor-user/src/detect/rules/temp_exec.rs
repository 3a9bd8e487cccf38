//! server-temp-file-executed (T1505.003 follow-up, T1059): a binary below a server executed
//! from a world-writable temporary directory (/tmp, /var/tmp, /dev/shm, /run/user) or from
//! memory (a memfd, fexecve). Decided from the exec event's path alone, so a dropped binary that
//! runs once and deletes itself within a millisecond is judged as surely as one that stays.
//! Sources: Sigma proc_creation_lnx_susp_exec_from_dev_shm and
//! proc_creation_lnx_susp_execution_tmp_folder; Elastic
//! persistence_webserver_suspicious_child_execution (`process.executable like /tmp/*,
//! /var/tmp/*, /dev/shm/*, /run/*`).

use super::{super::payload::Indicator, RuleCommon};
use crate::{
    config::TempExecConfig,
    detect::{DetectError, family::Families, payload::exec_indicators},
};

impl super::RuleUnit for TempExecRule {
    /// What alerts and metrics say about this rule.
    const META: super::RuleMeta = super::RuleMeta {
        id: "server-temp-file-executed",
        name: "Binary executed from a temporary directory or memory below a server process",
        description: "A process below a server (web, application or database server, or any \
        process that listens) executed a file from /tmp, /var/tmp, /dev/shm or /run/user, or \
        from memory: the usual way a payload dropped through a foothold is run.",
        category: &["process"],
        event_type: &["start"],
        server_optional: false,
    };

    fn compile(config: &crate::config::Config, families: &Families) -> Result<Self, DetectError> {
        Ok(Self {
            common: RuleCommon::compile(
                &config.rules.server_temp_file_executed,
                "rules.server_temp_file_executed",
                families,
            )?,
        })
    }

    fn common(&self) -> &RuleCommon {
        &self.common
    }

    fn on_exec<'e>(&mut self, cx: &super::ExecContext<'_>, out: &mut Vec<super::Finding<'e>>) {
        let p = cx.process;
        if !self.common.enabled || !super::below_server(&p.annotation) {
            return;
        }
        let dropped = exec_indicators(&p.image.exe, &[], false)
            .iter()
            .any(|i| matches!(i, Indicator::TempExec | Indicator::Fileless));
        if dropped {
            out.push(super::Finding::new(
                super::RuleId::ServerTempFileExecuted,
                p.id,
                cx.ts_ns,
            ));
        }
    }
}

super::rule_section!(TempExecConfig);

pub struct TempExecRule {
    pub common: RuleCommon,
}

#[cfg(test)]
mod tests {
    use crate::{
        config::Config,
        detect::{Engine, HostInfo, test_support::*},
    };

    #[test]
    fn dropped_binaries_below_a_server_alert_from_the_exec_alone() {
        let mut engine = Engine::new(&Config::default(), HostInfo::default()).expect("engine");
        let mut alerts = Vec::new();
        engine.process(exec(1, 10, 1, "/usr/sbin/nginx", &["nginx"]), &mut alerts);
        engine.process(exec(2, 11, 10, "/tmp/.k/kworker", &["kworker"]), &mut alerts);
        engine.process(exec(3, 12, 10, "/dev/fd/3", &["x"]), &mut alerts);
        engine.process(exec(4, 13, 10, "/usr/bin/convert", &["convert"]), &mut alerts);
        // Outside a server, /tmp is nobody's business here.
        engine.process(exec(5, 30, 1, "/tmp/build/a.out", &["a.out"]), &mut alerts);
        let got: Vec<(&str, &str)> = alerts
            .iter()
            .map(|a| (a.rule.id, a.process.executable.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("server-temp-file-executed", "/tmp/.k/kworker"),
                ("server-temp-file-executed", "/dev/fd/3"),
            ]
        );
        let v = serde_json::to_value(&alerts[0]).expect("json");
        assert_eq!(v["lineage"]["indicators"][0], "temp-exec");
        assert_eq!(v["event"]["severity"], 99);
    }
}
