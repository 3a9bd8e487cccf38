//! The wire format shared by the kernel programs and the userspace daemon.
//!
//! Every record in the ring buffer starts with an [`EventHeader`]; its `kind` selects the payload
//! struct. Kind ids are part of the on-the-wire contract: they are never renumbered, and a new
//! event gets a new id. All structs are `#[repr(C)]`, `Copy` and free of implicit padding (flags
//! are `u32`, never `bool`), so the same bytes mean the same thing on both sides.
#![no_std]

/// Names of the maps, shared so that neither side spells them on its own.
pub mod maps {
    /// BPF_MAP_TYPE_RINGBUF carrying every event to userspace.
    pub const EVENTS: &str = "EVENTS";
    /// Per-CPU `u64` counters of records that could not be reserved, indexed by event kind.
    pub const LOST: &str = "LOST";
    /// Per-CPU `u64`: when this CPU last woke the reader (the programs' wakeup rate limit).
    pub const LAST_WAKE: &str = "LAST_WAKE";
    /// LRU per-CPU hash `u64` cgroup v2 id -> [`crate::LostCounts`]: the records counted in
    /// [`LOST`], by the cgroup of the task that was current when the reservation failed.
    /// Userspace does not read it; it lets a test (or an operator with bpftool) tell one
    /// workload's losses from the host's.
    pub const LOST_BY_CGROUP: &str = "LOST_BY_CGROUP";
    /// Per-CPU scratch space in which exec records are built (they exceed the 512-byte stack).
    pub const EXEC_SCRATCH: &str = "EXEC_SCRATCH";
    /// connect() calls between entry (the cgroup hook or sys_enter_connect) and the moment the
    /// socket sends its SYN (or, for a UDP connect in the fallback, syscall exit), keyed by
    /// pid_tgid.
    pub const PENDING_CONNECT: &str = "PENDING_CONNECT";
    /// TCP connects whose SYN is out, keyed by the socket's address, until the handshake ends.
    pub const CONNECTING: &str = "CONNECTING";
    /// LRU hash `u32` tgid -> `u64` exec time: processes that exec'd outside the server tree,
    /// kept only when connects outside it are dropped. Userspace learns that a new image is a
    /// server only once it has read the exec; until then ([`KernelOffsets::recent_exec_ms`])
    /// its connects are kept.
    pub const RECENT_EXEC: &str = "RECENT_EXEC";
    /// Unconnected UDP destinations already reported, per socket ([`crate::UdpSeenKey`]).
    pub const UDP_SEEN: &str = "UDP_SEEN";
    /// File writes, renames and links between syscall entry and exit, keyed by pid_tgid.
    pub const PENDING_FILE: &str = "PENDING_FILE";
    /// Per-CPU scratch: file records and the path being resolved.
    pub const FILE_SCRATCH: &str = "FILE_SCRATCH";
    pub const PATH_SCRATCH: &str = "PATH_SCRATCH";
    /// LPM trie of watched path prefixes ([`crate::PathKey`] -> `u8`), loaded from the config.
    pub const WATCHED_PATHS: &str = "WATCHED_PATHS";
    /// LRU hash `u32` tgid -> `u32` (unused): server processes and their descendants, whose
    /// execs wake the reader at once. Userspace adds the servers it classifies; fork adds their
    /// children and exit removes every entry.
    pub const SERVER_TREE: &str = "SERVER_TREE";
    /// LPM tries of the destinations prevention lets a server tree reach, IPv4
    /// (`[u8; 4]` key) and IPv6 (`[u8; 16]`) -> [`crate::PreventAllow`]. Filled by the loader
    /// from `rules.server_outbound_unknown`; a destination matching no prefix is refused.
    pub const PREVENT_ALLOW_V4: &str = "PREVENT_ALLOW_V4";
    pub const PREVENT_ALLOW_V6: &str = "PREVENT_ALLOW_V6";
    /// Array of one `u64`: the boot-time ns (CLOCK_BOOTTIME, `bpf_ktime_get_boot_ns`) at which
    /// userspace last showed it is alive and judging. Execution prevention holds a process
    /// only while it is fresher than [`crate::HEARTBEAT_FRESH_NS`]: no userspace, no hold.
    pub const HEARTBEAT: &str = "HEARTBEAT";
    /// Hash `u32` tgid -> [`crate::HeldProcess`]: processes the exec program stopped
    /// (SIGSTOP) for userspace to judge. Not LRU: an evicted entry would be a process nobody
    /// knows to continue. Userspace (and, when the sensor dies, its watchdog) removes entries;
    /// exit removes them too.
    pub const HELD: &str = "HELD";
}

