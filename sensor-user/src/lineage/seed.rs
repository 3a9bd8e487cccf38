//! Seeding the table from /proc, so servers that were running before the sensor started (and
//! their forked workers) are known before the first event.
//!
//! Takes the /proc root as a path so tests can build a fake one.

use std::{
    fs,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use super::{ContainerRef, LineageError, container_from_cgroup};
use crate::escape::escape_bytes;

/// What /proc tells about one process, in the form the table keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedProcess {
    pub pid: u32,
    pub ppid: u32,
    /// Nanoseconds since boot, to clock-tick precision.
    pub start_ns: u64,
    pub uid: u32,
    pub comm: String,
    /// The `exe` link (the interpreter for scripts); empty for kernel threads or when unreadable.
    pub exe: String,
    pub argv: Vec<String>,
    pub container: Option<ContainerRef>,
}

/// `sysconf(_SC_CLK_TCK)`, the unit of the start time in /proc/<pid>/stat.
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// Every user-space process under `proc_root`, oldest first (so parents precede children).
/// Processes that vanish or cannot be read while scanning are skipped; kernel threads are left out.
pub fn read_proc(proc_root: &Path, ticks_per_sec: u64) -> Result<Vec<SeedProcess>, LineageError> {
    let entries = fs::read_dir(proc_root).map_err(|source| LineageError::ListProc {
        path: proc_root.to_owned(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(p) = read_one(&entry.path(), pid, ticks_per_sec) {
            out.push(p);
        }
    }
    out.sort_by_key(|p| (p.start_ns, p.pid));
    Ok(out)
}

fn read_one(dir: &Path, pid: u32, ticks_per_sec: u64) -> Option<SeedProcess> {
    let stat = fs::read(dir.join("stat")).ok()?;
    let (comm, ppid, start_ticks) = parse_stat(&stat)?;
    // Kernel threads are children of kthreadd (pid 2) and have no image to speak of.
    if pid == 2 || ppid == 2 {
        return None;
    }
    let uid = fs::read_to_string(dir.join("status"))
        .ok()
        .and_then(|s| parse_status_uid(&s))
        .unwrap_or(u32::MAX);
    let argv = fs::read(dir.join("cmdline"))
        .map(|c| split_cmdline(&c))
        .unwrap_or_default();
    let exe = fs::read_link(dir.join("exe"))
        .map(|p: PathBuf| escape_bytes(p.as_os_str().as_bytes()))
        .unwrap_or_default();
    let container = fs::read_to_string(dir.join("cgroup"))
        .ok()
        .and_then(|c| container_from_cgroup(&c));
    Some(SeedProcess {
        pid,
        ppid,
        start_ns: start_ticks.saturating_mul(1_000_000_000) / ticks_per_sec.max(1),
        uid,
        comm,
        exe,
        argv,
        container,
    })
}

/// comm, ppid and starttime (field 22) from /proc/<pid>/stat. comm may hold spaces and
/// parentheses, so the fields after it are found from the last ')'.
fn parse_stat(stat: &[u8]) -> Option<(String, u32, u64)> {
    let open = stat.iter().position(|&b| b == b'(')?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let comm = escape_bytes(stat.get(open + 1..close)?);
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    // After comm: state(3) ppid(4) ... starttime(22), i.e. the 1st, 2nd and 20th fields here.
    let ppid = fields.nth(1)?.parse().ok()?;
    let start = fields.nth(17)?.parse().ok()?;
    Some((comm, ppid, start))
}

/// The real uid from the `Uid:` line of /proc/<pid>/status.
fn parse_status_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_ascii_whitespace().next())
        .and_then(|uid| uid.parse().ok())
}

fn split_cmdline(raw: &[u8]) -> Vec<String> {
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|&b| b == 0).map(escape_bytes).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_proc(root: &Path, pid: u32, stat: &str, files: &[(&str, &[u8])]) {
        let dir = root.join(pid.to_string());
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join("stat"), stat).expect("stat");
        for (name, content) in files {
            fs::write(dir.join(name), content).expect("file");
        }
    }

    #[test]
    fn fake_proc_is_read_in_start_order_with_uid_argv_and_container() {
        let root = tempfile::tempdir().expect("tempdir");
        // comm with a space and a parenthesis, as a process may name itself.
        write_proc(
            root.path(),
            200,
            "200 (php-fpm: p) ol) S 100 200 200 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 250 0 0",
            &[
                ("status", b"Name:\tphp-fpm8.2\nUid:\t33\t33\t33\t33\n"),
                ("cmdline", b"php-fpm: pool www\0\0"),
                (
                    "cgroup",
                    b"0::/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope\n",
                ),
            ],
        );
        write_proc(
            root.path(),
            100,
            "100 (php-fpm8.2) S 1 100 100 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 120 0 0",
            &[
                ("status", b"Uid:\t0\t0\t0\t0\n"),
                (
                    "cmdline",
                    b"php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)\0",
                ),
            ],
        );
        write_proc(
            root.path(),
            3,
            "3 (kworker/0:0) I 2 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0",
            &[],
        );
        fs::create_dir_all(root.path().join("self")).expect("non-numeric entry");
        let procs = read_proc(root.path(), 100).expect("read");
        assert_eq!(procs.len(), 2, "{procs:?}");
        assert_eq!(procs[0].pid, 100);
        assert_eq!(procs[0].start_ns, 1_200_000_000);
        assert_eq!(procs[0].uid, 0);
        assert_eq!(procs[1].comm, "php-fpm: p) ol");
        assert_eq!(procs[1].ppid, 100);
        assert_eq!(procs[1].start_ns, 2_500_000_000);
        assert_eq!(procs[1].uid, 33);
        assert_eq!(
            procs[1].argv,
            vec!["php-fpm: pool www".to_owned(), String::new()]
        );
        assert_eq!(
            procs[1].container.as_ref().map(|c| c.id.as_str()),
            Some("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
        );
        assert_eq!(procs[0].container, None);
    }

    #[test]
    fn missing_proc_root_is_an_error() {
        let err = read_proc(Path::new("/nonexistent/proc"), 100).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/proc"), "{err}");
    }

    #[test]
    fn real_proc_holds_this_process() {
        let procs = read_proc(Path::new("/proc"), clock_ticks_per_sec()).expect("read /proc");
        let me = std::process::id();
        let mine = procs.iter().find(|p| p.pid == me).expect("self listed");
        assert!(!mine.exe.is_empty());
        assert!(mine.start_ns > 0);
    }
}
