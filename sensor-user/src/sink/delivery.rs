//! The delivery machinery every sink shares: its queue, its spool, retries with backoff and the
//! accounting of what was sent, failed and dropped. A sink itself only knows how to hand over
//! one batch ([`Transport`]).

use std::{
    collections::VecDeque,
    sync::Arc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::{SinkError, queue::Queue, spool::Spool};
use crate::metrics::Metrics;

/// How a batch went.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Records the receiver refused for good (malformed for it, too large for a datagram):
    /// retrying would block everything behind them, so they are dropped and counted.
    pub rejected: u64,
}

/// One receiver. `send` hands over a batch in order; `Err` means nothing of it can be assumed
/// delivered, and the whole batch is retried later (receivers de-duplicate on `event.id`).
pub trait Transport: Send {
    fn send(&mut self, batch: &[Vec<u8>]) -> Result<Delivered, String>;
    /// SIGHUP: reopen what logrotate may have moved away.
    fn reopen(&mut self) {}
}

/// First wait after a failed attempt; it doubles up to the sink's `retry_max_secs`.
const RETRY_INITIAL: Duration = Duration::from_millis(250);
/// At shutdown, undelivered alerts of a sink without spool get this long to go out.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

pub struct Settings {
    pub name: String,
    pub batch_max: usize,
    pub retry_max: Duration,
}

/// Alerts accepted but not delivered: on disk, or (spool off) in memory up to the queue bound.
enum Backlog {
    Spool(Spool),
    Memory {
        items: VecDeque<Arc<[u8]>>,
        max: usize,
    },
}

impl Backlog {
    fn pending(&self) -> u64 {
        match self {
            Backlog::Spool(spool) => spool.pending(),
            Backlog::Memory { items, .. } => items.len() as u64,
        }
    }

    /// Returns how many of the oldest were dropped to stay within the bound.
    fn append(&mut self, records: &[Arc<[u8]>]) -> Result<u64, SinkError> {
        match self {
            Backlog::Spool(spool) => {
                let dropped = spool.append(records)?;
                spool.sync();
                Ok(dropped)
            }
            Backlog::Memory { items, max } => {
                items.extend(records.iter().cloned());
                let over = items.len().saturating_sub(*max);
                items.drain(..over);
                Ok(over as u64)
            }
        }
    }
}

/// A running sink: its queue and delivery thread.
pub struct Worker {
    pub name: String,
    queue: Arc<Queue>,
    metrics: Arc<Metrics>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Opens the spool (when `spool` is given) and starts the delivery thread, which first
    /// replays what the spool holds.
    pub fn start(
        settings: Settings,
        transport: Box<dyn Transport>,
        queue_max: usize,
        spool: Option<Spool>,
        metrics: Arc<Metrics>,
    ) -> Result<Worker, SinkError> {
        let queue = Arc::new(Queue::new(queue_max));
        let backlog = match spool {
            Some(spool) => {
                if spool.pending() > 0 {
                    log::info!(
                        "sink {}: replaying {} spooled alerts",
                        settings.name,
                        spool.pending()
                    );
                }
                Backlog::Spool(spool)
            }
            None => Backlog::Memory {
                items: VecDeque::new(),
                max: queue_max,
            },
        };
        metrics.sink_init(&settings.name);
        let name = settings.name.clone();
        let thread = std::thread::Builder::new()
            .name(format!("sink-{name}"))
            .spawn({
                let queue = queue.clone();
                let metrics = metrics.clone();
                move || {
                    Delivery {
                        settings,
                        transport,
                        queue,
                        backlog,
                        metrics,
                    }
                    .run()
                }
            })
            .map_err(|source| SinkError::Thread {
                sink: name.clone(),
                source,
            })?;
        Ok(Worker {
            name,
            queue,
            metrics,
            thread: Some(thread),
        })
    }

    /// Never blocks: a full queue drops its oldest alert (counted).
    pub fn push(&self, alert: Arc<[u8]>) {
        if self.queue.push(alert) {
            self.metrics.sink_dropped(&self.name, "queue_full", 1);
        }
    }

    pub fn reopen(&self) {
        self.queue.request(|r| r.reopen = true);
    }

