//! The sensor's configuration file (TOML).
//!
//! Every section and field is documented here, unknown keys are refused (a typo must not silently
//! fall back to a default), and sizes and durations carry their unit in the name. `validate()`
//! checks what types alone cannot; its errors name the field.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod baseline;
mod detection;
mod detection_content;
mod detection_entries;
mod detection_roles;
#[cfg(test)]
mod docs_check;
mod evidence;
mod limits;
mod lineage;
mod locate;
mod output;
mod output_secrets;
mod ownership;
mod prevention;
mod workload;

pub use baseline::BaselineConfig;
pub use detection::TempExecConfig;
pub use detection::{
    Deployer, DetectConfig, IncidentConfig, OutboundRuleConfig, RateLimitConfig, ReconRuleConfig,
    RulesConfig, ServerModuleChangeConfig, Severity, ShellRuleConfig, WebrootScriptWriteConfig,
    WrittenExecConfig,
};
pub use detection_entries::RoleExemption;
pub use detection_entries::{
    AllowedDestination, Exclusion, FamilyConfig, InlineInterpreter, ReconTool, Technique,
};
pub use detection_entries::{ContainerMatch, ImageMatch, OrchestratorMatch, ResourceMatch};
pub use evidence::EvidenceConfig;
pub use lineage::LineageConfig;
pub use output::{
    DEFAULT_SPOOL_MAX_BYTES, HttpFormat, MetricsConfig, OutputConfig, SinkConfig, SinkKind,
    SyslogProtocol,
};
pub use output_secrets::{Secret, SecretError, SecretSource, SinkTls, check_inline_secrets};
pub use prevention::{PreventionConfig, PreventionMode};
pub use workload::WorkloadConfig;

/// The whole configuration. Every section is optional and defaults to safe values.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Kernel-side capture.
    pub capture: CaptureConfig,
    /// The process table.
    pub lineage: LineageConfig,
    /// Which processes are servers.
    pub detect: DetectConfig,
    /// The rules: switches, tuning, exclusions.
    pub rules: RulesConfig,
    /// Grouping of alerts into incidents.
    pub incidents: IncidentConfig,
    /// Rate limiting of identical alerts.
    pub rate_limit: RateLimitConfig,
    /// Where alerts are delivered.
    pub output: OutputConfig,
    /// The metrics and health endpoint.
    pub metrics: MetricsConfig,
    /// The learned habits of each server.
    pub baseline: BaselineConfig,
    /// What `run` keeps of each incident (evidence bundles).
    pub evidence: EvidenceConfig,
    /// Container and pod names from the container runtime's state (`run` only).
    pub workload: WorkloadConfig,
    /// Whether the kernel refuses what detection would alert on.
    pub prevention: PreventionConfig,
}

