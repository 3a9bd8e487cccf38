//! `run`'s files on disk besides the spool: the open incidents, kept so that a restart (even
//! after SIGKILL) continues the same incident ids, and the ownership rule for every state
//! location.

use std::path::{Path, PathBuf};

use crate::{
    config::{Config, ConfigError, check_state_locations},
    detect::Engine,
};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("incident state file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("incident state file {path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Refuses state locations that users other than root or the sensor's own can write: whoever
/// can write them can plant alerts-to-come (a spool replayed at start) or retire incidents.
pub fn check_locations(config: &Config) -> Result<(), ConfigError> {
    check_state_locations(config)
}

fn incidents_path(config: &Config) -> Option<&Path> {
    let path = config.incidents.state_file.as_path();
    (!path.as_os_str().is_empty()).then_some(path)
}

/// Continues the incidents of a previous run on this boot. A missing file is a first start; a
/// broken one is reported and ignored, since incidents are a convenience, not evidence.
pub fn restore_incidents(engine: &mut Engine, config: &Config) {
    let Some(path) = incidents_path(config) else {
        return;
    };
    let text = match crate::state_file::read_no_follow(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return,
        Err(source) => {
            log::warn!(
                "{}",
                StateError::Io {
                    path: path.to_owned(),
                    source
                }
            );
            return;
        }
    };
    match serde_json::from_slice(&text) {
        Ok(snapshot) => {
            let n = engine.restore_incidents(snapshot);
            log::info!("continuing {n} open incidents from {}", path.display());
        }
        Err(source) => log::warn!(
            "{}; starting without open incidents",
            StateError::Json {
                path: path.to_owned(),
                source
            }
        ),
    }
}

/// Writes the open incidents if they changed (atomically, through a temporary file).
pub fn save_incidents(engine: &mut Engine, config: &Config) -> Result<(), StateError> {
    let Some(path) = incidents_path(config) else {
        return Ok(());
    };
    if !engine.incidents_changed() {
        return Ok(());
    }
    let json =
        serde_json::to_vec(&engine.incidents_snapshot()).map_err(|source| StateError::Json {
            path: path.to_owned(),
            source,
        })?;
    let io = |source| StateError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    crate::state_file::replace(path, &json).map_err(io)
}
