//! The detection engine: server families, the rules, exclusions, incidents and rate limiting,
//! over the lineage table. `run` and `replay` both drive [`Engine::process`].

mod engine;
mod exclusion;
mod family;
mod host_facts;
mod incident;
mod learned;
mod matcher;
mod rate_limit;
pub mod rules;
mod tag;

pub use engine::{Engine, EngineTotals, HostInfo};
pub use host_facts::HostFacts;
pub use incident::Snapshot as IncidentSnapshot;
pub use rules::RuleId;

/// A detection setting that cannot be used, or a state file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
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