/// Values of [`maps::SERVER_TREE`] entries (bit set).
pub mod server_tree {
    /// Userspace classified the process as a server of a known family, or it descends from one
    /// (fork copies the parent's value). Only such processes are ever refused anything: a
    /// process that is in the tree only because it called listen() may be no server detection
    /// knows.
    pub const CONFIRMED: u32 = 1 << 0;
}

/// Most ports one [`PreventAllow`] lists; a prefix allowed on more is allowed on every port
/// (prevention errs towards letting through).
pub const PREVENT_PORTS_MAX: usize = 16;

/// Entries of each prevention trie.
pub const PREVENT_ALLOW_ENTRIES: u32 = 4096;

/// What the longest matching prefix of a [`maps::PREVENT_ALLOW_V4`] / `_V6` entry allows.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PreventAllow {
    /// Bit set of [`prevent_allow`].
    pub flags: u32,
    /// How many of `ports` are used.
    pub nports: u32,
    /// Allowed destination ports (host byte order) when not [`prevent_allow::ANY_PORT`].
    pub ports: [u16; PREVENT_PORTS_MAX],
}

/// Bits of [`PreventAllow::flags`].
pub mod prevent_allow {
    /// Every port of the prefix is allowed.
    pub const ANY_PORT: u32 = 1 << 0;
    /// The prefix is in `never_allow`: refused whatever else matches.
    pub const NEVER: u32 = 1 << 1;
}

/// Entries of [`maps::SERVER_TREE`]: far more than the server processes and the shells below
/// them on any host; when full, the least recently used entry goes, which only delays the
/// detection of that process's execs to the next flush tick.
pub const SERVER_TREE_ENTRIES: u32 = 16_384;

/// Entries of [`maps::LOST_BY_CGROUP`]: when more cgroups than this lose records, the least
/// recently counted one's entry goes (the host-wide [`maps::LOST`] still counts everything).
pub const LOST_BY_CGROUP_ENTRIES: u32 = 4096;

/// A [`maps::LOST_BY_CGROUP`] value: lost records per event kind (indexed by [`kind`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LostCounts {
    pub by_kind: [u64; kind::COUNT as usize],
}

/// Size of a PENDING_FILE value (the programs' `PendingFile`), for userspace counting its entries.
pub const PENDING_FILE_BYTES: usize = 32;

/// Name of the global holding [`KernelOffsets`], filled in by the loader.
pub const OFFSETS_GLOBAL: &str = "KERNEL_OFFSETS";

/// Event kind ids. Never renumber: recorded streams and external readers depend on them.
pub mod kind {
    pub const EXEC: u32 = 1;
    pub const FORK: u32 = 2;
    pub const EXIT: u32 = 3;
    pub const CONNECT: u32 = 4;
    pub const FILE: u32 = 5;
    pub const LISTEN: u32 = 6;
    /// One past the largest id; sizes the per-kind lost counters.
    pub const COUNT: u32 = 7;
}

pub const COMM_LEN: usize = 16;
/// Bytes of the executed path kept; longer paths set [`exec_flags::FILENAME_TRUNCATED`].
pub const FILENAME_MAX: usize = 512;
/// Bytes of the NUL-separated argument block kept; longer ones set [`exec_flags::ARGV_TRUNCATED`].
pub const ARGV_MAX: usize = 4096;

