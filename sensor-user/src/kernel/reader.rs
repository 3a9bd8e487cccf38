//! Draining the ring buffer asynchronously.

use aya::maps::{MapData, RingBuf};
use tokio::io::{Interest, unix::AsyncFd};

use super::decode::{DecodeError, decode};
use crate::event::Event;

pub struct EventReader {
    ring: AsyncFd<RingBuf<MapData>>,
}

impl EventReader {
    pub fn new(ring: RingBuf<MapData>) -> std::io::Result<Self> {
        // SAFETY: the RingBuf owns its map fd and keeps it open and unchanged until it is
        // dropped, which happens only when this AsyncFd drops.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }?;
        Ok(Self { ring })
    }

    /// Waits until records are there, then decodes up to `max` of them into `out`.
    pub async fn read_batch(
        &mut self,
        out: &mut Vec<Result<Event, DecodeError>>,
        max: usize,
    ) -> std::io::Result<()> {
        let mut guard = self.ring.readable_mut().await?;
        let ring = guard.get_inner_mut();
        let mut taken = 0;
        while taken < max {
            let Some(record) = ring.next() else {
                // Drained: wait for the next wakeup. Records left behind when `max` is reached
                // keep the fd ready, so the next call does not sleep.
                guard.clear_ready();
                return Ok(());
            };
            out.push(decode(&record));
            taken += 1;
        }
        Ok(())
    }
}
