//! Handing freed heap back to the system. glibc keeps freed memory mapped for reuse, so a peak
//! (the BTF parse at start-up, a process table swollen by a fork storm) would otherwise stay in
//! the sensor's RSS for good, which is what an SRE's memory limit and dashboards see.

/// Entries the process table must have shrunk by since its peak before the heap is trimmed: a
/// churn, not the ordinary coming and going of processes.
const SHRINK_ENTRIES: usize = 2048;

/// Returns free heap pages to the system.
pub fn give_back() {
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
}

/// Says when the process table has shrunk well below its peak: then its maps should shrink and
/// the heap be given back.
#[derive(Debug, Default)]
pub struct TrimAfterShrink {
    peak: usize,
}

impl TrimAfterShrink {
    /// Feeds the table size; true once per large shrink.
    pub fn due(&mut self, entries: usize) -> bool {
        self.peak = self.peak.max(entries);
        if self.peak - entries < SHRINK_ENTRIES {
            return false;
        }
        self.peak = entries;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_only_after_a_large_shrink() {
        let mut trim = TrimAfterShrink::default();
        assert!(!trim.due(100));
        assert!(!trim.due(12_000));
        assert!(!trim.due(10_000), "a small shrink");
        assert!(trim.due(50), "the churn is over");
        assert!(!trim.due(40), "the peak restarts from there");
    }
}
