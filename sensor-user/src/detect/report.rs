//! What the engine reports: its alerts (a finding that passed the gate, put into
//! [`Alert::build`]'s terms) and its totals for the shutdown log.

use std::fmt;

use super::{
    annotation::{Annotation, Table, ancestry},
    family::Families,
    gate::{Admitted, GateCounts, Sighting},
    incident::digest_hex,
    payload::{Command, Indicator, Payload, facts},
    rules::{Finding, RuleId},
};
use crate::{
    alert::{Alert, AlertInput, Container, ContainerImage, FileEvent, RuleInfo, Server, ShellInfo},
    config::Technique,
    lineage::{EntityId, Process},
};

/// Where the events come from: names the host in alerts and turns event times into wall time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostInfo {
    pub hostname: String,
    /// Wall clock time of boot, ns since the epoch (a record header's `boot_wall_ns`).
    pub boot_wall_ns: u64,
}

/// The alert for a finding the gate let through.
pub fn alert(
    f: &Finding<'_>,
    s: &Sighting<'_>,
    admitted: Admitted,
    table: &Table,
    families: &Families,
    host: &HostInfo,
) -> Alert {
    let rule = f.rule;
    let meta = rule.meta();
    let technique = match rule {
        RuleId::ServerModuleChange => None,
        RuleId::WebrootScriptWrite | RuleId::ServerWrittenFileExecuted => Some(Technique::WebShell),
        _ => s.server.as_ref().map(|sv| families.technique(sv.family)),
    };
    let p = s.process;
    let (shell, indicators) = shell_facts(rule, p);
    Alert::build(AlertInput {
        rule: RuleInfo {
            id: meta.id,
            name: meta.name,
            description: meta.description,
        },
        category: meta.category,
        event_type: meta.event_type,
        // Stable across replays and restarts: receivers de-duplicate on it.
        event_id: digest_hex(&[
            rule.as_str().as_bytes(),
            f.process.to_string().as_bytes(),
            &f.ts_ns.to_le_bytes(),
            s.destination.as_bytes(),
        ]),
        ts_ns: f.ts_ns,
        boot_wall_ns: host.boot_wall_ns,
        hostname: &host.hostname,
        severity: admitted.severity,
        technique,
        process: p,
        parent: s.parent,
        ancestry: ancestry(table, p, s.server.as_ref().map(|sv| sv.root)),
        connect: f.connect,
        file: f.file.as_deref().map(|path| FileEvent {
            path,
            action: f.action,
        }),
        server: s.server.as_ref().map(|sv| {
            let (container, on_host) = server_container(table, p, sv.id);
            Server {
                family: s.family_name.to_owned(),
                pid: sv.id.pid,
                entity_id: sv.id.to_string(),
                executable: sv.image.exe.clone(),
                listen_port: sv.listen_port,
                container,
                on_host,
            }
        }),
        incident: admitted.incident,
        suppressed_count: admitted.suppressed_before,
        shell_copy_of: p.annotation.copy_of.as_deref().map(str::to_owned),
        shell: shell.map(|payload| ShellInfo {
            commands: payload.commands.iter().map(Command::display).collect(),
        }),
        indicators: indicators.into_iter().map(Indicator::as_str).collect(),
        baseline_new: admitted.baseline_new,
    })
}

/// The server's container where it is not the process's (with the names the engine knows), or
/// `on_host` for a server in no container above a containerised process.
fn server_container(
    table: &Table,
    p: &Process<Annotation>,
    server: EntityId,
) -> (Option<Container>, bool) {
    let Some(sp) = table.get(server) else {
        return (None, false);
    };
    let own = p.container.as_ref().map(|c| c.id.as_str());
    match &sp.container {
        Some(c) if Some(c.id.as_str()) != own => {
            let mut out = Container::from_cgroup(c);
            if let Some(names) = table.containers().names(&c.id) {
                out.name.clone_from(&names.name);
                out.image = names.image.as_deref().map(ContainerImage::parse);
            }
            (Some(out), false)
        }
        None => (None, own.is_some()),
        Some(_) => (None, false),
    }
}

/// A shell's payload and what in the process always alerts (process rules only: a file event's
/// writer is not what such an alert is about).
fn shell_facts(rule: RuleId, p: &Process<Annotation>) -> (Option<Payload>, Vec<Indicator>) {
    if !matches!(
        rule,
        RuleId::ServerSpawnedShell | RuleId::ServerSpawnedRecon | RuleId::ServerTempFileExecuted
    ) {
        return (None, Vec::new());
    }
    facts(&p.image.exe, &p.image.argv, p.annotation.shell_below_server)
}

