//! File writes, renames and links: syscalls open/openat/openat2/creat (only with O_CREAT,
//! O_WRONLY, O_RDWR or O_TRUNC), rename/renameat/renameat2, link/linkat and symlink/symlinkat
//! (`ln -s /tmp/x.php /var/www/html/x.php` puts a script in a web root without writing there).
//!
//! Entry parks the call per thread; exit resolves the resulting path in the kernel and sends an
//! event only when it lies under a watched prefix (an LPM trie filled from the config), so a busy
//! host's log writes and temp files never reach the ring buffer. The path is resolved by walking
//! dentries and mounts up to the root: from the new fd's `struct file` for opens (so relative
//! names, dirfds and symlinks are already resolved), and from the cwd or dirfd plus the new name
//! for renames and links (a web shell written elsewhere and moved into place is seen where it
//! lands).

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task, bpf_get_current_uid_gid,
        bpf_probe_read_user, generated,
    },
    macros::tracepoint,
    maps::lpm_trie::Key,
    programs::TracePointContext,
};
use sensor_ebpf::{
    FileEvent, PATH_KEY_MAX, PATH_MAX, PathKey, SOURCE_MAX, file_op, kind, path_flags,
};

use crate::diag::degraded;
use crate::{
    EVENTS, FILE_SCRATCH, PATH_SCRATCH, PENDING_FILE, WATCHED_PATHS, count_lost,
    kernel::{fd_file, header, offset, read},
    wake_later,
};

const O_WRONLY: u32 = 0o1;
const O_RDWR: u32 = 0o2;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;
const WRITE_FLAGS: u32 = O_WRONLY | O_RDWR | O_CREAT | O_TRUNC;
const AT_FDCWD: i64 = -100;
/// Directory levels walked (mount crossings included) before a path is declared truncated.
const MAX_DEPTH: usize = 256;
/// Where the walk ends and an appended name starts, in the path scratch buffer.
const MID: usize = PATH_MAX;
const NAME_MAX: usize = 256;

/// A call between entry and exit.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PendingFile {
    op: u32,
    flags: u32,
    /// The directory fd the new name is relative to.
    dfd: i64,
    /// User pointer to the (new) name.
    name: u64,
    /// User pointer to the old name of a rename or the target of a link; 0 for opens.
    source: u64,
}

const _: () = assert!(core::mem::size_of::<PendingFile>() == sensor_ebpf::PENDING_FILE_BYTES);

/// Syscall argument `i` of a sys_enter_* record.
#[inline(always)]
fn arg(ctx: &TracePointContext, i: usize) -> Result<u64, i32> {
    let at = offset!(tp_syscall_args) + 8 * i;
    // SAFETY: the offset comes from the tracepoint's format file; read_at checks the address.
    unsafe { ctx.read_at(at) }
}

/// An `int` directory fd argument. Its 8-byte slot holds the register as the caller left it, and
/// a 32-bit `-100` (AT_FDCWD) usually arrives zero-extended: only the low half counts.
#[inline(always)]
fn dirfd_arg(ctx: &TracePointContext, i: usize) -> Result<i64, i32> {
    Ok(i64::from(arg(ctx, i)? as u32 as i32))
}

#[inline(always)]
fn park(op: u32, flags: u32, dfd: i64, name: u64, source: u64) -> Result<(), i32> {
    if op == file_op::OPEN_WRITE && flags & WRITE_FLAGS == 0 {
        return Ok(()); // a read-only open: the overwhelmingly common case, dropped here
    }
    let pending = PendingFile {
        op,
        flags,
        dfd,
        name,
        source,
    };
    PENDING_FILE.insert(bpf_get_current_pid_tgid(), pending, 0)
}

macro_rules! enter_program {
    ($name:ident, $body:expr) => {
        #[tracepoint]
        pub fn $name(ctx: TracePointContext) -> i32 {
            let run: fn(&TracePointContext) -> Result<(), i32> = $body;
            match run(&ctx) {
                Ok(()) => 0,
                Err(err) => {
                    // -E2BIG (-7): PENDING_FILE is full; otherwise a failed read.
                    degraded!(
                        "hook=sys_enter_file pid={} comm={} reason=enter_failed err={}",
                        err
                    );
                    1
                }
            }
        }
    };
}

