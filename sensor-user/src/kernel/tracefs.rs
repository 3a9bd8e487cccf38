//! Finding tracefs, and mounting it when it is missing and we are allowed to.
//!
//! Syscall tracepoints (connect) and their format files live in tracefs, which a fresh machine
//! may not have mounted.

use std::path::{Path, PathBuf};

const TRACEFS: &str = "/sys/kernel/tracing";
const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";

#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error(
        "tracefs is not mounted and mounting it at {TRACEFS} failed: {source}. \
         Mount it as root with `mount -t tracefs tracefs {TRACEFS}` \
         (or give the sensor CAP_SYS_ADMIN so that it can), then start the sensor again"
    )]
    Mount { source: std::io::Error },
}

/// The tracefs root, mounting tracefs at /sys/kernel/tracing first if no mount is found.
pub fn ensure_tracefs() -> Result<PathBuf, TracefsError> {
    if let Some(found) = find_tracefs() {
        return Ok(found);
    }
    mount_tracefs().map_err(|source| TracefsError::Mount { source })?;
    log::info!("mounted tracefs at {TRACEFS}");
    find_tracefs().ok_or_else(|| TracefsError::Mount {
        source: std::io::Error::other("mounted, but no events/ directory appeared"),
    })
}

fn find_tracefs() -> Option<PathBuf> {
    [TRACEFS, DEBUGFS_TRACING]
        .into_iter()
        .map(Path::new)
        .find(|root| root.join("events").is_dir())
        .map(Path::to_path_buf)
}

fn mount_tracefs() -> std::io::Result<()> {
    // SAFETY: constant NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            c"tracefs".as_ptr(),
            c"/sys/kernel/tracing".as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
