//! A process's CPU time and memory, from /proc or its rusage, and the load of the machine.

use std::{process::Command, time::Instant};

/// User + system CPU seconds a process has used so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may hold spaces and parentheses: fields are counted after its closing one.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks())
}

/// A `Vm*` line of /proc/<pid>/status, in KiB (VmHWM: peak resident set; VmRSS: current).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Resets VmHWM to the current RSS, so a later reading is the peak of what came after.
pub fn reset_peak_rss(pid: u32) {
    // "5" is the clear_refs value for the peak RSS (proc(5)).
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

pub fn load_average_1m() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// A finished child process.
pub struct Timed {
    pub wall_secs: f64,
    /// User + system time of the child and of every descendant it waited for: unlike the wall
    /// time, barely moved by other work on the machine, and it holds what probes add in the
    /// kernel on the workload's syscalls.
    pub cpu_secs: f64,
    pub success: bool,
}

/// Runs `cmd` to completion, timing it.
pub fn run_timed(cmd: &mut Command) -> std::io::Result<Timed> {
    let started = Instant::now();
    let child = cmd.spawn()?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child, which std has not
    // reaped (Child is dropped below without waiting).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall_secs = started.elapsed().as_secs_f64();
    drop(child);
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Timed {
        wall_secs,
        cpu_secs: secs(usage.ru_utime) + secs(usage.ru_stime),
        success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    })
}
