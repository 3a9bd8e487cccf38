//! UDP servers by role: the cgroup bind4/bind6 hooks (sensor-ebpf probes/bind.rs) on the root
//! of the cgroup v2 hierarchy, attached whatever `capture.connect_entry` says (they are a hook
//! family of their own, and never refuse a bind). Where they cannot be attached, UDP servers
//! are known only from /proc at start-up (proc_facts/listeners.rs), and the hook metrics say so.

use std::path::PathBuf;

use aya::Ebpf;

use super::connect_entry::attach_all_to_root;

/// The programs sensor-ebpf builds for UDP binds.
const BIND_PROGRAMS: [&str; 2] = ["cgroup_bind4", "cgroup_bind6"];

/// Attaches both bind hooks to the cgroup v2 root, or neither. `Err`: why not, for the log and
/// `lineage_sensor_hook_info{family="udp_bind",mechanism="none"}`.
pub fn attach_bind_hooks(ebpf: &mut Ebpf) -> Result<PathBuf, String> {
    // One family alone would see IPv4 servers and miss IPv6 ones without saying so.
    attach_all_to_root(ebpf, &BIND_PROGRAMS)
}