pub mod exec_flags {
    /// The argument block was longer than [`crate::ARGV_MAX`]; `argv_total_len` has its size.
    pub const ARGV_TRUNCATED: u32 = 1 << 0;
    /// The executed path filled the whole buffer and may have been cut.
    pub const FILENAME_TRUNCATED: u32 = 1 << 1;
    /// The argument block could not be read from the new process's memory.
    pub const ARGV_UNREADABLE: u32 = 1 << 2;
    /// `exe_dev`, `exe_ino` and `exe_nlink` hold the executed file's identity; without it (a
    /// kernel whose BTF lacks a member they need, or a failed read) they are zero.
    pub const EXE_IDENTITY: u32 = 1 << 3;
    /// Execution prevention stopped the new image (SIGSTOP) and put it in
    /// [`crate::maps::HELD`]: userspace must kill or continue it.
    pub const HELD: u32 = 1 << 4;
    /// Execution prevention would hold it (a confirmed server tree with a fresh heartbeat):
    /// set with [`HELD`] in enforce, alone in dry-run.
    pub const WOULD_HOLD: u32 = 1 << 5;
}

/// Entries of [`maps::HELD`]: when full, a new exec is not held (prevention errs towards
/// letting through).
pub const HELD_ENTRIES: u32 = 4096;

/// How old the heartbeat may be for the exec program to hold a process (500 ms).
pub const HEARTBEAT_FRESH_NS: u64 = 500_000_000;

/// A [`maps::HELD`] value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeldProcess {
    /// `task->start_boottime`: with the pid, the identity of the process.
    pub start_ns: u64,
    /// When it was stopped (boot-time ns).
    pub held_ns: u64,
}

/// The start of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    pub kind: u32,
    /// Thread-group id (the userspace notion of a pid).
    pub pid: u32,
    /// Thread id of the task the event happened on.
    pub tid: u32,
    /// CPU that produced the record; ordering across CPUs is by `ts_ns`.
    pub cpu: u32,
    /// `bpf_ktime_get_boot_ns()`: nanoseconds since boot, suspend included.
    pub ts_ns: u64,
}

/// A successful execve/execveat, seen at sched_process_exec.
///
/// Only the first `offset_of!(ExecEvent, argv) + argv_len` bytes are sent.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecEvent {
    pub header: EventHeader,
    /// Parent tgid as the kernel had it at exec time (`real_parent->tgid`).
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    /// Bit set of [`exec_flags`].
    pub flags: u32,
    /// The thread that called exec (`old_pid`); differs from `header.pid` when a non-leader thread
    /// execs.
    pub old_tid: u32,
    pub filename_len: u32,
    pub argv_len: u32,
    /// Size of the whole argument block in the new process, even when only part of it was kept.
    pub argv_total_len: u64,
    /// `task->start_boottime`: with the pid, the identity of the process.
    pub start_ns: u64,
    pub cgroup_id: u64,
    /// The executed file, `bprm->file->f_inode` (for a `#!` script the interpreter, which has
    /// replaced the script in `bprm->file` by the time the tracepoint fires): `i_ino`.
    pub exe_ino: u64,
    /// `i_sb->s_dev`, in the kernel's internal encoding (`major << 20 | minor`).
    pub exe_dev: u32,
    /// `i_nlink`: 0 when the file was unlinked before (or while) it ran.
    pub exe_nlink: u32,
    pub comm: [u8; COMM_LEN],
    pub filename: [u8; FILENAME_MAX],
    /// NUL-separated arguments, as laid out by the kernel in the new process.
    pub argv: [u8; ARGV_MAX],
}

/// A new process (never a thread), seen at sched_process_fork.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForkEvent {
    /// `header.pid` is the child's tgid.
    pub header: EventHeader,
    /// The child's `real_parent->tgid` (not the forking thread when CLONE_PARENT is used).
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub reserved: u32,
    /// The child's `start_boottime`.
    pub start_ns: u64,
    pub cgroup_id: u64,
    pub comm: [u8; COMM_LEN],
}

