//! `lineage-sensor hold-watchdog` (hidden): started by `run` under execution prevention, exec'd
//! fresh (never a fork of the multi-threaded sensor), with the `HELD` map's fd inherited. It
//! makes sure no process stays stopped because of the sensor:
//!
//! - the sensor exits, whatever the cause (SIGKILL, OOM kill, a crash): its pidfd becomes
//!   readable and every held process is continued, then the watchdog exits;
//! - the sensor is alive but not judging (stopped, wedged): a process held longer than
//!   `--stuck-ms` is continued;
//! - SIGTERM or SIGINT (systemd stopping the unit's cgroup): every held process is continued at
//!   once and from then on every 50 ms, until the sensor has exited.
//!
//! Single-threaded and allocation-light on purpose: it has to work when the sensor did not.

use std::{
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use aya::maps::{HashMap, Map, MapData};
use sensor_ebpf::HeldProcess;

use crate::kernel::hold::release_where;

#[derive(Debug, thiserror::Error)]
pub enum WatchdogError {
    #[error("the inherited HELD map (fd {fd}): {source}")]
    Map {
        fd: RawFd,
        #[source]
        source: aya::maps::MapError,
    },
}

static TERMINATE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(_: libc::c_int) {
    TERMINATE.store(true, Ordering::SeqCst);
}

/// How often held processes are looked at while the sensor lives.
const POLL: Duration = Duration::from_millis(50);

/// Watches `sensor` until it exits; see the module documentation.
pub fn watch(sensor: u32, held_fd: RawFd, stuck: Duration) -> Result<(), WatchdogError> {
    // SAFETY: the fd was left open for us by the sensor (`Holds::start_watchdog`), and nothing
    // else in this process owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(held_fd) };
    let map = MapData::from_fd(owned).map_err(|source| WatchdogError::Map {
        fd: held_fd,
        source,
    })?;
    let mut held: HashMap<MapData, u32, HeldProcess> = HashMap::try_from(Map::HashMap(map))
        .map_err(|source| WatchdogError::Map {
            fd: held_fd,
            source,
        })?;
    for signal in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(signal, on_terminate as *const () as libc::sighandler_t) };
    }
    // A stopped process matters more than this one: let the OOM killer pick another (needs
    // CAP_SYS_RESOURCE; without it the default stays).
    let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, sensor as libc::pid_t, 0) };
    let Some(sensor_fd) = (raw >= 0).then(|| {
        // SAFETY: a fresh fd that nothing else owns.
        unsafe { OwnedFd::from_raw_fd(raw as RawFd) }
    }) else {
        let n = release_where(&mut held, |_| true);
        log::warn!("hold watchdog: the sensor (pid {sensor}) is gone; continued {n} held");
        return Ok(());
    };
    let stuck_ns = u64::try_from(stuck.as_nanos()).unwrap_or(u64::MAX);
    loop {
        let mut poll = libc::pollfd {
            fd: sensor_fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; EINTR (a signal) just ends the wait early.
        let ready = unsafe { libc::poll(&mut poll, 1, POLL.as_millis() as libc::c_int) };
        if ready > 0 && poll.revents != 0 {
            let n = release_where(&mut held, |_| true);
            if n > 0 {
                log::warn!("hold watchdog: the sensor exited; continued {n} held process(es)");
            }
            return Ok(());
        }
        if TERMINATE.load(Ordering::SeqCst) {
            let n = release_where(&mut held, |_| true);
            if n > 0 {
                log::info!("hold watchdog: stopping; continued {n} held process(es)");
            }
            continue;
        }
        let now = crate::clock::boottime_ns();
        let n = release_where(&mut held, |h| now.saturating_sub(h.held_ns) >= stuck_ns);
        if n > 0 {
            log::warn!(
                "hold watchdog: continued {n} process(es) held over {} ms: the sensor is not \
                 judging",
                stuck.as_millis()
            );
        }
    }
}
