//! Everything that knows about aya and the kernel. What leaves this module is typed [`Event`]s,
//! so the rest of the sensor (and `replay`) never sees a ring buffer record.

pub mod connect_entry;
pub mod decode;
pub mod fanotify;
pub mod features;
mod file_id;
pub mod hold;
pub mod hooks;
pub mod kernel_log;
pub mod loader;
mod merge;
pub mod offsets;
pub mod prevent;
pub mod reader;
pub mod tracefs;
mod truncated;

use std::{os::unix::ffi::OsStrExt, sync::Arc};

use aya::maps::{HashMap, MapData, PerCpuArray};
pub use loader::LoadError;
use sensor_ebpf::{kind, maps};

use crate::{
    config::CaptureConfig,
    event::{Event, EventKind},
    metrics::Metrics,
};

/// The most records decoded in one go: bounds the batch, not the ring.
const BATCH_MAX: usize = 4096;

/// bpf(2) map update flag: only create, never replace.
const BPF_NOEXIST: u64 = 1;

/// Attached programs and the reader of their events. Dropping it detaches the programs.
pub struct Capture {
    /// `None` once detached; the ring and counters stay readable for the final drain.
    ebpf: Option<aya::Ebpf>,
    reader: reader::EventReader,
    lost: PerCpuArray<MapData, u64>,
    /// Servers and their descendants, whose execs wake the reader at once (sensor-ebpf's
    /// wakeup policy): userspace adds the servers, the kernel follows their forks and exits.
    server_tree: HashMap<MapData, u32, u32>,
    connect_entry: connect_entry::ConnectEntry,
    /// Execution prevention's maps and watchdog (`dry-run`, `enforce`).
    holds: Option<hold::Holds>,
    hooks: hooks::Hooks,
    kernel_log: Option<loader::KernelLogger>,
    /// File events from fanotify, merged into each batch (see [`merge`]).
    files: Option<fanotify::FileWatch>,
    file_events: Vec<crate::event::File>,
    metrics: Arc<Metrics>,
    decoded: Vec<Result<Event, decode::DecodeError>>,
    /// The lost total last logged by [`Capture::warn_lost`].
    lost_logged: u64,
}

/// Descendants of one newly confirmed server marked at most (a pool or a prefork server has
/// tens to hundreds; the bound keeps a fork bomb below a server from stalling the reader).
const MAX_DESCENDANTS: usize = 4096;

