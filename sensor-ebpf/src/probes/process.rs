//! Process creation and exit: sched_process_fork and sched_process_exit.
//!
//! Raw tracepoints give us the task pointers, which is what makes threads and processes
//! distinguishable exactly: a new task whose pid differs from its tgid is a thread and never
//! becomes an event, so a server's thread pool costs one filter per clone and nothing more.
//! Both also keep the server tree (`SERVER_TREE`, see `wake_now`): a child of a process in it
//! joins it at fork, and a process leaves it at exit.

use aya_ebpf::{
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_uid_gid},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use sensor_ebpf::{ExitEvent, ForkEvent, kind};

use crate::diag::degraded;
use crate::{
    EVENTS, HELD, SERVER_TREE, count_lost,
    kernel::{header, offset, read},
    wake_later,
};

#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    match try_sched_process_fork(&ctx) {
        Ok(()) => 0,
        Err(err) => {
            degraded!(
                "hook=sched_process_fork pid={} comm={} reason=probe_failed err={}",
                err
            );
            1
        }
    }
}

fn try_sched_process_fork(ctx: &RawTracePointContext) -> Result<(), i32> {
    // TP_PROTO(struct task_struct *parent, struct task_struct *child)
    let child: *const u8 = ctx.arg(1);
    let child_pid: u32 = read(child, offset!(task_pid))?;
    let child_tgid: u32 = read(child, offset!(task_tgid))?;
    if child_pid != child_tgid {
        return Ok(()); // CLONE_THREAD: a thread, not a process
    }
    let real_parent: *const u8 = read(child, offset!(task_real_parent))?;
    let ppid: u32 = read(real_parent, offset!(task_tgid))?;
    let start_ns: u64 = read(child, offset!(task_start_boottime))?;
    // SAFETY: a plain u32 copied out of the map. The child inherits the parent's
    // confirmation (`server_tree::CONFIRMED`).
    if let Some(&mark) = unsafe { SERVER_TREE.get(&ppid) } {
        // A full map evicts its least recently used entry; nothing to do on failure.
        let _ = SERVER_TREE.insert(&child_tgid, &mark, 0);
    }

    let mut header = header(kind::FORK);
    header.pid = child_tgid;
    let uid_gid = bpf_get_current_uid_gid();
    let event = ForkEvent {
        header,
        ppid,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        reserved: 0,
        start_ns,
        // SAFETY: helper without side effects. The child is still in the parent's cgroup here.
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        comm: bpf_get_current_comm().unwrap_or_default(),
    };
    match EVENTS.reserve::<ForkEvent>(0) {
        Some(mut entry) => {
            entry.write(event);
            entry.submit(wake_later());
        }
        None => count_lost(kind::FORK),
    }
    Ok(())
}

#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(ctx: RawTracePointContext) -> i32 {
    match try_sched_process_exit(&ctx) {
        Ok(()) => 0,
        Err(err) => {
            degraded!(
                "hook=sched_process_exit pid={} comm={} reason=probe_failed err={}",
                err
            );
            1
        }
    }
}

fn try_sched_process_exit(ctx: &RawTracePointContext) -> Result<(), i32> {
    let header = header(kind::EXIT);
    if header.pid != header.tid {
        return Ok(()); // a thread ending; the process lives on
    }
    // Absent for most processes: a miss is the whole cost.
    let _ = SERVER_TREE.remove(&header.pid);
    // A held process that ends (killed by the sensor, or by anyone) needs no releasing.
    let _ = HELD.remove(&header.pid);
    // TP_PROTO(struct task_struct *p, ...): p is the exiting task, which is current.
    let task: *const u8 = ctx.arg(0);
    let exit_code: u32 = read(task, offset!(task_exit_code))?;
    let start_ns: u64 = read(task, offset!(task_start_boottime))?;
    let event = ExitEvent {
        header,
        exit_code,
        reserved: 0,
        start_ns,
    };
    match EVENTS.reserve::<ExitEvent>(0) {
        Some(mut entry) => {
            entry.write(event);
            entry.submit(wake_later());
        }
        None => count_lost(kind::EXIT),
    }
    Ok(())
}
