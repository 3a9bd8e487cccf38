//! lineage-sensor's kernel programs. This file holds the maps, the license and the panic
//! handler; each hook family lives in its own module under `probes/`.
//!
//! Built for the host (as `cargo build --workspace` does), the binary is an empty stub: the
//! programs exist only for the bpf target, which sensor-user's build.rs builds.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(not(target_arch = "bpf"))]
fn main() {
    eprintln!("sensor-ebpf holds eBPF programs: they are built for the bpf target by sensor-user");
}

#[cfg(target_arch = "bpf")]
mod diag;
#[cfg(target_arch = "bpf")]
mod kernel;
#[cfg(target_arch = "bpf")]
mod probes;

#[cfg(target_arch = "bpf")]
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, LruPerCpuHashMap, PerCpuArray, RingBuf},
};
#[cfg(target_arch = "bpf")]
use sensor_ebpf::{
    ConnectEvent, ExecEvent, FileEvent, HeldProcess, LostCounts, PathKey, PreventAllow, UdpSeenKey,
    kind,
};

// The static names are the map names userspace looks up: they must equal `sensor_ebpf::maps::*`
// (the loader fails with the missing name if they drift apart).

/// Sized by the loader from the config (`ring_buffer_bytes`); this is only a placeholder.
#[cfg(target_arch = "bpf")]
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 23, 0);

#[cfg(target_arch = "bpf")]
#[map]
static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(kind::COUNT, 0);

/// See [`sensor_ebpf::maps::LOST_BY_CGROUP`].
#[cfg(target_arch = "bpf")]
#[map]
static LOST_BY_CGROUP: LruPerCpuHashMap<u64, LostCounts> =
    LruPerCpuHashMap::with_max_entries(sensor_ebpf::LOST_BY_CGROUP_ENTRIES, 0);

#[cfg(target_arch = "bpf")]
#[map]
static EXEC_SCRATCH: PerCpuArray<ExecEvent> = PerCpuArray::with_max_entries(1, 0);

/// LRU so that a thread that dies inside connect() cannot leak an entry for good.
#[cfg(target_arch = "bpf")]
#[map]
static PENDING_CONNECT: LruHashMap<u64, ConnectEvent> = LruHashMap::with_max_entries(8192, 0);

/// TCP connects between their SYN and the end of the handshake, by socket address. LRU: a
/// socket freed without passing through the tracepoint cannot leak an entry for good.
#[cfg(target_arch = "bpf")]
#[map]
static CONNECTING: LruHashMap<u64, ConnectEvent> = LruHashMap::with_max_entries(16_384, 0);

/// See [`sensor_ebpf::maps::RECENT_EXEC`].
#[cfg(target_arch = "bpf")]
#[map]
static RECENT_EXEC: LruHashMap<u32, u64> = LruHashMap::with_max_entries(8192, 0);

/// See [`sensor_ebpf::maps::UDP_SEEN`].
#[cfg(target_arch = "bpf")]
#[map]
static UDP_SEEN: LruHashMap<UdpSeenKey, u8> =
    LruHashMap::with_max_entries(sensor_ebpf::UDP_SEEN_ENTRIES, 0);

#[cfg(target_arch = "bpf")]
#[map]
static PENDING_FILE: LruHashMap<u64, probes::file::PendingFile> =
    LruHashMap::with_max_entries(8192, 0);

#[cfg(target_arch = "bpf")]
#[map]
static FILE_SCRATCH: PerCpuArray<FileEvent> = PerCpuArray::with_max_entries(1, 0);

/// Room for a directory written backwards up to PATH_MAX, a name appended after it, and the
/// slack that lets every masked offset plus length stay in range for the verifier. Slot 1 holds
/// the prefix filter's key.
#[cfg(target_arch = "bpf")]
#[map]
static PATH_SCRATCH: PerCpuArray<[u8; 3 * sensor_ebpf::PATH_MAX]> =
    PerCpuArray::with_max_entries(2, 0);

/// Watched path prefixes; the loader sizes and fills it from the config.
#[cfg(target_arch = "bpf")]
#[map]
static WATCHED_PATHS: LpmTrie<PathKey, u8> = LpmTrie::with_max_entries(1024, 0);

/// See [`sensor_ebpf::maps::SERVER_TREE`].
#[cfg(target_arch = "bpf")]
#[map]
static SERVER_TREE: LruHashMap<u32, u32> =
    LruHashMap::with_max_entries(sensor_ebpf::SERVER_TREE_ENTRIES, 0);

/// See [`sensor_ebpf::maps::PREVENT_ALLOW_V4`].
#[cfg(target_arch = "bpf")]
#[map]
static PREVENT_ALLOW_V4: LpmTrie<[u8; 4], PreventAllow> =
    LpmTrie::with_max_entries(sensor_ebpf::PREVENT_ALLOW_ENTRIES, 0);

/// See [`sensor_ebpf::maps::PREVENT_ALLOW_V6`].
#[cfg(target_arch = "bpf")]
#[map]
static PREVENT_ALLOW_V6: LpmTrie<[u8; 16], PreventAllow> =
    LpmTrie::with_max_entries(sensor_ebpf::PREVENT_ALLOW_ENTRIES, 0);

