//! The baseline as a file: plain TOML, sorted by server and by template, one template per line,
//! so that a security team reads what was learned as normal and a diff between two exports
//! shows exactly the templates added or gone. TOML rather than NDJSON: it is the config's
//! language, a reviewed file may carry comments, and a server's templates sit together under
//! its `[[server]]` header instead of repeating the server on every line. The state file `run`
//! keeps, an export and a fleet's merged file are the same format.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{Baseline, Habits, ServerKey};

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    // Not named `source`: the message already says it, and a source would repeat it in a chain.
    #[error("baseline file {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("baseline file {path}: {message}")]
    Format { path: PathBuf, message: String },
}

const VERSION: u32 = 1;

const HEADER: &str = "\
# lineage-sensor baseline: per server, the command templates its shells ran while it was
# learned (see docs/detection.md, \"Learned baseline\"). Sorted; one template per line.
# `learning_ends` absent: learning is over. Merge files with `lineage-sensor baseline merge`.

";

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaselineFile {
    version: u32,
    #[serde(default)]
    server: Vec<ServerEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerEntry {
    family: String,
    executable: String,
    #[serde(default)]
    application: String,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    learning_ends: Option<String>,
    #[serde(default)]
    templates: Vec<String>,
}

/// Parses a baseline file's text; `path` names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<BTreeMap<ServerKey, Habits>, BaselineError> {
    let format = |message: String| BaselineError::Format {
        path: path.to_owned(),
        message,
    };
    let file: BaselineFile = toml::from_str(text).map_err(|e| format(e.to_string()))?;
    if file.version != VERSION {
        return Err(format(format!(
            "version {} (this sensor reads {VERSION})",
            file.version
        )));
    }
    let mut servers = BTreeMap::new();
    for entry in file.server {
        let ends = match entry.learning_ends.as_deref() {
            None => None,
            Some(text) => Some(
                OffsetDateTime::parse(text, &Rfc3339)
                    .map_err(|e| format(format!("learning_ends {text:?}: {e}")))?
                    .unix_timestamp_nanos()
                    .clamp(0, i128::from(u64::MAX)) as u64,
            ),
        };
        let key = ServerKey {
            family: entry.family,
            executable: entry.executable,
            application: entry.application,
        };
        let habits: &mut Habits = servers.entry(key).or_default();
        habits.learning_ends_wall_ns = ends;
        habits.templates.extend(entry.templates);
    }
    Ok(servers)
}

/// The file's text for `servers`.
pub fn render(servers: &BTreeMap<ServerKey, Habits>) -> Result<String, String> {
    let file = BaselineFile {
        version: VERSION,
        server: servers
            .iter()
            .map(|(key, habits)| ServerEntry {
                family: key.family.clone(),
                executable: key.executable.clone(),
                application: key.application.clone(),
                learning_ends: habits.learning_ends_wall_ns.map(rfc3339),
                templates: habits.templates.iter().cloned().collect(),
            })
            .collect(),
    };
    let body = toml::to_string_pretty(&file).map_err(|e| e.to_string())?;
    Ok(format!("{HEADER}{body}"))
}

fn rfc3339(wall_ns: u64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(wall_ns))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Reads a baseline file (not through a link: the sensor reads it as root).
pub fn read(path: &Path) -> Result<BTreeMap<ServerKey, Habits>, BaselineError> {
    let bytes = crate::state_file::read_no_follow(path).map_err(|error| BaselineError::Io {
        path: path.to_owned(),
        error,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| BaselineError::Format {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    parse(&text, path)
}

impl Baseline {
    /// Loads `run`'s state file: a missing one is a first start.
    pub fn load_state(&mut self, path: &Path) -> Result<(), BaselineError> {
        match read(path) {
            Ok(servers) => {
                self.merge(servers);
                self.dirty = false;
                Ok(())
            }
            Err(BaselineError::Io { error, .. })
                if error.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Merges in a baseline file (a fleet's export); it must exist.
    pub fn load_file(&mut self, path: &Path) -> Result<(), BaselineError> {
        self.merge(read(path)?);
        Ok(())
    }

    /// Writes the state file (atomically) if anything changed since it was read or written.
    pub fn save_state(&mut self, path: &Path) -> Result<(), BaselineError> {
        if !self.dirty && path.exists() {
            return Ok(());
        }
        let text = self.render(path)?;
        let io = |error| BaselineError::Io {
            path: path.to_owned(),
            error,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        crate::state_file::replace(path, text.as_bytes()).map_err(io)?;
        self.dirty = false;
        Ok(())
    }

    /// The file's text; `path` names it in errors.
    pub fn render(&self, path: &Path) -> Result<String, BaselineError> {
        render(&self.servers).map_err(|message| BaselineError::Format {
            path: path.to_owned(),
            message,
        })
    }
}

/// Merges baseline files into one text (`lineage-sensor baseline merge`); `close` ends every
/// server's learning, for a file a team has reviewed as the fleet's normal.
pub fn merge_files(paths: &[PathBuf], close: bool) -> Result<String, BaselineError> {
    let mut all: BTreeMap<ServerKey, Habits> = BTreeMap::new();
    for path in paths {
        for (key, theirs) in read(path)? {
            match all.get_mut(&key) {
                None => {
                    all.insert(key, theirs);
                }
                Some(ours) => {
                    ours.learning_ends_wall_ns =
                        match (ours.learning_ends_wall_ns, theirs.learning_ends_wall_ns) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            _ => None,
                        };
                    ours.templates.extend(theirs.templates);
                }
            }
        }
    }
    if close {
        for habits in all.values_mut() {
            habits.learning_ends_wall_ns = None;
        }
    }
    render(&all).map_err(|message| BaselineError::Format {
        path: paths.first().cloned().unwrap_or_default(),
        message,
    })
}