enter_program!(sys_enter_openat, |ctx| {
    park(
        file_op::OPEN_WRITE,
        arg(ctx, 2)? as u32,
        dirfd_arg(ctx, 0)?,
        arg(ctx, 1)?,
        0,
    )
});
enter_program!(sys_enter_openat2, |ctx| {
    // struct open_how starts with `__u64 flags`.
    let how = arg(ctx, 2)? as *const u64;
    // SAFETY: bpf_probe_read_user validates the user pointer.
    let flags = unsafe { bpf_probe_read_user(how)? };
    park(
        file_op::OPEN_WRITE,
        flags as u32,
        dirfd_arg(ctx, 0)?,
        arg(ctx, 1)?,
        0,
    )
});
enter_program!(sys_enter_open, |ctx| {
    park(
        file_op::OPEN_WRITE,
        arg(ctx, 1)? as u32,
        AT_FDCWD,
        arg(ctx, 0)?,
        0,
    )
});
enter_program!(sys_enter_creat, |ctx| {
    park(
        file_op::OPEN_WRITE,
        O_CREAT | O_WRONLY | O_TRUNC,
        AT_FDCWD,
        arg(ctx, 0)?,
        0,
    )
});
enter_program!(sys_enter_rename, |ctx| {
    park(file_op::RENAME, 0, AT_FDCWD, arg(ctx, 1)?, arg(ctx, 0)?)
});
enter_program!(sys_enter_renameat, |ctx| {
    park(
        file_op::RENAME,
        0,
        dirfd_arg(ctx, 2)?,
        arg(ctx, 3)?,
        arg(ctx, 1)?,
    )
});
enter_program!(sys_enter_renameat2, |ctx| {
    park(
        file_op::RENAME,
        arg(ctx, 4)? as u32,
        dirfd_arg(ctx, 2)?,
        arg(ctx, 3)?,
        arg(ctx, 1)?,
    )
});
enter_program!(sys_enter_link, |ctx| {
    park(file_op::LINK, 0, AT_FDCWD, arg(ctx, 1)?, arg(ctx, 0)?)
});
enter_program!(sys_enter_linkat, |ctx| {
    park(
        file_op::LINK,
        arg(ctx, 4)? as u32,
        dirfd_arg(ctx, 2)?,
        arg(ctx, 3)?,
        arg(ctx, 1)?,
    )
});

enter_program!(sys_enter_symlink, |ctx| {
    park(file_op::SYMLINK, 0, AT_FDCWD, arg(ctx, 1)?, arg(ctx, 0)?)
});
enter_program!(sys_enter_symlinkat, |ctx| {
    park(
        file_op::SYMLINK,
        0,
        dirfd_arg(ctx, 1)?,
        arg(ctx, 2)?,
        arg(ctx, 0)?,
    )
});

/// Attached to the sys_exit_* tracepoint of every syscall above.
#[tracepoint]
pub fn sys_exit_file(ctx: TracePointContext) -> i32 {
    match try_sys_exit_file(&ctx) {
        Ok(()) => 0,
        Err(err) => {
            degraded!(
                "hook=sys_exit_file pid={} comm={} reason=probe_read_failed err={}",
                err
            );
            1
        }
    }
}

