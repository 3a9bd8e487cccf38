//! The detection engine: server families, the lineage annotations, the rules (one file each),
//! the gate (exclusions, rate limit, incidents) and the alerts, over the lineage table. `run`
//! and `replay` both drive [`Engine::process`].

mod annotation;
mod annotator;
pub mod baseline;
mod engine;
mod exclusion;
mod exclusion_workload;
mod family;
mod gate;
mod host_facts;
mod incident;
mod learned;
mod matcher;
mod payload;
mod rate_limit;
mod report;
#[cfg(test)]
mod role_tests;
pub mod rules;
#[cfg(test)]
pub(crate) mod test_support;

pub use engine::Engine;
pub use host_facts::HostFacts;
pub use incident::Snapshot as IncidentSnapshot;
pub use report::{EngineTotals, HostInfo};
pub use rules::RuleId;

/// A detection setting that cannot be used, or a state file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error(transparent)]
    Baseline(#[from] baseline::BaselineError),
    #[error("learned-destinations state file {path}: {source}")]
    State {
        path: std::path::PathBuf,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl DetectError {
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        DetectError::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}
