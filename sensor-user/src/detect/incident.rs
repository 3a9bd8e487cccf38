//! Incidents: alerts of one server-rooted process tree close together in time share an id, so a
//! SIEM sees one attack rather than twenty lines.

use rustc_hash::FxHashMap;
use sha2::{Digest as _, Sha256};

use crate::lineage::EntityId;

pub struct Incidents {
    span_ns: u64,
    open: FxHashMap<EntityId, Open>,
    /// Incidents open when a previous run of the sensor stopped or was killed, not yet claimed
    /// by an alert of this run. A root seeded from /proc has its start time in clock ticks, not
    /// the kernel's nanoseconds, so these are matched by pid and a start time within
    /// [`SEEDED_START_SLACK_NS`].
    restored: Vec<(EntityId, Open)>,
    /// An incident was opened since the last [`Self::take_dirty`].
    dirty: bool,
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Open {
    id: String,
    last_ns: u64,
}

/// /proc gives start times in clock ticks (10 ms at USER_HZ 100, never coarser than 1 s / 100
/// on Linux); the kernel gives nanoseconds.
const SEEDED_START_SLACK_NS: u64 = 20_000_000;

/// What a state file holds: the open incidents of one boot.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// Event times are nanoseconds since boot: a snapshot of another boot means nothing.
    boot_wall_ns: u64,
    open: Vec<(u32, u64, Open)>,
}

/// Two readings of the boot time (wall clock minus uptime) of one boot differ by clock steps;
/// two boots differ by at least the reboot's duration.
const SAME_BOOT_NS: u64 = 2_000_000_000;

/// Open incidents kept before quiet ones are dropped.
const SWEEP_AT: usize = 1024;

impl Incidents {
    pub fn new(span_secs: u64) -> Self {
        Self {
            span_ns: span_secs.saturating_mul(1_000_000_000),
            open: FxHashMap::default(),
            restored: Vec::new(),
            dirty: false,
        }
    }

    /// The open incidents, to be written to the state file.
    pub fn snapshot(&self, boot_wall_ns: u64) -> Snapshot {
        let open = self
            .open
            .iter()
            .map(|(root, o)| (root.pid, root.start_ns, o.clone()))
            .chain(
                self.restored
                    .iter()
                    .map(|(root, o)| (root.pid, root.start_ns, o.clone())),
            )
            .collect();
        Snapshot { boot_wall_ns, open }
    }

    /// Takes over the incidents of a previous run on the same boot; a snapshot of another boot
    /// is ignored. Returns how many were taken over.
    pub fn restore(&mut self, snapshot: Snapshot, boot_wall_ns: u64) -> usize {
        if snapshot.boot_wall_ns.abs_diff(boot_wall_ns) > SAME_BOOT_NS {
            return 0;
        }
        self.restored = snapshot
            .open
            .into_iter()
            .map(|(pid, start_ns, o)| (EntityId::new(pid, start_ns), o))
            .collect();
        self.restored.len()
    }

    /// Whether an incident was opened or taken over since the last call.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// The incident of an alert at `ts_ns` in the tree rooted at `root`; a new one when the tree
    /// has been quiet for longer than the span. The id is derived from the host, the root and the
    /// incident's first alert time, so a replay yields the same ids.
    pub fn assign(&mut self, host: &str, root: EntityId, ts_ns: u64) -> String {
        if self.open.len() >= SWEEP_AT {
            let span = self.span_ns;
            self.open
                .retain(|_, o| o.last_ns.saturating_add(span) >= ts_ns);
        }
        if !self.open.contains_key(&root)
            && let Some(i) = self.restored.iter().position(|(r, _)| {
                r.pid == root.pid && r.start_ns.abs_diff(root.start_ns) <= SEEDED_START_SLACK_NS
            })
        {
            let (_, o) = self.restored.swap_remove(i);
            self.open.insert(root, o);
        }
        if let Some(o) = self.open.get_mut(&root)
            && ts_ns.saturating_sub(o.last_ns) <= self.span_ns
        {
            if ts_ns > o.last_ns {
                o.last_ns = ts_ns;
                // Moving the end matters across a restart too: the next run extends from it.
                self.dirty = true;
            }
            return o.id.clone();
        }
        self.dirty = true;
        let id = digest_hex(&[
            host.as_bytes(),
            root.to_string().as_bytes(),
            &ts_ns.to_le_bytes(),
        ]);
        self.open.insert(
            root,
            Open {
                id: id.clone(),
                last_ns: ts_ns,
            },
        );
        id
    }
}

/// 32 hex digits of SHA-256 over the parts (length-prefixed so parts cannot run together).
pub fn digest_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_within_span_share_an_incident_and_a_gap_starts_a_new_one() {
        let mut inc = Incidents::new(300);
        let root = EntityId::new(100, 5);
        let other = EntityId::new(200, 5);
        let s = 1_000_000_000;
        let a = inc.assign("h", root, 10 * s);
        assert_eq!(inc.assign("h", root, 200 * s), a);
        assert_eq!(
            inc.assign("h", root, 490 * s),
            a,
            "sliding: 290 s after the previous"
        );
        let b = inc.assign("h", other, 491 * s);
        assert_ne!(a, b);
        let c = inc.assign("h", root, 900 * s);
        assert_ne!(a, c, "a 410 s gap starts a new incident");
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn a_restarted_sensor_continues_the_incident_of_a_seeded_root() {
        let s = 1_000_000_000;
        let mut before = Incidents::new(300);
        let exact = EntityId::new(100, 5 * s + 123_456);
        let a = before.assign("h", exact, 10 * s);
        assert!(before.take_dirty());
        let snapshot = before.snapshot(77);

        let mut after = Incidents::new(300);
        assert_eq!(after.restore(snapshot, 77 + s), 1);
        // Seeded from /proc: the start time is cut to clock ticks.
        let seeded = EntityId::new(100, 5 * s);
        assert_eq!(after.assign("h", seeded, 20 * s), a);
        assert_ne!(after.assign("h", EntityId::new(101, 5 * s), 20 * s), a);

        let mut other_boot = Incidents::new(300);
        let snapshot = after.snapshot(77);
        assert_eq!(other_boot.restore(snapshot, 77 + 3600 * s), 0);
        assert_ne!(other_boot.assign("h", seeded, 20 * s), a);
    }
}
