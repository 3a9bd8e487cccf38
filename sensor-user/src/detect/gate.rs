//! The gate every finding passes on its way to becoming an alert: the rule's exclusions, the
//! rate limit and the incident it joins. Counts what it lets through and what it holds back.

use std::sync::Arc;

use super::{
    annotation::{Annotation, ServerRef, Table, effective_parent, nearest_server, top_below_init},
    baseline::{Baseline, Judgement},
    exclusion::{Subject, any_matches},
    family::Families,
    incident::Incidents,
    rate_limit::{RateLimiter, Verdict},
    rules::{Finding, RuleCommon, RuleId},
};
use crate::{
    config::Severity,
    lineage::{EntityId, Process},
    metrics::Metrics,
};

/// A finding with the lineage it is about resolved.
pub struct Sighting<'a> {
    pub process: &'a Process<Annotation>,
    /// Transparent launchers skipped.
    pub parent: Option<&'a Process<Annotation>>,
    pub server: Option<Arc<ServerRef>>,
    /// Empty without a server.
    pub family_name: &'a str,
    pub command_line: String,
    /// The connect's destination, or the file: part of the alert's identity and rate key.
    pub destination: String,
}

impl<'a> Sighting<'a> {
    /// None when the process is gone, or when the rule needs a server and there is none.
    pub fn resolve(table: &'a Table, families: &'a Families, f: &Finding<'_>) -> Option<Self> {
        let p = table.get(f.process)?;
        let server = nearest_server(p);
        if server.is_none() && !f.rule.server_optional() {
            return None;
        }
        Some(Self {
            process: p,
            parent: effective_parent(table, f.process),
            family_name: server.as_ref().map_or("", |s| families.name(s.family)),
            server,
            command_line: p.image.command_line(),
            destination: match (f.connect, f.file.as_deref()) {
                (Some(c), _) => format!("{}:{}", c.daddr, c.dport),
                (None, Some(path)) => path.to_owned(),
                (None, None) => String::new(),
            },
        })
    }
}

/// What the gate decided for a finding it let through.
pub struct Admitted {
    pub severity: Severity,
    pub incident: String,
    /// Identical alerts held back since the previous one.
    pub suppressed_before: u64,
    /// The learned baseline's template, when the alert is about a command it did not know.
    pub baseline_new: Option<String>,
}

/// Per rule, in [`RuleId::ALL`] order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateCounts {
    pub alerts: [u64; RuleId::ALL.len()],
    pub suppressed: [u64; RuleId::ALL.len()],
    pub excluded: [u64; RuleId::ALL.len()],
    /// Known to the learned baseline: counted, not alerted.
    pub baselined: [u64; RuleId::ALL.len()],
}

pub struct Gate {
    pub incidents: Incidents,
    rate: RateLimiter,
    metrics: Option<Arc<Metrics>>,
    pub counts: GateCounts,
    pub baseline: Baseline,
    /// Rules whose findings passed exclusions and the baseline since the last
    /// [`super::Engine::take_would_alert`]: what execution prevention acts on, whether the
    /// rate limit or the incident then let the alert out or not.
    pub would_alert: Vec<RuleId>,
}

impl Gate {
    pub fn new(incidents: Incidents, rate: RateLimiter) -> Self {
        Self {
            incidents,
            rate,
            metrics: None,
            counts: GateCounts::default(),
            baseline: Baseline::default(),
            would_alert: Vec::new(),
        }
    }

    pub fn set_metrics(&mut self, metrics: Arc<Metrics>) {
        self.metrics = Some(metrics);
    }

    pub fn admit(
        &mut self,
        rule: &RuleCommon,
        f: &Finding<'_>,
        s: &Sighting<'_>,
        table: &Table,
        hostname: &str,
    ) -> Option<Admitted> {
        let i = f.rule.index();
        let p = s.process;
        let subject = Subject {
            family: s.server.as_ref().map(|sv| sv.family),
            parent: s.parent.map(|pp| &*pp.image),
            image: &p.image,
            uid: p.uid,
            container: p
                .container
                .as_ref()
                .and_then(|c| table.containers().names(&c.id)),
        };
        if any_matches(&rule.exclusions, &subject) {
            self.counts.excluded[i] += 1;
            return None;
        }
        let baseline_new = match self.judge_baseline(f, s) {
            Judgement::Known => {
                self.counts.baselined[i] += 1;
                if let Some(m) = &self.metrics {
                    m.baseline.alert_baselined(f.rule.as_str());
                }
                return None;
            }
            Judgement::New(template) => Some(template),
            Judgement::Untracked | Judgement::Learning => None,
        };
        self.would_alert.push(f.rule);
        let key = RateLimiter::key(&[
            f.rule.as_str(),
            s.family_name,
            s.parent.map_or("", |pp| pp.image.exe.as_str()),
            &p.image.exe,
            &s.command_line,
            &s.destination,
            // The same command in two containers is two workloads' business, not a repeat.
            p.container.as_ref().map_or("", |c| c.id.as_str()),
        ]);
        let suppressed_before = match self.rate.check(key, f.ts_ns) {
            Verdict::Emit { suppressed_before } => suppressed_before,
            Verdict::Suppress => {
                self.counts.suppressed[i] += 1;
                if let Some(m) = &self.metrics {
                    m.alert_suppressed(f.rule.as_str());
                }
                return None;
            }
        };
        // Without a server, the writer's top ancestor below init roots the incident.
        let root: EntityId = f
            .root
            .or(s.server.as_ref().map(|sv| sv.root))
            .unwrap_or_else(|| top_below_init(table, p));
        let incident = self.incidents.assign(hostname, root, f.ts_ns);
        self.counts.alerts[i] += 1;
        if let Some(m) = &self.metrics {
            m.alert(f.rule.as_str());
        }
        Some(Admitted {
            severity: f.severity.unwrap_or(rule.severity),
            incident,
            suppressed_before,
            baseline_new,
        })
    }

