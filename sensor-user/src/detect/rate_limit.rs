//! Rate limiting of identical alerts: one per key and window, with a count of those held back.

use std::hash::{Hash, Hasher as _};

use rustc_hash::{FxHashMap, FxHasher};

pub struct RateLimiter {
    window_ns: u64,
    max_tracked: usize,
    seen: FxHashMap<u64, Slot>,
}

struct Slot {
    window_start_ns: u64,
    suppressed: u64,
}

/// What to do with an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Emit it, reporting this many identical alerts suppressed since the last one emitted.
    Emit {
        suppressed_before: u64,
    },
    Suppress,
}

impl RateLimiter {
    pub fn new(window_secs: u64, max_tracked: usize) -> Self {
        Self {
            window_ns: window_secs.saturating_mul(1_000_000_000),
            max_tracked: max_tracked.max(1),
            seen: FxHashMap::default(),
        }
    }

    /// A 64-bit key of the parts that make two alerts "identical"; a collision only merges two
    /// keys' windows.
    pub fn key(parts: &[&str]) -> u64 {
        let mut h = FxHasher::default();
        for p in parts {
            p.hash(&mut h);
        }
        h.finish()
    }

    pub fn check(&mut self, key: u64, ts_ns: u64) -> Verdict {
        if self.window_ns == 0 {
            return Verdict::Emit {
                suppressed_before: 0,
            };
        }
        if let Some(slot) = self.seen.get_mut(&key) {
            if ts_ns < slot.window_start_ns.saturating_add(self.window_ns) {
                slot.suppressed += 1;
                return Verdict::Suppress;
            }
            let suppressed_before = std::mem::take(&mut slot.suppressed);
            slot.window_start_ns = ts_ns;
            return Verdict::Emit { suppressed_before };
        }
        if self.seen.len() >= self.max_tracked {
            let window = self.window_ns;
            self.seen
                .retain(|_, s| s.window_start_ns.saturating_add(window) > ts_ns);
            if self.seen.len() >= self.max_tracked {
                // Every key is in its window: forget them all rather than grow (counts of the
                // forgotten are still in lineage_sensor_alerts_suppressed_total).
                self.seen.clear();
            }
        }
        self.seen.insert(
            key,
            Slot {
                window_start_ns: ts_ns,
                suppressed: 0,
            },
        );
        Verdict::Emit {
            suppressed_before: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_in_window_are_counted_and_reported_on_the_next_emit() {
        let s = 1_000_000_000;
        let mut rl = RateLimiter::new(60, 100);
        let k = RateLimiter::key(&["rule", "sh -c id"]);
        let other = RateLimiter::key(&["rule", "sh -c whoami"]);
        assert_eq!(
            rl.check(k, 0),
            Verdict::Emit {
                suppressed_before: 0
            }
        );
        assert_eq!(rl.check(k, 10 * s), Verdict::Suppress);
        assert_eq!(rl.check(k, 59 * s), Verdict::Suppress);
        assert_eq!(
            rl.check(other, 59 * s),
            Verdict::Emit {
                suppressed_before: 0
            }
        );
        assert_eq!(
            rl.check(k, 61 * s),
            Verdict::Emit {
                suppressed_before: 2
            }
        );
        assert_eq!(rl.check(k, 62 * s), Verdict::Suppress);
    }

    #[test]
    fn memory_is_bounded() {
        let mut rl = RateLimiter::new(60, 8);
        for i in 0..1000u64 {
            rl.check(i, i);
        }
        assert!(rl.seen.len() <= 8);
    }
}
