//! `[detect]`, `[rules.*]`, `[incidents]` and `[rate_limit]`: what counts as a server and what the
//! rules look for. The entries of their lists are in [`super::detection_entries`], the built-in
//! lists in [`super::detection_content`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{
    detection_content as content,
    detection_entries::{
        AllowedDestination, Exclusion, FamilyConfig, InlineInterpreter, ReconTool, RoleExemption,
    },
};

/// Which processes are servers.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Executables never treated as servers, even when a family's name matches: init scripts
    /// such as /etc/init.d/nginx are shell scripts that carry the service's name. Globs; a glob
    /// with a `/` matches the whole path, one without matches the file name.
    pub not_servers: Vec<String>,
    /// Executables skipped when walking up the ancestry: JDK 12+ starts every child of a JVM
    /// through jspawnhelper, which must not hide the JVM. Globs as above.
    pub transparent: Vec<String>,
    /// The server families. Setting this replaces the whole default list (copy it from
    /// deploy/lineage-sensor.toml and edit).
    pub families: Vec<FamilyConfig>,
    /// Families added after `families`, so that a site's own server (an in-house daemon on a
    /// known port, a renamed binary) needs no copy of the default list.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_families: Vec<FamilyConfig>,
    /// Package managers, as globs on the executed file (as above). A file rule never alerts on a
    /// write or a module tool whose process or any ancestor is one of these: packages install web
    /// pages, modules and server configuration all the time.
    pub package_managers: Vec<String>,
    /// Servers by role: a process that puts a TCP socket into LISTEN (a `listen` event, or a
    /// listening socket found in /proc when `run` starts) is a server whatever its name, and so
    /// are the processes it forks. Its family is the first whose `listen_ports` hold the port,
    /// else the first whose `interpreters` match its executable (`java -jar app.jar` is
    /// java-appserver), else `listener`. In `run` and `replay` alike.
    pub servers_by_role: bool,
    /// Processes that listen in order to give people shells (or run commands by design): never
    /// servers by role. Setting this replaces the whole default list.
    pub not_servers_by_role: Vec<RoleExemption>,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            not_servers: content::not_servers(),
            transparent: vec!["jspawnhelper".into()],
            families: content::families(),
            extra_families: Vec::new(),
            package_managers: content::package_managers(),
            servers_by_role: true,
            not_servers_by_role: super::detection_roles::not_servers_by_role(),
        }
    }
}

/// Severity of a rule's alerts; `event.severity` carries the number in brackets.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// 21
    Low,
    /// 47
    Medium,
    /// 73
    High,
    /// 99
    Critical,
}

impl Severity {
    /// `event.severity` in alerts: 21, 47, 73 or 99.
    pub fn score(self) -> u8 {
        match self {
            Severity::Low => 21,
            Severity::Medium => 47,
            Severity::High => 73,
            Severity::Critical => 99,
        }
    }
}

/// `[rules]`: each rule's switch, severity, tuning and exclusions.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// A shell or inline interpreter below a server.
    pub server_spawned_shell: ShellRuleConfig,
    /// A recon, download or network tool below a server.
    pub server_spawned_recon: ReconRuleConfig,
    /// A server or its descendant connecting outside the allowlist.
    pub server_outbound_unknown: OutboundRuleConfig,
    /// A script or page file written into a web root.
    pub webroot_script_write: WebrootScriptWriteConfig,
    /// A server module or configuration changed, or a module tool run.
    pub server_module_change: ServerModuleChangeConfig,
    /// A file a server wrote under a web root, executed.
    pub server_written_file_executed: WrittenExecConfig,
    /// A binary below a server executed from a temporary directory or from memory.
    pub server_temp_file_executed: TempExecConfig,
}