    /// The one place the learned baseline is consulted.
    fn judge_baseline(&mut self, f: &Finding<'_>, s: &Sighting<'_>) -> Judgement {
        match &s.server {
            Some(server) if self.baseline.applies(f, s.process) => {
                self.baseline
                    .judge(s.family_name, server, s.process, f.ts_ns)
            }
            _ => Judgement::Untracked,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::event::{Event, Fork};
    use crate::{
        config::Config,
        detect::{Engine, HostInfo, test_support::*},
    };

    #[test]
    fn forks_of_a_server_tree_share_one_incident_root() {
        let mut engine = Engine::new(&Config::default(), HostInfo::default()).expect("engine");
        let mut alerts = Vec::new();
        engine.process(
            exec(1, 10, 1, "/usr/sbin/php-fpm8.2", &["php-fpm: master"]),
            &mut alerts,
        );
        for (i, worker) in [(0u64, 11u32), (1, 12)] {
            engine.process(
                Event::Fork(Fork {
                    ts_ns: 2 + i,
                    pid: worker,
                    tid: 10,
                    ppid: 10,
                    start_ns: 2 + i,
                    uid: 33,
                    gid: 33,
                    comm: "php-fpm8.2".into(),
                    cgroup_id: 0,
                }),
                &mut alerts,
            );
        }
        engine.process(exec(5, 20, 11, "/bin/sh", &["sh", "-c", "a"]), &mut alerts);
        engine.process(exec(6, 21, 12, "/bin/sh", &["sh", "-c", "b"]), &mut alerts);
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[0].lineage.incident, alerts[1].lineage.incident);
        let server = |i: usize| {
            alerts[i]
                .lineage
                .server
                .as_ref()
                .map(|s| s.entity_id.clone())
        };
        assert!(server(0).is_some());
        assert_ne!(server(0), server(1));
        assert_ne!(alerts[0].event.id, alerts[1].event.id);
        assert_eq!(engine.totals().alerts, [2, 0, 0, 0, 0, 0, 0]);
    }

    /// An exclusion by image or namespace applies once the container's names are in the
    /// engine's index, and only to that container.
    #[test]
    fn workload_exclusions_need_the_containers_names() {
        use crate::config::{ContainerMatch, Exclusion, ImageMatch, OrchestratorMatch};
        use crate::lineage::{ContainerNames, ContainerRef};
        use std::sync::Arc;
        let mut config = Config::default();
        // The three shells are alike: each must be judged, not rate limited.
        config.rate_limit.window_secs = 0;
        let exclude = &mut config.rules.server_spawned_shell.exclude;
        exclude.push(Exclusion {
            container: Some(ContainerMatch {
                image: Some(ImageMatch {
                    name: Some("registry.example/ops/backup:*".into()),
                }),
                ..ContainerMatch::default()
            }),
            ..Exclusion::default()
        });
        exclude.push(Exclusion {
            orchestrator: Some(OrchestratorMatch {
                namespace: Some("kube-system".into()),
                ..OrchestratorMatch::default()
            }),
            ..Exclusion::default()
        });
        let container = |id: &str| {
            Arc::new(ContainerRef {
                id: id.into(),
                runtime: None,
                pod_uid: None,
            })
        };
        let in_cgroup = |e: Event, cgroup_id: u64| match e {
            Event::Exec(mut x) => {
                x.cgroup_id = cgroup_id;
                Event::Exec(x)
            }
            other => other,
        };
        let names = |image: &str, namespace: &str| {
            Arc::new(ContainerNames {
                image: Some(image.into()),
                namespace: Some(namespace.into()),
                ..ContainerNames::default()
            })
        };
        let mut engine = Engine::new(&config, HostInfo::default()).expect("engine");
        engine.set_containers(
            [
                (7, container("a")),
                (8, container("b")),
                (9, container("c")),
            ]
            .into_iter()
            .collect(),
        );
        let mut alerts = Vec::new();
        // One nginx and its shell per container; `c`'s names are not known.
        let shells = |engine: &mut Engine, alerts: &mut Vec<_>, base: u32, ts: u64| {
            for (i, cgroup) in [7u64, 8, 9].into_iter().enumerate() {
                let (server, shell) = (base + 10 * i as u32, base + 10 * i as u32 + 1);
                let nginx = exec(ts, server, 1, "/usr/sbin/nginx", &["nginx: worker process"]);
                engine.process(in_cgroup(nginx, cgroup), alerts);
                let sh = exec(ts + 1, shell, server, "/bin/sh", &["sh", "-c", "id"]);
                engine.process(in_cgroup(sh, cgroup), alerts);
            }
        };
        shells(&mut engine, &mut alerts, 100, 10);
        assert_eq!(alerts.len(), 3, "no names known yet: nothing is excluded");
        engine.set_container_names("a", names("registry.example/ops/backup:1.4", "shop"));
        engine.set_container_names(
            "b",
            names("registry.example/shop/checkout:2", "kube-system"),
        );
        alerts.clear();
        shells(&mut engine, &mut alerts, 200, 1_000_000_000_000);
        let left: Vec<_> = alerts
            .iter()
            .filter_map(|a| a.container.as_ref().map(|c| c.id.clone()))
            .collect();
        assert_eq!(left, vec!["c".to_owned()], "a by image, b by namespace");
        assert_eq!(engine.totals().excluded[0], 2);
    }

    /// Identical shells in two containers both alert within the rate limit's window; a repeat
    /// in the same container is held back.
    #[test]
    fn the_rate_limit_tells_containers_apart() {
        use crate::lineage::ContainerRef;
        use std::sync::Arc;
        let mut engine = Engine::new(&Config::default(), HostInfo::default()).expect("engine");
        let container = |id: &str| {
            Arc::new(ContainerRef {
                id: id.into(),
                runtime: None,
                pod_uid: None,
            })
        };
        engine.set_containers(
            [(7, container("a")), (8, container("b"))]
                .into_iter()
                .collect(),
        );
        let in_cgroup = |e: Event, cgroup_id: u64| match e {
            Event::Exec(mut x) => {
                x.cgroup_id = cgroup_id;
                Event::Exec(x)
            }
            other => other,
        };
        let mut alerts = Vec::new();
        for (i, cgroup) in [7u64, 8, 7].into_iter().enumerate() {
            let (server, shell) = (100 + 10 * i as u32, 101 + 10 * i as u32);
            let ts = 10 + 2 * i as u64;
            let nginx = exec(ts, server, 1, "/usr/sbin/nginx", &["nginx: worker process"]);
            engine.process(in_cgroup(nginx, cgroup), &mut alerts);
            let sh = exec(ts + 1, shell, server, "/bin/sh", &["sh", "-c", "id"]);
            engine.process(in_cgroup(sh, cgroup), &mut alerts);
        }
        let ids: Vec<_> = alerts
            .iter()
            .filter_map(|a| a.container.as_ref().map(|c| c.id.clone()))
            .collect();
        assert_eq!(ids, ["a", "b"], "the second shell in a is the repeat");
    }

    /// Execution prevention acts on what would alert: a finding the rate limit holds back
    /// counts, an excluded one does not.
    #[test]
    fn would_alert_counts_rate_limited_findings_and_not_excluded_ones() {
        let mut config = Config::default();
        config.rate_limit.window_secs = 3600;
        config.rules.server_spawned_shell.exclude = vec![crate::config::Exclusion {
            args: Some(vec!["sh".into(), "-c".into(), "benign".into()]),
            ..Default::default()
        }];
        let mut engine = Engine::new(&config, HostInfo::default()).expect("engine");
        let mut alerts = Vec::new();
        engine.process(
            exec(1, 10, 1, "/usr/sbin/php-fpm8.2", &["php-fpm: master"]),
            &mut alerts,
        );
        let judged = |engine: &mut Engine, ts: u64, pid: u32, arg: &str| {
            let mut alerts = Vec::new();
            engine.process(
                exec(ts, pid, 10, "/bin/sh", &["sh", "-c", arg]),
                &mut alerts,
            );
            let rules: Vec<_> = engine.take_would_alert().map(|r| r.as_str()).collect();
            (alerts.len(), rules)
        };
        assert_eq!(
            judged(&mut engine, 2, 20, "id"),
            (1, vec!["server-spawned-shell"])
        );
        assert_eq!(
            judged(&mut engine, 3, 21, "id"),
            (0, vec!["server-spawned-shell"]),
            "held back by the rate limit, still would alert"
        );
        assert_eq!(
            judged(&mut engine, 4, 22, "benign"),
            (0, vec![]),
            "excluded"
        );
    }
}
