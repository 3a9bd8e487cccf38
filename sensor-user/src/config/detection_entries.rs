//! The entries of the detection lists (families, interpreters, recon tools, allowed
//! destinations, exclusions), shared by the sections in [`super::detection`] and the built-in
//! content in [`super::detection_content`].

use serde::{Deserialize, Serialize};

/// The MITRE ATT&CK sub-technique a family's abuse falls under.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
pub enum Technique {
    /// Web Shell.
    #[default]
    #[serde(rename = "T1505.003")]
    WebShell,
    /// SQL Stored Procedures (a database server running OS commands).
    #[serde(rename = "T1505.001")]
    SqlStoredProcedures,
}

/// One kind of server. A process is of this family when its executed file matches one of
/// `executables`, or when it matches one of `interpreters` and its argv matches one of
/// `argv_patterns`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FamilyConfig {
    /// Shown in alerts (`lineage.server.family`) and used by exclusions and allowlists.
    pub name: String,
    /// `T1505.003` (web shell, the default) or `T1505.001` (database server).
    #[serde(default)]
    pub technique: Technique,
    /// Globs on the executed file: with a `/`, on the whole path; without, on the file name.
    #[serde(default)]
    pub executables: Vec<String>,
    /// Globs on the executed file of runtimes that host this server (java, python3.11, ruby):
    /// these count only together with `argv_patterns`.
    #[serde(default)]
    pub interpreters: Vec<String>,
    /// Regular expressions searched in the command line (argv joined by spaces) of an
    /// `interpreters` match.
    #[serde(default)]
    pub argv_patterns: Vec<String>,
    /// TCP ports: a process holding a listening socket on one of them is of this family whatever
    /// its file is called (a renamed or relocated server binary). Checked in `run` only, and only
    /// when a shell or recon tool starts, or a process connects, with no known server above it:
    /// the sensor then reads the listening sockets of its ancestors (and, for a connect, its own)
    /// from /proc, each process at most every 10 s (pid 1 is never one: socket activation makes
    /// init hold ports). Empty by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listen_ports: Vec<u16>,
}

/// An interpreter and the flags that make it run code from its command line.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InlineInterpreter {
    /// Glob on the executed file.
    pub executable: String,
    /// Flags such as `-c`, `-e`; a single-letter flag also counts inside a cluster (`-ec`).
    pub flags: Vec<String>,
}

/// An exception to a rule. Every field given must match (an exclusion with no field is refused);
/// keep them narrow: `args` matches each argument in full, so an excluded
/// `sh -c "/usr/sbin/sendmail -t -i"` does not let `sh -c "/usr/sbin/sendmail -t -i; id"` through.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Exclusion {
    /// Why this exclusion exists (kept for the reader; not matched).
    pub comment: String,
    /// The server family above the process (`detect.families[].name`).
    pub family: Option<String>,
    /// Glob on the parent's executable (jspawnhelper skipped).
    pub parent: Option<String>,
    /// Glob on the process's own executable.
    pub child: Option<String>,
    /// One regular expression per argument, each matching the whole argument (anchored), and as
    /// many as there are arguments (argv[0] included).
    pub args: Option<Vec<String>>,
    /// Real uids; the exclusion applies to these users only.
    pub users: Vec<u32>,
    /// The container the process runs in, by the names its runtime gave it
    /// (`container.image.name = "registry.example/ops/backup:*"`). A process whose container's
    /// names are not known (yet) is never excluded by them.
    pub container: Option<ContainerMatch>,
    /// The Kubernetes pod the process runs in (`orchestrator.namespace = "kube-system"`); as
    /// `container`, matched only where the runtime's names are known.
    pub orchestrator: Option<OrchestratorMatch>,
}

/// `container.*` of an exclusion: globs (`*` also crosses `/`) on the runtime's names.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ContainerMatch {
    /// Glob on the container's name (the pod spec's container name on Kubernetes).
    pub name: Option<String>,
    pub image: Option<ImageMatch>,
}

/// `container.image.*` of an exclusion.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ImageMatch {
    /// Glob on the whole image reference as the runtime was given it, tag or digest included
    /// (`registry.example/ops/backup:1.4`; containerd's CRI names Docker Hub images in full,
    /// `docker.io/library/nginx:1.25`).
    pub name: Option<String>,
}

/// `orchestrator.*` of an exclusion.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OrchestratorMatch {
    /// Glob on the pod's Kubernetes namespace.
    pub namespace: Option<String>,
    pub resource: Option<ResourceMatch>,
}

/// `orchestrator.resource.*` of an exclusion.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ResourceMatch {
    /// Glob on the pod's name (`backup-*` for a CronJob's pods).
    pub name: Option<String>,
}

/// A tool, optionally only with certain arguments (`cat` only on /etc/passwd and the like).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReconTool {
    /// Glob on the executed file (busybox counts under its applet name).
    pub executable: String,
    /// Regular expression searched in the arguments after argv[0], joined by spaces; absent:
    /// any arguments.
    #[serde(default)]
    pub args_pattern: Option<String>,
}

/// One allowlist entry.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AllowedDestination {
    /// Network in CIDR form (`10.0.0.0/8`, `2001:db8::/32`); a bare address means that address.
    pub cidr: String,
    /// Destination ports; empty: any port.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Families the entry applies to; empty: every family.
    #[serde(default)]
    pub families: Vec<String>,
}

impl AllowedDestination {
    /// `cidr` on any port, for every family.
    pub(crate) fn any(cidr: &str) -> Self {
        Self {
            cidr: cidr.into(),
            ports: Vec::new(),
            families: Vec::new(),
        }
    }
}

/// A process that is never a server by role (`detect.not_servers_by_role`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoleExemption {
    /// Glob on the executed file (with a `/`, on the whole path; without, on the file name).
    pub executable: String,
    /// Regular expression searched in the command line (argv joined by spaces); absent: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv_pattern: Option<String>,
    /// Why it gives shells or runs commands by design (kept for the reader; not matched).
    pub reason: String,
}
