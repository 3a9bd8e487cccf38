//! Container metadata lookups (see [`crate::enrich::workload`]).

use prometheus::{IntCounterVec, Opts, Registry};

/// Outcomes of one lookup of a container's runtime state.
pub const LOOKUP_OUTCOMES: [&str; 3] = ["found", "not_found", "error"];

pub struct WorkloadMetrics {
    lookups: IntCounterVec,
}

impl WorkloadMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let lookups = IntCounterVec::new(
            Opts::new(
                "workload_lookups_total",
                "Reads of a container's runtime state (once per container; cached), by outcome: \
                 `found`, `not_found` (no runtime state dir knows the id), `error` (a config \
                 unreadable or not JSON, or the read ran out of time).",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(lookups.clone()))?;
        for outcome in LOOKUP_OUTCOMES {
            lookups.with_label_values(&[outcome]);
        }
        Ok(Self { lookups })
    }

    pub fn lookup(&self, outcome: &str) {
        self.lookups.with_label_values(&[outcome]).inc();
    }

    pub fn lookups(&self, outcome: &str) -> u64 {
        self.lookups.with_label_values(&[outcome]).get()
    }
}
