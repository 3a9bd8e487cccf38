//! lineage-sensor's kernel programs. This file holds the maps, the license and the panic
//! handler; each hook family lives in its own module under `probes/`.
#![no_std]
#![no_main]

mod kernel;
mod probes;

use aya_ebpf::{
    macros::map,
    maps::{LruHashMap, PerCpuArray, RingBuf},
};
use sensor_ebpf::{ConnectEvent, ExecEvent, kind};

// The static names are the map names userspace looks up: they must equal `sensor_ebpf::maps::*`
// (the loader fails with the missing name if they drift apart).

/// Sized by the loader from the config (`ring_buffer_bytes`); this is only a placeholder.
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 23, 0);

#[map]
static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(kind::COUNT, 0);

#[map]
static EXEC_SCRATCH: PerCpuArray<ExecEvent> = PerCpuArray::with_max_entries(1, 0);

/// LRU so that a thread that dies inside connect() cannot leak an entry for good.
#[map]
static PENDING_CONNECT: LruHashMap<u64, ConnectEvent> = LruHashMap::with_max_entries(8192, 0);

/// Counts a record that the ring buffer had no room for; userspace sums it per kind.
#[inline(always)]
fn count_lost(event_kind: u32) {
    if let Some(counter) = LOST.get_ptr_mut(event_kind) {
        // Per-CPU slot: no other writer can race this increment.
        unsafe { *counter += 1 };
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// probe_read and ring buffer helpers are GPL-only.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
