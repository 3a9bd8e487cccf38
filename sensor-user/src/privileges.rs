//! Which capabilities `run` needs, checked before anything is loaded, so that a missing one is
//! named instead of surfacing as a bare EPERM from the kernel.

use std::path::Path;

/// A capability the sensor needs, with its bit number and why.
struct Needed {
    name: &'static str,
    bit: u32,
    why: &'static str,
    /// Only checked for a non-root user: root owns what it is needed for.
    non_root_only: bool,
}

const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_KILL: u32 = 5;
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

const NEEDED: [Needed; 6] = [
    Needed {
        name: "CAP_BPF",
        bit: CAP_BPF,
        why: "to load the eBPF programs and create their maps",
        non_root_only: false,
    },
    Needed {
        name: "CAP_PERFMON",
        bit: CAP_PERFMON,
        why: "to attach the programs to tracepoints",
        non_root_only: false,
    },
    Needed {
        name: "CAP_SYS_PTRACE",
        bit: CAP_SYS_PTRACE,
        why: "to read /proc/<pid>/exe of other users' processes when seeding the process table",
        non_root_only: false,
    },
    Needed {
        name: "CAP_DAC_READ_SEARCH",
        bit: CAP_DAC_READ_SEARCH,
        why: "to read the tracepoint formats in tracefs, which only root may read",
        non_root_only: true,
    },
    Needed {
        name: "CAP_NET_ADMIN",
        bit: CAP_NET_ADMIN,
        why: "to attach the cgroup connect and sendmsg hooks; without them connect() is read at \
              syscall tracepoints, which put every syscall on the host on the tracing slow path \
              (set capture.connect_entry = \"tracepoint\" to accept that instead)",
        non_root_only: false,
    },
    Needed {
        name: "CAP_SYS_ADMIN",
        bit: CAP_SYS_ADMIN,
        why: "to see file writes under the watched paths through fanotify filesystem marks; \
              without it they are read at syscall tracepoints, which put every syscall on the \
              host on the tracing slow path (set capture.file_hooks = \"tracepoint\" to accept \
              that instead)",
        non_root_only: false,
    },
];

#[derive(Debug, thiserror::Error)]
#[error(
    "missing capability {name}: it is needed {why}. Grant it (AmbientCapabilities= and \
     CapabilityBoundingSet= in deploy/systemd/lineage-sensor.service, \
     securityContext.capabilities.add in Kubernetes) or run as root"
)]
pub struct MissingCapability {
    pub name: &'static str,
    pub why: &'static str,
}

/// Checks the effective capabilities of this process. Unknown (no /proc/self/status) passes:
/// the kernel's own error then says the rest. CAP_NET_ADMIN is needed unless the config pins
/// connect() to the syscall tracepoints, CAP_SYS_ADMIN when paths are watched unless it pins
/// the file hooks to them or turns them off: the sensor does not take the expensive path
/// silently. `capture` is the effective one (watched paths of the file rules included).
pub fn check_run(capture: &crate::config::CaptureConfig) -> Result<(), MissingCapability> {
    let Some(effective) = effective_caps(Path::new("/proc/self/status")) else {
        return Ok(());
    };
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let cgroup_hooks = capture.connect_entry == crate::config::ConnectEntryMode::Auto;
    let fanotify = !capture.watch_paths.is_empty()
        && matches!(
            capture.file_hooks,
            crate::config::FileHooks::Auto | crate::config::FileHooks::Fanotify
        );
    missing(effective, root, cgroup_hooks, fanotify).map_or(Ok(()), Err)
}

/// Execution prevention in enforce kills and continues other users' processes: without
/// CAP_KILL (a non-root sensor, as the systemd unit runs it) a held process could be neither,
/// so the sensor refuses to start instead.
pub fn check_prevention(
    prevention: &crate::config::PreventionConfig,
) -> Result<(), MissingCapability> {
    if prevention.mode != crate::config::PreventionMode::Enforce || !prevention.hold_execs {
        return Ok(());
    }
    let Some(effective) = effective_caps(Path::new("/proc/self/status")) else {
        return Ok(());
    };
    if effective & (1 << CAP_KILL) != 0 {
        return Ok(());
    }
    Err(MissingCapability {
        name: "CAP_KILL",
        why: "by [prevention] mode = \"enforce\" to kill or continue the processes it holds at \
              exec (set prevention.hold_execs = false for egress prevention alone)",
    })
}

fn missing(
    effective: u64,
    root: bool,
    cgroup_hooks: bool,
    fanotify: bool,
) -> Option<MissingCapability> {
    let has = |bit: u32| effective & (1 << bit) != 0;
    NEEDED
        .iter()
        .filter(|n| !(n.non_root_only && root))
        .filter(|n| cgroup_hooks || n.bit != CAP_NET_ADMIN)
        .filter(|n| fanotify || n.bit != CAP_SYS_ADMIN)
        // CAP_SYS_ADMIN still grants what CAP_BPF and CAP_PERFMON split off from it.
        .find(|n| {
            !has(n.bit) && !((n.bit == CAP_BPF || n.bit == CAP_PERFMON) && has(CAP_SYS_ADMIN))
        })
        .map(|n| MissingCapability {
            name: n.name,
            why: n.why,
        })
}

fn effective_caps(status: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(status).ok()?;
    let hex = text.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim();
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: u64 = (1 << CAP_BPF)
        | (1 << CAP_PERFMON)
        | (1 << CAP_SYS_PTRACE)
        | (1 << CAP_DAC_READ_SEARCH)
        | (1 << CAP_NET_ADMIN);

    #[test]
    fn each_missing_capability_is_named() {
        assert!(missing(ALL, false, true, false).is_none());
        for (bit, name) in [
            (CAP_BPF, "CAP_BPF"),
            (CAP_PERFMON, "CAP_PERFMON"),
            (CAP_SYS_PTRACE, "CAP_SYS_PTRACE"),
            (CAP_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH"),
            (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
        ] {
            let err = missing(ALL & !(1 << bit), false, true, false).expect(name);
            assert_eq!(err.name, name);
            assert!(err.to_string().contains(name));
        }
    }

    #[test]
    fn root_needs_no_dac_and_sys_admin_covers_bpf() {
        assert!(missing(ALL & !(1 << CAP_DAC_READ_SEARCH), true, true, false).is_none());
        let admin = (1 << CAP_SYS_ADMIN) | (1 << CAP_SYS_PTRACE) | (1 << CAP_NET_ADMIN);
        assert!(missing(admin, true, true, true).is_none());
    }

    #[test]
    fn pinning_the_tracepoint_needs_no_net_admin() {
        let without = ALL & !(1 << CAP_NET_ADMIN);
        assert!(missing(without, false, false, false).is_none());
        let err = missing(without, false, true, false).expect("auto needs it");
        assert!(err.to_string().contains("slow path"), "{err}");
    }

    #[test]
    fn watched_paths_on_fanotify_need_sys_admin() {
        let err = missing(ALL, false, true, true).expect("fanotify needs it");
        assert_eq!(err.name, "CAP_SYS_ADMIN");
        assert!(err.to_string().contains("file_hooks"), "{err}");
        assert!(missing(ALL | (1 << CAP_SYS_ADMIN), false, true, true).is_none());
    }

    #[test]
    fn this_process_has_readable_capabilities() {
        assert!(effective_caps(Path::new("/proc/self/status")).is_some());
    }
}
