//! The bundle file: finished beside the alert path (executables hashed, the script copied),
//! written privately and atomically, and the directory kept within its size and age.

use std::{
    collections::HashMap,
    io::Read as _,
    os::unix::{ffi::OsStrExt as _, fs::PermissionsExt as _},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::snapshot::ProcessEvidence;
use crate::{
    alert::{Client, ClientSource, Server},
    enrich::hash,
};

/// Longest time copying the script and hashing the executables may take in all: the alert
/// waits for its bundle. An executable not hashed by then is listed without its hash.
const FINISH_DEADLINE: Duration = Duration::from_millis(500);
/// Executables larger than this are listed without their hash.
const MAX_EXE_HASH_BYTES: u64 = 256 << 20;

/// What one bundle holds. Field names follow the alert's where they mean the same.
#[derive(Debug, Clone, Serialize)]
pub struct Bundle {
    pub version: u32,
    pub id: String,
    /// When the snapshot was taken (RFC 3339).
    pub taken_at: String,
    pub incident: String,
    pub alert: AlertRef,
    pub host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<Server>,
    /// From the server down to the alert's process.
    pub processes: Vec<ProcessEvidence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<Client>,
    pub client_source: ClientSource,
    pub scripts: Vec<ScriptCopy>,
    /// Parts were left out to keep within `max_bundle_bytes` (which: `cut`).
    pub truncated: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cut: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertRef {
    pub event_id: String,
    pub rule_id: &'static str,
    pub timestamp: String,
}

/// A bounded copy of a script the server ran or wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ScriptCopy {
    pub path: String,
    /// `file_alert` (the written file), `script_filename` (the server's SCRIPT_FILENAME),
    /// `interpreter_argument` (a script an interpreter of the ancestry runs).
    pub source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Of the whole file, when it was read to its end within the copy's limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The first `script_max_bytes`, in the sensor's lossless escaped form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    pub content_truncated: bool,
    /// Why there is no content (`gone`, `not_regular`, `symlink_in_path`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<&'static str>,
}

/// How writing a bundle ended (`lineage.evidence.status`, and the metric's `outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Written,
    DiskFull,
    WriteError,
    OverBudget,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Written,
        Outcome::DiskFull,
        Outcome::WriteError,
        Outcome::OverBudget,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Written => "written",
            Outcome::DiskFull => "disk_full",
            Outcome::WriteError => "write_error",
            Outcome::OverBudget => "over_budget",
        }
    }
}

/// Where and how big bundles may be.
#[derive(Debug, Clone)]
pub struct Store {
    pub dir: PathBuf,
    pub max_bundle_bytes: u64,
    pub max_total_bytes: u64,
    pub retention: Duration,
    pub script_max_bytes: u64,
    pub exe_hashes: ExeHashes,
}

/// Digests of executables already hashed, by identity and version, shared by every bundle: a
/// burst of alerts from one server hashes its executable once, not once per alert.
#[derive(Debug, Clone, Default)]
pub struct ExeHashes(Arc<Mutex<HashMap<ExeKey, String>>>);

/// Device, inode, size and modification time (ns): a replaced or rewritten file is new.
type ExeKey = (u64, u64, u64, i128);

/// Executables remembered; the memory is cleared when full (a rehash costs only time).
const MAX_EXE_HASHES: usize = 1024;

impl ExeHashes {
    fn get(&self, key: &ExeKey) -> Option<String> {
        self.0.lock().ok()?.get(key).cloned()
    }

    fn put(&self, key: ExeKey, digest: &str) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= MAX_EXE_HASHES {
                map.clear();
            }
            map.insert(key, digest.to_owned());
        }
    }
}

