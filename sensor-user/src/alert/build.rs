//! Builds the alert document: the one place that knows which ECS field holds what. Every
//! process in it (the process, its parent, each ancestor) comes from [`process_info`].

use super::{
    Alert, AlertEvent, BaselineInfo, Container, Destination, FileInfo, Host, Incident, LineageInfo,
    NamedId, Network, Orchestrator, ProcessInfo, RuleInfo, Server, ShellInfo, Threat, User,
    rfc3339,
};
use crate::{
    config::{Severity, Technique},
    event::{Connect, Family as NetFamily, PreventAction},
    lineage::Process,
    path_parts::{directory, extension, file_name},
};

/// Everything an alert says, as the engine knows it.
pub struct AlertInput<'a, A> {
    pub rule: RuleInfo,
    /// `event.category` and `event.type` of a process or network alert.
    pub category: &'static [&'static str],
    pub event_type: &'static [&'static str],
    pub event_id: String,
    pub ts_ns: u64,
    pub boot_wall_ns: u64,
    pub hostname: &'a str,
    pub severity: Severity,
    /// `None`: the technique alone (T1505 Server Software Component), for server modules.
    pub technique: Option<Technique>,
    pub process: &'a Process<A>,
    pub parent: Option<&'a Process<A>>,
    /// From the root down to the process.
    pub ancestry: Vec<&'a Process<A>>,
    pub connect: Option<&'a Connect>,
    pub file: Option<FileEvent<'a>>,
    pub server: Option<Server>,
    pub incident: String,
    pub suppressed_count: u64,
    pub shell_copy_of: Option<String>,
    pub shell: Option<ShellInfo>,
    pub indicators: Vec<&'static str>,
    /// The learned baseline's template of a command it did not know.
    pub baseline_new: Option<String>,
}

/// The file an alert is about, and (for a file event) `event.action` and `event.type`.
pub struct FileEvent<'a> {
    pub path: &'a str,
    pub action: Option<(&'static str, &'static [&'static str])>,
}

/// How much of a process the document shows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Detail {
    /// `process` and `process.parent`: with `name` and `command_line`.
    Full,
    /// `lineage.ancestry`: without them.
    Brief,
}

fn process_info<A>(p: &Process<A>, boot_wall_ns: u64, detail: Detail) -> ProcessInfo {
    let full = detail == Detail::Full;
    ProcessInfo {
        pid: p.id.pid,
        entity_id: p.id.to_string(),
        executable: p.image.exe.clone(),
        name: full.then(|| p.image.name().to_owned()),
        args: p.image.argv.clone(),
        command_line: full.then(|| p.image.command_line()),
        user: User {
            id: p.uid.to_string(),
        },
        start: rfc3339(boot_wall_ns.saturating_add(p.id.start_ns)),
        parent: None,
    }
}

fn threat(technique: Option<Technique>) -> Threat {
    let sub = technique.map(|t| match t {
        Technique::WebShell => NamedId {
            id: "T1505.003",
            name: "Web Shell",
        },
        Technique::SqlStoredProcedures => NamedId {
            id: "T1505.001",
            name: "SQL Stored Procedures",
        },
    });
    Threat {
        framework: "MITRE ATT&CK",
        tactic: NamedId {
            id: "TA0003",
            name: "Persistence",
        },
        technique: super::Technique {
            id: "T1505",
            name: "Server Software Component",
            subtechnique: sub,
        },
    }
}

impl Alert {
    pub fn build<A>(input: AlertInput<'_, A>) -> Alert {
        let boot = input.boot_wall_ns;
        let connect = input.connect;
        // A connect prevention refused (or, in dry-run, would have) says so where a SIEM looks
        // for it: `event.action`, and `event.type: denied` when it was refused.
        let action = input.file.as_ref().and_then(|f| f.action).or_else(|| {
            connect.and_then(|c| c.prevention).map(|p| match p {
                PreventAction::Blocked => (p.as_str(), &["denied"][..]),
                PreventAction::WouldBlock => (p.as_str(), input.event_type),
            })
        });
        let p = input.process;
        let mut process = process_info(p, boot, Detail::Full);
        process.parent = input
            .parent
            .map(|pp| Box::new(process_info(pp, boot, Detail::Full)));
        Alert {
            timestamp: rfc3339(boot.saturating_add(input.ts_ns)),
            event: AlertEvent {
                kind: "alert",
                category: match (action, connect) {
                    (Some(_), None) => vec!["file"],
                    _ => input.category.to_vec(),
                },
                kind_type: match action {
                    Some((_, types)) => types.to_vec(),
                    None => input.event_type.to_vec(),
                },
                id: input.event_id,
                severity: input.severity.score(),
                module: "lineage_sensor",
                dataset: "lineage_sensor.alert",
                outcome: connect.map(|c| if c.attempted() { "success" } else { "failure" }),
                action: action.map(|(action, _)| action),
            },
            rule: input.rule,
            threat: threat(input.technique),
            process,
            file: input.file.map(|f| FileInfo {
                path: f.path.to_owned(),
                name: file_name(f.path).to_owned(),
                directory: directory(f.path).to_owned(),
                extension: extension(f.path).map(str::to_owned),
                ..FileInfo::default()
            }),
            destination: connect.map(|c| Destination {
                ip: c.daddr,
                port: c.dport,
            }),
            network: connect.map(|c| Network {
                transport: c.proto.as_str(),
                kind: match c.family {
                    NetFamily::Inet => "ipv4",
                    NetFamily::Inet6 => "ipv6",
                },
            }),
            host: Host {
                hostname: input.hostname.to_owned(),
            },
            client: None,
            container: p.container.as_deref().map(Container::from_cgroup),
            orchestrator: p.container.as_deref().and_then(Orchestrator::from_cgroup),
            lineage: LineageInfo {
                incident: Incident { id: input.incident },
                severity: input.severity,
                server: input.server,
                ancestry: input
                    .ancestry
                    .into_iter()
                    .map(|a| process_info(a, boot, Detail::Brief))
                    .collect(),
                suppressed_count: input.suppressed_count,
                args_truncated: p.image.argv_truncated,
                shell_copy_of: input.shell_copy_of,
                shell: input.shell,
                indicators: input.indicators,
                file_hash_missing: None,
                baseline: input.baseline_new.map(|template| BaselineInfo {
                    new: true,
                    template,
                }),
                client: None,
                evidence: None,
                workload_missing: None,
            },
        }
    }
}