/// webroot-script-write (T1505.003): a script or page file created, modified, renamed or linked
/// under a web root by a process that is not an allowed deployer.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebrootScriptWriteConfig {
    /// Whether the rule runs.
    pub enabled: bool,
    /// Severity when the writer is a server process or below one (an upload through the app).
    pub severity: Severity,
    /// Severity when no server is above the writer (a cron job, an ssh session, a tool).
    pub severity_outside_server: Severity,
    /// Web roots, as absolute path globs (`*` stays within one path component): a file anywhere
    /// below a match counts. The literal part before the first glob character is watched by the
    /// kernel, so `/home/*/public_html` watches every write under `/home/`.
    pub web_roots: Vec<String>,
    /// File name extensions that a web server executes or serves as code, without the dot;
    /// compared case-insensitively.
    pub extensions: Vec<String>,
    /// Allowed deployers besides `detect.package_managers`.
    pub deployers: Vec<Deployer>,
    /// Exceptions, as for the process rules; `family` only matches writers below a server.
    pub exclude: Vec<Exclusion>,
    /// `run` only: alerts naming a file get `file.hash.sha256` when the file is at most this
    /// large (0: never hash). Applies to the alerts of every file rule.
    pub hash_max_bytes: u64,
    /// `run` only: how long after the write the file is read for hashing. The kernel side does
    /// not see close(), so the hash is of the content this long after the write, not at close.
    pub hash_delay_ms: u64,
}

/// A process allowed to write into web roots. Every field given must match (one with none is
/// refused).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Deployer {
    /// Why this deployer is allowed (kept for the reader; not matched).
    pub comment: String,
    /// Glob on the writer's executable or on any of its ancestors' (a CI agent's children).
    pub executable: Option<String>,
    /// Real uids of the writer.
    pub users: Vec<u32>,
}

impl Default for WebrootScriptWriteConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            severity: Severity::Critical,
            severity_outside_server: Severity::Medium,
            web_roots: content::web_roots(),
            extensions: content::script_extensions(),
            deployers: Vec::new(),
            exclude: Vec::new(),
            hash_max_bytes: 1 << 20,
            hash_delay_ms: 200,
        }
    }
}

/// server-module-change (T1505, ATT&CK analytic AN1508): a file created or modified in a
/// server's module or configuration directories, or a module-enabling tool run, outside a
/// package manager.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerModuleChangeConfig {
    /// Whether the rule runs.
    pub enabled: bool,
    /// Severity of its alerts.
    pub severity: Severity,
    /// Module and configuration locations, as absolute path globs: the match itself (a file such
    /// as php.ini) and anything below it (a directory) count. Watched by the kernel like
    /// `web_roots`.
    pub paths: Vec<String>,
    /// Module-enabling tools, as globs on the executed file (a2enmod is a Perl script: the
    /// kernel reports the script's path).
    pub tools: Vec<String>,
    /// Exceptions, as for the process rules.
    pub exclude: Vec<Exclusion>,
}

impl Default for ServerModuleChangeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            severity: Severity::High,
            paths: content::module_paths(),
            tools: content::module_tools(),
            exclude: Vec::new(),
        }
    }
}

/// server-written-file-executed: a file that a server process (or a process below one) wrote
/// under a web root is later executed; the alert joins the write's incident.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WrittenExecConfig {
    /// Whether the rule runs (and server-written files are remembered).
    pub enabled: bool,
    /// Severity of its alerts.
    pub severity: Severity,
    /// Paths written by servers remembered for this; past it the oldest are forgotten.
    pub max_tracked: usize,
}

impl Default for WrittenExecConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            severity: Severity::Critical,
            max_tracked: 4096,
        }
    }
}

/// server-spawned-shell (T1505.003): a shell or an inline interpreter below a server.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ShellRuleConfig {
    /// Whether the rule runs.
    pub enabled: bool,
    /// Severity of its alerts.
    pub severity: Severity,
    /// Shells, as globs on the executed file (busybox counts under its applet name).
    pub shells: Vec<String>,
    /// Interpreters that count as a shell when run with an inline-code flag.
    pub interpreters: Vec<InlineInterpreter>,
    /// Narrow exceptions; every field given must match (see docs/detection.md).
    pub exclude: Vec<Exclusion>,
}

impl Default for ShellRuleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            severity: Severity::High,
            shells: content::shells(),
            interpreters: content::inline_interpreters(),
            exclude: content::shell_exclusions(),
        }
    }
}