    /// Spools what is queued, gives a last delivery attempt and ends the thread.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.queue.request(|r| r.stop = true);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            log::error!("sink {}: delivery thread panicked", self.name);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

struct Delivery {
    settings: Settings,
    transport: Box<dyn Transport>,
    queue: Arc<Queue>,
    backlog: Backlog,
    metrics: Arc<Metrics>,
}

impl Delivery {
    fn run(mut self) {
        let mut retry = RETRY_INITIAL;
        let mut next_attempt = Instant::now();
        let mut failing = false;
        let mut taken = Vec::new();
        loop {
            let now = Instant::now();
            let wait = if self.backlog.pending() == 0 {
                None
            } else {
                Some(next_attempt.saturating_duration_since(now))
            };
            let requests = self.queue.take(usize::MAX, wait, &mut taken);
            if requests.reopen {
                self.transport.reopen();
            }
            self.accept(&mut taken);
            if requests.stop {
                self.finish();
                return;
            }
            if Instant::now() < next_attempt {
                continue;
            }
            match self.deliver_all() {
                Ok(()) => {
                    if failing {
                        log::info!("sink {}: receiver back, backlog delivered", self.name());
                    }
                    failing = false;
                    retry = RETRY_INITIAL;
                }
                Err(err) => {
                    self.metrics.sink_failed(&self.settings.name);
                    if !failing {
                        log::warn!(
                            "sink {}: delivery failed: {err}; {} alerts kept for retry",
                            self.name(),
                            self.backlog.pending()
                        );
                    } else {
                        log::debug!("sink {}: retry failed: {err}", self.name());
                    }
                    failing = true;
                    next_attempt = Instant::now() + retry;
                    retry = (retry * 2).min(self.settings.retry_max);
                }
            }
        }
    }

    fn name(&self) -> &str {
        &self.settings.name
    }

    /// Moves taken alerts into the backlog (the spool, when there is one).
    fn accept(&mut self, taken: &mut Vec<Arc<[u8]>>) {
        if taken.is_empty() {
            return;
        }
        match self.backlog.append(taken) {
            Ok(0) => {}
            Ok(dropped) => {
                self.metrics
                    .sink_dropped(&self.settings.name, "backlog_full", dropped);
                log::warn!(
                    "sink {}: backlog full, dropped the {dropped} oldest alerts",
                    self.name()
                );
            }
            Err(err) => {
                // Disk trouble must not stop the delivery of what is spooled already; these
                // alerts are lost, and counted.
                log::error!("sink {}: {err}; alerts dropped", self.name());
                self.metrics
                    .sink_dropped(&self.settings.name, "spool_error", taken.len() as u64);
            }
        }
        taken.clear();
        self.update_gauges();
    }

    fn update_gauges(&self) {
        let bytes = match &self.backlog {
            Backlog::Spool(spool) => spool.bytes(),
            Backlog::Memory { .. } => 0,
        };
        self.metrics
            .sink_backlog(&self.settings.name, self.backlog.pending(), bytes);
    }

    /// Sends the backlog, oldest first, until it is empty or an attempt fails.
    fn deliver_all(&mut self) -> Result<(), String> {
        let batch_max = self.settings.batch_max;
        loop {
            let result = match &mut self.backlog {
                Backlog::Spool(spool) => {
                    let batch = spool.read(batch_max).map_err(|e| e.to_string())?;
                    if batch.records.is_empty() {
                        return Ok(());
                    }
                    let delivered = self.transport.send(&batch.records)?;
                    let n = batch.records.len() as u64;
                    spool.ack(batch.end, n).map_err(|e| e.to_string())?;
                    (n, delivered)
                }
                Backlog::Memory { items, .. } => {
                    if items.is_empty() {
                        return Ok(());
                    }
                    let n = items.len().min(batch_max);
                    let batch: Vec<Vec<u8>> = items.iter().take(n).map(|r| r.to_vec()).collect();
                    let delivered = self.transport.send(&batch)?;
                    items.drain(..n);
                    (n as u64, delivered)
                }
            };
            let (n, delivered) = result;
            self.metrics
                .sink_sent(&self.settings.name, n - delivered.rejected);
            if delivered.rejected > 0 {
                self.metrics
                    .sink_dropped(&self.settings.name, "rejected", delivered.rejected);
            }
            self.update_gauges();
            // New alerts wait in the queue meanwhile; bring them in so its bound is not hit.
            let mut taken = Vec::new();
            self.queue
                .take(usize::MAX, Some(Duration::ZERO), &mut taken);
            self.accept(&mut taken);
        }
    }

    /// Shutdown: what is spooled stays for the next start; a memory backlog gets a short grace.
    fn finish(&mut self) {
        let mut taken = Vec::new();
        while !self.queue.is_empty() {
            self.queue
                .take(usize::MAX, Some(Duration::ZERO), &mut taken);
            self.accept(&mut taken);
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while self.backlog.pending() > 0 && Instant::now() < deadline {
            if self.deliver_all().is_err() {
                if matches!(self.backlog, Backlog::Spool(_)) {
                    break;
                }
                std::thread::sleep(RETRY_INITIAL);
            }
        }
        match &mut self.backlog {
            Backlog::Spool(spool) => {
                spool.sync();
                if spool.pending() > 0 {
                    log::info!(
                        "sink {}: {} alerts stay spooled for the next start",
                        self.settings.name,
                        spool.pending()
                    );
                }
            }
            Backlog::Memory { items, .. } if !items.is_empty() => {
                log::error!(
                    "sink {}: {} alerts undelivered at shutdown (no spool)",
                    self.settings.name,
                    items.len()
                );
                self.metrics
                    .sink_dropped(&self.settings.name, "shutdown", items.len() as u64);
            }
            Backlog::Memory { .. } => {}
        }
    }
}