impl Store {
    pub fn path_of(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Copies the scripts, hashes the executables, and writes the bundle. Blocking.
    pub fn finish(&self, mut bundle: Bundle, scripts: Vec<(String, &'static str)>) -> Outcome {
        let deadline = Instant::now() + FINISH_DEADLINE;
        // The script first: it is what the next request may delete, and it is small.
        bundle.scripts = scripts
            .into_iter()
            .map(|(path, source)| copy_script(&path, source, self.script_max_bytes, deadline))
            .collect();
        for p in bundle.processes.iter_mut().filter(|p| p.alive) {
            p.executable_sha256 = hash_exe(p.pid, deadline, &self.exe_hashes);
        }
        let Some(json) = fit(&mut bundle, self.max_bundle_bytes) else {
            return Outcome::WriteError;
        };
        if json.len() as u64 > self.max_total_bytes {
            return Outcome::OverBudget;
        }
        self.expire(json.len() as u64);
        match self.write(&bundle.id, &json) {
            Ok(()) => Outcome::Written,
            Err(err) if err.raw_os_error() == Some(libc::ENOSPC) => Outcome::DiskFull,
            Err(err) if err.raw_os_error() == Some(libc::EDQUOT) => Outcome::DiskFull,
            Err(err) => {
                log::warn!(
                    "evidence bundle {}: {err}",
                    self.path_of(&bundle.id).display()
                );
                Outcome::WriteError
            }
        }
    }

    fn write(&self, id: &str, json: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))?;
        let path = self.path_of(id);
        crate::state_file::replace(&path, json).inspect_err(|_| {
            // A full disk leaves a partial temporary file: it is no bundle, and takes room.
            let mut tmp = path.clone();
            tmp.as_mut_os_string().push(".tmp");
            let _ = std::fs::remove_file(tmp);
        })
    }

    /// Deletes bundles past their age, then the oldest until `incoming` more bytes fit.
    pub fn expire(&self, incoming: u64) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let now = SystemTime::now();
        let mut bundles: Vec<(SystemTime, u64, PathBuf)> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                let modified = meta.modified().ok()?;
                meta.is_file().then(|| (modified, meta.len(), e.path()))
            })
            .collect();
        bundles.sort();
        let mut total: u64 = bundles.iter().map(|b| b.1).sum();
        let mut deleted = Vec::new();
        for (modified, len, path) in bundles {
            let old = now.duration_since(modified).unwrap_or_default() > self.retention;
            let over = total.saturating_add(incoming) > self.max_total_bytes;
            if !(old || over) {
                continue;
            }
            if std::fs::remove_file(&path).is_ok() {
                total = total.saturating_sub(len);
                deleted.push(path);
            }
        }
        deleted
    }

    /// Bytes the bundles take now.
    pub fn used_bytes(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.metadata().ok())
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

/// Serialises `bundle`, leaving out the bulkiest parts until it fits `max`.
fn fit(bundle: &mut Bundle, max: u64) -> Option<Vec<u8>> {
    type Cut = (&'static str, fn(&mut Bundle));
    let cuts: [Cut; 3] = [
        ("script_content", |b| {
            for s in &mut b.scripts {
                s.content = None;
            }
        }),
        ("env_names", |b| {
            for p in &mut b.processes {
                p.env_names.clear();
            }
        }),
        ("fds", |b| {
            for p in &mut b.processes {
                p.fds_truncated |= !p.fds.is_empty();
                p.fds.clear();
            }
        }),
    ];
    let mut json = serde_json::to_vec(bundle).ok()?;
    for (name, cut) in cuts {
        if json.len() as u64 <= max {
            break;
        }
        cut(bundle);
        bundle.truncated = true;
        bundle.cut.push(name);
        json = serde_json::to_vec(bundle).ok()?;
    }
    Some(json)
}

/// The running image itself, through /proc/PID/exe: what ran, even if the file was deleted or
/// replaced since.
fn hash_exe(pid: u32, deadline: Instant, known: &ExeHashes) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let file = std::fs::File::open(format!("/proc/{pid}/exe")).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > MAX_EXE_HASH_BYTES {
        return None;
    }
    let mtime = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
    let key = (meta.dev(), meta.ino(), meta.len(), mtime);
    if let Some(digest) = known.get(&key) {
        return Some(digest);
    }
    let (digest, _, complete) = read_hashed(file, MAX_EXE_HASH_BYTES, 0, deadline)?;
    if complete {
        known.put(key, &digest);
    }
    complete.then_some(digest)
}

