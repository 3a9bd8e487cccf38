//! A cgroup v2 group of the test's own, so that the kernel's per-cgroup counters
//! (`LOST_BY_CGROUP`) can be read for exactly the test's workload. Removed on drop.

use std::{
    ffi::CString,
    os::unix::{ffi::OsStrExt, fs::MetadataExt, process::CommandExt},
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

/// Where this host mounts the cgroup v2 hierarchy (the hybrid layout of Debian 12 with
/// systemd's legacy mode: v1 controllers in /sys/fs/cgroup, v2 in `unified`).
const CGROUP2_ROOTS: &[&str] = &["/sys/fs/cgroup/unified", "/sys/fs/cgroup"];
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

pub struct OwnCgroup {
    path: PathBuf,
    /// The kernel's id of the group, as `bpf_get_current_cgroup_id` returns it: the inode
    /// number of its directory in cgroupfs.
    pub id: u64,
}

impl OwnCgroup {
    /// A new empty group below the cgroup v2 root. Fails, rather than skipping, where no
    /// cgroup v2 hierarchy is mounted.
    pub fn create() -> Result<OwnCgroup, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let root = CGROUP2_ROOTS
            .iter()
            .find(|r| is_cgroup2(r))
            .ok_or_else(|| format!("no cgroup v2 hierarchy mounted at any of {CGROUP2_ROOTS:?}"))?;
        let path = PathBuf::from(root).join(format!(
            "lineage-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&path).map_err(|e| format!("mkdir {}: {e}", path.display()))?;
        let id = std::fs::metadata(&path)
            .map_err(|e| format!("stat {}: {e}", path.display()))?
            .ino();
        Ok(OwnCgroup { path, id })
    }

    /// Makes `command`'s process join this group before it execs, so that its own exec and
    /// everything it starts happen inside.
    pub fn enter_on_spawn(&self, command: &mut Command) -> Result<(), String> {
        let procs = CString::new(self.path.join("cgroup.procs").as_os_str().as_bytes())
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        // SAFETY: the closure runs in the forked child of a multi-threaded process, so it only
        // makes async-signal-safe calls (no allocation) on memory prepared before the fork.
        unsafe {
            command.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // "0" moves the writing process.
                let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                let err = std::io::Error::last_os_error();
                libc::close(fd);
                if written == 1 { Ok(()) } else { Err(err) }
            });
        }
        Ok(())
    }
}

impl Drop for OwnCgroup {
    fn drop(&mut self) {
        // A group whose last task has just been reaped may still be busy for a moment.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("could not remove {}", self.path.display());
    }
}

fn is_cgroup2(path: &str) -> bool {
    let Ok(c) = CString::new(path) else {
        return false;
    };
    // SAFETY: a valid C string and a zeroed out-parameter of the right type.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let ok = unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0;
    ok && st.f_type as i64 == CGROUP2_SUPER_MAGIC
}
