//! Every metric the sensor exposes, defined once. Names carry the `lineage_sensor_` prefix,
//! counters end in `_total`, and labels take a handful of fixed values only.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

use crate::event::EventKind;

pub struct Metrics {
    registry: Registry,
    events: IntCounterVec,
    events_lost: IntCounterVec,
    decode_errors: IntCounter,
    alerts: IntCounterVec,
    alerts_suppressed: IntCounterVec,
}

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
        for rule in crate::detect::RuleId::ALL {
            alerts.with_label_values(&[rule.as_str()]);
            alerts_suppressed.with_label_values(&[rule.as_str()]);
        }
        // Every label value is present from the start, so a zero is visible before the first event.
        for kind in EventKind::ALL {
            events.with_label_values(&[kind.as_str()]);
            events_lost.with_label_values(&[kind.as_str()]);
        }
        Ok(Self {
            registry,
            events,
            events_lost,
            decode_errors,
            alerts,
            alerts_suppressed,
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

    pub fn decode_errors(&self) -> u64 {
        self.decode_errors.get()
    }

    /// `rule` is one of [`crate::detect::RuleId::as_str`].
    pub fn alert(&self, rule: &str) {
        self.alerts.with_label_values(&[rule]).inc();
    }

    pub fn alerts(&self, rule: &str) -> u64 {
        self.alerts.with_label_values(&[rule]).get()
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
}
