//! What only the live host can tell the engine: which sockets a process listens on, and whether
//! an executed file is a copy of a shell. `replay` has neither (a record holds no sockets and no
//! file contents), so the engine asks only when `run` gave it a [`HostFacts`].

use std::sync::Arc;

pub trait HostFacts: Send {
    /// The TCP ports among `wanted` on which `pid` holds a listening socket.
    fn listening_ports(&mut self, pid: u32, wanted: &dyn Fn(u16) -> bool) -> Vec<u16>;

    /// A TCP port on which `pid` holds a listening socket, the lowest if several (servers by
    /// role, seeded from /proc at start).
    fn any_listening_port(&mut self, pid: u32) -> Option<u16>;

    /// When the file `pid` executed (`exe` as the exec event named it) has the content of a
    /// shell, that shell's path.
    fn shell_copied_to(&mut self, pid: u32, exe: &str) -> Option<Arc<str>>;
}