/// The end of a process: its thread-group leader exits.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitEvent {
    pub header: EventHeader,
    /// `task->exit_code` in wait(2) status form: `(code << 8) | signal`.
    pub exit_code: u32,
    pub reserved: u32,
    pub start_ns: u64,
}

pub mod proto {
    pub const UNKNOWN: u32 = 0;
    pub const TCP: u32 = 1;
    pub const UDP: u32 = 2;
}

/// How a [`ConnectEvent`]'s destination was given.
pub mod connect_call {
    /// connect(): for TCP the event leaves when the handshake ends, for UDP at the call.
    pub const CONNECT: u32 = 0;
    /// sendto/sendmsg with a destination on an unconnected UDP socket, once per socket and
    /// destination.
    pub const SENDMSG: u32 = 1;
    /// The low bits of [`crate::ConnectEvent::call`] hold the call; the high bits the
    /// prevention verdict, so that records without one read as before.
    pub const CALL_MASK: u32 = 0xffff;
    /// Prevention found the destination one `server-outbound-unknown` alerts on, for a process
    /// of a confirmed server tree.
    pub const WOULD_BLOCK: u32 = 1 << 16;
    /// ... and refused the call (enforce): `ret` is -EPERM.
    pub const BLOCKED: u32 = 1 << 17;
}

/// Bits of [`KernelOffsets::capture_flags`], set by the loader from the config.
pub mod capture_flags {
    /// Connects and UDP sends of processes outside [`crate::maps::SERVER_TREE`] are dropped at
    /// entry (`run`: no rule reads them); without it every one is reported (`record`).
    pub const SERVER_TREE_CONNECTS: u32 = 1 << 0;
    /// This kernel's BTF has every member the exec probe follows to the executed file's identity
    /// (`KernelOffsets::binprm_file` and the five after it); without it the probe skips them.
    pub const EXE_IDENTITY: u32 = 1 << 1;
    /// `prevention.mode` is `dry-run` or `enforce`: the connect hooks decide and mark the event
    /// ([`crate::connect_call::WOULD_BLOCK`]).
    pub const PREVENT: u32 = 1 << 2;
    /// `prevention.mode = "enforce"`: what is marked is also refused.
    pub const ENFORCE: u32 = 1 << 3;
    /// Execution prevention (`prevention.mode` is `dry-run` or `enforce`): an exec in a
    /// confirmed server tree is marked [`crate::exec_flags::WOULD_HOLD`] while the heartbeat
    /// is fresh.
    pub const EXEC_PREVENT: u32 = 1 << 4;
    /// `prevention.mode = "enforce"`: such an exec is also held (SIGSTOP) for userspace.
    pub const EXEC_ENFORCE: u32 = 1 << 5;
}

/// A connect() on an AF_INET or AF_INET6 socket with its outcome, or an unconnected UDP send.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectEvent {
    /// `header.ts_ns` is the time of the call; a TCP outcome arrives when the handshake ends.
    pub header: EventHeader,
    /// AF_INET (2) or AF_INET6 (10).
    pub family: u32,
    /// One of [`proto`], from the socket type.
    pub proto: u32,
    /// Destination port, host byte order.
    pub dport: u32,
    /// 0 on success, else -errno: the error left on the socket when the handshake failed, or
    /// the syscall's result where only the syscall knows it.
    pub ret: i32,
    pub uid: u32,
    /// One of [`connect_call`] in the low 16 bits, and its verdict bits above.
    pub call: u32,
    /// IPv4 in the first four bytes, or the IPv6 address, network byte order.
    pub daddr: [u8; 16],
}

/// A TCP socket put into the LISTEN state (listen(2)), by the task that did it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenEvent {
    pub header: EventHeader,
    /// AF_INET (2) or AF_INET6 (10).
    pub family: u32,
    /// Local port, host byte order.
    pub port: u32,
    pub uid: u32,
    pub reserved: u32,
    /// Local address (IPv4 in the first four bytes), network byte order; all zero for "any".
    pub addr: [u8; 16],
}

/// Key of [`maps::UDP_SEEN`]: a socket (its cookie) and one destination.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpSeenKey {
    pub cookie: u64,
    pub family: u32,
    pub port: u32,
    pub addr: [u8; 16],
}