/// Kernel-side capture settings.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// Size of the BPF ring buffer carrying events to userspace, in bytes. A power of two and a
    /// multiple of the page size (4096). The default, 8 MiB, holds a burst of about 10,000
    /// exec+fork+exit triples while userspace catches up; events that find it full are counted in
    /// `lineage_sensor_events_lost_total`, never dropped silently.
    pub ring_buffer_bytes: u32,
    /// Absolute path prefixes under which file writes, renames and links are reported by the
    /// kernel, in addition to the web roots and module directories of the file rules, which are
    /// always watched. Everything else is filtered out in the kernel. At most 255 bytes each.
    pub watch_paths: Vec<String>,
    /// Longest time a record waits in the ring before userspace reads it, in milliseconds (1 to
    /// 1000). Only execs below a server (the kernel's server tree) wake the reader at once, or a
    /// quarter-full ring: a wakeup per record cost a context switch per connect, and one per
    /// exec 2.6% of an exec storm. This bounds the added latency of outbound-connect and file
    /// alerts, and of a shell spawned by a server started less than one interval before.
    pub flush_interval_ms: u32,
    /// Where connect() destinations are read on the way in. `auto`: the cgroup connect4 and
    /// connect6 hooks on the root of the cgroup v2 hierarchy when the sensor can attach them
    /// (CAP_NET_ADMIN, the initial cgroup namespace), 1.3 us cheaper per connect, else the
    /// `sys_enter_connect` tracepoint. `tracepoint`: always the tracepoint, for hosts that do
    /// not allow cgroup programs, or where another agent's connect hook rewrites destinations
    /// (socket load balancing) and the address the caller asked for is the one wanted. The
    /// start-up log says which is in use.
    pub connect_entry: ConnectEntryMode,
    /// Whose connects and UDP sends the kernel reports in `run`. `server-trees`: only those of
    /// server processes, their descendants and processes that listen on a TCP port (the kernel's
    /// server tree), the only ones a rule reads; every other process's connect is dropped by one
    /// map lookup in the kernel. `everyone`: all of them (`record` always uses this).
    pub connects_from: ConnectScope,
    /// How file writes, renames and links under the watched paths are seen. `auto`: the
    /// cheapest mechanism this kernel and these privileges allow, probed at start: fanotify
    /// (filesystem marks, needs CAP_SYS_ADMIN and CAP_DAC_READ_SEARCH; no per-syscall cost),
    /// else the file syscalls' tracepoints (which put every syscall on the host on the tracing
    /// slow path), and nothing at all when no path is watched. `fanotify` / `tracepoint`: that
    /// mechanism or a start-up error. `off`: never, even when file rules are enabled (they then
    /// never fire; the start-up log says so).
    pub file_hooks: FileHooks,
}

/// See [`CaptureConfig::file_hooks`].
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FileHooks {
    #[default]
    Auto,
    Off,
    /// fanotify or nothing: start fails when the kernel or the privileges refuse it.
    Fanotify,
    /// The file syscalls' tracepoints, even where fanotify would do.
    Tracepoint,
}

/// See [`CaptureConfig::connects_from`].
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectScope {
    #[default]
    ServerTrees,
    Everyone,
}

/// See [`CaptureConfig::connect_entry`].
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ConnectEntryMode {
    #[default]
    Auto,
    Tracepoint,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            ring_buffer_bytes: 8 << 20,
            watch_paths: Vec::new(),
            flush_interval_ms: 10,
            connect_entry: ConnectEntryMode::Auto,
            connects_from: ConnectScope::ServerTrees,
            file_hooks: FileHooks::Auto,
        }
    }
}

/// A configuration that cannot be used; the message names the file, line and field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {field}{message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        /// `name: ` of the key at the error, or empty when the text does not parse as TOML.
        field: String,
        message: String,
    },
    #[error("{path}:{line}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        field: String,
        message: String,
    },
    /// Whoever can write the file or directory can change what the sensor (running privileged)
    /// detects, or what it reads back as its own state.
    #[error("{path}: {message}")]
    Unsafe { path: PathBuf, message: String },
}

pub use ownership::{check_chain, check_not_writable_by_others, check_state_locations};

/// The part of a path glob before its first glob character. The kernel matches byte prefixes,
/// so there is no need to cut back to a `/`: `/var/lib/tomcat*/webapps` watches
/// `/var/lib/tomcat`.
pub fn literal_prefix(pattern: &str) -> &str {
    let end = pattern
        .find(['*', '?', '[', '{', '\\'])
        .unwrap_or(pattern.len());
    &pattern[..end]
}

