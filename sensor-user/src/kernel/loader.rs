//! Loading the kernel programs and attaching them to their tracepoints.

use std::path::Path;

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{
        HashMap, MapData, MapError, PerCpuArray, RingBuf,
        lpm_trie::{Key, LpmTrie},
    },
    programs::{ProgramError, RawTracePoint, TracePoint},
};
use sensor_ebpf::{OFFSETS_GLOBAL, PATH_KEY_MAX, PathKey, capture_flags, maps};

use super::{
    connect_entry::ConnectEntry,
    fanotify::{FanotifyError, FileWatch},
    features::{FeatureError, probe},
    hooks::{FileHook, Hooks},
    offsets::{OffsetError, VMLINUX_BTF, check_syscall_layout, kernel_offsets},
    prevent::PreventPlan,
    tracefs::{TracefsError, ensure_tracefs},
};
use crate::config::{CaptureConfig, ConnectEntryMode, ConnectScope, FileHooks};

/// The programs built by sensor-ebpf, embedded at build time.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor-ebpf"));

/// Where each program attaches.
enum Hook {
    /// A raw tracepoint: the tracepoint's C arguments (task pointers), no tracefs needed.
    Raw(&'static str),
}

/// Program name (the function name in sensor-ebpf) and its hook.
/// connect()'s entry is attached separately (see [`super::connect_entry`]). All are raw
/// tracepoints: no record is formatted for them, and none is a syscall tracepoint (attaching one
/// of those sends every syscall of every task through the tracing slow path, bench/README.md).
const PROGRAMS: [(&str, Hook); 4] = [
    ("sched_process_exec", Hook::Raw("sched_process_exec")),
    ("sched_process_fork", Hook::Raw("sched_process_fork")),
    ("sched_process_exit", Hook::Raw("sched_process_exit")),
    ("inet_sock_set_state", Hook::Raw("inet_sock_set_state")),
];

/// File syscalls: the entry program, the syscall's argument names in order (checked against the
/// tracepoint's format), and whether every architecture has it (the legacy non-`at` calls exist
/// on x86_64 but not on arm64). Every one's exit goes to `sys_exit_file`.
const FILE_SYSCALLS: [(&str, &[&str], bool); 11] = [
    ("openat", &["dfd", "filename", "flags"], true),
    ("openat2", &["dfd", "filename", "how"], true),
    (
        "renameat",
        &["olddfd", "oldname", "newdfd", "newname"],
        true,
    ),
    (
        "renameat2",
        &["olddfd", "oldname", "newdfd", "newname", "flags"],
        true,
    ),
    (
        "linkat",
        &["olddfd", "oldname", "newdfd", "newname", "flags"],
        true,
    ),
    ("symlinkat", &["oldname", "newdfd", "newname"], true),
    ("open", &["filename", "flags"], false),
    ("creat", &["pathname"], false),
    ("rename", &["oldname", "newname"], false),
    ("link", &["oldname", "newname"], false),
    ("symlink", &["oldname", "newname"], false),
];
const FILE_EXIT_PROGRAM: &str = "sys_exit_file";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Hold(#[from] super::hold::HoldError),
    #[error(transparent)]
    Tracefs(#[from] TracefsError),
    #[error(transparent)]
    Offsets(#[from] OffsetError),
    #[error(transparent)]
    Features(#[from] FeatureError),
    #[error(
        "loading the eBPF object failed: {source}. lineage-sensor must run as root or with \
         CAP_BPF and CAP_PERFMON, on a kernel >= 5.8 with BTF"
    )]
    Object { source: EbpfError },
    #[error("the eBPF object has no program {0}: the build is broken")]
    MissingProgram(&'static str),
    #[error("the eBPF object has no map {0}: the build is broken")]
    MissingMap(&'static str),
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        source: MapError,
    },
    #[error(
        "loading program {program} into the kernel failed: {source:?}. It needs CAP_BPF and \
         CAP_PERFMON (or root)"
    )]
    Program {
        program: &'static str,
        source: ProgramError,
    },
    #[error("attaching {program} to tracepoint {hook} failed: {source}")]
    Attach {
        program: &'static str,
        hook: String,
        source: ProgramError,
    },
    #[error("capture.file_hooks = \"fanotify\": {0}")]
    Fanotify(#[from] FanotifyError),
    #[error(
        "[prevention] needs the cgroup connect hooks, which cannot be used here ({0}); set \
         prevention.mode = \"off\" or run where they can be attached"
    )]
    PreventionNeedsCgroupHooks(String),
    #[error("watched path {path:?}: {reason}")]
    WatchPath { path: String, reason: &'static str },
}

/// Programs loaded and attached. Dropping it detaches them.
pub struct Loaded {
    /// Owns the programs and their links.
    pub ebpf: Ebpf,
    pub ring: RingBuf<MapData>,
    pub lost: PerCpuArray<MapData, u64>,
    pub server_tree: HashMap<MapData, u32, u32>,
    /// Execution prevention's maps (enforce only: dry-run holds nothing).
    pub holds: Option<super::hold::Holds>,
    pub connect_entry: ConnectEntry,
    /// What each hook family runs on, for the log and the metrics.
    pub hooks: Hooks,
    /// The programs' diagnostics, read after each batch of events.
    pub kernel_log: Option<KernelLogger>,
    /// File events through fanotify, when that is the file mechanism.
    pub file_watch: Option<FileWatch>,
}

pub type KernelLogger = aya_log::EbpfLogger<super::kernel_log::RateBound<&'static dyn log::Log>>;

/// Loads the programs with this kernel's offsets and attaches every one of them. `prevent`:
/// what `[prevention]` puts in the kernel (`None` in `record`).
pub fn load(config: &CaptureConfig, prevent: Option<&PreventPlan>) -> Result<Loaded, LoadError> {
    raise_memlock_limit();
    probe()?;
    let tracefs = ensure_tracefs()?;
    let mut offsets = kernel_offsets(std::path::Path::new(VMLINUX_BTF), &tracefs)?;
    if config.connects_from == ConnectScope::ServerTrees {
        offsets.capture_flags |= capture_flags::SERVER_TREE_CONNECTS;
        // Userspace reads an exec within a flush interval, classifies it and puts a server in
        // the tree; until then a new image's connects are kept. Generous: a miss here is a
        // server's first connects lost, a surplus only a few events read for nothing.
        offsets.recent_exec_ms = config.flush_interval_ms.saturating_mul(10).max(200);
    }
    if let Some(plan) = prevent {
        offsets.capture_flags |= plan.capture_flags() | plan.exec_capture_flags();
    }
    log::debug!("kernel offsets: {offsets:?}");

    // Fixed before load, so that the verifier drops every kernel-side log statement above it.
    let log_level = super::kernel_log::ebpf_level(log::max_level());
    let mut ebpf = EbpfLoader::new()
        .override_global(OFFSETS_GLOBAL, &offsets, true)
        .override_global(aya_log::LEVEL, &log_level, true)
        .map_max_entries(maps::EVENTS, config.ring_buffer_bytes)
        .load(EBPF_OBJECT)
        .map_err(|source| LoadError::Object { source })?;

    for (program, hook) in PROGRAMS {
        let prog = ebpf
            .program_mut(program)
            .ok_or(LoadError::MissingProgram(program))?;
        let load_err = |source| LoadError::Program { program, source };
        let Hook::Raw(tp) = hook;
        let raw: &mut RawTracePoint = prog.try_into().map_err(load_err)?;
        raw.load().map_err(load_err)?;
        raw.attach(tp).map_err(|source| LoadError::Attach {
            program,
            hook: tp.to_owned(),
            source,
        })?;
        log::debug!("attached {program}");
    }
    if let Some(plan) = prevent {
        plan.fill(&mut ebpf)?;
    }
    let cgroup_hooks = match config.connect_entry {
        ConnectEntryMode::Auto => super::connect_entry::attach_cgroup_hooks(&mut ebpf),
        ConnectEntryMode::Tracepoint => Err("capture.connect_entry = \"tracepoint\"".to_owned()),
    };
    let mut syscall_tracepoints = 0;
    let connect_entry = match cgroup_hooks {
        Ok(root) => ConnectEntry::Cgroup(root),
        Err(why) if prevent.is_some_and(|p| p.capture_flags() != 0) => {
            return Err(LoadError::PreventionNeedsCgroupHooks(why));
        }
        Err(why) => {
            attach_syscall(&mut ebpf, "sys_enter_connect", "sys_enter_connect")?;
            attach_syscall(&mut ebpf, "sys_exit_connect", "sys_exit_connect")?;
            syscall_tracepoints += 2;
            ConnectEntry::Syscall(why)
        }
    };
    log::info!("connect() destinations from the {connect_entry}");
    let mut file_watch = None;
    let fanotify = match config.file_hooks {
        FileHooks::Off => None,
        _ if config.watch_paths.is_empty() => None,
        FileHooks::Tracepoint => Some(Err("capture.file_hooks = \"tracepoint\"".to_owned())),
        FileHooks::Fanotify => Some(Ok(FileWatch::open(&config.watch_paths)?)),
        FileHooks::Auto => Some(FileWatch::open(&config.watch_paths).map_err(|e| e.to_string())),
    };
    let files = match fanotify {
        None if config.file_hooks == FileHooks::Off => {
            FileHook::Off("capture.file_hooks = \"off\"")
        }
        None => FileHook::Off("no path is watched"),
        Some(Ok(watch)) => {
            let rename = watch.has_rename;
            file_watch = Some(watch);
            FileHook::Fanotify { rename }
        }
        Some(Err(why)) => {
            syscall_tracepoints +=
                attach_file_programs(&mut ebpf, &tracefs, offsets.tp_syscall_args)?;
            FileHook::SyscallTracepoints(why)
        }
    };
    let hooks = Hooks::chosen(&connect_entry, &files, syscall_tracepoints);
    hooks.log();
    fill_watched_paths(&mut ebpf, &config.watch_paths)?;

    let ring = take_map(&mut ebpf, maps::EVENTS)?;
    let ring = RingBuf::try_from(ring).map_err(|source| LoadError::Map {
        name: maps::EVENTS,
        source,
    })?;
    let lost = take_map(&mut ebpf, maps::LOST)?;
    let lost = PerCpuArray::try_from(lost).map_err(|source| LoadError::Map {
        name: maps::LOST,
        source,
    })?;
    let server_tree = take_map(&mut ebpf, maps::SERVER_TREE)?;
    let server_tree = HashMap::try_from(server_tree).map_err(|source| LoadError::Map {
        name: maps::SERVER_TREE,
        source,
    })?;
    let holds = match prevent {
        // dry-run beats too: its mark means "enforce would have held it".
        Some(plan) if plan.exec_capture_flags() != 0 => {
            let heartbeat = take_map(&mut ebpf, maps::HEARTBEAT)?;
            let held = take_map(&mut ebpf, maps::HELD)?;
            Some(super::hold::Holds::new(
                held,
                heartbeat,
                plan.hold_timeout_ms,
            )?)
        }
        _ => None,
    };
    // Parsing vmlinux BTF peaks at about 20 MB of heap that is free once the offsets are known,
    // but glibc keeps it mapped; handing it back keeps a long-running sensor's RSS at what it
    // uses (about 29 MB instead of 51 MB measured by the benchmark).
    crate::memory::give_back();
    let kernel_log = match aya_log::EbpfLogger::init_with_logger(
        &mut ebpf,
        super::kernel_log::RateBound::new(log::logger()),
    ) {
        Ok(logger) => Some(logger),
        Err(err) => {
            log::warn!("the kernel programs' diagnostics will not be logged: {err}");
            None
        }
    };
    Ok(Loaded {
        kernel_log,
        ebpf,
        ring,
        lost,
        server_tree,
        holds,
        connect_entry,
        hooks,
        file_watch,
    })
}

/// Returns how many syscall tracepoints it attached.
fn attach_file_programs(
    ebpf: &mut Ebpf,
    tracefs: &Path,
    first_arg: u32,
) -> Result<usize, LoadError> {
    let present: Vec<&(&str, &[&str], bool)> = FILE_SYSCALLS
        .iter()
        .filter(|(name, _, everywhere)| {
            *everywhere
                || tracefs
                    .join(format!("events/syscalls/sys_enter_{name}"))
                    .is_dir()
        })
        .collect();
    for (name, args, _) in &present {
        check_syscall_layout(tracefs, &format!("sys_enter_{name}"), args, first_arg)?;
    }
    for (name, _, _) in &present {
        let program: &'static str = match *name {
            "openat" => "sys_enter_openat",
            "openat2" => "sys_enter_openat2",
            "renameat" => "sys_enter_renameat",
            "renameat2" => "sys_enter_renameat2",
            "linkat" => "sys_enter_linkat",
            "open" => "sys_enter_open",
            "creat" => "sys_enter_creat",
            "rename" => "sys_enter_rename",
            "symlinkat" => "sys_enter_symlinkat",
            "symlink" => "sys_enter_symlink",
            _ => "sys_enter_link",
        };
        attach_syscall(ebpf, program, &format!("sys_enter_{name}"))?;
    }
    for (name, _, _) in &present {
        attach_syscall(ebpf, FILE_EXIT_PROGRAM, &format!("sys_exit_{name}"))?;
    }
    Ok(2 * present.len())
}