/// Entries of [`maps::UDP_SEEN`]: when full the least recently used goes, so a destination not
/// used for a while is reported again.
pub const UDP_SEEN_ENTRIES: u32 = 16_384;

/// What happened to the file a [`FileEvent`] names.
pub mod file_op {
    /// open/openat/openat2/creat with O_CREAT, O_WRONLY, O_RDWR or O_TRUNC.
    pub const OPEN_WRITE: u32 = 1;
    /// rename/renameat/renameat2: the path is the new name, `source` the old one.
    pub const RENAME: u32 = 2;
    /// link/linkat: the path is the new link, `source` the existing file.
    pub const LINK: u32 = 3;
    /// symlink/symlinkat: the path is the new symbolic link, `source` what it points to.
    pub const SYMLINK: u32 = 4;
}

pub mod path_flags {
    /// The path was longer than the programs resolve (depth or bytes) and lacks its start.
    pub const TRUNCATED: u32 = 1 << 0;
    /// Resolution failed (a failed syscall with a relative name): `path` is the name as given.
    pub const AS_GIVEN: u32 = 1 << 1;
}

/// Bytes of a resolved path kept in a [`FileEvent`].
pub const PATH_MAX: usize = 4096;
/// Bytes of a rename/link source name kept, as the caller gave it.
pub const SOURCE_MAX: usize = 256;
/// Bytes of a path the prefix filter compares; watched prefixes may not be longer.
pub const PATH_KEY_MAX: usize = 256;

/// The data of an LPM trie key over path bytes (the trie's bit length is 8 x bytes).
pub type PathKey = [u8; PATH_KEY_MAX];

/// A write-open, rename or link whose resulting path lies under a watched prefix.
///
/// Only the first `offset_of!(FileEvent, path) + path_len` bytes are sent.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FileEvent {
    pub header: EventHeader,
    /// One of [`file_op`].
    pub op: u32,
    /// open(2) flags for [`file_op::OPEN_WRITE`]; renameat2/linkat flags otherwise.
    pub flags: u32,
    /// The syscall's result: an fd or 0 on success, -errno on failure.
    pub ret: i32,
    pub uid: u32,
    /// Bit set of [`path_flags`].
    pub path_flags: u32,
    pub source_len: u32,
    pub path_len: u32,
    pub reserved: u32,
    pub source: [u8; SOURCE_MAX],
    /// Absolute path as the kernel resolved it (dentries and mounts walked up to the root).
    pub path: [u8; PATH_MAX],
}

