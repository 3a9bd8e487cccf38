//! `lineage-sensor record`: every kernel event as one JSON line, to a file or stdout.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::Path,
    sync::Arc,
    time::Duration,
};

use rustc_hash::{FxHashMap, FxHashSet};

use super::run::containers::{ContainerSink, ContainerWatch};
use crate::{
    config::Config,
    event::{Event, EventKind},
    kernel::{Capture, CaptureError},
    lineage::{ContainerNames, ContainerRef},
    metrics::{Metrics, MetricsError},
    record::{ContainerLine, RecordError, RecordWriter},
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
/// Every this many polls the cgroup tree is scanned again, as `run`'s housekeeping does.
const RESCAN_POLLS: u32 = 10;

/// What the container watch learns, as `container` lines for the record: one when a container
/// cgroup is first found, and one more once its runtime's names are read.
#[derive(Default)]
struct ContainerLines {
    index: FxHashMap<u64, Arc<ContainerRef>>,
    written: FxHashSet<u64>,
    names: FxHashMap<String, Arc<ContainerNames>>,
    out: Vec<ContainerLine>,
}

impl ContainerSink for ContainerLines {
    fn containers(&mut self, index: FxHashMap<u64, Arc<ContainerRef>>) {
        self.written.retain(|cgroup| index.contains_key(cgroup));
        let ids: FxHashSet<&str> = index.values().map(|c| c.id.as_str()).collect();
        self.names.retain(|id, _| ids.contains(id.as_str()));
        for (&cgroup, container) in &index {
            if self.written.insert(cgroup) {
                let names = self.names.get(&container.id).map(|n| &**n);
                self.out.push(ContainerLine::new(cgroup, container, names));
            }
        }
        self.index = index;
    }

    fn names(&mut self, id: &str, names: Arc<ContainerNames>) {
        for (&cgroup, container) in self.index.iter().filter(|(_, c)| c.id == id) {
            self.out
                .push(ContainerLine::new(cgroup, container, Some(&names)));
        }
        self.names.insert(id.to_owned(), names);
    }
}

impl ContainerLines {
    fn write<W: Write>(&mut self, writer: &mut RecordWriter<W>) -> Result<(), RecordError> {
        for line in self.out.drain(..) {
            writer.write_container(&line)?;
        }
        Ok(())
    }
}

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
    // Containers, so that `replay` knows them as `run` would have (exclusions by image, ...).
    let cgroup_root = &config.lineage.cgroup_root;
    let mut watch = ContainerWatch::new(&config.workload);
    let mut lines = ContainerLines::default();
    watch.rescan(cgroup_root, &mut lines);
    lines.write(&mut writer)?;
    let mut polls = 0u32;
    log::info!("ready: programs attached, recording events");

    let mut batch: Vec<Event> = Vec::new();
    let mut lost_poll = tokio::time::interval(LOST_POLL);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            read = capture.next_batch(&mut batch) => {
                read?;
                watch.before(&batch, cgroup_root, &mut lines);
                lines.write(&mut writer)?;
                for event in batch.drain(..) {
                    writer.write(&event)?;
                }
                writer.flush()?;
            }
            _ = lost_poll.tick() => {
                capture.warn_lost();
                capture.refresh_file_marks();
                polls += 1;
                if polls.is_multiple_of(RESCAN_POLLS) {
                    watch.rescan(cgroup_root, &mut lines);
                } else {
                    watch.before(&[], cgroup_root, &mut lines);
                }
                lines.write(&mut writer)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str) -> Arc<ContainerRef> {
        Arc::new(ContainerRef {
            id: id.into(),
            runtime: None,
            pod_uid: None,
        })
    }

    #[test]
    fn a_container_is_written_when_found_and_again_when_named() {
        let mut lines = ContainerLines::default();
        lines.containers([(7, container("a"))].into_iter().collect());
        lines.containers(
            [(7, container("a")), (8, container("b"))]
                .into_iter()
                .collect(),
        );
        let found: Vec<u64> = lines.out.drain(..).map(|l| l.cgroup_id).collect();
        assert_eq!(found, [7, 8], "each cgroup once");
        let names = Arc::new(ContainerNames {
            namespace: Some("ops".into()),
            ..ContainerNames::default()
        });
        lines.names("b", names);
        let named: Vec<_> = lines.out.drain(..).collect();
        assert_eq!(named.len(), 1);
        assert_eq!(
            (named[0].cgroup_id, named[0].namespace.as_deref()),
            (8, Some("ops"))
        );
        // A cgroup of a named container found later carries the names at once.
        lines.containers(
            [(8, container("b")), (9, container("b"))]
                .into_iter()
                .collect(),
        );
        let later: Vec<_> = lines.out.drain(..).collect();
        assert_eq!(later.len(), 1);
        assert_eq!(
            (later[0].cgroup_id, later[0].namespace.as_deref()),
            (9, Some("ops"))
        );
    }
}
