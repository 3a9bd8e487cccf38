//! Entity ids: a pid alone is reused, `(pid, start time)` is not.

use std::fmt;

/// One process for its whole life, across execs: its pid and its start time in nanoseconds since
/// boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityId {
    pub pid: u32,
    pub start_ns: u64,
}

impl EntityId {
    pub fn new(pid: u32, start_ns: u64) -> Self {
        Self { pid, start_ns }
    }
}

/// `pid-start_ns`, the form used in alerts (`process.entity_id`).
impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.pid, self.start_ns)
    }
}
