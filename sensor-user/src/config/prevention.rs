//! `[prevention]`: whether the kernel refuses what detection would alert on.

use serde::{Deserialize, Serialize};

/// `[prevention]`: egress from a server tree to a destination `server-outbound-unknown` would
/// alert on is refused in the kernel (connect() and sendmsg() fail with EPERM before a packet
/// leaves). The decision is the rule's own allowlist and `never_allow`, compiled into the
/// kernel; see docs/prevention.md.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PreventionConfig {
    /// `off`: the kernel decides nothing. `dry-run`: the kernel takes the decision and marks the
    /// event, alerts say `event.action: would-block`, nothing is refused. `enforce`: the same
    /// decision refuses the call (`event.action: blocked`).
    pub mode: PreventionMode,
    /// Execution prevention: the longest a process stopped at exec waits for its judgement
    /// before it is continued anyway (counted as `action="released"`). The sensor's watchdog
    /// continues one held twice as long (a sensor that is alive but not judging, e.g. stopped).
    pub hold_timeout_ms: u64,
    /// Execution prevention on (with `dry-run` or `enforce`): a new image below a confirmed
    /// server is held at its exec until the engine has judged it. `false` leaves egress
    /// prevention alone in force.
    pub hold_execs: bool,
}

impl Default for PreventionConfig {
    fn default() -> Self {
        Self {
            mode: PreventionMode::Off,
            hold_timeout_ms: 300,
            hold_execs: true,
        }
    }
}

/// See [`PreventionConfig::mode`].
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PreventionMode {
    #[default]
    Off,
    DryRun,
    Enforce,
}
