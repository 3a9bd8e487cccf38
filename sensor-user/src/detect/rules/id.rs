//! The rules' identities and what the alerts say about each.

/// The rules the engine knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleId {
    ServerSpawnedShell,
    ServerSpawnedRecon,
    ServerOutboundUnknown,
    WebrootScriptWrite,
    ServerModuleChange,
    ServerWrittenFileExecuted,
}

impl RuleId {
    pub const ALL: [RuleId; 6] = [
        RuleId::ServerSpawnedShell,
        RuleId::ServerSpawnedRecon,
        RuleId::ServerOutboundUnknown,
        RuleId::WebrootScriptWrite,
        RuleId::ServerModuleChange,
        RuleId::ServerWrittenFileExecuted,
    ];

    /// Position in [`Self::ALL`], for per-rule counters.
    pub fn index(self) -> usize {
        match self {
            RuleId::ServerSpawnedShell => 0,
            RuleId::ServerSpawnedRecon => 1,
            RuleId::ServerOutboundUnknown => 2,
            RuleId::WebrootScriptWrite => 3,
            RuleId::ServerModuleChange => 4,
            RuleId::ServerWrittenFileExecuted => 5,
        }
    }

    /// The file rules also alert on processes with no server above them.
    pub fn server_optional(self) -> bool {
        matches!(
            self,
            RuleId::WebrootScriptWrite
                | RuleId::ServerModuleChange
                | RuleId::ServerWrittenFileExecuted
        )
    }

    /// `rule.id` in alerts and the `rule` label of metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::ServerSpawnedShell => "server-spawned-shell",
            RuleId::ServerSpawnedRecon => "server-spawned-recon",
            RuleId::ServerOutboundUnknown => "server-outbound-unknown",
            RuleId::WebrootScriptWrite => "webroot-script-write",
            RuleId::ServerModuleChange => "server-module-change",
            RuleId::ServerWrittenFileExecuted => "server-written-file-executed",
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
            RuleId::WebrootScriptWrite => "Script or page file written into a web root",
            RuleId::ServerModuleChange => "Server module or configuration changed",
            RuleId::ServerWrittenFileExecuted => {
                "File written by a server process into a web root was executed"
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
            RuleId::WebrootScriptWrite => {
                "A file with a script or page extension (php, jsp, aspx, cgi, ...) was created, \
                 modified, renamed or linked under a web root by a process that is neither a \
                 package manager nor a configured deployer: a web shell being planted. Most \
                 severe when the writer is a server process or below one (an upload through a \
                 vulnerable application)."
            }
            RuleId::ServerModuleChange => {
                "A file was created or modified in a web or application server's module or \
                 configuration directories (Apache or Nginx modules, php.ini and conf.d, Tomcat \
                 lib and conf), or a module-enabling tool (a2enmod, apxs, phpenmod) ran, with no \
                 package manager among its ancestors: a rogue module or a configuration that \
                 makes the server run the attacker's code."
            }
            RuleId::ServerWrittenFileExecuted => {
                "A file that a server process (or a process below one) wrote under a web root \
                 was executed: a dropped tool or web shell put to use. The alert joins the \
                 incident of the server tree that wrote the file."
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
