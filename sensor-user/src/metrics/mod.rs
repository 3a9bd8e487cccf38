//! Every metric the sensor exposes, defined once. Names carry the `lineage_sensor_` prefix,
//! counters end in `_total`, and labels take a handful of fixed values only. [`endpoint`]
//! serves them.

mod baseline;
pub mod endpoint;
mod prevention;
pub mod workload;

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::event::EventKind;

pub struct Metrics {
    registry: Registry,
    events: IntCounterVec,
    events_lost: IntCounterVec,
    decode_errors: IntCounter,
    paths_truncated: IntCounterVec,
    ring_reads: IntCounterVec,
    alerts: IntCounterVec,
    alerts_suppressed: IntCounterVec,
    sinks: SinkMetrics,
    processes: IntGauge,
    kernel_map_entries: IntGaugeVec,
    alert_latency: Histogram,
    ready: IntGauge,
    pub baseline: baseline::BaselineMetrics,
    pub workload: workload::WorkloadMetrics,
    pub prevention: prevention::PreventionMetrics,
    evidence_bundles: IntCounterVec,
    client_lookups: IntCounterVec,
}

/// Delivery accounting, by sink name (names are few: one per configured sink).
struct SinkMetrics {
    sent: IntCounterVec,
    failed: IntCounterVec,
    dropped: IntCounterVec,
    spooled: IntGaugeVec,
    spool_bytes: IntGaugeVec,
}

/// Why a sink dropped alerts; every value is pre-set to 0 so a rate() sees the first drop.
pub const DROP_REASONS: [&str; 5] = [
    "queue_full",
    "backlog_full",
    "spool_error",
    "rejected",
    "shutdown",
];

#[derive(Debug, thiserror::Error)]
#[error("registering metric: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

