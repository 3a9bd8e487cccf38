//! Execution prevention's kernel half: a new image in a confirmed server tree is stopped
//! (SIGSTOP, delivered before its first user instruction) and listed in `HELD`, so that
//! userspace can judge its exec record with the detection engine and kill or continue it.
//!
//! Fail-open by construction: nothing is held unless userspace has written the heartbeat
//! within `HEARTBEAT_FRESH_NS`; a process is stopped only once it is listed in `HELD` (where
//! the sensor's watchdog finds it when the sensor dies); a record that cannot reach userspace
//! continues its process at once.

use aya_ebpf::helpers::generated::bpf_send_signal;
use sensor_ebpf::{
    ExecEvent, HEARTBEAT_FRESH_NS, HeldProcess, capture_flags, exec_flags, server_tree,
};

use crate::{HEARTBEAT, HELD, kernel::offset};

const SIGCONT: u32 = 18;
const SIGSTOP: u32 = 19;

/// Decides for an exec of a process whose `SERVER_TREE` value is `mark`; sets
/// [`exec_flags::WOULD_HOLD`] (and [`exec_flags::HELD`] when it stopped it) on `event`.
#[inline(always)]
pub fn hold(event: &mut ExecEvent, mark: u32) {
    let flags = offset!(capture_flags) as u32;
    if flags & capture_flags::EXEC_PREVENT == 0 || mark & server_tree::CONFIRMED == 0 {
        return;
    }
    let now = event.header.ts_ns;
    let beat = HEARTBEAT.get(0).copied().unwrap_or(0);
    // A beat "from the future" (written after this program read the clock) is fresh too.
    if beat == 0 || (now > beat && now - beat >= HEARTBEAT_FRESH_NS) {
        return;
    }
    event.flags |= exec_flags::WOULD_HOLD;
    if flags & capture_flags::EXEC_ENFORCE == 0 {
        return;
    }
    let pid = event.header.pid;
    let held = HeldProcess {
        start_ns: event.start_ns,
        held_ns: now,
    };
    // Listed first: a stopped process nobody can find would stay stopped.
    if HELD.insert(&pid, &held, 0).is_err() {
        return;
    }
    // SAFETY: signals the current task's process, which is the new image.
    if unsafe { bpf_send_signal(SIGSTOP) } != 0 {
        let _ = HELD.remove(&pid);
        return;
    }
    event.flags |= exec_flags::HELD;
}

/// The exec record of a held process could not be sent: userspace will never judge it.
#[inline(always)]
pub fn release(event: &ExecEvent) {
    if event.flags & exec_flags::HELD != 0 {
        // SAFETY: as in `hold`; a pending SIGSTOP is discarded by SIGCONT.
        unsafe { bpf_send_signal(SIGCONT) };
        let _ = HELD.remove(&event.header.pid);
    }
}
