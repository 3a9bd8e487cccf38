//! What prevention refused (enforce) or would have refused (dry-run).

use prometheus::{IntCounterVec, Opts, Registry};

use crate::event::PreventAction;

pub struct PreventionMetrics {
    actions: IntCounterVec,
}

/// The rule whose decision the kernel applies to connects and UDP sends.
const EGRESS_RULE: &str = "server-outbound-unknown";

impl PreventionMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let actions = IntCounterVec::new(
            Opts::new(
                "prevention_actions_total",
                "Calls prevention refused (`blocked`, enforce) or would have refused \
                 (`would_block`, dry-run), by rule, as reported by the kernel: connects, and \
                 unconnected UDP sends once per socket and destination; execs below a server \
                 killed before they ran (`blocked`), would have been (`would_block`), or held \
                 too long and continued (`released`, rule `hold-timeout`).",
            ),
            &["rule", "action"],
        )?;
        registry.register(Box::new(actions.clone()))?;
        for action in ["blocked", "would_block"] {
            actions.with_label_values(&[EGRESS_RULE, action]);
        }
        Ok(Self { actions })
    }

    /// A connect the kernel marked with a prevention verdict.
    pub fn egress(&self, action: PreventAction) {
        let label = match action {
            PreventAction::Blocked => "blocked",
            PreventAction::WouldBlock => "would_block",
        };
        self.actions.with_label_values(&[EGRESS_RULE, label]).inc();
    }

    /// Execution prevention: `action` is `blocked` (killed at exec), `would_block` (dry-run)
    /// or `released` (held too long without a judgement and continued: fail-open).
    pub fn exec(&self, rule: &str, action: &str) {
        self.actions.with_label_values(&[rule, action]).inc();
    }

    pub fn egress_count(&self, action: PreventAction) -> u64 {
        let label = match action {
            PreventAction::Blocked => "blocked",
            PreventAction::WouldBlock => "would_block",
        };
        self.actions.with_label_values(&[EGRESS_RULE, label]).get()
    }
}
