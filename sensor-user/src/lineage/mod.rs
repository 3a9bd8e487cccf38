//! Process lineage: who started whom, kept from kernel events and seeded from /proc, so rules can
//! ask "which server is above this process?" at any depth.
//!
//! The table is generic over an annotation that its user (the detection engine) computes at exec
//! and that forked children inherit along with the parent's image; the table itself knows nothing
//! about servers or rules.

mod cgroup;
mod containers;
mod entity;
mod process;
mod seed;
mod table;

pub use cgroup::{
    CgroupIndex, ContainerRef, Runtime, container_from_cgroup, container_id_from_cgroup,
};
pub use containers::{ContainerIndex, ContainerNames};
pub use entity::EntityId;
#[cfg(test)]
pub use process::test_image;
pub use process::{Annotation, Image, Process};
pub use seed::{SeedProcess, clock_ticks_per_sec, read_proc};
pub use table::{Limits, ProcessTable, TableStats};

/// /proc could not be read at all (single unreadable processes are skipped, not errors).
#[derive(Debug, thiserror::Error)]
pub enum LineageError {
    #[error("cannot list {path}: {source}")]
    ListProc {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}
