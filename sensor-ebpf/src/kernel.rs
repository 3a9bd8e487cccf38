//! Reading kernel structures at offsets that the loader found in this kernel's BTF.

use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_boot_ns,
    bpf_probe_read_kernel,
};
use sensor_ebpf::{EventHeader, KernelOffsets};

/// Filled in by the loader (`EbpfLoader::set_global`) before the programs are loaded.
#[unsafe(no_mangle)]
pub(crate) static KERNEL_OFFSETS: KernelOffsets = KernelOffsets {
    task_real_parent: 0,
    task_tgid: 0,
    task_pid: 0,
    task_start_boottime: 0,
    task_real_cred: 0,
    task_mm: 0,
    task_files: 0,
    task_exit_code: 0,
    cred_uid: 0,
    cred_gid: 0,
    cred_euid: 0,
    mm_arg_start: 0,
    mm_arg_end: 0,
    binprm_filename: 0,
    files_fdt: 0,
    fdtable_max_fds: 0,
    fdtable_fd: 0,
    file_private_data: 0,
    socket_type: 0,
    tp_connect_fd: 0,
    tp_connect_addr: 0,
    tp_connect_addrlen: 0,
    tp_exit_ret: 0,
    reserved: 0,
};

/// One offset from [`KERNEL_OFFSETS`]. The volatile read keeps the compiler from folding in the
/// zero it sees at build time.
macro_rules! offset {
    ($field:ident) => {
        unsafe { core::ptr::read_volatile(&raw const crate::kernel::KERNEL_OFFSETS.$field) }
            as usize
    };
}
pub(crate) use offset;

/// Reads a `T` at `base + offset` in kernel memory.
#[inline(always)]
pub fn read<T>(base: *const u8, offset: usize) -> Result<T, i32> {
    if base.is_null() {
        return Err(-14); // EFAULT
    }
    // SAFETY: bpf_probe_read_kernel validates the address; a bad one returns an error.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(offset).cast::<T>()) }
}

/// The common header for an event about the current task.
#[inline(always)]
pub fn header(kind: u32) -> EventHeader {
    let pid_tgid = bpf_get_current_pid_tgid();
    EventHeader {
        kind,
        pid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        // SAFETY: plain helper calls without arguments.
        cpu: unsafe { bpf_get_smp_processor_id() },
        ts_ns: unsafe { bpf_ktime_get_boot_ns() },
    }
}
