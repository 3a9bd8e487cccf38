//! `lineage-sensor record`: every kernel event as one JSON line, to a file or stdout.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::Path,
    sync::Arc,
    time::Duration,
};

use crate::{
    config::Config,
    event::{Event, EventKind},
    kernel::{Capture, CaptureError},
    metrics::{Metrics, MetricsError},
    record::{RecordError, RecordWriter},
};

#[derive(Debug, thiserror::Error)]
pub enum RecordCommandError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("cannot create record file {path}: {source}")]
    Create {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("waiting for events: {0}")]
    Io(#[from] std::io::Error),
}

/// What a session saw, reported at shutdown.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Totals {
    pub by_kind: Vec<(EventKind, u64)>,
    pub lost: u64,
    pub decode_errors: u64,
}

impl std::fmt::Display for Totals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "events:")?;
        for (kind, n) in &self.by_kind {
            write!(f, " {}={n}", kind.as_str())?;
        }
        write!(
            f,
            "; lost: {}; decode errors: {}",
            self.lost, self.decode_errors
        )
    }
}

/// How often the kernel's lost counters are read while running.
const LOST_POLL: Duration = Duration::from_secs(1);

/// Records until SIGINT/SIGTERM (or until `stop` resolves), then detaches, drains and reports.
pub async fn record(
    config: &Config,
    output: Option<&Path>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<Totals, RecordCommandError> {
    let out: Box<dyn Write + Send> = match output {
        Some(path) => {
            Box::new(
                File::create(path).map_err(|source| RecordCommandError::Create {
                    path: path.to_owned(),
                    source,
                })?,
            )
        }
        None => Box::new(std::io::stdout()),
    };
    let mut writer = RecordWriter::new(BufWriter::with_capacity(1 << 16, out));
    let metrics = Arc::new(Metrics::new()?);
    // A recording is for every rule and every question asked later: nothing is dropped.
    let capture_config = crate::config::CaptureConfig {
        connects_from: crate::config::ConnectScope::Everyone,
        ..config.effective_capture()
    };
    let mut capture = Capture::start(&capture_config, metrics.clone())?;
    writer.write_header(&crate::record::RecordHeader::here())?;
    log::info!("ready: programs attached, recording events");

    let mut batch: Vec<Event> = Vec::new();
    let mut lost_poll = tokio::time::interval(LOST_POLL);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            read = capture.next_batch(&mut batch) => {
                read?;
                for event in batch.drain(..) {
                    writer.write(&event)?;
                }
                writer.flush()?;
            }
            _ = lost_poll.tick() => {
                capture.warn_lost();
                capture.refresh_file_marks();
            }
        }
    }

    capture
        .detach_and_drain(&mut batch, |batch, _| {
            for event in batch.drain(..) {
                writer.write(&event)?;
            }
            Ok::<_, RecordCommandError>(())
        })
        .await?;
    writer.flush()?;
    let lost = capture.sync_lost();
    Ok(Totals {
        by_kind: EventKind::ALL
            .iter()
            .map(|&kind| (kind, metrics.events(kind)))
            .collect(),
        lost,
        decode_errors: metrics.decode_errors(),
    })
}
