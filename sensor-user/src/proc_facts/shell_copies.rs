//! Shells by content: `cp /bin/sh /tmp/kworker` gives a file whose name matches no shell glob.
//! At start-up the shells on the system (the files in the usual bin directories whose names the
//! shell rule lists) are hashed; an executed file of the same size as one of them is hashed and
//! compared. Sizes filter almost every exec out before any hashing, and each file identity
//! (device, inode, size, mtime) is hashed once.

use std::{
    fs::{self, File},
    io::{self, Read},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};

/// Where shells live on the distributions this sensor targets (merged /usr or not).
pub const SHELL_DIRS: &[&str] = &["/bin", "/usr/bin", "/sbin", "/usr/sbin", "/usr/local/bin"];

/// Remembered verdicts; the map is cleared when full.
const VERDICTS_MAX: usize = 4096;

type Digest256 = [u8; 32];

/// (device, inode, size, mtime seconds, mtime nanoseconds).
type FileIdentity = (u64, u64, u64, i64, i64);

#[derive(Default)]
pub struct ShellCopies {
    /// size -> (content hash, shell path).
    by_size: FxHashMap<u64, Vec<(Digest256, Arc<str>)>>,
    verdicts: FxHashMap<FileIdentity, Option<Arc<str>>>,
}

impl ShellCopies {
    /// Hashes every file in `dirs` for which `is_shell` says yes (symlinks followed; each target
    /// once).
    pub fn scan(dirs: &[&str], is_shell: impl Fn(&str) -> bool) -> Self {
        let mut seen: Vec<PathBuf> = Vec::new();
        let mut copies = Self::default();
        for dir in dirs {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if !path.to_str().is_some_and(&is_shell) {
                    continue;
                }
                let Ok(real) = fs::canonicalize(&path) else {
                    continue;
                };
                if seen.contains(&real) {
                    continue;
                }
                let Ok(meta) = fs::metadata(&real) else {
                    continue;
                };
                if !meta.is_file() {
                    continue;
                }
                let Ok(digest) = File::open(&real).and_then(sha256) else {
                    continue;
                };
                let name: Arc<str> = real.to_string_lossy().into();
                copies
                    .by_size
                    .entry(meta.len())
                    .or_default()
                    .push((digest, name));
                seen.push(real);
            }
        }
        copies
    }

    /// How many distinct shell files are known.
    pub fn len(&self) -> usize {
        self.by_size.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_size.is_empty()
    }

    /// The shell whose content the executed file has. `exe` is the path the exec event gave;
    /// `proc_exe` is /proc/PID/exe, used when `exe` is relative or already gone (the process
    /// may have exec'd again since, so the named file comes first).
    pub fn copied_to(&mut self, exe: &str, proc_exe: &Path) -> Option<Arc<str>> {
        if self.by_size.is_empty() {
            return None;
        }
        let file = if exe.starts_with('/') {
            File::open(exe).or_else(|_| File::open(proc_exe))
        } else {
            File::open(proc_exe)
        }
        .ok()?;
        let meta = file.metadata().ok()?;
        let candidates = self.by_size.get(&meta.len())?;
        let identity = (
            meta.dev(),
            meta.ino(),
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec(),
        );
        if let Some(verdict) = self.verdicts.get(&identity) {
            return verdict.clone();
        }
        let digest = sha256(file).ok()?;
        let verdict = candidates
            .iter()
            .find(|(d, _)| *d == digest)
            .map(|(_, name)| name.clone());
        if self.verdicts.len() >= VERDICTS_MAX {
            self.verdicts.clear();
        }
        self.verdicts.insert(identity, verdict.clone());
        verdict
    }
}

fn sha256(mut file: File) -> io::Result<Digest256> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_recognised_and_other_files_are_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).expect("mkdir");
        fs::write(bin.join("dash"), b"#!pretend shell\x00\x01\x02").expect("write");
        fs::write(bin.join("ls"), b"not a shell at all, longer").expect("write");
        std::os::unix::fs::symlink("dash", bin.join("sh")).expect("symlink");
        let bin_str = bin.to_str().expect("utf-8");
        let mut copies =
            ShellCopies::scan(&[bin_str], |p| p.ends_with("/dash") || p.ends_with("/sh"));
        assert_eq!(copies.len(), 1, "the symlink and its target are one shell");

        let copy = dir.path().join("kworker");
        fs::copy(bin.join("dash"), &copy).expect("copy");
        let none = Path::new("/nonexistent");
        let found = copies.copied_to(copy.to_str().expect("utf-8"), none);
        assert!(found.is_some_and(|s| s.ends_with("/dash")));
        // Same size, other content.
        let other = dir.path().join("other");
        fs::write(&other, b"#!pretend shell\x00\x01\x03").expect("write");
        assert_eq!(copies.copied_to(other.to_str().expect("utf-8"), none), None);
        assert_eq!(
            copies.copied_to(bin.join("ls").to_str().expect("utf-8"), none),
            None
        );
        // A relative name falls back to /proc/PID/exe.
        assert_eq!(
            copies
                .copied_to("./kworker", &copy)
                .as_deref()
                .map(|s| s.ends_with("/dash")),
            Some(true)
        );
    }
}