fn copy_script(path: &str, source: &'static str, max: u64, deadline: Instant) -> ScriptCopy {
    let mut copy = ScriptCopy {
        path: path.to_owned(),
        source,
        size: None,
        sha256: None,
        content: None,
        content_truncated: false,
        missing: None,
    };
    let raw = match crate::escape::unescape(path) {
        Ok(raw) => raw,
        Err(_) => {
            copy.missing = Some(hash::Missing::Unreadable.as_str());
            return copy;
        }
    };
    let fd = match hash::open_regular(&raw, u64::MAX) {
        Ok((fd, _)) => fd,
        Err(inspection) => {
            copy.missing = inspection.missing.map(hash::Missing::as_str);
            return copy;
        }
    };
    let file = std::fs::File::from(fd);
    copy.size = file.metadata().ok().map(|m| m.len());
    // Hashed to the end only when small enough to read whole within the copy's own bound.
    let limit = max.max(64 << 10).saturating_mul(16);
    if let Some((digest, head, complete)) = read_hashed(file, limit, max, deadline) {
        copy.content_truncated = copy.size.is_some_and(|s| s > max);
        copy.sha256 = complete.then_some(digest);
        copy.content = Some(crate::escape::escape_bytes(&head));
    } else {
        copy.missing = Some(hash::Missing::Unreadable.as_str());
    }
    copy
}

/// Reads at most `limit` bytes: their sha256, the first `keep` of them, and whether the end was
/// reached within `limit` and `deadline`.
fn read_hashed(
    file: std::fs::File,
    limit: u64,
    keep: u64,
    deadline: Instant,
) -> Option<(String, Vec<u8>, bool)> {
    let mut reader = file.take(limit.saturating_add(1));
    let mut hasher = Sha256::new();
    let mut head = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0u64;
    loop {
        if Instant::now() >= deadline {
            return Some((String::new(), head, false));
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        };
        let chunk = buf.get(..n)?;
        let room = usize::try_from(keep.saturating_sub(head.len() as u64)).unwrap_or(usize::MAX);
        head.extend_from_slice(chunk.get(..room.min(n))?);
        total += n as u64;
        if total > limit {
            return Some((String::new(), head, false));
        }
        hasher.update(chunk);
    }
    let digest = hasher.finalize();
    Some((
        digest.iter().map(|b| format!("{b:02x}")).collect(),
        head,
        true,
    ))
}

/// A path's bytes, for callers that hold a `Path`.
pub fn path_text(path: &Path) -> String {
    crate::escape::escape_bytes(path.as_os_str().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_executable_is_hashed_once_per_identity_and_version() {
        let known = ExeHashes::default();
        let far = Instant::now() + Duration::from_secs(60);
        let me = std::process::id();
        let first = hash_exe(me, far, &known).expect("own executable hashed");
        assert_eq!(first.len(), 64);
        // What is remembered is what comes back: the file is not read again.
        let key = *known
            .0
            .lock()
            .expect("lock")
            .keys()
            .next()
            .expect("remembered");
        known.put(key, "remembered");
        assert_eq!(hash_exe(me, far, &known).as_deref(), Some("remembered"));
        // Another version of the file (another mtime) is another key.
        let mut other = key;
        other.3 += 1;
        assert!(known.get(&other).is_none());
        // A deadline already passed hashes nothing new.
        let cold = ExeHashes::default();
        assert!(hash_exe(me, Instant::now(), &cold).is_none());
    }
}
