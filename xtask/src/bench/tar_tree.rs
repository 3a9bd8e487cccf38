//! The file-heavy workload: `tar -x` of a tree of small files into a fresh directory, outside
//! every watched path. Each file is a creating open that the sensor's file probes resolve to a
//! path in the kernel and then drop there, since the prefix filter (sensor-ebpf's LPM trie of
//! web roots and module paths) does not match: the probes' own cost, with no events to read.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use super::{proc_stat, results::Sample};

/// Bytes in each file: small, so the opens and not the copying dominate.
pub const FILE_BYTES: usize = 512;
/// Files per directory, as in a source tree or a CMS's plugin directories.
pub const PER_DIR: usize = 100;

/// The archive, made once per bench run; dropping it removes it.
pub struct TarTree {
    dir: tempfile::TempDir,
}

impl TarTree {
    /// Writes `files` files into directories of [`PER_DIR`] and archives them.
    pub fn create(files: usize) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("lineage-bench-tar-")
            .tempdir_in(base())
            .context("creating the tar tree's temp dir")?;
        let src = dir.path().join("src");
        let body = vec![b'x'; FILE_BYTES];
        for i in 0..files {
            let sub = src.join(format!("d{:03}", i / PER_DIR));
            if i % PER_DIR == 0 {
                std::fs::create_dir_all(&sub)?;
            }
            std::fs::write(sub.join(format!("f{i:05}.txt")), &body)?;
        }
        crate::cmd::run(
            Command::new("tar")
                .arg("-cf")
                .arg(dir.path().join("tree.tar"))
                .arg("-C")
                .arg(&src)
                .arg("."),
        )?;
        std::fs::remove_dir_all(&src)?;
        Ok(Self { dir })
    }

    /// Where the archive and each run's extraction live.
    pub fn place(&self) -> String {
        let base = self.dir.path().parent().unwrap_or(Path::new("/"));
        if is_tmpfs(base) {
            format!("tmpfs ({})", base.display())
        } else {
            base.display().to_string()
        }
    }

    /// One timed `tar -x` into a fresh directory, returned so that the caller removes it once
    /// the monitor has stopped: the clean-up is no part of the workload.
    pub fn extract(&self) -> anyhow::Result<(Sample, tempfile::TempDir)> {
        let into = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(self.dir.path())
            .context("creating the extraction dir")?;
        let run = proc_stat::run_timed(
            Command::new("tar")
                .arg("-xf")
                .arg(self.dir.path().join("tree.tar"))
                .arg("-C")
                .arg(into.path())
                .stdout(Stdio::null()),
        )
        .context("running tar -x")?;
        if !run.success {
            bail!("tar -x into {} failed", into.path().display());
        }
        Ok((
            Sample {
                seconds: Some(run.wall_secs),
                workload_cpu_secs: Some(run.cpu_secs),
                ..Sample::default()
            },
            into,
        ))
    }
}

/// tmpfs when the machine has one at /dev/shm: on a disk, journal and writeback of the previous
/// runs' files swamp the probes' cost (seconds of spread on a shared VM disk).
fn base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if is_tmpfs(shm) {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

fn is_tmpfs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs fills the zeroed struct it is given; the path is NUL-terminated.
    unsafe {
        let mut fs: libc::statfs = std::mem::zeroed();
        libc::statfs(c_path.as_ptr(), &mut fs) == 0 && fs.f_type == libc::TMPFS_MAGIC
    }
}
