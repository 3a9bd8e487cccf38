//! UDP servers by role: the cgroup bind4/bind6 hooks (sensor-ebpf probes/bind.rs) on the root
//! of the cgroup v2 hierarchy, attached whatever `capture.connect_entry` says (they are a hook
//! family of their own, and never refuse a bind). Where they cannot be attached, UDP servers
//! are known only from /proc at start-up (proc_facts/listeners.rs), and the hook metrics say so.

use std::{fs::File, path::PathBuf};

use aya::{Ebpf, programs::CgroupSockAddr};

use super::connect_entry::{attach_one, cgroup2_root};

/// The programs sensor-ebpf builds for UDP binds.
const BIND_PROGRAMS: [&str; 2] = ["cgroup_bind4", "cgroup_bind6"];

/// Attaches both bind hooks to the cgroup v2 root, or neither. `Err`: why not, for the log and
/// `lineage_sensor_hook_info{family="udp_bind",mechanism="none"}`.
pub fn attach_bind_hooks(ebpf: &mut Ebpf) -> Result<PathBuf, String> {
    let root = cgroup2_root()?;
    let cgroup = File::open(&root).map_err(|e| format!("opening {}: {e}", root.display()))?;
    for (i, name) in BIND_PROGRAMS.iter().enumerate() {
        if let Err(why) = attach_one(ebpf, name, &cgroup) {
            // One family alone would see IPv4 servers and miss IPv6 ones without saying so.
            for attached in &BIND_PROGRAMS[..i] {
                if let Some(Ok(prog)) = ebpf
                    .program_mut(attached)
                    .map(<&mut CgroupSockAddr>::try_from)
                    && let Err(err) = prog.unload()
                {
                    log::warn!("detaching {attached}: {err}");
                }
            }
            return Err(why);
        }
    }
    Ok(root)
}