impl Config {
    /// `capture` with the file rules' web roots and module paths appended as kernel prefixes
    /// (their literal part before the first glob character), duplicates left out. Rules that are
    /// switched off add nothing.
    pub fn effective_capture(&self) -> CaptureConfig {
        let mut capture = self.capture.clone();
        let web = &self.rules.webroot_script_write;
        let module = &self.rules.server_module_change;
        let written = self.rules.server_written_file_executed.enabled;
        let roots = (web.enabled || written).then_some(web.web_roots.iter());
        let modules = module.enabled.then_some(module.paths.iter());
        for pattern in roots
            .into_iter()
            .flatten()
            .chain(modules.into_iter().flatten())
        {
            let prefix = literal_prefix(pattern);
            if !prefix.is_empty() && !capture.watch_paths.iter().any(|p| p == prefix) {
                capture.watch_paths.push(prefix.to_owned());
            }
        }
        capture
    }

    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        check_not_writable_by_others(path)?;
        let read = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        // Bounded before reading: a config of gigabytes must not be read (or parsed) at all.
        let file = std::fs::File::open(path).map_err(read)?;
        let size = file.metadata().map_err(read)?.len();
        if size > limits::MAX_CONFIG_BYTES {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source: std::io::Error::other(format!(
                    "{size} bytes; a config file may have at most {} bytes",
                    limits::MAX_CONFIG_BYTES
                )),
            });
        }
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(file, limits::MAX_CONFIG_BYTES + 1),
            &mut text,
        )
        .map_err(read)?;
        let config = Config::parse(&text, path)?;
        check_inline_secrets(path, &config.output)?;
        Ok(config)
    }

    /// Parses and validates config text; `path` is used in error messages only.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        // Lists and strings are bounded before anything is built from them.
        limits::check_shape(text).map_err(|(field, offset, message)| ConfigError::Invalid {
            path: path.to_owned(),
            line: line_column(text, offset).0,
            field,
            message,
        })?;
        let config: Config = toml::from_str(text).map_err(|err| {
            let start = err.span().map(|span| span.start);
            let (line, column) = start.map_or((1, 1), |start| line_column(text, start));
            let field = start
                .and_then(|start| locate::field_at(text, start))
                .map_or(String::new(), |f| format!("{f}: "));
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                column,
                field,
                message: err.message().trim().to_owned(),
            }
        })?;
        config
            .validate()
            .map_err(|(field, message)| ConfigError::Invalid {
                path: path.to_owned(),
                line: locate::field_line(text, &field),
                field,
                message,
            })?;
        Ok(config)
    }

    /// Checks what the types cannot express. Returns the dotted field name and the problem.
    fn validate(&self) -> Result<(), (String, String)> {
        limits::check_ranges(self)?;
        let ring = self.capture.ring_buffer_bytes;
        if !ring.is_power_of_two() || ring < 4096 {
            return Err((
                "capture.ring_buffer_bytes".into(),
                format!("{ring} is not a power of two of at least 4096 (e.g. 8388608 for 8 MiB)"),
            ));
        }
        let flush = self.capture.flush_interval_ms;
        if !(1..=1000).contains(&flush) {
            return Err((
                "capture.flush_interval_ms".into(),
                format!("{flush} is not between 1 and 1000"),
            ));
        }
        for (i, prefix) in self.capture.watch_paths.iter().enumerate() {
            if !prefix.starts_with('/') || prefix.len() >= sensor_ebpf::PATH_KEY_MAX {
                return Err((
                    format!("capture.watch_paths[{i}]"),
                    format!("{prefix:?} is not an absolute path shorter than 255 bytes"),
                ));
            }
        }
        let web = &self.rules.webroot_script_write;
        let module = &self.rules.server_module_change;
        let patterns = web
            .web_roots
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("rules.webroot_script_write.web_roots[{i}]"), p))
            .chain(
                module
                    .paths
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (format!("rules.server_module_change.paths[{i}]"), p)),
            );
        for (field, pattern) in patterns {
            let prefix = literal_prefix(pattern);
            // "/" alone would make the kernel report every write on the host.
            if !prefix.starts_with('/')
                || prefix.len() < 2
                || prefix.len() >= sensor_ebpf::PATH_KEY_MAX
            {
                return Err((
                    field,
                    format!(
                        "{pattern:?} needs an absolute literal beginning shorter than 255 bytes \
                         (the kernel filters on it): write \"/srv/*/htdocs\", not \"**/htdocs\""
                    ),
                ));
            }
        }
        if self.lineage.max_processes < 1024 {
            return Err((
                "lineage.max_processes".into(),
                format!(
                    "{} is too small (at least 1024)",
                    self.lineage.max_processes
                ),
            ));
        }
        // Globs, regexes, CIDRs and family references are checked where they are compiled, by
        // the engine (see `commands::build_engine`).
        self.output.validate()
    }
}