/// See [`sensor_ebpf::maps::HEARTBEAT`].
#[cfg(target_arch = "bpf")]
#[map]
static HEARTBEAT: Array<u64> = Array::with_max_entries(1, 0);

/// See [`sensor_ebpf::maps::HELD`].
#[cfg(target_arch = "bpf")]
#[map]
static HELD: HashMap<u32, HeldProcess> = HashMap::with_max_entries(sensor_ebpf::HELD_ENTRIES, 0);

/// Counts a record that the ring buffer had no room for; userspace sums it per kind. It is
/// also counted for the current task's cgroup ([`LOST_BY_CGROUP`]), so that one workload's
/// losses can be told from the host's.
#[cfg(target_arch = "bpf")]
#[inline(always)]
fn count_lost(event_kind: u32) {
    diag::degraded!(
        "hook=ring_output pid={} comm={} reason=ring_full kind={}",
        event_kind
    );
    if let Some(counter) = LOST.get_ptr_mut(event_kind) {
        // Per-CPU slot: no other writer can race this increment.
        unsafe { *counter += 1 };
    }
    count_lost_in_cgroup(event_kind);
}

/// The per-cgroup half of [`count_lost`]. Every caller runs in the context of the task the
/// record is about (exec, fork's parent, exit, file syscalls, connect and listen), except
/// the end of a TCP handshake, which may run in softirq on whatever task the CPU had.
#[cfg(target_arch = "bpf")]
#[inline(always)]
fn count_lost_in_cgroup(event_kind: u32) {
    let slot = event_kind as usize;
    if slot >= kind::COUNT as usize {
        return;
    }
    // SAFETY: helper without arguments; the cgroup v2 id of the current task.
    let cgroup = unsafe { aya_ebpf::helpers::bpf_get_current_cgroup_id() };
    let bump = |counts: *mut LostCounts| {
        // SAFETY: a per-CPU value of a live entry; this program cannot be preempted by another
        // writer of it, and `slot` is in range.
        unsafe { (*counts).by_kind[slot] += 1 };
    };
    if let Some(counts) = LOST_BY_CGROUP.get_ptr_mut(cgroup) {
        bump(counts);
        return;
    }
    let mut first = LostCounts::default();
    first.by_kind[slot] = 1;
    if LOST_BY_CGROUP
        .insert(cgroup, first, aya_ebpf::bindings::BPF_NOEXIST as u64)
        .is_err()
    {
        // Another CPU created the entry meanwhile: count on this CPU's value of it.
        if let Some(counts) = LOST_BY_CGROUP.get_ptr_mut(cgroup) {
            bump(counts);
        }
    }
}

/// Ring-buffer wakeups. A wakeup costs the producing task an irq_work (a self-IPI: in a VM, an
/// exit to the hypervisor, about 9 us measured on the development machine) and the host a
/// context switch into the reader, which on a small machine takes a CPU from the workload: one
/// per connect made a loopback connect storm nearly twice as slow, and one per exec (even at
/// most every 5 ms per CPU) cost an exec storm 2.6%. So only an exec inside a server tree
/// ([`SERVER_TREE`]: what the exec-to-alert latency is about) wakes the reader, at most once per
/// [`WAKE_GAP_NS`] per CPU; every other record waits for the next wakeup, the reader's flush
/// tick (`capture.flush_interval_ms`) or a quarter-full ring. The wakeup must be forced: the
/// kernel's default only wakes a reader that has consumed everything before this record, which
/// unwoken records make false.
#[cfg(target_arch = "bpf")]
#[inline(always)]
fn wake_now() -> u64 {
    // SAFETY: helper without arguments.
    let now = unsafe { aya_ebpf::helpers::bpf_ktime_get_boot_ns() };
    if let Some(last) = LAST_WAKE.get_ptr_mut(0) {
        // SAFETY: a per-CPU slot; this program cannot be preempted by another user of it.
        let last = unsafe { &mut *last };
        if now.wrapping_sub(*last) < WAKE_GAP_NS {
            return wake_later();
        }
        *last = now;
    }
    aya_ebpf::bindings::BPF_RB_FORCE_WAKEUP as u64
}

/// See [`wake_now`]: an exec storm wakes the reader at most 200 times a second per CPU; a reader
/// woken that recently is often still draining and takes the exec in the same pass, and
/// otherwise its flush tick does within `capture.flush_interval_ms`.
#[cfg(target_arch = "bpf")]
const WAKE_GAP_NS: u64 = 5_000_000;

/// When this CPU last woke the reader (boot-time ns).
#[cfg(target_arch = "bpf")]
#[map]
static LAST_WAKE: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// See [`wake_now`].
#[cfg(target_arch = "bpf")]
#[inline(always)]
fn wake_later() -> u64 {
    use aya_ebpf::bindings::{
        BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE,
    };
    let waiting = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    let size = EVENTS.query(BPF_RB_RING_SIZE as u64);
    if waiting >= size / 4 {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

#[cfg(target_arch = "bpf")]
#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// probe_read and ring buffer helpers are GPL-only.
#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
