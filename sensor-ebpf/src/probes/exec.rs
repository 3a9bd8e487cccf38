//! Process image changes: sched_process_exec.
//!
//! A raw tracepoint hands us the task, the old tid and the `linux_binprm`, so every field comes
//! from the kernel at the moment of exec: parent, credentials, start time and the argument block
//! that exec has just copied into the new process's memory.

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_uid_gid,
        bpf_probe_read_kernel_str_bytes, bpf_probe_read_user_buf,
    },
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use sensor_ebpf::{ARGV_MAX, ExecEvent, FILENAME_MAX, capture_flags, exec_flags, kind};

use crate::{
    EVENTS, EXEC_SCRATCH, RECENT_EXEC, SERVER_TREE, count_lost,
    diag::degraded,
    kernel::{header, offset, read},
    wake_later, wake_now,
};

#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(ctx: RawTracePointContext) -> i32 {
    match try_sched_process_exec(&ctx) {
        Ok(()) => 0,
        Err(err) => {
            // No record leaves: a process held before the failure must not stay stopped.
            if let Some(event) = EXEC_SCRATCH.get_ptr_mut(0) {
                // SAFETY: as in `try_sched_process_exec`.
                super::hold::release(unsafe { &*event });
            }
            degraded!(
                "hook=sched_process_exec pid={} comm={} reason=probe_read_failed err={}",
                err
            );
            1
        }
    }
}

fn try_sched_process_exec(ctx: &RawTracePointContext) -> Result<(), i32> {
    // TP_PROTO(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
    let task: *const u8 = ctx.arg(0);
    let old_pid: u64 = ctx.arg(1);
    let bprm: *const u8 = ctx.arg(2);

    let event = EXEC_SCRATCH.get_ptr_mut(0).ok_or(-1)?;
    // SAFETY: a per-CPU slot; this program cannot be preempted by another user of it on this CPU.
    let event: &mut ExecEvent = unsafe { &mut *event };

    event.header = header(kind::EXEC);
    event.old_tid = old_pid as u32;
    let uid_gid = bpf_get_current_uid_gid();
    event.uid = uid_gid as u32;
    event.gid = (uid_gid >> 32) as u32;
    // SAFETY: helper without side effects.
    event.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    event.comm = bpf_get_current_comm().unwrap_or_default();
    event.flags = 0;

    let parent: *const u8 = read(task, offset!(task_real_parent))?;
    event.ppid = read(parent, offset!(task_tgid))?;
    event.start_ns = read(task, offset!(task_start_boottime))?;
    let cred: *const u8 = read(task, offset!(task_real_cred))?;
    event.euid = read(cred, offset!(cred_euid))?;

    let filename: *const u8 = read(bprm, offset!(binprm_filename))?;
    // SAFETY: the helper bounds the copy by the destination and NUL-terminates it.
    let copied = unsafe { bpf_probe_read_kernel_str_bytes(filename, &mut event.filename) }
        .map(|s| s.len())
        .unwrap_or(0);
    event.filename_len = copied as u32;
    if copied >= FILENAME_MAX - 1 {
        event.flags |= exec_flags::FILENAME_TRUNCATED;
    }

    event.exe_ino = 0;
    event.exe_dev = 0;
    event.exe_nlink = 0;
    if offset!(capture_flags) as u32 & capture_flags::EXE_IDENTITY != 0 {
        if exe_identity(bprm, event).is_ok() {
            event.flags |= exec_flags::EXE_IDENTITY;
        } else {
            degraded!("hook=sched_process_exec pid={} comm={} reason=exe_identity_unreadable");
        }
    }

    // SAFETY: a plain u32 copied out of the map.
    let tree_mark = unsafe { SERVER_TREE.get(&event.header.pid) }.copied();
    if let Some(mark) = tree_mark {
        super::hold::hold(event, mark);
    }

    let mm: *const u8 = read(task, offset!(task_mm))?;
    let arg_start: u64 = read(mm, offset!(mm_arg_start))?;
    let arg_end: u64 = read(mm, offset!(mm_arg_end))?;
    let total = arg_end.saturating_sub(arg_start);
    event.argv_total_len = total;
    let mut len = total as usize;
    if len > ARGV_MAX {
        len = ARGV_MAX;
        event.flags |= exec_flags::ARGV_TRUNCATED;
    }
    let argv = event.argv.get_mut(..len).ok_or(-1)?;
    // SAFETY: the helper checks the user address; the destination is bounded by the slice.
    if unsafe { bpf_probe_read_user_buf(arg_start as *const u8, argv) }.is_err() {
        len = 0;
        event.flags |= exec_flags::ARGV_UNREADABLE;
    }
    event.argv_len = len as u32;

    let size = core::mem::offset_of!(ExecEvent, argv) + len;
    // SAFETY: `size` never exceeds size_of::<ExecEvent>() because `len <= ARGV_MAX`.
    let bytes =
        unsafe { core::slice::from_raw_parts((event as *const ExecEvent).cast::<u8>(), size) };
    let wake = if event.flags & exec_flags::HELD != 0 {
        // A stopped process waits for this record: no rate limit.
        aya_ebpf::bindings::BPF_RB_FORCE_WAKEUP as u64
    } else if tree_mark.is_some() {
        wake_now()
    } else {
        // Userspace may find this new image to be a server only after it read the exec; until
        // then its connects must not be dropped as those of a non-server (net.rs, `wanted`).
        if offset!(capture_flags) as u32 & capture_flags::SERVER_TREE_CONNECTS != 0 {
            let _ = RECENT_EXEC.insert(&event.header.pid, &event.header.ts_ns, 0);
        }
        wake_later()
    };
    if EVENTS.output::<[u8]>(bytes, wake).is_err() {
        count_lost(kind::EXEC);
        super::hold::release(event);
    }
    // Logged last: a statement between the argv length's bound check and its use made the
    // compiler spill the length before the check, and an older verifier (Linux 6.1) keeps a
    // spilled scalar's bounds only if it had them when spilled, so it rejected the read.
    log_degraded(event.flags, event.argv_total_len);
    Ok(())
}

#[inline(always)]
fn log_degraded(flags: u32, argv_bytes: u64) {
    if flags & exec_flags::FILENAME_TRUNCATED != 0 {
        degraded!("hook=sched_process_exec pid={} comm={} reason=filename_truncated");
    }
    if flags & exec_flags::ARGV_TRUNCATED != 0 {
        degraded!(
            "hook=sched_process_exec pid={} comm={} reason=argv_truncated argv_bytes={} kept={}",
            argv_bytes,
            ARGV_MAX as u64
        );
    }
    if flags & exec_flags::ARGV_UNREADABLE != 0 {
        degraded!("hook=sched_process_exec pid={} comm={} reason=argv_unreadable");
    }
}

/// The executed file's device, inode number and link count, so that userspace can tell which
/// file ran whatever name it ran under (a hard link, a name since replaced).
#[inline(always)]
fn exe_identity(bprm: *const u8, event: &mut ExecEvent) -> Result<(), i32> {
    let file: *const u8 = read(bprm, offset!(binprm_file))?;
    let inode: *const u8 = read(file, offset!(file_f_inode))?;
    let sb: *const u8 = read(inode, offset!(inode_i_sb))?;
    event.exe_ino = read(inode, offset!(inode_i_ino))?;
    event.exe_nlink = read(inode, offset!(inode_i_nlink))?;
    event.exe_dev = read(sb, offset!(sb_s_dev))?;
    Ok(())
}
