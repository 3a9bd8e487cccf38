//! Where connect() destinations are read on the way in: the cgroup connect4/connect6 (and, for
//! unconnected UDP, sendmsg4/sendmsg6) hooks on the root of the cgroup v2 hierarchy when the
//! sensor can reach it, else the sys_enter_connect and sys_exit_connect tracepoints. The events
//! do not differ, but the tracepoints put every syscall of the host on the tracing slow path
//! (bench/README.md), and without the sendmsg hooks unconnected UDP is not seen.

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf,
    programs::{CgroupSockAddr, links::CgroupAttachMode},
};

/// The programs sensor-ebpf builds for the cgroup hooks.
const CGROUP_PROGRAMS: [&str; 4] = [
    "cgroup_connect4",
    "cgroup_connect6",
    "cgroup_sendmsg4",
    "cgroup_sendmsg6",
];

/// `/proc/self/ns/cgroup` in the initial cgroup namespace (PROC_CGROUP_INIT_INO, fixed by the
/// kernel). In any other namespace the hierarchy's visible root is only a subtree, and hooks
/// attached there would miss every process outside it.
const INIT_CGROUP_NS: &str = "cgroup:[4026531835]";

/// How connect() entry is observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectEntry {
    /// The cgroup hooks, attached to the cgroup v2 root at this path.
    Cgroup(PathBuf),
    /// The syscall tracepoint, and why the hooks could not be used.
    Syscall(String),
}

impl std::fmt::Display for ConnectEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectEntry::Cgroup(root) => {
                write!(
                    f,
                    "cgroup connect4/connect6/sendmsg4/sendmsg6 hooks on {}",
                    root.display()
                )
            }
            ConnectEntry::Syscall(why) => write!(
                f,
                "syscall tracepoints sys_enter_connect and sys_exit_connect ({why}; every \
                 syscall of the host now takes the tracing slow path, and unconnected UDP \
                 is not seen)"
            ),
        }
    }
}

/// Attaches the cgroup hooks if it can. `Err` carries the reason they could not be used; then no
/// hook is left attached and the caller attaches the tracepoint.
pub fn attach_cgroup_hooks(ebpf: &mut Ebpf) -> Result<PathBuf, String> {
    let root = cgroup2_root()?;
    let cgroup = File::open(&root).map_err(|e| format!("opening {}: {e}", root.display()))?;
    for (i, name) in CGROUP_PROGRAMS.iter().enumerate() {
        if let Err(why) = attach_one(ebpf, name, &cgroup) {
            // All or nothing: the tracepoint takes over for both families.
            for attached in &CGROUP_PROGRAMS[..i] {
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

fn attach_one(ebpf: &mut Ebpf, name: &str, cgroup: &File) -> Result<(), String> {
    let prog: &mut CgroupSockAddr = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("the eBPF object has no program {name}"))?
        .try_into()
        .map_err(|e| format!("{name}: {e}"))?;
    prog.load().map_err(|e| {
        format!("loading {name} failed (a cgroup program needs CAP_NET_ADMIN): {e}")
    })?;
    // A bpf_link on a cgroup is always one of many (systemd's own programs stay); the kernel
    // refuses the BPF_F_ALLOW_MULTI flag on links, so the mode here must be the flagless one.
    prog.attach(cgroup, CgroupAttachMode::Single)
        .map_err(|e| format!("attaching {name}: {e}"))?;
    Ok(())
}

/// The mount point of the whole cgroup v2 hierarchy, when this process sees all of it.
fn cgroup2_root() -> Result<PathBuf, String> {
    let ns = std::fs::read_link("/proc/self/ns/cgroup")
        .map_err(|e| format!("reading /proc/self/ns/cgroup: {e}"))?;
    if ns != Path::new(INIT_CGROUP_NS) {
        return Err(format!(
            "the sensor runs in a cgroup namespace ({}), which hides the root cgroup",
            ns.display()
        ));
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
    root_mount(&mountinfo).ok_or_else(|| "no cgroup v2 hierarchy is mounted".to_owned())
}

/// The first cgroup2 mount of the hierarchy's root (`root` field `/`) in a mountinfo text. A
/// mount point that mountinfo had to escape (`\040` for a space) is passed over rather than
/// decoded: the standard places have none.
fn root_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // id parent major:minor root mount-point options [optional...] - fstype source super
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split(' ').next()?;
        let mut fields = left.split(' ');
        let root = fields.nth(3)?;
        let mount_point = fields.next()?;
        (fstype == "cgroup2" && root == "/" && !mount_point.contains('\\'))
            .then(|| PathBuf::from(mount_point))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_root_of_the_cgroup2_hierarchy() {
        let hybrid = "\
25 1 0:23 / /sys rw,nosuid - sysfs sysfs rw
31 25 0:27 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw
42 31 0:39 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
";
        assert_eq!(
            root_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        // A container's bind mount of its own subtree comes first and is skipped.
        let nested = "\
90 80 0:30 /kubepods/pod1 /sys/fs/cgroup ro - cgroup2 cgroup rw
91 80 0:30 / /host\\040cgroup rw - cgroup2 cgroup rw
92 80 0:30 / /host/cgroup rw - cgroup2 cgroup rw
";
        assert_eq!(root_mount(nested), Some(PathBuf::from("/host/cgroup")));
        assert_eq!(root_mount("25 1 0:23 / /sys rw - sysfs sysfs rw\n"), None);
        assert_eq!(root_mount("garbage\n\n- -\n"), None);
    }

    #[test]
    fn describes_the_hook_in_use() {
        let cgroup = ConnectEntry::Cgroup("/sys/fs/cgroup".into()).to_string();
        assert_eq!(
            cgroup,
            "cgroup connect4/connect6/sendmsg4/sendmsg6 hooks on /sys/fs/cgroup"
        );
        let syscall = ConnectEntry::Syscall("no cgroup v2 hierarchy is mounted".into());
        assert!(
            syscall
                .to_string()
                .contains("sys_exit_connect (no cgroup v2")
        );
    }
}
