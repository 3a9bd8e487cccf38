//! `run`'s learned baseline on disk: read at start (the state file, then the fleet's files),
//! written every housekeeping tick when it changed (so a SIGKILL loses at most one tick) and at
//! shutdown, handed from engine to engine across a reload, and shown by the metrics.

use crate::{
    config::Config,
    detect::{DetectError, Engine},
    metrics::Metrics,
};

/// The state file's baseline, then every `baseline.load` file merged in. A broken state file
/// is logged and set aside (learning starts afresh: more alerts, never fewer); a fleet file
/// that cannot be read stops the start, since the operator asked for it.
pub fn load(engine: &mut Engine, config: &Config) -> Result<(), DetectError> {
    let b = &config.baseline;
    if !b.state_file.as_os_str().is_empty()
        && let Err(err) = engine.baseline().load_state(&b.state_file)
    {
        log::warn!("{err}; learning afresh");
    }
    for path in &b.load {
        engine.baseline().load_file(path)?;
        log::info!("baseline merged from {}", path.display());
    }
    Ok(())
}

/// Writes the state file if the baseline changed, and sets the metrics. Logs rather than
/// fails: the baseline is a convenience, its loss means alerts, not silence.
pub fn save(engine: &mut Engine, config: &Config, metrics: &Metrics) {
    let path = &config.baseline.state_file;
    if !path.as_os_str().is_empty()
        && let Err(err) = engine.baseline().save_state(path)
    {
        log::warn!("{err}");
    }
    let now = crate::clock::boot_wall_ns().saturating_add(crate::clock::boottime_ns());
    let stats = engine.baseline().stats(now);
    metrics
        .baseline
        .set_sizes(stats.learning, stats.learned, stats.templates);
}

/// A reloaded config's engine takes over what the running one learned since its last save.
pub fn hand_over(from: &mut Engine, to: &mut Engine) {
    let servers = from.baseline().take_servers();
    to.baseline().merge(servers);
}
