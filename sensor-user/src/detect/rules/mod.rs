//! The rules, one file each, and what the alerts say about them.

pub mod outbound;
pub mod recon;
pub mod shell;

/// The rules the engine knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleId {
    ServerSpawnedShell,
    ServerSpawnedRecon,
    ServerOutboundUnknown,
}

impl RuleId {
    pub const ALL: [RuleId; 3] = [
        RuleId::ServerSpawnedShell,
        RuleId::ServerSpawnedRecon,
        RuleId::ServerOutboundUnknown,
    ];

    /// `rule.id` in alerts and the `rule` label of metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::ServerSpawnedShell => "server-spawned-shell",
            RuleId::ServerSpawnedRecon => "server-spawned-recon",
            RuleId::ServerOutboundUnknown => "server-outbound-unknown",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RuleId::ServerSpawnedShell => {
                "Shell or inline interpreter started below a server process"
            }
            RuleId::ServerSpawnedRecon => {
                "Reconnaissance or network tool started below a server process"
            }
            RuleId::ServerOutboundUnknown => {
                "Server process connected to a destination outside its allowlist"
            }
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            RuleId::ServerSpawnedShell => {
                "A shell (sh, bash, dash, busybox sh, ...) or an interpreter running inline code \
                 (python -c, perl -e, php -r, ...) has a server process (web, application or \
                 database server) among its ancestors: the typical first step of a web shell or \
                 of command execution through a database server."
            }
            RuleId::ServerSpawnedRecon => {
                "A discovery, download or network tool (id, whoami, uname, curl, wget, nc, ...) \
                 was started directly by a server process or below a shell that a server \
                 process started: an attacker exploring the host through a foothold."
            }
            RuleId::ServerOutboundUnknown => {
                "A server process, or a process below it, connected to an address outside the \
                 configured allowlist (or to a cloud metadata service): a reverse shell, a \
                 download, exfiltration or credential theft."
            }
        }
    }

    pub fn category(self) -> &'static [&'static str] {
        match self {
            RuleId::ServerOutboundUnknown => &["network"],
            _ => &["process"],
        }
    }

    pub fn event_type(self) -> &'static [&'static str] {
        match self {
            RuleId::ServerOutboundUnknown => &["connection", "start"],
            _ => &["start"],
        }
    }
}