/// After detaching, the ring is drained until it stays empty this long.
const DRAIN_QUIET: std::time::Duration = std::time::Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Prevent(#[from] prevent::PreventError),
    #[error("watching the ring buffer: {0}")]
    Io(#[from] std::io::Error),
}

impl Capture {
    /// Loads and attaches the programs. Must be called inside a tokio runtime.
    pub fn start(config: &CaptureConfig, metrics: Arc<Metrics>) -> Result<Self, CaptureError> {
        Self::start_with(config, None, metrics)
    }

    /// [`Capture::start`] with `[prevention]`'s kernel side.
    pub fn start_with(
        config: &CaptureConfig,
        prevent: Option<&prevent::PreventPlan>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, CaptureError> {
        let mut loaded = loader::load(config, prevent)?;
        let enforce = prevent.is_some_and(|p| {
            p.exec_capture_flags() & sensor_ebpf::capture_flags::EXEC_ENFORCE != 0
        });
        if let Some(holds) = &mut loaded.holds
            && enforce
        {
            holds.start_watchdog().map_err(LoadError::from)?;
        }
        metrics.preset_ring_triggers(&reader::Trigger::ALL.map(reader::Trigger::as_str));
        if let Err(err) = loaded.hooks.register(metrics.registry()) {
            log::warn!("registering the hook metrics: {err}");
        }
        Ok(Self {
            ebpf: Some(loaded.ebpf),
            reader: reader::EventReader::new(
                loaded.ring,
                std::time::Duration::from_millis(config.flush_interval_ms.into()),
            )?,
            lost: loaded.lost,
            server_tree: loaded.server_tree,
            holds: loaded.holds,
            connect_entry: loaded.connect_entry,
            hooks: loaded.hooks,
            kernel_log: loaded.kernel_log,
            files: loaded.file_watch,
            file_events: Vec::new(),
            metrics,
            decoded: Vec::with_capacity(BATCH_MAX),
            lost_logged: 0,
        })
    }

    /// Waits for events and appends the next batch to `out`. Records that fail to decode are
    /// counted and logged, never passed on.
    pub async fn next_batch(&mut self, out: &mut Vec<Event>) -> std::io::Result<()> {
        let from = out.len();
        match &mut self.files {
            None => {
                let trigger = self.reader.read_batch(&mut self.decoded, BATCH_MAX).await?;
                self.metrics.ring_read(trigger.as_str());
            }
            Some(files) => {
                tokio::select! {
                    trigger = self.reader.read_batch(&mut self.decoded, BATCH_MAX) => {
                        self.metrics.ring_read(trigger?.as_str());
                    }
                    ready = files.readable() => ready?,
                }
                // fanotify first, the ring after: every writer's fork and exec, which precede
                // its write, are then in this batch or an earlier one.
                files.drain(&mut self.file_events);
                let room = BATCH_MAX.saturating_sub(self.decoded.len());
                self.reader.take_now(&mut self.decoded, room);
            }
        }
        // A program logs before it sends the record it logs about, so this batch's lines are in.
        if let Some(logger) = &mut self.kernel_log {
            logger.flush();
        }
        for result in self.decoded.drain(..) {
            match result {
                Ok(mut event) => {
                    self.metrics.event(event.kind());
                    if let Event::File(file) = &mut event {
                        if file.path_truncated {
                            let completed = truncated::complete(file);
                            self.metrics.path_truncated(completed);
                        }
                        canonicalise_dotdot(file);
                        file_id::stamp(file);
                    }
                    if let Event::Connect(c) = &event
                        && let Some(action) = c.prevention
                    {
                        self.metrics.prevention.egress(action);
                    }
                    out.push(event);
                }
                Err(err) => {
                    self.metrics.decode_error();
                    log::warn!("dropping undecodable ring buffer record: {err}");
                }
            }
        }
        if !self.file_events.is_empty() {
            for file in &mut self.file_events {
                self.metrics.event(EventKind::File);
                if file.path_truncated {
                    self.metrics.path_truncated(false);
                }
                if file.ino.is_none() {
                    file_id::stamp(file);
                }
            }
            merge::merge(out, from, std::mem::take(&mut self.file_events));
        }
        Ok(())
    }

    /// Marks filesystems mounted below a watched path since start (fanotify only); for the
    /// housekeeping tick.
    pub fn refresh_file_marks(&mut self) {
        if let Some(files) = &mut self.files {
            files.refresh_mounts();
        }
    }

    /// How connect() entry is observed in this session.
    pub fn connect_entry(&self) -> &connect_entry::ConnectEntry {
        &self.connect_entry
    }

    /// The mechanism of every hook family in this session.
    pub fn hooks(&self) -> &hooks::Hooks {
        &self.hooks
    }

    /// Puts processes the engine found to be servers (or below one) into the kernel's server
    /// tree; their children join it at fork. Only latency depends on it: an exec outside the
    /// tree is read on the next flush tick instead of at once.
    /// They are marked confirmed: prevention may refuse their (and their children's) egress.
    /// What the server had forked before its mark was in (a master's workers, forked in the
    /// milliseconds before userspace read its exec) is marked too: listed after the insert, so
    /// that a fork racing with it is either marked by the fork program or listed here.
    pub fn add_to_server_tree(&mut self, pids: impl IntoIterator<Item = u32>) {
        let pids: Vec<u32> = pids.into_iter().collect();
        if pids.is_empty() {
            return;
        }
        let mark = sensor_ebpf::server_tree::CONFIRMED;
        self.insert_server_tree(pids.iter().copied(), mark, 0);
        let proc_root = std::path::Path::new("/proc");
        let below: Vec<u32> = pids
            .iter()
            .flat_map(|&pid| crate::proc_facts::descendants(proc_root, pid, MAX_DESCENDANTS))
            .collect();
        self.insert_server_tree(below, mark, 0);
    }

    /// An entry for a process that exited before the insert would outlive it (the exit program
    /// has already run) and mark whatever process reuses the pid: checked after the insert, so
    /// that an exit in between is seen either by the exit program or here.
    fn insert_server_tree(&mut self, pids: impl IntoIterator<Item = u32>, mark: u32, flags: u64) {
        let proc_root = std::path::Path::new("/proc");
        for pid in pids {
            if let Err(err) = self.server_tree.insert(pid, mark, flags) {
                log::debug!("adding pid {pid} to the server tree: {err}");
                continue;
            }
            if !crate::proc_facts::alive(proc_root, pid) {
                let _ = self.server_tree.remove(&pid);
            }
        }
    }

    /// SIGHUP: the prevention tries take `plan`'s allowances (see [`prevent::refill`]).
    pub fn refresh_prevention(&mut self, plan: &prevent::PreventPlan) {
        let Some(ebpf) = self.ebpf.as_mut() else {
            return;
        };
        match prevent::refill(plan, ebpf) {
            Ok(()) => log::info!("SIGHUP: prevention allowances replaced"),
            Err(err) => log::warn!("SIGHUP: replacing the prevention allowances: {err}"),
        }
    }

    /// Puts every process that already listens on a TCP port into the server tree: the kernel
    /// adds a listener at listen(), which those made before the programs were attached. Without
    /// this, a server recognised only by its role (a renamed binary) and its children would
    /// have their connects dropped in `run`. Returns how many were added.
    pub fn seed_listeners(&mut self, proc_root: &std::path::Path) -> usize {
        let Ok(entries) = std::fs::read_dir(proc_root) else {
            return 0;
        };
        let pids: Vec<u32> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                !crate::proc_facts::listening_ports(&proc_root.join(pid.to_string()), &|_| true)
                    .is_empty()
            })
            .collect();
        let n = pids.len();
        // Not confirmed: a listener is not necessarily a server detection knows, and
        // prevention must not refuse what detection would not alert on. BPF_NOEXIST keeps a
        // confirmation given meanwhile.
        self.insert_server_tree(pids, 0, BPF_NOEXIST);
        log::debug!("{n} processes already listening put in the server tree");
        n
    }

    /// Execution prevention's maps, when `[prevention]` is on.
    pub fn holds(&mut self) -> Option<&mut hold::Holds> {
        self.holds.as_mut()
    }

    /// Detaches every program; events already in the ring can still be read.
    pub fn detach(&mut self) {
        if let Some(holds) = &mut self.holds {
            holds.stop_beating();
        }
        if self.ebpf.take().is_some() {
            log::debug!("programs detached");
        }
    }

    /// Detaches the programs, then hands what is still in the ring to `each`, batch by batch,
    /// until it stays empty for a moment: events of the last instant are not thrown away.
    pub async fn detach_and_drain<E: From<std::io::Error>>(
        &mut self,
        batch: &mut Vec<Event>,
        mut each: impl FnMut(&mut Vec<Event>, Option<&mut hold::Holds>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.detach();
        while let Ok(read) = tokio::time::timeout(DRAIN_QUIET, self.next_batch(batch)).await {
            read?;
            each(batch, self.holds.as_mut())?;
        }
        // Judged or not, nothing stays held once the sensor stops.
        if let Some(holds) = &mut self.holds {
            let n = holds.release_all();
            if n > 0 {
                log::info!("execution prevention: continued {n} process(es) still held");
            }
        }
        Ok(())
    }

    /// Syncs the lost counters and logs a warning with the count when events were lost since
    /// the last warning: loss is never silent.
    pub fn warn_lost(&mut self) {
        let lost = self.sync_lost();
        if lost > self.lost_logged {
            log::warn!(
                "{} events lost in the kernel (ring buffer full); {lost} in total",
                lost - self.lost_logged
            );
            self.lost_logged = lost;
        }
    }

    /// Counts the entries of the per-thread pending maps into the metrics (a leak there would
    /// show as a count that stays up while nothing is in flight), and those of the server tree.
    pub fn sync_map_sizes(&self) {
        let Some(ebpf) = &self.ebpf else { return };
        if let Some(map) = ebpf.map(maps::PENDING_CONNECT) {
            let n = key_count::<sensor_ebpf::ConnectEvent>(map);
            self.metrics.set_kernel_map_entries("pending_connect", n);
        }
        if let Some(map) = ebpf.map(maps::CONNECTING) {
            let n = key_count::<sensor_ebpf::ConnectEvent>(map);
            self.metrics.set_kernel_map_entries("connecting", n);
        }
        if let Some(map) = ebpf.map(maps::PENDING_FILE) {
            let n = key_count::<[u8; sensor_ebpf::PENDING_FILE_BYTES]>(map);
            self.metrics.set_kernel_map_entries("pending_file", n);
        }
        let n = self.server_tree.keys().filter(Result::is_ok).count();
        self.metrics.set_kernel_map_entries("server_tree", n);
    }

    /// Reads the kernel's per-CPU lost counters into the metrics; returns the new total.
    pub fn sync_lost(&self) -> u64 {
        let mut total = 0;
        for (kind, index) in [
            (EventKind::Exec, kind::EXEC),
            (EventKind::Fork, kind::FORK),
            (EventKind::Exit, kind::EXIT),
            (EventKind::Connect, kind::CONNECT),
            (EventKind::File, kind::FILE),
            (EventKind::Listen, kind::LISTEN),
        ] {
            match self.lost.get(&index, 0) {
                Ok(per_cpu) => {
                    let mut sum: u64 = per_cpu.iter().sum();
                    if kind == EventKind::File
                        && let Some(files) = &self.files
                    {
                        // Each overflow stands for at least one event fanotify dropped.
                        sum += files.overflows;
                    }
                    self.metrics.set_lost(kind, sum);
                    total += sum;
                }
                Err(err) => log::warn!("reading the lost-event counter: {err}"),
            }
        }
        total
    }
}

/// Keys of a hash map keyed by pid_tgid, one syscall each (the maps hold at most 8,192). `V` only
/// has to have the value's size: values are not read.
fn key_count<V: aya::Pod>(map: &aya::maps::Map) -> usize {
    match aya::maps::HashMap::<&MapData, u64, V>::try_from(map) {
        Ok(map) => map.keys().filter(Result::is_ok).count(),
        Err(err) => {
            // Only a wire-format drift between the two sides can get here: say so, loudly.
            log::warn!("cannot count a pending map's entries: {err}");
            0
        }
    }
}

/// The kernel resolves rename and link targets against the cwd or dirfd but does not normalise
/// `..` in the name; while the file still exists its canonical path is the one rules must see.
fn canonicalise_dotdot(file: &mut crate::event::File) {
    if !file.path.contains("/..") {
        return;
    }
    let Ok(raw) = crate::escape::unescape(&file.path) else {
        return;
    };
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(&raw));
    if let (Some(parent), Some(name)) = (path.parent(), path.file_name())
        && let Ok(dir) = std::fs::canonicalize(parent)
    {
        file.path = crate::escape::escape_bytes(dir.join(name).as_os_str().as_bytes());
    }
}
