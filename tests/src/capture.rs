//! The sensor's capture loaded in-process: the real programs, their events collected on a
//! background thread until the test asks for them.

use std::{
    sync::{Arc, mpsc},
    thread::JoinHandle,
    time::Duration,
};

use lineage_sensor::{
    config::CaptureConfig,
    event::Event,
    kernel::{Capture, connect_entry::ConnectEntry},
    metrics::Metrics,
};

/// How long the ring must stay empty, after detaching, before collection ends.
const DRAIN_QUIET: Duration = Duration::from_millis(200);

/// What a session saw.
pub struct Collected {
    pub events: Vec<Event>,
    /// Events the kernel could not hand over, as the `events_lost_total` metric reports them.
    pub lost: u64,
    pub metrics: Arc<Metrics>,
    /// How connect() entry was observed.
    pub connect_entry: ConnectEntry,
}

/// The sensor's capture running on a thread of its own.
pub struct TestSensor {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: JoinHandle<Result<Collected, String>>,
}

impl TestSensor {
    /// Loads and attaches the programs; returns once they are attached.
    pub fn start(config: CaptureConfig) -> Result<TestSensor, String> {
        Self::start_with(config, Reading::Live)
    }

    /// Like [`Self::start`], but nothing is read from the ring until [`Self::stop`]: a stalled
    /// consumer, to fill the ring on purpose.
    pub fn start_stalled(config: CaptureConfig) -> Result<TestSensor, String> {
        Self::start_with(config, Reading::AtStop)
    }

    fn start_with(config: CaptureConfig, reading: Reading) -> Result<TestSensor, String> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(collect(config, reading, ready_tx, stop_rx))
        });
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(TestSensor {
                stop: stop_tx,
                thread,
            }),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(match thread.join() {
                Ok(Err(err)) => err,
                _ => "sensor thread ended before attaching".into(),
            }),
        }
    }

    /// Detaches, drains what is left in the ring and returns everything seen.
    pub fn stop(self) -> Result<Collected, String> {
        let _ = self.stop.send(());
        self.thread
            .join()
            .map_err(|_| "sensor thread panicked".to_string())?
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    Live,
    AtStop,
}

async fn collect(
    config: CaptureConfig,
    reading: Reading,
    ready: mpsc::Sender<Result<(), String>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<Collected, String> {
    let metrics = Arc::new(Metrics::new().map_err(|e| e.to_string())?);
    let mut capture = match Capture::start(&config, metrics.clone()) {
        Ok(capture) => capture,
        Err(err) => {
            let msg = format!("{err}");
            let _ = ready.send(Err(msg.clone()));
            return Err(msg);
        }
    };
    let _ = ready.send(Ok(()));
    let mut events = Vec::new();
    match reading {
        Reading::AtStop => {
            let _ = (&mut stop).await;
        }
        Reading::Live => loop {
            tokio::select! {
                _ = &mut stop => break,
                read = capture.next_batch(&mut events) => read.map_err(|e| e.to_string())?,
            }
        },
    }
    capture.detach();
    while let Ok(read) = tokio::time::timeout(DRAIN_QUIET, capture.next_batch(&mut events)).await {
        read.map_err(|e| e.to_string())?;
    }
    let lost = capture.sync_lost();
    Ok(Collected {
        events,
        lost,
        metrics,
        connect_entry: capture.connect_entry().clone(),
    })
}

/// Runs `f` with the sensor attached, and returns what it saw with `f`'s result.
pub fn with_sensor<T>(
    config: CaptureConfig,
    f: impl FnOnce() -> T,
) -> Result<(Collected, T), String> {
    let sensor = TestSensor::start(config)?;
    let value = f();
    Ok((sensor.stop()?, value))
}
