//! SIGHUP: the config file read again and applied without detaching the programs (events
//! meanwhile wait in the ring buffer). A config that does not load is refused and the running
//! one kept.

use std::path::Path;

use super::{Endpoint, RunError, RunOptions, detector::Detector, start_endpoint, state_files};
use crate::{
    config::{Config, ConfigError},
    enrich::Enricher,
    kernel::Capture,
    metrics::Metrics,
    sink::Sinks,
};

/// The running stages a reload may replace.
pub struct Stages<'a> {
    pub detector: &'a mut Detector,
    pub enricher: &'a mut Enricher,
    pub sinks: &'a mut Sinks,
    pub endpoint: &'a mut Option<Endpoint>,
    pub capture: &'a mut Capture,
}

pub async fn reload(
    config: &mut Config,
    options: &RunOptions,
    stages: Stages<'_>,
    metrics: &std::sync::Arc<Metrics>,
) {
    let Some(path) = &options.config_path else {
        log::info!("SIGHUP: no --config file; reopening sink files only");
        if let Err(err) = stages.sinks.reload(&config.output) {
            log::error!("SIGHUP: {err}");
        }
        return;
    };
    match reload_from(path, config, options, stages, metrics).await {
        Ok(()) => log::info!("SIGHUP: reloaded {}", path.display()),
        Err(err) => {
            log::error!("SIGHUP: {err}; configuration not reloaded, the running one stays in force")
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Run(#[from] RunError),
}

async fn reload_from(
    path: &Path,
    config: &mut Config,
    options: &RunOptions,
    stages: Stages<'_>,
    metrics: &std::sync::Arc<Metrics>,
) -> Result<(), ReloadError> {
    let new = Config::load(path)?;
    state_files::check_locations(&new)?;
    if new.effective_capture() != config.effective_capture() {
        log::warn!("SIGHUP: [capture] changes take effect at the next start");
    }
    if new.prevention != config.prevention {
        log::warn!("SIGHUP: [prevention] changes take effect at the next start");
    }
    // The kernel must never refuse what the new rules would not alert on.
    let prevent = if new.rules.server_outbound_unknown != config.rules.server_outbound_unknown {
        let mut same_mode = new.clone();
        same_mode.prevention = config.prevention.clone();
        Some(
            crate::kernel::prevent::PreventPlan::from_config(&same_mode)
                .map_err(|e| RunError::from(crate::kernel::CaptureError::from(e)))?,
        )
    } else {
        None
    };
    let detection_changed = new.lineage != config.lineage
        || new.detect != config.detect
        || new.rules != config.rules
        || new.incidents != config.incidents
        || new.rate_limit != config.rate_limit;
    // Everything fallible first, so that a failure leaves the running state untouched.
    let fresh = if detection_changed {
        stages.detector.save_learned(config);
        let engine = crate::commands::build_engine(&new, Some(path), super::host())?;
        Some(Detector::new(engine, &new, metrics)?)
    } else {
        None
    };
    if new.metrics != config.metrics {
        // The old listener is closed first: the new address may be the same port.
        *stages.endpoint = None;
        match start_endpoint(&new, options, metrics).await {
            Ok(started) => *stages.endpoint = started,
            Err(err) => {
                *stages.endpoint = start_endpoint(config, options, metrics)
                    .await
                    .map_err(RunError::from)?;
                return Err(RunError::from(err).into());
            }
        }
    }
    stages.sinks.reload(&new.output).map_err(RunError::from)?;
    if let Some(fresh) = fresh {
        stages.detector.replace(fresh, &new, stages.capture);
        log::info!("SIGHUP: detection rules replaced");
    }
    if let Some(plan) = prevent {
        stages.capture.refresh_prevention(&plan);
    }
    stages.enricher.set_config(&new);
    *config = new;
    Ok(())
}
