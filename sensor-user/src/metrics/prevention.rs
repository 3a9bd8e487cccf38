//! What prevention refused (enforce) or would have refused (dry-run).

use prometheus::{IntCounterVec, Opts, Registry};

use crate::event::PreventAction;

pub struct PreventionMetrics {
    actions: IntCounterVec,
    holds: IntCounterVec,
}

/// The rule whose decision the kernel applies to connects and UDP sends.
const EGRESS_RULE: &str = "server-outbound-unknown";

/// How a hold at exec can end (`exec_holds_total{verdict}`).
const HOLD_VERDICTS: [&str; 3] = ["continued", "killed", "timed_out"];

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
        // Every hold, benign or not: what enforce costs the servers' execs, and the proof that
        // the benign ones went on.
        let holds = IntCounterVec::new(
            Opts::new(
                "exec_holds_total",
                "Execs below a server the kernel held for a verdict (enforce), by how the hold \
                 ended: `continued` (no alert), `killed` (would alert), `timed_out` (no verdict \
                 within prevention.hold_timeout_ms: continued).",
            ),
            &["verdict"],
        )?;
        registry.register(Box::new(holds.clone()))?;
        for verdict in HOLD_VERDICTS {
            holds.with_label_values(&[verdict]);
        }
        Ok(Self { actions, holds })
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

    /// A held exec's end: one of [`HOLD_VERDICTS`].
    pub fn hold(&self, verdict: &'static str) {
        debug_assert!(HOLD_VERDICTS.contains(&verdict));
        self.holds.with_label_values(&[verdict]).inc();
    }

    pub fn egress_count(&self, action: PreventAction) -> u64 {
        let label = match action {
            PreventAction::Blocked => "blocked",
            PreventAction::WouldBlock => "would_block",
        };
        self.actions.with_label_values(&[EGRESS_RULE, label]).get()
    }
}
