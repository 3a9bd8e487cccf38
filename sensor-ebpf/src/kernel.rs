//! Reading kernel structures at offsets that the loader found in this kernel's BTF.

use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_boot_ns,
    bpf_probe_read_kernel,
};
use sensor_ebpf::{EventHeader, KernelOffsets};

/// Filled in by the loader (`EbpfLoader::override_global`) before the programs are loaded.
// SAFETY (of the initialiser): KernelOffsets is plain integers; all-zero is a valid value.
#[unsafe(no_mangle)]
pub(crate) static KERNEL_OFFSETS: KernelOffsets = unsafe { core::mem::zeroed() };

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

/// The `struct file` behind one of the current task's fds: task->files->fdt->fd[fd].
#[inline(always)]
pub fn fd_file(fd: u64) -> Result<*const u8, i32> {
    // SAFETY: helper without arguments.
    let task = unsafe { aya_ebpf::helpers::bpf_get_current_task() } as *const u8;
    let files: *const u8 = read(task, offset!(task_files))?;
    let fdt: *const u8 = read(files, offset!(files_fdt))?;
    let max_fds: u32 = read(fdt, offset!(fdtable_max_fds))?;
    if fd >= u64::from(max_fds) {
        return Err(-9); // EBADF
    }
    let fds: *const u8 = read(fdt, offset!(fdtable_fd))?;
    read(fds, (fd as usize) * 8)
}
