//! The kernel programs' own diagnostics (aya-log) in the sensor's log.
//!
//! The programs log at debug level on their degraded paths (sensor-ebpf `diag.rs`). Their level
//! is fixed at load from the sensor's log filter ([`ebpf_level`]): the verifier then drops every
//! statement above it, so at the default level they cost nothing. What they send is forwarded to
//! the sensor's logger, which filters it as any other line (`--log-level`, e.g.
//! `sensor_ebpf=debug`), through a rate bound so that a storm of failures cannot flood the log.

use std::{sync::Mutex, time::Instant};

use log::{LevelFilter, Log, Metadata, Record};

/// Lines let through at once after a quiet spell.
const BURST: u32 = 50;
/// Lines let through per second in a storm.
const PER_SECOND: u32 = 10;

/// `AYA_LOG_LEVEL` for the programs: the most verbose level the sensor's filter lets through
/// anywhere (aya-log's numbering: 0 off, 1 error ... 5 trace).
pub fn ebpf_level(filter: LevelFilter) -> u8 {
    match filter {
        LevelFilter::Off => 0,
        LevelFilter::Error => 1,
        LevelFilter::Warn => 2,
        LevelFilter::Info => 3,
        LevelFilter::Debug => 4,
        LevelFilter::Trace => 5,
    }
}

/// Forwards the programs' lines to `inner`, at most [`BURST`] at once and [`PER_SECOND`] on
/// average; the lines held back are counted and said in one line when lines flow again.
pub struct RateBound<L> {
    inner: L,
    bucket: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
    dropped: u64,
}

impl<L: Log> RateBound<L> {
    pub fn new(inner: L) -> Self {
        Self {
            inner,
            bucket: Mutex::new(Bucket {
                tokens: f64::from(BURST),
                at: Instant::now(),
                dropped: 0,
            }),
        }
    }

    /// Whether a line may go now, and how many were held back before it.
    fn take(&self, now: Instant) -> Option<u64> {
        let mut b = self
            .bucket
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * f64::from(PER_SECOND)).min(f64::from(BURST));
        b.at = now;
        if b.tokens < 1.0 {
            b.dropped += 1;
            return None;
        }
        b.tokens -= 1.0;
        Some(std::mem::take(&mut b.dropped))
    }

    fn forward(&self, record: &Record<'_>, now: Instant) {
        let Some(dropped) = self.take(now) else {
            return;
        };
        if dropped > 0 {
            self.inner.log(
                &Record::builder()
                    .level(log::Level::Warn)
                    .target(record.target())
                    .args(format_args!(
                        "kernel: {dropped} diagnostic lines held back by the rate bound \
                         ({PER_SECOND}/s)"
                    ))
                    .build(),
            );
        }
        // The comm is sent as its whole 16-byte buffer.
        let text = record.args().to_string().replace('\0', "");
        self.inner.log(
            &Record::builder()
                .level(record.level())
                .target(record.target())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .args(format_args!("kernel: {text}"))
                .build(),
        );
    }
}

impl<L: Log> Log for RateBound<L> {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if self.inner.enabled(record.metadata()) {
            self.forward(record, Instant::now());
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// How long a storm must last for [`PER_SECOND`] to bound it (used by the tests).
#[cfg(test)]
const STORM: std::time::Duration = std::time::Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);

    impl Log for &Lines {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &Record<'_>) {
            self.0
                .lock()
                .expect("test lock")
                .push(record.args().to_string());
        }
        fn flush(&self) {}
    }

    fn line(text: &str, bound: &RateBound<&Lines>, at: Instant) {
        bound.forward(
            &Record::builder()
                .level(log::Level::Debug)
                .target("sensor_ebpf")
                .args(format_args!("{text}"))
                .build(),
            at,
        );
    }

    #[test]
    fn a_storm_is_bounded_and_what_was_held_back_is_said() {
        let lines = Lines::default();
        let bound = RateBound::new(&lines);
        let start = Instant::now();
        let steps = 10_000u32;
        for i in 0..steps {
            let at = start + STORM * i / steps;
            line("hook=x pid=1 comm=sh\0\0\0 reason=y", &bound, at);
        }
        let got = lines.0.lock().expect("test lock").clone();
        let most = BURST + PER_SECOND * STORM.as_secs() as u32;
        let forwarded = got.iter().filter(|l| l.contains("hook=x")).count();
        assert!(forwarded as u32 <= most, "{forwarded} > {most}");
        assert!(forwarded as u32 >= most - 2, "{forwarded} lines of {most}");
        assert_eq!(got[0], "kernel: hook=x pid=1 comm=sh reason=y");
        // Quiet, then one more: it goes, after the count of what was held back.
        line("last", &bound, start + STORM + Duration::from_secs(5));
        let got = lines.0.lock().expect("test lock").clone();
        assert!(got[got.len() - 2].contains("lines held back"), "{got:?}");
        // Every line is either forwarded or counted in one of the held-back notes.
        let held: u64 = got
            .iter()
            .filter(|l| l.contains("lines held back"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum();
        assert_eq!(held as usize + forwarded, steps as usize);
        assert_eq!(got[got.len() - 1], "kernel: last");
    }

    #[test]
    fn the_programs_level_follows_the_filter() {
        assert_eq!(ebpf_level(LevelFilter::Info), 3);
        assert_eq!(ebpf_level(LevelFilter::Debug), 4);
        assert_eq!(ebpf_level(LevelFilter::Off), 0);
        // aya-log's numbering, which the programs compare with.
        assert_eq!(aya_log::Level::Debug as u8, 4);
    }
}
