//! The release binaries the bench runs, located through cargo's own report so that any
//! `CARGO_TARGET_DIR` (or build.target-dir) works.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::cmd::cargo_executables;

pub struct Binaries {
    pub sensor: PathBuf,
    /// tests/src/bin/workload.rs: the exec, connect and process-holding drivers.
    pub workload: PathBuf,
    /// tests/src/bin/sink_load.rs: alerts through three sinks at once.
    pub sink_load: PathBuf,
}

pub fn release_binaries() -> anyhow::Result<Binaries> {
    let built = cargo_executables(
        &[
            "build",
            "--release",
            "--package",
            "sensor-user",
            "--bin",
            "lineage-sensor",
            "--package",
            "integration-tests",
            "--bin",
            "workload",
            "--bin",
            "sink_load",
        ],
        "the release binaries",
    )?;
    let find = |target: &str| {
        built
            .iter()
            .find(|(name, _)| name == target)
            .map(|(_, exe)| exe.clone())
            .with_context(|| format!("cargo built no {target} executable"))
    };
    Ok(Binaries {
        sensor: find("lineage-sensor")?,
        workload: find("workload")?,
        sink_load: find("sink_load")?,
    })
}