/// Offsets the programs need, found by the loader in this kernel's BTF and tracefs formats.
///
/// Rust eBPF has no CO-RE relocations, so nothing kernel-specific is compiled in: the loader reads
/// each offset from /sys/kernel/btf/vmlinux (struct members) or the tracepoint's `format` file
/// (syscall tracepoint fields) and sets this global before loading.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task_real_parent: u32,
    pub task_tgid: u32,
    pub task_pid: u32,
    pub task_start_boottime: u32,
    pub task_real_cred: u32,
    pub task_mm: u32,
    pub task_files: u32,
    pub task_exit_code: u32,
    pub cred_uid: u32,
    pub cred_gid: u32,
    pub cred_euid: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub binprm_filename: u32,
    pub files_fdt: u32,
    pub fdtable_max_fds: u32,
    pub fdtable_fd: u32,
    pub file_private_data: u32,
    pub socket_type: u32,
    /// syscalls:sys_enter_connect: the `fd`, `uservaddr` and `addrlen` fields.
    pub tp_connect_fd: u32,
    pub tp_connect_addr: u32,
    pub tp_connect_addrlen: u32,
    /// syscalls:sys_exit_connect: the `ret` field (the same in every sys_exit_* record).
    pub tp_exit_ret: u32,
    /// Offset of the first argument in syscalls:sys_enter_* records; argument `i` is at
    /// `tp_syscall_args + 8 * i` (checked against each format file the file probes use).
    pub tp_syscall_args: u32,
    pub task_fs: u32,
    pub fs_pwd: u32,
    pub path_mnt: u32,
    pub path_dentry: u32,
    pub file_f_path: u32,
    pub dentry_d_parent: u32,
    pub dentry_d_name: u32,
    pub qstr_len: u32,
    pub qstr_name: u32,
    pub vfsmount_mnt_root: u32,
    pub mount_mnt: u32,
    pub mount_mnt_parent: u32,
    pub mount_mnt_mountpoint: u32,
    /// Bit set of [`capture_flags`] (not an offset: the loader's other input to the programs).
    pub capture_flags: u32,
    /// `struct sock` (its leading `struct sock_common`) members read at socket state changes.
    pub sk_family: u32,
    pub sk_dport: u32,
    pub sk_num: u32,
    pub sk_rcv_saddr: u32,
    pub sk_v6_rcv_saddr: u32,
    pub sk_protocol: u32,
    /// `struct sock` member `sk_err`: the error a failed handshake leaves.
    pub sock_sk_err: u32,
    /// How long after its exec a process outside the server tree still has its connects
    /// reported (userspace may not yet have found it to be a server), in milliseconds.
    pub recent_exec_ms: u32,
    /// The executed file's identity at exec: `linux_binprm.file`, `file.f_inode`,
    /// `inode.i_ino`, `inode.i_nlink`, `inode.i_sb` and `super_block.s_dev`. Meaningful only
    /// with [`capture_flags::EXE_IDENTITY`].
    pub binprm_file: u32,
    pub file_f_inode: u32,
    pub inode_i_ino: u32,
    pub inode_i_nlink: u32,
    pub inode_i_sb: u32,
    pub sb_s_dev: u32,
}

#[cfg(feature = "user")]
mod pod {
    use super::*;

    // SAFETY: all are #[repr(C)], Copy, contain only integers and byte arrays, and have no padding
    // (checked by the size assertions below).
    unsafe impl aya::Pod for EventHeader {}
    unsafe impl aya::Pod for ExecEvent {}
    unsafe impl aya::Pod for ForkEvent {}
    unsafe impl aya::Pod for ExitEvent {}
    unsafe impl aya::Pod for ConnectEvent {}
    unsafe impl aya::Pod for KernelOffsets {}
    unsafe impl aya::Pod for FileEvent {}
    unsafe impl aya::Pod for ListenEvent {}
    unsafe impl aya::Pod for UdpSeenKey {}
    unsafe impl aya::Pod for LostCounts {}
    unsafe impl aya::Pod for PreventAllow {}
    unsafe impl aya::Pod for HeldProcess {}
}

// Padding would make the two sides disagree silently; these fail the build instead.
const _: () = assert!(core::mem::size_of::<EventHeader>() == 24);
const _: () = assert!(
    core::mem::size_of::<ExecEvent>()
        == 24 + 4 * 8 + 8 * 4 + 8 + COMM_LEN + FILENAME_MAX + ARGV_MAX
);
const _: () = assert!(core::mem::size_of::<ForkEvent>() == 24 + 16 + 16 + COMM_LEN);
const _: () = assert!(core::mem::size_of::<ExitEvent>() == 24 + 8 + 8);
const _: () = assert!(core::mem::size_of::<ConnectEvent>() == 24 + 24 + 16);
const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 52 * 4);
const _: () = assert!(core::mem::size_of::<ListenEvent>() == 24 + 16 + 16);
const _: () = assert!(core::mem::size_of::<UdpSeenKey>() == 32);
const _: () = assert!(core::mem::size_of::<PreventAllow>() == 8 + 2 * PREVENT_PORTS_MAX);
const _: () = assert!(core::mem::size_of::<HeldProcess>() == 16);
const _: () = assert!(core::mem::size_of::<LostCounts>() == 8 * kind::COUNT as usize);
const _: () = assert!(core::mem::size_of::<FileEvent>() == 24 + 8 * 4 + SOURCE_MAX + PATH_MAX);