fn try_sys_exit_file(ctx: &TracePointContext) -> Result<(), i32> {
    let key = bpf_get_current_pid_tgid();
    let Some(pending) = PENDING_FILE.get_ptr(key) else {
        return Ok(());
    };
    // SAFETY: a valid map value pointer, copied before the entry is removed.
    let pending = unsafe { *pending };
    let _ = PENDING_FILE.remove(key);
    let ret_at = offset!(tp_exit_ret);
    // SAFETY: the offset comes from the tracepoint's format file; read_at checks the address.
    let ret: i64 = unsafe { ctx.read_at(ret_at)? };

    let buf = PATH_SCRATCH.get_ptr_mut(0).ok_or(-1)?.cast::<u8>();
    let mut flags = 0u32;
    let (start, end) = if pending.op == file_op::OPEN_WRITE && ret >= 0 {
        let file = fd_file(ret as u64)?;
        let f_path = file.wrapping_add(offset!(file_f_path));
        let start = walk(
            buf,
            read(f_path, offset!(path_mnt))?,
            read(f_path, offset!(path_dentry))?,
            &mut flags,
        )?;
        (start, MID)
    } else {
        // The name as the caller gave it goes after the middle of the buffer.
        let name_at = MID + 1;
        // SAFETY: the destination lies inside the 3 x PATH_MAX scratch value.
        let copied = unsafe {
            generated::bpf_probe_read_user_str(
                buf.wrapping_add(name_at).cast(),
                NAME_MAX as u32,
                pending.name as *const _,
            )
        };
        if copied <= 1 {
            return Ok(());
        }
        let name_len = (copied as usize - 1) & (NAME_MAX - 1);
        // SAFETY: name_at is inside the scratch value.
        let first = unsafe { *buf.wrapping_add(name_at) };
        if first == b'/' {
            (name_at, name_at + name_len)
        } else if ret >= 0 {
            // Relative to the cwd or a directory fd: resolve the directory, then append.
            let (mnt, dentry) = if pending.dfd == AT_FDCWD {
                // SAFETY: helper without arguments.
                let task = unsafe { bpf_get_current_task() } as *const u8;
                let fs: *const u8 = read(task, offset!(task_fs))?;
                let pwd = fs.wrapping_add(offset!(fs_pwd));
                (
                    read(pwd, offset!(path_mnt))?,
                    read(pwd, offset!(path_dentry))?,
                )
            } else {
                let file = fd_file(pending.dfd as u32 as u64)?;
                let f_path = file.wrapping_add(offset!(file_f_path));
                (
                    read(f_path, offset!(path_mnt))?,
                    read(f_path, offset!(path_dentry))?,
                )
            };
            let start = walk(buf, mnt, dentry, &mut flags)?;
            // SAFETY: MID is inside the scratch value.
            unsafe { *buf.wrapping_add(MID) = b'/' };
            (start, name_at + name_len)
        } else {
            // A failed call with a relative name cannot be placed: reported as given, and only
            // an absolute path can match a watched prefix, so it goes no further.
            return Ok(());
        }
    };

    // A rename or link target is the directory resolved here plus the name as given: `..` and
    // symlinks inside the name are not normalised (a scan for them costs the verifier more than
    // its budget). Userspace canonicalises what arrives; docs/events.md states the limit.
    // A truncated walk lost the path's start, so no prefix can be checked: the event goes out
    // marked, and userspace completes the path or judges it conservatively as watched. Deep
    // paths are rare enough that this costs nothing on an ordinary host.
    if flags & path_flags::TRUNCATED == 0 && !watched(buf, start, end)? {
        return Ok(());
    }

    let event = FILE_SCRATCH.get_ptr_mut(0).ok_or(-1)?;
    // SAFETY: a per-CPU slot; this program cannot be preempted by another user of it.
    let event: &mut FileEvent = unsafe { &mut *event };
    event.header = header(kind::FILE);
    event.op = pending.op;
    event.flags = pending.flags;
    event.ret = ret as i32;
    event.uid = bpf_get_current_uid_gid() as u32;
    let mut len = end.saturating_sub(start);
    if len > PATH_MAX - 1 {
        len = PATH_MAX - 1;
        flags |= path_flags::TRUNCATED;
    }
    if flags & path_flags::TRUNCATED != 0 {
        degraded!(
            "hook=sys_exit_file pid={} comm={} reason=path_truncated op={} kept={}",
            pending.op,
            len as u64
        );
    }
    event.path_flags = flags;
    event.path_len = len as u32;
    // SAFETY: source offset < 2 x PATH_MAX and size < PATH_MAX stay inside the 3 x PATH_MAX
    // scratch value; the destination is the event's path array.
    unsafe {
        generated::bpf_probe_read_kernel(
            event.path.as_mut_ptr().cast(),
            (len & (PATH_MAX - 1)) as u32,
            buf.wrapping_add(start & (2 * PATH_MAX - 1)).cast(),
        )
    };
    event.source_len = 0;
    if pending.source != 0 {
        // SAFETY: bounded by the destination array.
        let copied = unsafe {
            generated::bpf_probe_read_user_str(
                event.source.as_mut_ptr().cast(),
                SOURCE_MAX as u32,
                pending.source as *const _,
            )
        };
        if copied > 1 {
            event.source_len = (copied - 1) as u32;
        }
    }

    let size = core::mem::offset_of!(FileEvent, path) + (len & (PATH_MAX - 1));
    // SAFETY: size never exceeds size_of::<FileEvent>().
    let bytes =
        unsafe { core::slice::from_raw_parts((event as *const FileEvent).cast::<u8>(), size) };
    if EVENTS.output::<[u8]>(bytes, wake_later()).is_err() {
        count_lost(kind::FILE);
    }
    Ok(())
}

