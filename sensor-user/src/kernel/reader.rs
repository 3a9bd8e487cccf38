//! Draining the ring buffer asynchronously.

use std::time::Duration;

use aya::maps::{MapData, RingBuf};
use tokio::{
    io::{Interest, unix::AsyncFd},
    time::{Interval, MissedTickBehavior},
};

use super::decode::{DecodeError, decode};
use crate::event::Event;

/// What made the reader take a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The kernel woke the reader.
    Wakeup,
    /// The flush tick found records waiting.
    Tick,
}

impl Trigger {
    pub const ALL: [Trigger; 2] = [Trigger::Wakeup, Trigger::Tick];

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Wakeup => "wakeup",
            Trigger::Tick => "tick",
        }
    }
}

pub struct EventReader {
    ring: AsyncFd<RingBuf<MapData>>,
    /// Only execs below servers wake the reader (sensor-ebpf's wakeup policy); the rest is taken
    /// on this tick.
    flush: Interval,
}

impl EventReader {
    pub fn new(ring: RingBuf<MapData>, flush_interval: Duration) -> std::io::Result<Self> {
        // SAFETY: the RingBuf owns its map fd and keeps it open and unchanged until it is
        // dropped, which happens only when this AsyncFd drops.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }?;
        let mut flush = tokio::time::interval(flush_interval.max(Duration::from_millis(1)));
        flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ok(Self { ring, flush })
    }

    /// Waits until records are there, then decodes up to `max` of them into `out`.
    pub async fn read_batch(
        &mut self,
        out: &mut Vec<Result<Event, DecodeError>>,
        max: usize,
    ) -> std::io::Result<Trigger> {
        loop {
            tokio::select! {
                guard = self.ring.readable_mut() => {
                    let mut guard = guard?;
                    let taken = take(guard.get_inner_mut(), out, max);
                    if taken < max {
                        // Drained: the next read waits for the next wakeup, so that records
                        // written without one are counted as the tick's. (tokio keeps a
                        // wakeup that arrived after this guard was taken.) Records left behind
                        // when `max` is reached keep the fd ready instead.
                        guard.clear_ready();
                    }
                    if taken > 0 {
                        return Ok(Trigger::Wakeup);
                    }
                }
                _ = self.flush.tick() => {
                    if take(self.ring.get_mut(), out, max) > 0 {
                        return Ok(Trigger::Tick);
                    }
                }
            }
        }
    }
}

impl EventReader {
    /// Decodes up to `max` records that are there now, without waiting.
    pub fn take_now(&mut self, out: &mut Vec<Result<Event, DecodeError>>, max: usize) -> usize {
        take(self.ring.get_mut(), out, max)
    }
}

/// Decodes up to `max` records; returns how many.
fn take(
    ring: &mut RingBuf<MapData>,
    out: &mut Vec<Result<Event, DecodeError>>,
    max: usize,
) -> usize {
    let mut taken = 0;
    while taken < max {
        let Some(record) = ring.next() else { break };
        out.push(decode(&record));
        taken += 1;
    }
    taken
}
