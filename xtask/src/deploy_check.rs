//! What the output and deployment tests need, installed when missing (rsyslog with its TLS
//! driver, Prometheus and
//! promtool, setpriv, systemd-analyze, a Python venv with kubernetes-validate), and the
//! validation of deploy/: the Kubernetes manifests against the API schemas, the systemd unit
//! with `systemd-analyze verify`. Each validator is also shown a broken copy, which it must
//! refuse: a validator that accepts everything would pass silently.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{
    apt,
    cmd::{self, workspace_root},
};

/// Pinned so that CI does not change under us; schemas up to Kubernetes 1.37.
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";
/// Manifests validated against the Kubernetes schemas. The PodMonitor (a CRD) and the
/// kustomization have no schema there and are only parsed.
const MANIFESTS: [&str; 6] = [
    "namespace.yaml",
    "serviceaccount.yaml",
    "configmap.yaml",
    "daemonset.yaml",
    "podmonitor.yaml",
    "kustomization.yaml",
];
const UNIT: &str = "deploy/systemd/lineage-sensor.service";
const INSTALLED_BINARY: &str = "/usr/local/bin/lineage-sensor";

pub fn deploy_check() -> anyhow::Result<()> {
    apt::ensure(&[
        "rsyslog",
        // rsyslog's TLS driver (gtls): the RFC 5425 receiver of the syslog-over-TLS tests.
        "rsyslog-gnutls",
        "prometheus",
        "util-linux",
        "systemd",
        "python3-venv",
    ])?;
    let work = target_dir().join("deploy-check");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    kubernetes(&work)?;
    systemd(&work)?;
    eprintln!("xtask: deploy/ validated (Kubernetes schemas, systemd-analyze verify)");
    Ok(())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn kubernetes(work: &Path) -> anyhow::Result<()> {
    let venv = work.join("venv");
    let validate = venv.join("bin/kubernetes-validate");
    if !validate.exists() {
        // Debian's own python3, not whatever pyenv or the PATH offers.
        cmd::run(
            Command::new("/usr/bin/python3")
                .args(["-m", "venv"])
                .arg(&venv),
        )?;
        cmd::run(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .arg(KUBERNETES_VALIDATE),
        )?;
    }
    let dir = workspace_root().join("deploy/kubernetes");
    cmd::run(
        Command::new(&validate)
            .args(["--strict", "--quiet"])
            .args(MANIFESTS.iter().map(|m| dir.join(m))),
    )?;
    let daemonset = std::fs::read_to_string(dir.join("daemonset.yaml"))?;
    let broken = daemonset.replacen("hostPID: true", "hostPid: true", 1);
    if broken == daemonset {
        bail!("daemonset.yaml has no `hostPID: true`");
    }
    let broken_path = work.join("broken-daemonset.yaml");
    std::fs::write(&broken_path, broken)?;
    let status = Command::new(&validate)
        .args(["--strict", "--quiet"])
        .arg(&broken_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?;
    if status.success() {
        bail!("kubernetes-validate accepted a DaemonSet with an unknown field: it checks nothing");
    }
    Ok(())
}

fn systemd(work: &Path) -> anyhow::Result<()> {
    // verify insists that ExecStart exists: check a copy that runs this build's binary.
    let binary = target_dir().join("debug/lineage-sensor");
    if !binary.exists() {
        bail!("{} is not built", binary.display());
    }
    let unit = std::fs::read_to_string(workspace_root().join(UNIT))?;
    let copy = work.join("lineage-sensor.service");
    std::fs::write(
        &copy,
        unit.replace(INSTALLED_BINARY, &binary.to_string_lossy()),
    )?;
    verify(&copy)?;
    let broken = work.join("broken/lineage-sensor.service");
    std::fs::create_dir_all(work.join("broken"))?;
    std::fs::write(
        &broken,
        unit.replace(INSTALLED_BINARY, &binary.to_string_lossy())
            .replace("NoNewPrivileges=yes", "NoNewPrivileges=perhaps"),
    )?;
    if verify(&broken).is_ok() {
        bail!("systemd-analyze verify accepted a broken unit: it checks nothing");
    }
    Ok(())
}

/// `systemd-analyze verify`, failing on any diagnostic: it exits 0 on some warnings.
fn verify(unit: &Path) -> anyhow::Result<()> {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit)
        .output()
        .context("running systemd-analyze")?;
    let diagnostics = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !diagnostics.trim().is_empty() {
        bail!(
            "systemd-analyze verify {}: {}",
            unit.display(),
            diagnostics.trim()
        );
    }
    Ok(())
}
