//! The rules' identities. What each says about itself (`rule.*` in alerts, the event category)
//! is its [`RuleMeta`], kept in the rule's own file.

use super::{module_change, outbound, recon, shell, webroot, written_exec};

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

/// What a rule says about itself in alerts and metrics.
pub struct RuleMeta {
    /// `rule.id` in alerts and the `rule` label of metrics.
    pub id: &'static str,
    /// `rule.name`.
    pub name: &'static str,
    /// `rule.description`.
    pub description: &'static str,
    /// `event.category` of its alerts (file alerts say `file` whatever the rule).
    pub category: &'static [&'static str],
    /// `event.type` of its alerts (file alerts take the file event's).
    pub event_type: &'static [&'static str],
    /// It also alerts on processes with no server above them.
    pub server_optional: bool,
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
        self as usize
    }

    pub fn meta(self) -> &'static RuleMeta {
        match self {
            RuleId::ServerSpawnedShell => &shell::META,
            RuleId::ServerSpawnedRecon => &recon::META,
            RuleId::ServerOutboundUnknown => &outbound::META,
            RuleId::WebrootScriptWrite => &webroot::META,
            RuleId::ServerModuleChange => &module_change::META,
            RuleId::ServerWrittenFileExecuted => &written_exec::META,
        }
    }

    /// `rule.id` in alerts and the `rule` label of metrics.
    pub fn as_str(self) -> &'static str {
        self.meta().id
    }

    /// The file rules also alert on processes with no server above them.
    pub fn server_optional(self) -> bool {
        self.meta().server_optional
    }
}

#[cfg(test)]
mod tests {
    use super::RuleId;

    #[test]
    fn index_is_the_position_in_all() {
        for (i, rule) in RuleId::ALL.iter().enumerate() {
            assert_eq!(rule.index(), i, "{rule:?}");
        }
    }
}