/// What the engine did, for the shutdown report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineTotals {
    pub events: u64,
    pub alerts: [u64; RuleId::ALL.len()],
    pub suppressed: [u64; RuleId::ALL.len()],
    pub excluded: [u64; RuleId::ALL.len()],
    /// Known to the learned baseline, over all rules.
    pub baselined: u64,
    pub processes: usize,
    pub evicted: u64,
}

impl EngineTotals {
    pub fn new(events: u64, counts: &GateCounts, table: &Table) -> Self {
        let stats = table.stats();
        Self {
            events,
            alerts: counts.alerts,
            suppressed: counts.suppressed,
            excluded: counts.excluded,
            baselined: counts.baselined.iter().sum(),
            processes: table.len(),
            evicted: stats.evicted_after_grace + stats.evicted_over_cap,
        }
    }
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
        if self.baselined > 0 {
            write!(f, "; known to the learned baseline: {}", self.baselined)?;
        }
        write!(
            f,
            "; processes tracked: {}; evicted: {}",
            self.processes, self.evicted
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::{
        config::Config,
        detect::{Engine, HostInfo, test_support::*},
    };

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
        alerts[0].write_json(&mut line).expect("serialise");
        assert!(!line.contains(&b'\n'), "one line");
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
}

#[cfg(test)]
mod server_container_tests {
    use std::sync::Arc;

    use crate::{
        config::Config,
        detect::{Engine, HostInfo, test_support::exec},
        event::Event,
        lineage::{ContainerNames, ContainerRef},
    };

    fn in_cgroup(e: Event, cgroup_id: u64) -> Event {
        match e {
            Event::Exec(mut x) => {
                x.cgroup_id = cgroup_id;
                Event::Exec(x)
            }
            other => other,
        }
    }

    /// A shell whose lineage runs back to a server in another container (a sidecar, `kubectl
    /// exec`) names the server's container; one in the server's own container does not.
    #[test]
    fn the_servers_container_is_named_where_it_is_not_the_processs() {
        let mut config = Config::default();
        config.rate_limit.window_secs = 0;
        let mut engine = Engine::new(&config, HostInfo::default()).expect("engine");
        let container = |id: &str| {
            Arc::new(ContainerRef {
                id: id.into(),
                runtime: None,
                pod_uid: None,
            })
        };
        engine.set_containers(
            [(7, container("web")), (8, container("sidecar"))]
                .into_iter()
                .collect(),
        );
        engine.set_container_names(
            "web",
            Arc::new(ContainerNames {
                name: Some("nginx".into()),
                image: Some("registry.example/shop/web:3.1".into()),
                ..ContainerNames::default()
            }),
        );
        let mut alerts = Vec::new();
        let nginx = exec(1, 10, 1, "/usr/sbin/nginx", &["nginx: worker process"]);
        engine.process(in_cgroup(nginx, 7), &mut alerts);
        // Its child, moved into the sidecar's cgroup before it execs a shell.
        let moved = exec(2, 11, 10, "/bin/sh", &["sh", "-c", "id"]);
        engine.process(in_cgroup(moved, 8), &mut alerts);
        let same = exec(3, 12, 10, "/bin/sh", &["sh", "-c", "uname"]);
        engine.process(in_cgroup(same, 7), &mut alerts);
        // A server on the host above a containerised shell.
        let host = exec(
            4,
            20,
            1,
            "/usr/sbin/apache2",
            &["/usr/sbin/apache2", "-k", "start"],
        );
        engine.process(in_cgroup(host, 1), &mut alerts);
        let entered = exec(5, 21, 20, "/bin/sh", &["sh", "-c", "ls"]);
        engine.process(in_cgroup(entered, 8), &mut alerts);
        let docs: Vec<serde_json::Value> = alerts
            .iter()
            .map(|a| serde_json::to_value(a).expect("json"))
            .collect();
        assert_eq!(docs.len(), 3, "{docs:#?}");
        assert_eq!(docs[0]["container"]["id"], "sidecar");
        assert_eq!(
            docs[0]["lineage"]["server"]["container"],
            serde_json::json!({
                "id": "web",
                "name": "nginx",
                "image": { "name": "registry.example/shop/web", "tag": ["3.1"] },
            })
        );
        assert!(docs[0]["lineage"]["server"].get("on_host").is_none());
        assert!(
            docs[1]["lineage"]["server"].get("container").is_none(),
            "same container: {}",
            docs[1]
        );
        assert_eq!(docs[2]["lineage"]["server"]["on_host"], true);
        assert!(docs[2]["lineage"]["server"].get("container").is_none());
    }
}
