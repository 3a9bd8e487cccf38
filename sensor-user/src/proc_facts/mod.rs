//! [`HostFacts`] read from /proc and the filesystem: what `run` can tell the engine that a
//! record cannot.

mod descendants;
mod listeners;
mod shell_copies;

use std::{path::PathBuf, sync::Arc};

use crate::detect::HostFacts;

pub use descendants::{alive, descendants};
pub use listeners::{ListenTables, listening_ports};
pub use shell_copies::{SHELL_DIRS, ShellCopies};

pub struct ProcFacts {
    proc_root: PathBuf,
    shells: ShellCopies,
    tables: ListenTables,
}

impl ProcFacts {
    pub fn new(proc_root: PathBuf, shells: ShellCopies) -> Self {
        Self {
            proc_root,
            shells,
            tables: ListenTables::default(),
        }
    }
}

impl HostFacts for ProcFacts {
    fn listening_ports(&mut self, pid: u32, wanted: &dyn Fn(u16) -> bool) -> Vec<u16> {
        listening_ports(&self.proc_root.join(pid.to_string()), wanted)
    }

    fn any_listening_port(&mut self, pid: u32) -> Option<u16> {
        self.tables
            .lowest_port(&self.proc_root.join(pid.to_string()))
    }

    fn shell_copied_to(&mut self, pid: u32, exe: &str) -> Option<Arc<str>> {
        let proc_exe = self.proc_root.join(pid.to_string()).join("exe");
        self.shells.copied_to(exe, &proc_exe)
    }
}