impl Metrics {
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new_custom(Some("lineage_sensor".into()), None)?;
        let events = IntCounterVec::new(
            Opts::new("events_total", "Events received from the kernel, by type."),
            &["type"],
        )?;
        let events_lost = IntCounterVec::new(
            Opts::new(
                "events_lost_total",
                "Events the kernel could not hand over because the ring buffer was full, by type.",
            ),
            &["type"],
        )?;
        let decode_errors = IntCounter::new(
            "decode_errors_total",
            "Ring buffer records that could not be decoded.",
        )?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(events_lost.clone()))?;
        registry.register(Box::new(decode_errors.clone()))?;
        let paths_truncated = IntCounterVec::new(
            Opts::new(
                "file_paths_truncated_total",
                "File events whose path the kernel could not resolve to its start (deeper or \
                 longer than its walk), by outcome: `completed` from /proc, or `unresolved` \
                 (reported as a marked tail, judged as under a web root).",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(paths_truncated.clone()))?;
        for outcome in ["completed", "unresolved"] {
            paths_truncated.with_label_values(&[outcome]);
        }
        let ring_reads = IntCounterVec::new(
            Opts::new(
                "ring_reads_total",
                "Batches read from the ring buffer, by what started the read: a kernel wakeup \
                 (an exec below a server, or a quarter-full ring) or the flush tick.",
            ),
            &["trigger"],
        )?;
        registry.register(Box::new(ring_reads.clone()))?;
        let alerts = IntCounterVec::new(
            Opts::new("alerts_total", "Alerts emitted, by rule."),
            &["rule"],
        )?;
        let alerts_suppressed = IntCounterVec::new(
            Opts::new(
                "alerts_suppressed_total",
                "Alerts held back by rate limiting as repeats of an identical alert, by rule.",
            ),
            &["rule"],
        )?;
        registry.register(Box::new(alerts.clone()))?;
        registry.register(Box::new(alerts_suppressed.clone()))?;
        // Every label value is present from the start, so a zero is visible before the first event.
        for kind in EventKind::ALL {
            events.with_label_values(&[kind.as_str()]);
            events_lost.with_label_values(&[kind.as_str()]);
        }
        let sinks = SinkMetrics {
            sent: IntCounterVec::new(
                Opts::new(
                    "sink_sent_total",
                    "Alerts a sink's receiver accepted, by sink.",
                ),
                &["sink"],
            )?,
            failed: IntCounterVec::new(
                Opts::new(
                    "sink_failed_total",
                    "Delivery attempts that failed and will be retried, by sink.",
                ),
                &["sink"],
            )?,
            dropped: IntCounterVec::new(
                Opts::new(
                    "sink_dropped_total",
                    "Alerts a sink gave up on, by sink and reason (queue_full, backlog_full, \
                     spool_error, rejected, shutdown).",
                ),
                &["sink", "reason"],
            )?,
            spooled: IntGaugeVec::new(
                Opts::new(
                    "sink_spooled_alerts",
                    "Alerts accepted by a sink and not delivered yet (spool or memory backlog).",
                ),
                &["sink"],
            )?,
            spool_bytes: IntGaugeVec::new(
                Opts::new("sink_spool_bytes", "Size of a sink's on-disk spool."),
                &["sink"],
            )?,
        };
        registry.register(Box::new(sinks.sent.clone()))?;
        registry.register(Box::new(sinks.failed.clone()))?;
        registry.register(Box::new(sinks.dropped.clone()))?;
        registry.register(Box::new(sinks.spooled.clone()))?;
        registry.register(Box::new(sinks.spool_bytes.clone()))?;
        let processes = IntGauge::new(
            "processes_tracked",
            "Entries in the process table (live processes and recently exited ones).",
        )?;
        registry.register(Box::new(processes.clone()))?;
        let kernel_map_entries = IntGaugeVec::new(
            Opts::new(
                "kernel_map_entries",
                "Entries in the kernel's maps: per-thread syscalls between entry and exit \
                 (pending_connect, pending_file; near zero unless calls are in flight), and \
                 server_tree (server processes and their descendants).",
            ),
            &["map"],
        )?;
        registry.register(Box::new(kernel_map_entries.clone()))?;
        let alert_latency = Histogram::with_opts(
            HistogramOpts::new(
                "alert_latency_seconds",
                "Time from the kernel event to its alert being handed to the sinks.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )?;
        registry.register(Box::new(alert_latency.clone()))?;
        let ready = IntGauge::new(
            "ready",
            "1 once the programs are attached and the process table is seeded from /proc.",
        )?;
        registry.register(Box::new(ready.clone()))?;
        let build_info = IntGaugeVec::new(
            Opts::new("build_info", "Always 1; the labels describe the build."),
            &["version"],
        )?;
        registry.register(Box::new(build_info.clone()))?;
        let evidence_bundles = IntCounterVec::new(
            Opts::new(
                "evidence_bundles_total",
                "Evidence bundles, by outcome: `written`, or not kept: `disk_full`, \
                 `write_error`, `over_budget` (one bundle larger than evidence.max_total_bytes).",
            ),
            &["outcome"],
        )?;
        let client_lookups = IntCounterVec::new(
            Opts::new(
                "client_lookups_total",
                "Looks for the client of a request below a server, by how sure the answer was \
                 (`exact`, `likely`, `reported`, `ambiguous`, `none`).",
            ),
            &["confidence"],
        )?;
        registry.register(Box::new(evidence_bundles.clone()))?;
        registry.register(Box::new(client_lookups.clone()))?;
        for outcome in ["written", "disk_full", "write_error", "over_budget"] {
            evidence_bundles.with_label_values(&[outcome]);
        }
        for confidence in ["exact", "likely", "reported", "ambiguous", "none"] {
            client_lookups.with_label_values(&[confidence]);
        }
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let baseline = baseline::BaselineMetrics::new(&registry)?;
        let workload = workload::WorkloadMetrics::new(&registry)?;
        let prevention = prevention::PreventionMetrics::new(&registry)?;
        Ok(Self {
            baseline,
            workload,
            prevention,
            registry,
            events,
            events_lost,
            decode_errors,
            paths_truncated,
            ring_reads,
            alerts,
            alerts_suppressed,
            sinks,
            processes,
            kernel_map_entries,
            alert_latency,
            ready,
            evidence_bundles,
            client_lookups,
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn event(&self, kind: EventKind) {
        self.events.with_label_values(&[kind.as_str()]).inc();
    }

    pub fn events(&self, kind: EventKind) -> u64 {
        self.events.with_label_values(&[kind.as_str()]).get()
    }

    pub fn decode_error(&self) {
        self.decode_errors.inc();
    }

    /// A file event with a truncated path; `completed`: userspace found its full path.
    pub fn path_truncated(&self, completed: bool) {
        let outcome = if completed { "completed" } else { "unresolved" };
        self.paths_truncated.with_label_values(&[outcome]).inc();
    }

    /// Sets the `trigger` values of `ring_reads_total` to 0 (the reader knows them), so that a
    /// rate() sees the first read of each.
    pub fn preset_ring_triggers(&self, triggers: &[&str]) {
        for trigger in triggers {
            self.ring_reads.with_label_values(&[trigger]);
        }
    }

    /// Sets the `rule` values of the alert counters to 0 (the engine knows its rules).
    pub fn preset_rules(&self, rules: &[&str]) {
        for rule in rules {
            self.alerts.with_label_values(&[rule]);
            self.alerts_suppressed.with_label_values(&[rule]);
        }
    }

    pub fn ring_read(&self, trigger: &str) {
        self.ring_reads.with_label_values(&[trigger]).inc();
    }

    /// `file_paths_truncated_total` for one outcome.
    pub fn paths_truncated(&self, completed: bool) -> u64 {
        let outcome = if completed { "completed" } else { "unresolved" };
        self.paths_truncated.with_label_values(&[outcome]).get()
    }

    pub fn decode_errors(&self) -> u64 {
        self.decode_errors.get()
    }

    pub fn alert(&self, rule: &str) {
        self.alerts.with_label_values(&[rule]).inc();
    }

    pub fn alerts(&self, rule: &str) -> u64 {
        self.alerts.with_label_values(&[rule]).get()
    }

    pub fn evidence_bundle(&self, outcome: &str) {
        self.evidence_bundles.with_label_values(&[outcome]).inc();
    }

    pub fn evidence_bundles(&self, outcome: &str) -> u64 {
        self.evidence_bundles.with_label_values(&[outcome]).get()
    }

    pub fn client_lookup(&self, confidence: &str) {
        self.client_lookups.with_label_values(&[confidence]).inc();
    }

    pub fn alert_suppressed(&self, rule: &str) {
        self.alerts_suppressed.with_label_values(&[rule]).inc();
    }

    pub fn alerts_suppressed(&self, rule: &str) -> u64 {
        self.alerts_suppressed.with_label_values(&[rule]).get()
    }

    /// Brings the lost counter up to the kernel's running total for `kind`.
    pub fn set_lost(&self, kind: EventKind, kernel_total: u64) {
        let counter = self.events_lost.with_label_values(&[kind.as_str()]);
        let seen = counter.get();
        if kernel_total > seen {
            counter.inc_by(kernel_total - seen);
        }
    }

    pub fn lost(&self, kind: EventKind) -> u64 {
        self.events_lost.with_label_values(&[kind.as_str()]).get()
    }

    /// Every series of a sink, at zero, so that dashboards see it before the first alert.
    pub fn sink_init(&self, sink: &str) {
        self.sinks.sent.with_label_values(&[sink]);
        self.sinks.failed.with_label_values(&[sink]);
        self.sinks.spooled.with_label_values(&[sink]);
        self.sinks.spool_bytes.with_label_values(&[sink]);
        for reason in DROP_REASONS {
            self.sinks.dropped.with_label_values(&[sink, reason]);
        }
    }

    pub fn sink_sent(&self, sink: &str, n: u64) {
        self.sinks.sent.with_label_values(&[sink]).inc_by(n);
    }

    pub fn sink_sent_count(&self, sink: &str) -> u64 {
        self.sinks.sent.with_label_values(&[sink]).get()
    }

    pub fn sink_failed(&self, sink: &str) {
        self.sinks.failed.with_label_values(&[sink]).inc();
    }

    pub fn sink_failed_count(&self, sink: &str) -> u64 {
        self.sinks.failed.with_label_values(&[sink]).get()
    }

    /// `reason` is one of [`DROP_REASONS`].
    pub fn sink_dropped(&self, sink: &str, reason: &str, n: u64) {
        self.sinks
            .dropped
            .with_label_values(&[sink, reason])
            .inc_by(n);
    }

    pub fn sink_dropped_count(&self, sink: &str, reason: &str) -> u64 {
        self.sinks.dropped.with_label_values(&[sink, reason]).get()
    }

    pub fn sink_backlog(&self, sink: &str, alerts: u64, bytes: u64) {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.sinks
            .spooled
            .with_label_values(&[sink])
            .set(gauge(alerts));
        self.sinks
            .spool_bytes
            .with_label_values(&[sink])
            .set(gauge(bytes));
    }

    pub fn set_processes(&self, n: usize) {
        self.processes.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn set_kernel_map_entries(&self, map: &str, n: usize) {
        self.kernel_map_entries
            .with_label_values(&[map])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn alert_latency(&self, seconds: f64) {
        self.alert_latency.observe(seconds);
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    pub fn is_ready(&self) -> bool {
        self.ready.get() == 1
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> Result<String, MetricsError> {
        use prometheus::Encoder as _;
        let mut buf = Vec::new();
        prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}