/// `struct dentry` from `d_parent` to the end of `d_name` (a `struct qstr`: hash and length in
/// one u64, then the name pointer), read with one helper call; the loader checks this layout in
/// the kernel's BTF before loading.
#[repr(C)]
#[derive(Clone, Copy)]
struct DentryLink {
    parent: u64,
    hash_len: u64,
    name: u64,
}

/// Writes the absolute path of (mnt, dentry) backwards so that it ends at `MID`; returns where
/// it starts. Crosses mount points up to the root mount.
///
/// Every iteration has exactly one path that goes on to the next: a mount crossing falls through
/// into the ordinary step on the mountpoint, so both branches meet in equivalent states that the
/// verifier prunes. (With the crossing as a separate `continue`, the verifier would explore two
/// paths per level, 2^40 in all, and never finish loading.) Each level costs two helper calls
/// (the [`DentryLink`] and the name), the mount's root one per mount: the walk is what a
/// write-open outside the watched paths pays, so every call counts.
#[inline(always)]
fn walk(
    buf: *mut u8,
    mut mnt: *const u8,
    mut dentry: *const u8,
    flags: &mut u32,
) -> Result<usize, i32> {
    let mut pos = MID;
    let mut done = false;
    let mut mnt_root: *const u8 = read(mnt, offset!(vfsmount_mnt_root))?;
    for _ in 0..MAX_DEPTH {
        if dentry == mnt_root {
            // The top of this mount: go on from where it is mounted.
            let mount = mnt.wrapping_sub(offset!(mount_mnt));
            let parent: *const u8 = read(mount, offset!(mount_mnt_parent))?;
            if parent == mount {
                done = true;
                break;
            }
            dentry = read(mount, offset!(mount_mnt_mountpoint))?;
            mnt = parent.wrapping_add(offset!(mount_mnt));
            mnt_root = read(mnt, offset!(vfsmount_mnt_root))?;
        }
        let link: DentryLink = read(dentry, offset!(dentry_d_parent))?;
        let parent = link.parent as *const u8;
        if parent == dentry {
            done = true;
            break;
        }
        let name = link.name as *const u8;
        // The high half of hash_len on little-endian kernels.
        let name_len = ((link.hash_len >> 32) as usize) & (NAME_MAX - 1);
        if pos < name_len + 1 {
            *flags |= path_flags::TRUNCATED;
            done = true;
            break;
        }
        pos -= name_len + 1;
        let at = pos & (PATH_MAX - 1);
        // SAFETY: `at` < PATH_MAX and `at + 1 + name_len` <= MID, inside the scratch value.
        unsafe {
            *buf.wrapping_add(at) = b'/';
            generated::bpf_probe_read_kernel(
                buf.wrapping_add(at + 1).cast(),
                name_len as u32,
                name.cast(),
            );
        }
        dentry = parent;
    }
    if !done {
        *flags |= path_flags::TRUNCATED;
    }
    if pos == MID {
        // The root directory itself.
        pos -= 1;
        // SAFETY: MID - 1 is inside the scratch value.
        unsafe { *buf.wrapping_add(pos) = b'/' };
    }
    Ok(pos)
}

/// Whether `buf[start..end]` lies under a watched prefix.
#[inline(always)]
fn watched(buf: *mut u8, start: usize, end: usize) -> Result<bool, i32> {
    let key = PATH_SCRATCH
        .get_ptr_mut(1)
        .ok_or(-1)?
        .cast::<Key<PathKey>>();
    let len = end.saturating_sub(start).min(PATH_KEY_MAX);
    // SAFETY: the key lives in the second scratch slot (3 x PATH_MAX bytes, far larger than a
    // key); the source offset is masked inside the first slot, which is 3 x PATH_MAX long.
    unsafe {
        core::ptr::write_unaligned(core::ptr::addr_of_mut!((*key).prefix_len), (len * 8) as u32);
        generated::bpf_probe_read_kernel(
            core::ptr::addr_of_mut!((*key).data).cast(),
            PATH_KEY_MAX as u32,
            buf.wrapping_add(start & (2 * PATH_MAX - 1)).cast(),
        );
        Ok(WATCHED_PATHS.get(&*key).is_some())
    }
}
