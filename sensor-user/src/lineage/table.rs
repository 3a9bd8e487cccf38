//! The process table: entries by entity id, the live pid -> entity map, and bounded eviction.

use std::{collections::VecDeque, sync::Arc};

use rustc_hash::FxHashMap;

use super::{Annotation, EntityId, Image, Process, SeedProcess};
use crate::event::{Exec, Exit, Fork};

/// How long exited processes stay and how many entries the table may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Exited processes stay resolvable this long, for late and reordered events.
    pub exit_grace_ns: u64,
    /// Hard cap on entries, whatever the churn and however many exits were lost.
    pub max_entries: usize,
    /// How far a seeded start time (clock-tick precision) may be from the kernel's.
    pub seed_tolerance_ns: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            exit_grace_ns: 120_000_000_000,
            max_entries: 200_000,
            seed_tolerance_ns: 20_000_000,
        }
    }
}

/// Counters for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStats {
    pub evicted_after_grace: u64,
    pub evicted_over_cap: u64,
    /// Exits of processes the table never knew.
    pub unknown_exits: u64,
}

pub struct ProcessTable<A> {
    procs: FxHashMap<EntityId, Process<A>>,
    live: FxHashMap<u32, EntityId>,
    exited: VecDeque<(u64, EntityId)>,
    containers: super::ContainerIndex,
    limits: Limits,
    now_ns: u64,
    stats: TableStats,
}

/// Ancestors are followed at most this deep, which also stops any cycle that bad input could make.
const MAX_DEPTH: usize = 64;

