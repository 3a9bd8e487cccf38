//! The bounded in-memory queue between the detection loop and one sink's delivery thread.
//!
//! The detection loop must never wait on a receiver, so a push never blocks: when the queue is
//! full the oldest alert makes room and is counted.

use std::{
    collections::VecDeque,
    sync::{Condvar, Mutex, MutexGuard},
    time::Duration,
};

/// What the delivery thread is asked to do besides delivering.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Requests {
    pub stop: bool,
    pub reopen: bool,
}

#[derive(Default)]
struct State {
    items: VecDeque<bytes::Bytes>,
    requests: Requests,
}

pub struct Queue {
    max: usize,
    state: Mutex<State>,
    wake: Condvar,
}

impl Queue {
    pub fn new(max: usize) -> Queue {
        Queue {
            max: max.max(1),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a consistent VecDeque: keep going.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues an alert; returns true when the oldest queued one was dropped for it.
    pub fn push(&self, item: bytes::Bytes) -> bool {
        let mut state = self.lock();
        let dropped = if state.items.len() >= self.max {
            state.items.pop_front();
            true
        } else {
            false
        };
        state.items.push_back(item);
        drop(state);
        self.wake.notify_one();
        dropped
    }

    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn request(&self, f: impl FnOnce(&mut Requests)) {
        f(&mut self.lock().requests);
        self.wake.notify_one();
    }

    /// Waits until something is queued or requested, or `timeout` passes (forever if `None`);
    /// then takes up to `max` queued items and the pending requests.
    pub fn take(
        &self,
        max: usize,
        timeout: Option<Duration>,
        out: &mut Vec<bytes::Bytes>,
    ) -> Requests {
        let mut state = self.lock();
        let idle = |s: &mut State| s.items.is_empty() && s.requests == Requests::default();
        state = match timeout {
            None => self
                .wake
                .wait_while(state, idle)
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            Some(timeout) => {
                self.wake
                    .wait_timeout_while(state, timeout, idle)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0
            }
        };
        let n = state.items.len().min(max);
        out.extend(state.items.drain(..n));
        let requests = state.requests;
        // stop stays set: the thread checks it again after draining.
        state.requests.reopen = false;
        requests
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_its_oldest() {
        let queue = Queue::new(2);
        assert!(!queue.push(bytes::Bytes::from_static(b"1")));
        assert!(!queue.push(bytes::Bytes::from_static(b"2")));
        assert!(queue.push(bytes::Bytes::from_static(b"3")));
        let mut out = Vec::new();
        queue.take(10, Some(Duration::ZERO), &mut out);
        assert_eq!(
            out,
            [
                bytes::Bytes::from_static(b"2"),
                bytes::Bytes::from_static(b"3")
            ]
        );
    }

    #[test]
    fn take_returns_on_timeout_and_on_requests() {
        let queue = Queue::new(2);
        let mut out = Vec::new();
        assert_eq!(
            queue.take(10, Some(Duration::from_millis(10)), &mut out),
            Requests::default()
        );
        queue.request(|r| r.reopen = true);
        let got = queue.take(10, None, &mut out);
        assert!(got.reopen && !got.stop);
        assert!(out.is_empty());
    }
}
