//! Execution prevention's verdict: an exec the kernel held (enforce) or would have held
//! (dry-run) is judged by the engine like any other, and what the engine decided is applied:
//! detection would alert -> killed (enforce) or reported as `would-block` (dry-run); no alert
//! -> continued at once. "Would alert" is the gate's: a finding past the rule's exclusions and
//! the learned baseline, whether the rate limit or the incident then let the alert out or not.

use crate::{
    alert::Alert,
    detect::RuleId,
    event::{Event, ExecHold},
    kernel::hold::{Holds, Signalled},
    metrics::Metrics,
};

/// An exec execution prevention marked, taken before the engine consumes the event.
#[derive(Debug, Clone, Copy)]
pub struct MarkedExec {
    pid: u32,
    start_ns: u64,
    hold: ExecHold,
}

impl MarkedExec {
    pub fn of(event: &Event) -> Option<Self> {
        match event {
            Event::Exec(e) => e.hold.map(|hold| Self {
                pid: e.pid,
                start_ns: e.start_ns,
                hold,
            }),
            _ => None,
        }
    }

    /// Applies the engine's judgement: `rules` would alert on it, `alerts` are the alerts its
    /// event produced (those about this process are marked).
    pub fn apply(
        self,
        rules: &[RuleId],
        alerts: &mut [Alert],
        holds: Option<&mut Holds>,
        metrics: &Metrics,
    ) {
        let (action, kill) = match (self.hold, rules.is_empty()) {
            (ExecHold::Held, false) => ("blocked", true),
            (ExecHold::WouldHold, false) => ("would-block", false),
            (ExecHold::Held, true) => {
                if let Some(holds) = holds {
                    holds.release(self.pid, self.start_ns);
                }
                metrics.prevention.hold("continued");
                return;
            }
            (ExecHold::WouldHold, true) => return,
        };
        if kill {
            let Some(holds) = holds else {
                return; // not reachable: a held exec comes from a sensor with its maps
            };
            match holds.kill(self.pid, self.start_ns) {
                Signalled::Sent => metrics.prevention.hold("killed"),
                Signalled::Failed => return, // logged; it stays held for the timeout
                Signalled::Gone => {
                    log::debug!("held pid {} had ended before its judgement", self.pid);
                }
                Signalled::NotHeld => {
                    // Continued after prevention.hold_timeout_ms: it may have run, so the
                    // alert must not say it was stopped (it was counted as released).
                    log::warn!(
                        "pid {} was judged after its hold timed out: alerted, not killed",
                        self.pid
                    );
                    return;
                }
            }
        }
        for rule in rules {
            metrics
                .prevention
                .exec(rule.as_str(), if kill { "blocked" } else { "would_block" });
        }
        for alert in alerts.iter_mut().filter(|a| a.process.pid == self.pid) {
            alert.event.action = Some(action);
            if kill {
                if !alert.event.kind_type.contains(&"denied") {
                    alert.event.kind_type.push("denied");
                }
                alert.event.outcome = Some("failure");
            }
        }
    }
}
