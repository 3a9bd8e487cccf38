//! The delivery machinery every sink shares: its queue, its spool, retries with backoff and the
//! accounting of what was sent, failed and dropped. A sink itself only knows how to hand over
//! one batch ([`Transport`]).

use std::{
    collections::VecDeque,
    sync::Arc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use bytes::Bytes;

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
/// Each record is the alert as encoded once ([`Bytes`] shared with every other sink, the
/// spool and the retries): a transport frames it around, never copies it into a new record.
pub trait Transport: Send {
    fn send(&mut self, batch: &[Bytes]) -> Result<Delivered, String>;
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
    /// `memory` holds, in order after the spooled ones, what the spool could not take (a full
    /// or failing disk): delivery never waits on the disk, and the spool takes them back once it
    /// can be written again.
    Spool {
        spool: Spool,
        memory: VecDeque<Bytes>,
        max: usize,
        /// The spool failed and the episode was logged; cleared by the next write that succeeds.
        failing: bool,
    },
    Memory {
        items: VecDeque<Bytes>,
        max: usize,
    },
}

/// What an append gave up on to stay within bounds.
#[derive(Debug, Default, PartialEq, Eq)]
struct Dropped {
    /// The oldest, past `spool_max_bytes` or the memory bound of a sink without spool.
    full: u64,
    /// Kept in memory only because the spool could not be written, and past the memory bound.
    spool_error: u64,
}

impl Backlog {
    fn pending(&self) -> u64 {
        match self {
            Backlog::Spool { spool, memory, .. } => spool.pending() + memory.len() as u64,
            Backlog::Memory { items, .. } => items.len() as u64,
        }
    }

    fn append(&mut self, name: &str, records: &[Bytes]) -> Dropped {
        match self {
            Backlog::Spool {
                spool,
                memory,
                max,
                failing,
            } => {
                // Order is kept: while anything waits in memory, new alerts queue behind it, and
                // go to disk together, as far as the disk takes them (record by record once a
                // whole batch did not fit).
                memory.extend(records.iter().cloned());
                let mut dropped = Dropped::default();
                let mut error = None;
                let mut one_by_one = false;
                while !memory.is_empty() {
                    let n = if one_by_one { 1 } else { memory.len() };
                    match spool.append(&memory.make_contiguous()[..n]) {
                        Ok(full) => {
                            memory.drain(..n);
                            dropped.full += full;
                        }
                        Err(err) if n > 1 => {
                            one_by_one = true;
                            error = Some(err);
                        }
                        Err(err) => {
                            error = Some(err);
                            break;
                        }
                    }
                }
                spool.sync();
                match error.filter(|_| !memory.is_empty()) {
                    None => {
                        if *failing {
                            log::info!("sink {name}: spool writable again");
                        }
                        *failing = false;
                    }
                    Some(err) => {
                        if !*failing {
                            log::error!(
                                "sink {name}: {err}; delivering from memory (up to {max} alerts) \
                                 until the spool can be written again"
                            );
                        }
                        *failing = true;
                        let over = memory.len().saturating_sub(*max);
                        memory.drain(..over);
                        dropped.spool_error = over as u64;
                    }
                }
                dropped
            }
            Backlog::Memory { items, max } => {
                items.extend(records.iter().cloned());
                let over = items.len().saturating_sub(*max);
                items.drain(..over);
                Dropped {
                    full: over as u64,
                    spool_error: 0,
                }
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
                Backlog::Spool {
                    spool,
                    memory: VecDeque::new(),
                    max: queue_max,
                    failing: false,
                }
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
    pub fn push(&self, alert: Bytes) {
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
    fn accept(&mut self, taken: &mut Vec<Bytes>) {
        if taken.is_empty() {
            return;
        }
        let dropped = self.backlog.append(&self.settings.name, taken);
        if dropped.full > 0 {
            self.metrics
                .sink_dropped(&self.settings.name, "backlog_full", dropped.full);
            log::warn!(
                "sink {}: backlog full, dropped the {} oldest alerts",
                self.name(),
                dropped.full
            );
        }
        if dropped.spool_error > 0 {
            // Logged once per episode by the backlog; counted every time.
            self.metrics
                .sink_dropped(&self.settings.name, "spool_error", dropped.spool_error);
        }
        taken.clear();
        self.count_damaged();
        self.update_gauges();
    }

    /// Torn or garbled spool records found (at open or when read): lost, and counted.
    fn count_damaged(&mut self) {
        if let Backlog::Spool { spool, .. } = &mut self.backlog {
            let damaged = spool.take_damaged();
            if damaged > 0 {
                self.metrics
                    .sink_dropped(&self.settings.name, "spool_damaged", damaged);
            }
        }
    }

    fn update_gauges(&self) {
        let bytes = match &self.backlog {
            Backlog::Spool { spool, .. } => spool.bytes(),
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
                Backlog::Spool { spool, memory, .. } => {
                    let batch = spool.read(batch_max).map_err(|e| e.to_string())?;
                    if batch.records.is_empty() {
                        // Nothing (more) on disk: what the disk could not take goes from memory.
                        if memory.is_empty() {
                            return Ok(());
                        }
                        let n = memory.len().min(batch_max);
                        let delivered = self.transport.send(&memory.make_contiguous()[..n])?;
                        memory.drain(..n);
                        (n as u64, delivered)
                    } else {
                        let delivered = self.transport.send(&batch.records)?;
                        let n = batch.records.len() as u64;
                        spool.ack(batch.end, n);
                        (n, delivered)
                    }
                }
                Backlog::Memory { items, .. } => {
                    if items.is_empty() {
                        return Ok(());
                    }
                    let n = items.len().min(batch_max);
                    let delivered = self.transport.send(&items.make_contiguous()[..n])?;
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
        if let Backlog::Spool { memory, .. } = &self.backlog
            && !memory.is_empty()
        {
            // A last attempt to keep what the disk refused so far for the next start.
            let dropped = self.backlog.append(&self.settings.name, &[]);
            self.metrics
                .sink_dropped(&self.settings.name, "backlog_full", dropped.full);
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while self.backlog.pending() > 0 && Instant::now() < deadline {
            if self.deliver_all().is_err() {
                if matches!(self.backlog, Backlog::Spool { .. }) {
                    break;
                }
                std::thread::sleep(RETRY_INITIAL);
            }
        }
        match &mut self.backlog {
            Backlog::Spool { spool, memory, .. } => {
                spool.sync();
                if spool.pending() > 0 {
                    log::info!(
                        "sink {}: {} alerts stay spooled for the next start",
                        self.settings.name,
                        spool.pending()
                    );
                }
                if !memory.is_empty() {
                    log::error!(
                        "sink {}: {} alerts undelivered at shutdown (the spool could not take \
                         them)",
                        self.settings.name,
                        memory.len()
                    );
                    self.metrics.sink_dropped(
                        &self.settings.name,
                        "spool_error",
                        memory.len() as u64,
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A receiver that is down while `down` is set, and records what it took.
    #[derive(Clone, Default)]
    struct Fake {
        down: Arc<Mutex<bool>>,
        got: Arc<Mutex<Vec<String>>>,
    }

    impl Transport for Fake {
        fn send(&mut self, batch: &[Bytes]) -> Result<Delivered, String> {
            if *self.down.lock().expect("lock") {
                return Err("down".into());
            }
            let mut got = self.got.lock().expect("lock");
            got.extend(
                batch
                    .iter()
                    .map(|r| String::from_utf8_lossy(r).into_owned()),
            );
            Ok(Delivered::default())
        }
    }

    fn settings() -> Settings {
        Settings {
            name: "fake".into(),
            batch_max: 3,
            retry_max: Duration::from_millis(300),
        }
    }

    fn wait_for(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn alert(i: usize) -> Bytes {
        Bytes::from(format!("{{\"n\":{i}}}"))
    }

    #[test]
    fn an_outage_delays_alerts_in_order_and_a_restart_replays_the_spool() {
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let fake = Fake::default();
        *fake.down.lock().expect("lock") = true;
        let spool = Spool::open(dir.path(), 1 << 20).expect("spool");
        let worker = Worker::start(
            settings(),
            Box::new(fake.clone()),
            100,
            Some(spool),
            metrics.clone(),
        )
        .expect("start");
        for i in 0..5 {
            worker.push(alert(i));
        }
        wait_for("a failed attempt", || {
            metrics.sink_failed_count("fake") >= 1
        });
        worker.stop();
        assert!(fake.got.lock().expect("lock").is_empty());

        // A new start (a sensor restart) replays the spool once the receiver is back.
        *fake.down.lock().expect("lock") = false;
        let spool = Spool::open(dir.path(), 1 << 20).expect("spool");
        assert_eq!(spool.pending(), 5);
        let worker = Worker::start(
            settings(),
            Box::new(fake.clone()),
            100,
            Some(spool),
            metrics.clone(),
        )
        .expect("restart");
        worker.push(alert(5));
        wait_for("all six", || fake.got.lock().expect("lock").len() >= 6);
        worker.stop();
        let got = fake.got.lock().expect("lock").clone();
        let expected: Vec<String> = (0..6).map(|i| format!("{{\"n\":{i}}}")).collect();
        assert_eq!(got, expected);
        assert_eq!(metrics.sink_sent_count("fake"), 6);
        assert_eq!(
            Spool::open(dir.path(), 1 << 20).expect("spool").pending(),
            0
        );
    }

    #[test]
    fn without_spool_the_memory_backlog_is_bounded_and_drops_are_counted() {
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let fake = Fake::default();
        *fake.down.lock().expect("lock") = true;
        let worker = Worker::start(settings(), Box::new(fake.clone()), 4, None, metrics.clone())
            .expect("start");
        for i in 0..10 {
            worker.push(alert(i));
        }
        wait_for("drops", || {
            metrics.sink_dropped_count("fake", "backlog_full")
                + metrics.sink_dropped_count("fake", "queue_full")
                == 6
        });
        *fake.down.lock().expect("lock") = false;
        wait_for("the newest four", || {
            fake.got.lock().expect("lock").len() == 4
        });
        worker.stop();
        let got = fake.got.lock().expect("lock").clone();
        let expected: Vec<String> = (6..10).map(|i| format!("{{\"n\":{i}}}")).collect();
        assert_eq!(
            got, expected,
            "the oldest were dropped, the rest kept in order"
        );
    }
}
