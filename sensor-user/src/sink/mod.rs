//! Alert sinks: every configured receiver gets every alert, at least once.
//!
//! Each sink is a [`Transport`] (how to hand over a batch) run by the shared machinery in
//! [`delivery`]: a bounded queue, a bounded on-disk spool, retries with backoff, and counters
//! for what was sent, failed and dropped. Receivers de-duplicate on the alert's `event.id`.

pub mod delivery;
pub mod file;
pub mod frame;
pub mod hec;
pub mod http;
mod http_body;
pub mod queue;
pub mod spool;
pub mod stdout;
pub mod syslog;
pub mod tls;
pub mod tls_stream;
pub mod vectored;

use std::{path::PathBuf, sync::Arc, time::Duration};

use bytes::Bytes;
use delivery::{Settings, Transport, Worker};

use crate::{
    alert::Alert,
    config::{OutputConfig, SinkConfig, SinkKind},
    metrics::Metrics,
};

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("spool {path}: {source}")]
    Spool {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "spool {path} is in use by another lineage-sensor; give each instance its own \
         output.spool_dir"
    )]
    SpoolBusy { path: PathBuf },
    #[error("serialising an alert: {0}")]
    Serialise(serde_json::Error),
    #[error("sink {sink}: starting its delivery thread: {source}")]
    Thread {
        sink: String,
        source: std::io::Error,
    },
}

/// The running sinks.
pub struct Sinks {
    config: OutputConfig,
    workers: Vec<Worker>,
    metrics: Arc<Metrics>,
}

impl Sinks {
    /// Starts every sink of `config`; each replays its spool first.
    pub fn start(config: &OutputConfig, metrics: Arc<Metrics>) -> Result<Sinks, SinkError> {
        let workers = start_workers(config, &metrics)?;
        Ok(Sinks {
            config: config.clone(),
            workers,
            metrics,
        })
    }

    /// Hands an alert to every sink (serialised once, as one JSON line without a newline);
    /// never blocks.
    pub fn send(&self, alert: &Alert) -> Result<(), SinkError> {
        let mut line = Vec::with_capacity(4096);
        alert.write_json(&mut line).map_err(SinkError::Serialise)?;
        // Taken over as it is (no copy), then shared by every sink.
        self.send_line(Bytes::from(line));
        Ok(())
    }

    /// Hands a finished alert line (JSON, no newline) to every sink; never blocks.
    pub fn send_line(&self, line: Bytes) {
        for worker in &self.workers {
            worker.push(line.clone());
        }
    }

    /// SIGHUP: the file sinks reopen their files; a changed `[output]` replaces the sinks (what
    /// the old ones held is spooled and replayed by the new ones of the same name). If the new
    /// sinks cannot start, the old configuration is restored.
    pub fn reload(&mut self, config: &OutputConfig) -> Result<(), SinkError> {
        if *config == self.config {
            for worker in &self.workers {
                worker.reopen();
            }
            return Ok(());
        }
        // Stopped first: a sink's spool directory can have one owner only.
        for worker in self.workers.drain(..) {
            worker.stop();
        }
        match start_workers(config, &self.metrics) {
            Ok(workers) => {
                self.workers = workers;
                self.config = config.clone();
                Ok(())
            }
            Err(err) => {
                self.workers = start_workers(&self.config, &self.metrics)?;
                Err(err)
            }
        }
    }

    /// Spools what is queued and stops every sink.
    pub fn stop(self) {
        for worker in self.workers {
            worker.stop();
        }
    }
}

fn start_workers(config: &OutputConfig, metrics: &Arc<Metrics>) -> Result<Vec<Worker>, SinkError> {
    let mut workers = Vec::with_capacity(config.sinks.len());
    for sink in &config.sinks {
        let spool = match sink.spool_max_bytes() {
            0 => None,
            max => Some(spool::Spool::open(
                &config.spool_dir.join(sink.name()),
                max,
            )?),
        };
        workers.push(Worker::start(
            Settings {
                name: sink.name().to_owned(),
                batch_max: sink.batch_max_events,
                retry_max: Duration::from_secs(sink.retry_max_secs),
            },
            transport(sink),
            sink.queue_max_events,
            spool,
            metrics.clone(),
        )?);
    }
    Ok(workers)
}

fn transport(sink: &SinkConfig) -> Box<dyn Transport> {
    let timeout = Duration::from_secs(sink.timeout_secs);
    // validate() guarantees the fields each kind requires.
    match sink.kind {
        SinkKind::Stdout => Box::new(stdout::Stdout),
        SinkKind::File => Box::new(file::FileSink::new(sink.path.clone().unwrap_or_default())),
        SinkKind::Syslog => Box::new(
            syslog::Syslog::new(
                sink.address.clone().unwrap_or_default(),
                sink.protocol.unwrap_or_default(),
                sink.facility(),
                timeout,
            )
            .with_tls(sink.tls.clone().unwrap_or_default()),
        ),
        SinkKind::Http => Box::new(http::Http::new(sink, timeout)),
    }
}
