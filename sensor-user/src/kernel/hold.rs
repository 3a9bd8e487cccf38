//! Execution prevention's userspace half of the maps (the kernel half: sensor-ebpf
//! `probes/hold.rs`). The exec program stops a new image of a confirmed server tree and lists it
//! in `HELD` while the heartbeat written here is fresh; the detector judges its exec record and
//! has it killed or continued through [`Holds`]. Every signal goes through a pidfd checked
//! against the process's start time, so that a reused pid never gets it.

use std::{
    fs,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
};

use aya::maps::{Array, HashMap, Map, MapData, MapError};
use sensor_ebpf::HeldProcess;

#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error("execution prevention's map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("starting the hold watchdog: {0}")]
    Watchdog(std::io::Error),
}

/// What became of a held process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signalled {
    /// The signal reached it.
    Sent,
    /// It had ended (or its pid now names another process): nothing sent.
    Gone,
    /// The kernel refused the signal (no CAP_KILL): the process stays listed in `HELD`, for
    /// the timeout and the watchdog to try again.
    Failed,
    /// It was no longer held (continued after the timeout, by the watchdog): nothing sent, as
    /// it may have run by now.
    NotHeld,
}

/// The maps of execution prevention and the watchdog that outlives the sensor.
pub struct Holds {
    held: HashMap<MapData, u32, HeldProcess>,
    heartbeat: Array<MapData, u64>,
    timeout_ns: u64,
    watchdog: Option<std::process::Child>,
}

impl Holds {
    pub fn new(held: Map, heartbeat: Map, timeout_ms: u64) -> Result<Self, HoldError> {
        let map_err = |name| move |source| HoldError::Map { name, source };
        Ok(Self {
            held: HashMap::try_from(held).map_err(map_err(sensor_ebpf::maps::HELD))?,
            heartbeat: Array::try_from(heartbeat).map_err(map_err(sensor_ebpf::maps::HEARTBEAT))?,
            timeout_ns: timeout_ms.saturating_mul(1_000_000),
            watchdog: None,
        })
    }

    /// Starts `lineage-sensor hold-watchdog` with `HELD` inherited: when this process exits for
    /// any reason (SIGKILL, OOM, a crash), it continues every process still held. A fresh
    /// process from exec, never a fork of this multi-threaded one.
    pub fn start_watchdog(&mut self) -> Result<(), HoldError> {
        let fd = self.held_fd()?;
        let mut command = std::process::Command::new("/proc/self/exe");
        command
            .arg("hold-watchdog")
            .arg("--sensor-pid")
            .arg(std::process::id().to_string())
            .arg("--held-fd")
            .arg(fd.to_string())
            .arg("--stuck-ms")
            .arg((self.timeout_ns / 1_000_000).saturating_mul(2).to_string())
            .stdin(std::process::Stdio::null());
        // SAFETY: fcntl is async-signal-safe; it only clears close-on-exec on the map's fd in
        // the child.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().map_err(HoldError::Watchdog)?;
        log::info!(
            "execution prevention: hold watchdog started (pid {})",
            child.id()
        );
        self.watchdog = Some(child);
        Ok(())
    }

    fn held_fd(&self) -> Result<RawFd, HoldError> {
        use std::os::fd::AsFd as _;
        let data: &MapData = aya::maps::IterableMap::map(&self.held);
        Ok(data.fd().as_fd().as_raw_fd())
    }

    /// Userspace is alive and judging: the exec program may hold for the next 500 ms.
    pub fn beat(&mut self) {
        if let Err(err) = self.heartbeat.set(0, crate::clock::boottime_ns(), 0) {
            log::warn!("execution prevention: writing the heartbeat: {err}");
        }
    }

    /// No new holds from now on (shutdown).
    pub fn stop_beating(&mut self) {
        let _ = self.heartbeat.set(0, 0, 0);
    }

