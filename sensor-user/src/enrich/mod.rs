//! Enrichment that waits: what `run` adds to an alert after the engine, which does no I/O so
//! that `replay` stays deterministic. Today that is `file.hash.sha256` for alerts naming a file
//! (see [`hash`]); an alert that needs nothing goes straight through.

pub mod hash;

use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::{
    alert::{Alert, FileHash},
    config::Config,
};

/// The enrich stage: alerts in, alerts out, some of them later.
pub struct Enricher {
    tx: UnboundedSender<Alert>,
    rx: UnboundedReceiver<Alert>,
    hasher: Hasher,
}

impl Enricher {
    pub fn new(config: &Config) -> Self {
        let (tx, rx) = unbounded_channel();
        Self {
            tx,
            rx,
            hasher: Hasher::new(config),
        }
    }

    /// A reloaded config's hashing settings apply to the alerts from now on.
    pub fn set_config(&mut self, config: &Config) {
        self.hasher = Hasher::new(config);
    }

    /// The alert if it is ready now; otherwise it comes back from [`Enricher::next_ready`].
    pub fn enrich(&self, alert: Alert) -> Option<Alert> {
        if self.hasher.max_bytes > 0 && alert.file.is_some() {
            self.hasher.later(alert, self.tx.clone());
            None
        } else {
            Some(alert)
        }
    }

    /// The next alert whose enrichment finished (never ends while the stage lives).
    pub async fn next_ready(&mut self) -> Option<Alert> {
        self.rx.recv().await
    }

    /// At shutdown: every alert still waiting, as each finishes. Each task holds a sender, so
    /// this ends when the last has finished.
    pub async fn finish<E>(self, mut each: impl FnMut(Alert) -> Result<(), E>) -> Result<(), E> {
        let Self { tx, mut rx, .. } = self;
        drop(tx);
        while let Some(alert) = rx.recv().await {
            each(alert)?;
        }
        Ok(())
    }
}

/// `file.hash.sha256`, off the event loop: a task waits `hash_delay_ms` for the writer to
/// finish (the kernel side does not see close(), so this is the content shortly after the
/// write), hashes on the blocking pool and hands the alert back.
struct Hasher {
    max_bytes: u64,
    delay: Duration,
}

impl Hasher {
    fn new(config: &Config) -> Self {
        let rule = &config.rules.webroot_script_write;
        Self {
            max_bytes: rule.hash_max_bytes,
            delay: Duration::from_millis(rule.hash_delay_ms),
        }
    }

    fn later(&self, mut alert: Alert, tx: UnboundedSender<Alert>) {
        let (max_bytes, delay) = (self.max_bytes, self.delay);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(file) = alert.file.as_mut() {
                let path = file.path.clone();
                let hash = tokio::task::spawn_blocking(move || hash::sha256_file(&path, max_bytes))
                    .await
                    .ok()
                    .flatten();
                file.hash = hash.map(|sha256| FileHash { sha256 });
            }
            // The stage is gone only at the very end of shutdown, after draining this channel.
            let _ = tx.send(alert);
        });
    }
}
