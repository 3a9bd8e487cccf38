//! Incidents: alerts of one server-rooted process tree close together in time share an id, so a
//! SIEM sees one attack rather than twenty lines.

use rustc_hash::FxHashMap;
use sha2::{Digest as _, Sha256};

use crate::lineage::EntityId;

pub struct Incidents {
    span_ns: u64,
    open: FxHashMap<EntityId, Open>,
}

struct Open {
    id: String,
    last_ns: u64,
}

/// Open incidents kept before quiet ones are dropped.
const SWEEP_AT: usize = 1024;

impl Incidents {
    pub fn new(span_secs: u64) -> Self {
        Self {
            span_ns: span_secs.saturating_mul(1_000_000_000),
            open: FxHashMap::default(),
        }
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
        if let Some(o) = self.open.get_mut(&root)
            && ts_ns.saturating_sub(o.last_ns) <= self.span_ns
        {
            o.last_ns = o.last_ns.max(ts_ns);
            return o.id.clone();
        }
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
}