/// Loads `program` the first time, then attaches it to `syscalls:{tracepoint}`.
fn attach_syscall(
    ebpf: &mut Ebpf,
    program: &'static str,
    tracepoint: &str,
) -> Result<(), LoadError> {
    let prog = ebpf
        .program_mut(program)
        .ok_or(LoadError::MissingProgram(program))?;
    let load_err = |source| LoadError::Program { program, source };
    let tp: &mut TracePoint = prog.try_into().map_err(load_err)?;
    if tp.fd().is_err() {
        tp.load().map_err(load_err)?;
    }
    tp.attach("syscalls", tracepoint)
        .map_err(|source| LoadError::Attach {
            program,
            hook: tracepoint.to_owned(),
            source,
        })?;
    log::debug!("attached {program} to {tracepoint}");
    Ok(())
}

/// Puts every watched prefix in the kernel's LPM trie; paths under none of them never leave the
/// kernel.
fn fill_watched_paths(ebpf: &mut Ebpf, prefixes: &[String]) -> Result<(), LoadError> {
    let map = ebpf
        .map_mut(maps::WATCHED_PATHS)
        .ok_or(LoadError::MissingMap(maps::WATCHED_PATHS))?;
    let mut trie: LpmTrie<&mut MapData, PathKey, u8> =
        LpmTrie::try_from(map).map_err(|source| LoadError::Map {
            name: maps::WATCHED_PATHS,
            source,
        })?;
    for prefix in prefixes {
        let bytes = prefix.as_bytes();
        if !bytes.starts_with(b"/") || bytes.len() >= PATH_KEY_MAX {
            return Err(LoadError::WatchPath {
                path: prefix.clone(),
                reason: "not an absolute path shorter than 255 bytes",
            });
        }
        let mut data = [0u8; PATH_KEY_MAX];
        data[..bytes.len()].copy_from_slice(bytes);
        trie.insert(&Key::new((bytes.len() * 8) as u32, data), 1, 0)
            .map_err(|source| LoadError::Map {
                name: maps::WATCHED_PATHS,
                source,
            })?;
    }
    log::debug!("watching {} path prefixes for file writes", prefixes.len());
    Ok(())
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, LoadError> {
    ebpf.take_map(name).ok_or(LoadError::MissingMap(name))
}

/// Kernels before 5.11 account BPF memory against RLIMIT_MEMLOCK; later ones charge the memory
/// cgroup, where raising the limit is unnecessary and, without CAP_SYS_RESOURCE, not permitted.
fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a valid rlimit struct for the duration of the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        log::debug!(
            "setrlimit(RLIMIT_MEMLOCK) failed: {}; fine on kernels >= 5.11",
            std::io::Error::last_os_error()
        );
    }
}