impl ConfigError {
    /// A setting that parses but cannot be used (found by whoever compiles it), located in the
    /// file like the errors `validate()` finds. The file is read again for the line: 1 if it
    /// cannot be.
    pub fn invalid_setting(path: &Path, field: String, message: String) -> Self {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        ConfigError::Invalid {
            path: path.to_owned(),
            line: locate::field_line(&text, &field),
            field,
            message,
        }
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_config_is_the_default() {
        assert_eq!(parse("").expect("valid"), Config::default());
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err = parse("[capture]\nring_bufer_bytes = 4096\n").expect_err("typo");
        let msg = err.to_string();
        assert!(msg.starts_with("test.toml:2:1:"), "{msg}");
        assert!(msg.contains("ring_bufer_bytes"), "{msg}");
    }

    #[test]
    fn wrong_type_and_bad_value_are_refused() {
        let msg = parse("[capture]\nring_buffer_bytes = \"big\"\n")
            .expect_err("type")
            .to_string();
        assert!(msg.starts_with("test.toml:2:"), "{msg}");
        let msg = parse("[capture]\nring_buffer_bytes = 5000\n")
            .expect_err("range")
            .to_string();
        assert!(msg.contains("capture.ring_buffer_bytes"), "{msg}");
    }

    #[test]
    fn deploy_config_spells_out_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/lineage-sensor.toml");
        let config = Config::load(&path).expect("deploy/lineage-sensor.toml is valid");
        assert_eq!(config, Config::default());
    }

    #[test]
    fn a_misspelt_key_names_its_line() {
        let msg = parse("[rules.server_spawned_shell]\nenabeld = false\n")
            .expect_err("typo")
            .to_string();
        assert!(
            msg.starts_with("test.toml:2:1:") && msg.contains("enabeld"),
            "{msg}"
        );
    }

    #[test]
    fn effective_capture_adds_file_rule_prefixes_once() {
        let mut config =
            parse("[capture]\nwatch_paths = [\"/var/www\", \"/data\"]\n").expect("valid");
        let watch = config.effective_capture().watch_paths;
        assert_eq!(watch.iter().filter(|p| *p == "/var/www").count(), 1);
        for p in [
            "/data",
            "/var/lib/tomcat",
            "/home/",
            "/opt/",
            "/etc/php/",
            "/usr/lib/apache2/modules",
        ] {
            assert!(watch.iter().any(|w| w == p), "{p} in {watch:?}");
        }
        assert!(watch.iter().all(|p| p.starts_with('/') && p.len() < 255));
        config.rules.server_module_change.enabled = false;
        assert!(
            !config
                .effective_capture()
                .watch_paths
                .iter()
                .any(|p| p == "/etc/php/")
        );
        let err = parse("[rules.webroot_script_write]\nweb_roots = [\"**/htdocs\"]\n")
            .expect_err("no literal prefix")
            .to_string();
        assert!(
            err.contains("rules.webroot_script_write.web_roots[0]"),
            "{err}"
        );
        let err = parse("[rules.server_module_change]\npaths = [\"/var/x\", \"etc\"]\n")
            .expect_err("relative")
            .to_string();
        assert!(err.contains("rules.server_module_change.paths[1]"), "{err}");
        let long = format!(
            "[rules.server_module_change]\npaths = [\"/{}\"]\n",
            "a".repeat(300)
        );
        assert!(parse(&long).is_err());
        let err = parse("[rules.server_module_change]\npaths = [\"/*/lib\"]\n")
            .expect_err("watches everything")
            .to_string();
        assert!(err.contains("rules.server_module_change.paths[0]"), "{err}");
    }
}
