//! File alerts waiting for their hash, kept on disk during the wait so that a SIGKILL in the
//! `hash_delay_ms` window does not lose them: the restarted sensor sends them (hashed then, or
//! saying the file is gone).
//!
//! One JSON file rewritten atomically (temporary file, rename) at each change; it holds only the
//! alerts of the last `hash_delay_ms` or so, so rewriting it whole stays cheap.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// Largest file read back at start: far above any real backlog, small enough to parse at once.
const MAX_FILE_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PendingError {
    #[error("pending hash file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("pending hash file {path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("pending hash file {path}: larger than {MAX_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
}

/// One alert waiting: its file path (escaped, as in `file.path`) and the alert line as it was
/// before hashing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub path: String,
    pub line: String,
}

/// The set of waiting alerts; `path` `None` keeps them in memory only.
pub struct Pending {
    path: Option<PathBuf>,
    entries: BTreeMap<u64, Entry>,
    next: u64,
    /// A write failed and was logged; the next failure stays quiet until one succeeds.
    failing: bool,
}

impl Pending {
    pub fn new(path: Option<PathBuf>) -> Pending {
        Pending {
            path,
            entries: BTreeMap::new(),
            next: 0,
            failing: false,
        }
    }

    /// Records an alert before its wait; returns its key for [`Pending::remove`].
    pub fn add(&mut self, entry: Entry) -> u64 {
        let key = self.next;
        self.next += 1;
        self.entries.insert(key, entry);
        self.save();
        key
    }

    /// The alert went out: forget it.
    pub fn remove(&mut self, key: u64) {
        if self.entries.remove(&key).is_some() {
            self.save();
        }
    }

    fn save(&mut self) {
        let Some(path) = &self.path else {
            return;
        };
        let entries: Vec<&Entry> = self.entries.values().collect();
        match write_atomically(path, &entries) {
            Ok(()) => {
                if self.failing {
                    log::info!("pending hash file {}: writable again", path.display());
                }
                self.failing = false;
            }
            Err(err) => {
                if !self.failing {
                    log::warn!(
                        "{err}; file alerts waiting for their hash are kept in memory only \
                         until it can be written"
                    );
                }
                self.failing = true;
            }
        }
    }
}

fn write_atomically(path: &Path, entries: &[&Entry]) -> Result<(), PendingError> {
    let io = |source| PendingError::Io {
        path: path.to_owned(),
        source,
    };
    if entries.is_empty() {
        return match std::fs::remove_file(path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(io(err)),
            _ => Ok(()),
        };
    }
    let json = serde_json::to_vec(entries).map_err(|source| PendingError::Json {
        path: path.to_owned(),
        source,
    })?;
    crate::state_file::replace(path, &json).map_err(io)
}

/// The alerts a previous run left waiting; the file is left in place until they are out (the
/// caller adds them to its own [`Pending`], which rewrites it). A missing file is an empty list.
pub fn load(path: &Path) -> Result<Vec<Entry>, PendingError> {
    let io = |source| PendingError::Io {
        path: path.to_owned(),
        source,
    };
    let file = match crate::state_file::open_no_follow(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io(err)),
    };
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
        return Err(PendingError::TooLarge {
            path: path.to_owned(),
        });
    }
    parse(&std::fs::read(path).map_err(io)?).map_err(|source| PendingError::Json {
        path: path.to_owned(),
        source,
    })
}

/// Parses the file's content (also the fuzz target's entry point).
pub fn parse(bytes: &[u8]) -> Result<Vec<Entry>, serde_json::Error> {
    serde_json::from_slice(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u32) -> Entry {
        Entry {
            path: format!("/var/www/{n}.php"),
            line: format!("{{\"n\":{n}}}"),
        }
    }

    #[test]
    fn what_waits_is_on_disk_and_leaves_when_done() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pending");
        let mut pending = Pending::new(Some(path.clone()));
        let a = pending.add(entry(1));
        let _b = pending.add(entry(2));
        assert_eq!(load(&path).expect("load"), [entry(1), entry(2)]);
        pending.remove(a);
        assert_eq!(load(&path).expect("load"), [entry(2)]);
    }

    #[test]
    fn an_empty_set_removes_the_file_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pending");
        let mut pending = Pending::new(Some(path.clone()));
        let a = pending.add(entry(1));
        pending.remove(a);
        assert!(!path.exists());
        assert!(load(&path).expect("missing is empty").is_empty());
        std::fs::write(&path, b"[{\"path\":1}]").expect("write");
        assert!(load(&path).is_err());
    }

    #[test]
    fn a_link_in_place_of_the_file_is_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pending");
        std::os::unix::fs::symlink("/etc/passwd", &path).expect("symlink");
        assert!(load(&path).is_err());
    }
}