/// server-spawned-recon: a reconnaissance, download or network tool started by a server, or
/// anywhere below a shell that a server started.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReconRuleConfig {
    /// Whether the rule runs.
    pub enabled: bool,
    /// Severity of its alerts.
    pub severity: Severity,
    /// The tools: an executable glob, and optionally a regex its arguments must match.
    pub tools: Vec<ReconTool>,
    /// Narrow exceptions; every field given must match (see docs/detection.md).
    pub exclude: Vec<Exclusion>,
}

impl Default for ReconRuleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            severity: Severity::Medium,
            tools: content::recon_tools(),
            exclude: Vec::new(),
        }
    }
}

/// server-outbound-unknown: a connect from a server (or anything below it) to a destination
/// outside the allowlist.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundRuleConfig {
    /// Whether the rule runs.
    pub enabled: bool,
    /// Severity of its alerts.
    pub severity: Severity,
    /// Allowed destinations.
    pub allow: Vec<AllowedDestination>,
    /// CIDRs never allowed, whatever `allow` and learning say (cloud metadata services: a web
    /// server reaching them is the classic credential theft).
    pub never_allow: Vec<String>,
    /// Also alert on connects that failed at once (refused, unreachable); an attempt shows
    /// intent, but a failed one is weaker evidence.
    pub include_failed: bool,
    /// 0: off. Otherwise destinations seen during the first this-many seconds (from the first
    /// event; from the first start when `state_file` is set) are learned as allowed, per family,
    /// and only new ones alert afterwards.
    pub learning_secs: u64,
    /// Where the learned destinations persist across restarts (`run` only; `replay` learns from
    /// the record alone and writes nothing).
    pub state_file: Option<PathBuf>,
    /// At most this many learned destinations; past it, new ones are not learned.
    pub max_learned: usize,
    /// Narrow exceptions, matched on the connecting process (see docs/detection.md).
    pub exclude: Vec<Exclusion>,
}

impl Default for OutboundRuleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            severity: Severity::Medium,
            allow: content::allowed_destinations(),
            never_allow: vec!["169.254.169.254/32".into(), "fd00:ec2::254/128".into()],
            include_failed: true,
            learning_secs: 0,
            state_file: None,
            max_learned: 10_000,
            exclude: Vec::new(),
        }
    }
}

/// `[incidents]`: grouping alerts of one server-rooted process tree.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentConfig {
    /// Alerts of the same server tree less than this far from the incident's previous alert
    /// share its id; a longer quiet gap starts a new incident.
    pub span_secs: u64,
    /// `run` keeps its open incidents here (rewritten whenever one opens or grows), so that a
    /// sensor restarted or killed mid-attack continues the same incident ids instead of
    /// opening a duplicate for the same tree. Only a file of the same boot is used. An empty
    /// path keeps incidents in memory only. `replay` never reads it.
    pub state_file: PathBuf,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        Self {
            span_secs: 300,
            state_file: PathBuf::from("/var/lib/lineage-sensor/incidents.json"),
        }
    }
}

/// `[rate_limit]`: identical alerts (same rule, server family, parent and child executable and
/// command line) are emitted once per window; the next one emitted carries how many were held
/// back (`lineage.suppressed_count`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// 0 turns rate limiting off.
    pub window_secs: u64,
    /// Distinct alert keys remembered; the oldest are forgotten past it.
    pub max_tracked: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            window_secs: 60,
            max_tracked: 10_000,
        }
    }
}

/// server-temp-file-executed: a binary below a server executed from /tmp, /var/tmp, /dev/shm,
/// /run/user or memory.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TempExecConfig {
    /// Whether the rule runs.
    pub enabled: bool,
    /// Severity of its alerts.
    pub severity: Severity,
    /// Narrow exceptions; every field given must match (see docs/detection.md).
    pub exclude: Vec<Exclusion>,
}

impl Default for TempExecConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            severity: Severity::Critical,
            exclude: Vec::new(),
        }
    }
}
