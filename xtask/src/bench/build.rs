//! The release binaries the bench runs, located through cargo's own report so that any
//! `CARGO_TARGET_DIR` (or build.target-dir) works.

use std::{path::PathBuf, process::Stdio};

use anyhow::{Context as _, bail};

use crate::cmd::cargo;

pub struct Binaries {
    pub sensor: PathBuf,
    /// tests/src/bin/workload.rs: the exec, connect and process-holding drivers.
    pub workload: PathBuf,
}

pub fn release_binaries() -> anyhow::Result<Binaries> {
    let out = cargo()
        .args([
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
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("building the release binaries")?;
    if !out.status.success() {
        bail!("building the release binaries failed");
    }
    let mut sensor = None;
    let mut workload = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(exe) = message["executable"].as_str() else {
            continue;
        };
        match message["target"]["name"].as_str() {
            Some("lineage-sensor") => sensor = Some(PathBuf::from(exe)),
            Some("workload") => workload = Some(PathBuf::from(exe)),
            _ => {}
        }
    }
    Ok(Binaries {
        sensor: sensor.context("cargo built no lineage-sensor executable")?,
        workload: workload.context("cargo built no workload executable")?,
    })
}