    /// Kills a held process (enforce, detection alerted).
    pub fn kill(&mut self, pid: u32, start_ns: u64) -> Signalled {
        match self.held.get(&pid, 0) {
            Ok(h) if h.start_ns == start_ns => self.finish(pid, start_ns, libc::SIGKILL),
            _ => Signalled::NotHeld,
        }
    }

    /// Continues a held process (detection did not alert).
    pub fn release(&mut self, pid: u32, start_ns: u64) -> Signalled {
        self.finish(pid, start_ns, libc::SIGCONT)
    }

    fn finish(&mut self, pid: u32, start_ns: u64, signal: i32) -> Signalled {
        let sent = signal_process(pid, start_ns, signal);
        if sent == Signalled::Failed {
            log::warn!("execution prevention: signalling held pid {pid} failed");
            return sent;
        }
        if let Err(err) = self.held.remove(&pid) {
            // Already removed by the exit program; nothing else can fail here.
            log::trace!("HELD {pid}: {err}");
        }
        sent
    }

    /// Continues every process held longer than `prevention.hold_timeout_ms`; returns how many.
    pub fn expire(&mut self) -> usize {
        let now = crate::clock::boottime_ns();
        let timeout = self.timeout_ns;
        release_where(&mut self.held, |h| now.saturating_sub(h.held_ns) >= timeout)
    }

    /// Continues every process still held (shutdown); returns how many.
    pub fn release_all(&mut self) -> usize {
        release_where(&mut self.held, |_| true)
    }
}

impl Drop for Holds {
    fn drop(&mut self) {
        self.stop_beating();
        self.release_all();
        // The watchdog exits by itself once this process is gone; reap it if it already has.
        if let Some(child) = &mut self.watchdog {
            let _ = child.try_wait();
        }
    }
}

/// Continues (SIGCONT) every held process `which` selects and takes it out of the map.
pub fn release_where(
    held: &mut HashMap<MapData, u32, HeldProcess>,
    which: impl Fn(&HeldProcess) -> bool,
) -> usize {
    let chosen: Vec<(u32, HeldProcess)> = held
        .iter()
        .filter_map(Result::ok)
        .filter(|(_, h)| which(h))
        .collect();
    for (pid, h) in &chosen {
        if signal_process(*pid, h.start_ns, libc::SIGCONT) != Signalled::Failed {
            let _ = held.remove(pid);
        }
    }
    chosen.len()
}

/// Sends `signal` to `pid` if it is still the process that started at `start_ns` (boot-time
/// ns): through a pidfd, opened first and then checked against /proc's start time, so that
/// the signal cannot reach a process that took the pid over.
pub fn signal_process(pid: u32, start_ns: u64, signal: i32) -> Signalled {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if raw < 0 {
        return Signalled::Gone;
    }
    // SAFETY: a fresh fd that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as RawFd) };
    if start_ticks(pid) != Some(start_ns / (1_000_000_000 / ticks_per_sec())) {
        return Signalled::Gone;
    }
    // SAFETY: a pidfd we own, a valid signal number, no siginfo.
    let sent = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if sent == 0 {
        Signalled::Sent
    } else if std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        Signalled::Gone
    } else {
        Signalled::Failed
    }
}

/// Field 22 of /proc/PID/stat: the start time since boot in clock ticks.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

fn ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks)
        .ok()
        .filter(|&t| t > 0 && t <= 1_000_000_000)
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_whose_start_time_differs_is_not_signalled() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let pid = child.id();
        let ticks = start_ticks(pid).expect("start time");
        let tick_ns = 1_000_000_000 / ticks_per_sec();
        // Another process's identity: a start one second earlier.
        let stranger = (ticks - ticks_per_sec()) * tick_ns;
        assert_eq!(
            signal_process(pid, stranger, libc::SIGKILL),
            Signalled::Gone
        );
        assert_eq!(child.try_wait().expect("wait"), None, "still running");
        assert_eq!(
            signal_process(pid, ticks * tick_ns + 1, libc::SIGKILL),
            Signalled::Sent
        );
        let status = child.wait().expect("wait");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
    }
}