impl<A: Annotation> ProcessTable<A> {
    pub fn new(limits: Limits) -> Self {
        Self {
            procs: FxHashMap::default(),
            live: FxHashMap::default(),
            exited: VecDeque::new(),
            containers: super::ContainerIndex::default(),
            limits,
            now_ns: 0,
            stats: TableStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.procs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    pub fn stats(&self) -> TableStats {
        self.stats
    }

    /// cgroup id -> container (from [`super::CgroupIndex`], used for processes seen from now on)
    /// and container id -> names.
    pub fn containers(&self) -> &super::ContainerIndex {
        &self.containers
    }

    pub fn containers_mut(&mut self) -> &mut super::ContainerIndex {
        &mut self.containers
    }

    pub fn get(&self, id: EntityId) -> Option<&Process<A>> {
        self.procs.get(&id)
    }

    pub fn get_mut(&mut self, id: EntityId) -> Option<&mut Process<A>> {
        self.procs.get_mut(&id)
    }

    /// The running process with this pid.
    pub fn live(&self, pid: u32) -> Option<&Process<A>> {
        self.live.get(&pid).and_then(|id| self.procs.get(id))
    }

    pub fn parent(&self, id: EntityId) -> Option<&Process<A>> {
        self.procs
            .get(&id)
            .and_then(|p| p.parent)
            .and_then(|pid| self.procs.get(&pid))
    }

    /// The known ancestors of `id`, nearest first (the process itself excluded).
    pub fn ancestors(&self, id: EntityId) -> impl Iterator<Item = &Process<A>> {
        let mut next = self.procs.get(&id).and_then(|p| p.parent);
        let mut depth = 0;
        std::iter::from_fn(move || {
            if depth >= MAX_DEPTH {
                return None;
            }
            depth += 1;
            let p = self.procs.get(&next?)?;
            next = p.parent;
            Some(p)
        })
    }

    /// The entity a `(pid, start_ns)` pair from an event refers to. Seeded entries match within
    /// the seed tolerance, since /proc gives start times in clock ticks only.
    pub fn resolve(&self, pid: u32, start_ns: u64) -> Option<EntityId> {
        let exact = EntityId::new(pid, start_ns);
        if self.procs.contains_key(&exact) {
            return Some(exact);
        }
        let live = *self.live.get(&pid)?;
        let p = self.procs.get(&live)?;
        let close = p.id.start_ns.abs_diff(start_ns) <= self.limits.seed_tolerance_ns;
        // An exit without a start time (older records) means the running process.
        (start_ns == 0 || (p.seeded && close)).then_some(live)
    }

    /// A new process. Returns its id and whether the entry is new; an entry that already existed
    /// (its exec came first) gets its parent link here.
    pub fn fork(&mut self, f: Fork) -> (EntityId, bool) {
        self.advance(f.ts_ns);
        let id = EntityId::new(f.pid, f.start_ns);
        let parent = self.parent_candidate(f.ppid, f.start_ns);
        if let Some(existing) = self.resolve(f.pid, f.start_ns) {
            if let Some(p) = self.procs.get_mut(&existing) {
                if p.parent.is_none() {
                    p.parent = parent;
                }
                p.last_seen_ns = f.ts_ns;
            }
            return (existing, false);
        }
        let (image, annotation) = parent
            .and_then(|pid| self.procs.get(&pid))
            .map(|p| (p.image.clone(), p.annotation.clone()))
            .unwrap_or_default();
        let container = self.containers.by_cgroup(f.cgroup_id).cloned();
        self.insert(Process {
            id,
            ppid: f.ppid,
            parent,
            image,
            comm: f.comm,
            uid: f.uid,
            cgroup_id: f.cgroup_id,
            container,
            execs: 0,
            seeded: false,
            exited_ns: None,
            last_seen_ns: f.ts_ns,
            annotation,
        });
        (id, true)
    }

    /// A process replaced its image. Creates the entry when its fork was not seen.
    pub fn exec(&mut self, e: Exec) -> EntityId {
        self.advance(e.ts_ns);
        let image = Arc::new(Image {
            exe_id: e.exe_id(),
            exe: e.exe,
            argv: e.argv,
            argv_truncated: e.argv_truncated,
        });
        let container = self.containers.by_cgroup(e.cgroup_id).cloned();
        if let Some(id) = self.resolve(e.pid, e.start_ns) {
            let parent = self.parent_candidate(e.ppid, id.start_ns);
            if let Some(p) = self.procs.get_mut(&id) {
                p.image = image;
                p.comm = e.comm;
                p.uid = e.uid;
                p.ppid = e.ppid;
                if p.cgroup_id != e.cgroup_id || p.container.is_none() {
                    p.cgroup_id = e.cgroup_id;
                    p.container = container.or(p.container.take());
                }
                p.execs = p.execs.saturating_add(1);
                p.last_seen_ns = e.ts_ns;
                // A re-parented orphan keeps its parent at birth; only a missing link is filled.
                if p.parent.is_none() {
                    p.parent = parent.filter(|&pp| pp != id);
                }
            }
            return id;
        }
        let id = EntityId::new(e.pid, e.start_ns);
        let parent = self.parent_candidate(e.ppid, e.start_ns);
        self.insert(Process {
            id,
            ppid: e.ppid,
            parent,
            image,
            comm: e.comm,
            uid: e.uid,
            cgroup_id: e.cgroup_id,
            container,
            execs: 1,
            seeded: false,
            exited_ns: None,
            last_seen_ns: e.ts_ns,
            annotation: A::default(),
        });
        id
    }

    /// A process ended; it stays resolvable for the grace period.
    pub fn exit(&mut self, x: &Exit) -> Option<EntityId> {
        self.advance(x.ts_ns);
        let Some(id) = self.resolve(x.pid, x.start_ns) else {
            self.stats.unknown_exits += 1;
            return None;
        };
        self.mark_exited(id, x.ts_ns);
        Some(id)
    }

    /// Adds a process found in /proc. Parents are linked by pid, so seed in start-time order.
    pub fn seed(&mut self, s: SeedProcess) -> EntityId {
        let id = EntityId::new(s.pid, s.start_ns);
        let parent = self.parent_candidate(s.ppid, s.start_ns);
        self.insert(Process {
            id,
            ppid: s.ppid,
            parent,
            image: Arc::new(Image {
                exe: s.exe,
                argv: s.argv,
                argv_truncated: false,
                exe_id: None,
            }),
            comm: s.comm,
            uid: s.uid,
            cgroup_id: 0,
            container: s.container.map(Arc::new),
            execs: 0,
            seeded: true,
            exited_ns: None,
            last_seen_ns: s.start_ns,
            annotation: A::default(),
        });
        id
    }

    /// The live process with pid `ppid`, if it can be the parent of a process started at
    /// `child_start_ns` (a parent never starts after its child; pid reuse could make it look so).
    fn parent_candidate(&self, ppid: u32, child_start_ns: u64) -> Option<EntityId> {
        let id = *self.live.get(&ppid)?;
        let p = self.procs.get(&id)?;
        let slack = if p.seeded {
            self.limits.seed_tolerance_ns
        } else {
            0
        };
        (p.id.start_ns <= child_start_ns.saturating_add(slack)).then_some(id)
    }

    fn insert(&mut self, p: Process<A>) {
        let id = p.id;
        // The pid's previous holder must have exited (its exit event was lost or is late).
        if let Some(old) = self.live.insert(id.pid, id)
            && old != id
        {
            let now = self.now_ns;
            self.mark_exited(old, now);
            self.live.insert(id.pid, id);
        }
        self.procs.insert(id, p);
        if self.procs.len() > self.limits.max_entries {
            self.enforce_cap();
        }
    }

    fn mark_exited(&mut self, id: EntityId, ts_ns: u64) {
        if let Some(p) = self.procs.get_mut(&id)
            && p.exited_ns.is_none()
        {
            p.exited_ns = Some(ts_ns);
            p.last_seen_ns = p.last_seen_ns.max(ts_ns);
            self.exited.push_back((ts_ns, id));
        }
        if self.live.get(&id.pid) == Some(&id) {
            self.live.remove(&id.pid);
        }
    }

    /// Gives back the capacity a past peak left in the maps (they never shrink by themselves).
    pub fn shrink_to_fit(&mut self) {
        self.procs.shrink_to_fit();
        self.live.shrink_to_fit();
        self.exited.shrink_to_fit();
    }

    /// Moves the table's clock (the newest event time seen) and evicts what outlived its grace.
    /// `run` also calls it on a timer: on a quiet host no event would move the clock, and the
    /// last burst's exited entries would stay until the next one.
    pub fn advance(&mut self, ts_ns: u64) {
        if ts_ns <= self.now_ns {
            return;
        }
        self.now_ns = ts_ns;
        while let Some(&(exited, id)) = self.exited.front() {
            if exited.saturating_add(self.limits.exit_grace_ns) > self.now_ns {
                break;
            }
            self.exited.pop_front();
            if self.procs.get(&id).is_some_and(|p| p.exited_ns.is_some()) {
                self.procs.remove(&id);
                self.stats.evicted_after_grace += 1;
            }
        }
    }

    /// Over the cap: exited entries go first, oldest exit first; then the least recently seen
    /// live entries (whose exits were probably lost), unpinned before pinned, an eighth of the cap
    /// at once so the scan is rare.
    fn enforce_cap(&mut self) {
        let max = self.limits.max_entries;
        while self.procs.len() > max {
            let Some((_, id)) = self.exited.pop_front() else {
                break;
            };
            if self.procs.get(&id).is_some_and(|p| p.exited_ns.is_some()) {
                self.procs.remove(&id);
                self.stats.evicted_over_cap += 1;
            }
        }
        if self.procs.len() <= max {
            return;
        }
        let target = max - max / 8;
        let excess = self.procs.len().saturating_sub(target);
        let mut victims: Vec<(bool, u64, EntityId)> = self
            .procs
            .values()
            .map(|p| (p.annotation.pinned(), p.last_seen_ns, p.id))
            .collect();
        victims.sort_unstable();
        for &(_, _, id) in victims.iter().take(excess) {
            self.procs.remove(&id);
            if self.live.get(&id.pid) == Some(&id) {
                self.live.remove(&id.pid);
            }
            self.stats.evicted_over_cap += 1;
        }
    }
}

#[cfg(test)]
mod tests;
