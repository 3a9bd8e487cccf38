//! One entry of the process table.

use std::sync::Arc;

use super::EntityId;

/// What a process runs: shared between a parent and the children it forks until they exec, so a
/// fork costs a reference count, not a copy of argv.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Image {
    /// The executed file (for a `#!` script, the script); empty when never seen.
    pub exe: String,
    pub argv: Vec<String>,
    pub argv_truncated: bool,
    /// The executed file's device and inode (the interpreter's for a `#!` script), when the
    /// kernel gave them.
    pub exe_id: Option<crate::event::FileId>,
}

/// An image from literals, for the rules' unit tests.
#[cfg(test)]
pub fn test_image(exe: &str, argv: &[&str]) -> Image {
    Image {
        exe: exe.into(),
        argv: argv.iter().map(|s| (*s).to_owned()).collect(),
        argv_truncated: false,
        exe_id: None,
    }
}

impl Image {
    /// The last path component of the executable.
    pub fn name(&self) -> &str {
        basename(&self.exe)
    }

    /// argv joined by spaces, as ECS `process.command_line` shows it.
    pub fn command_line(&self) -> String {
        self.argv.join(" ")
    }
}

pub(crate) fn basename(path: &str) -> &str {
    // Asked several times per exec; a byte search is a fraction of `rsplit`'s generic one. A
    // slice after an ASCII '/' is always at a char boundary.
    match path.bytes().rposition(|b| b == b'/') {
        Some(slash) => path.get(slash + 1..).unwrap_or(path),
        None => path,
    }
}

/// The table user's per-process state, inherited by forked children.
pub trait Annotation: Clone + Default {
    /// Entries that should survive the hard cap's eviction of live processes as long as possible
    /// (long-lived servers whose loss would blind the rules).
    fn pinned(&self) -> bool {
        false
    }
}

impl Annotation for () {}

#[derive(Debug, Clone)]
pub struct Process<A> {
    pub id: EntityId,
    /// Parent pid as last reported by the kernel (1 or a subreaper after re-parenting).
    pub ppid: u32,
    /// The parent at birth; kept when the process is re-parented so an orphaned payload still
    /// shows the server it came from.
    pub parent: Option<EntityId>,
    pub image: Arc<Image>,
    pub comm: String,
    pub uid: u32,
    pub cgroup_id: u64,
    /// What the cgroup path says of the container the process runs in.
    pub container: Option<Arc<super::ContainerRef>>,
    /// Number of execs seen (0: a forked copy of its parent, or seeded).
    pub execs: u32,
    /// Seeded from /proc: start time only to clock-tick precision.
    pub seeded: bool,
    pub exited_ns: Option<u64>,
    /// Last fork/exec/exit seen for it, for the hard cap's eviction order.
    pub last_seen_ns: u64,
    pub annotation: A,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basename_is_the_last_component() {
        for path in [
            "/usr/sbin/nginx",
            "nginx",
            "",
            "/",
            "a/",
            "/bin//sh",
            "/tmp/ünï/ß",
            "x/é",
        ] {
            assert_eq!(
                basename(path),
                path.rsplit('/').next().unwrap_or(path),
                "{path}"
            );
        }
    }
}
