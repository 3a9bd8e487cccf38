//! `cargo xtask run`: build in release mode and start the sensor.

use std::process::Command;

use anyhow::bail;

use crate::{
    cmd::{self, cargo, is_root, workspace_root},
    setup,
};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    setup::setup()?;
    cmd::run(cargo().args([
        "build",
        "--release",
        "--package",
        "sensor-user",
        "--bin",
        "lineage-sensor",
    ]))?;
    if !is_root() {
        bail!(
            "lineage-sensor loads eBPF programs and needs root (or CAP_BPF, CAP_PERFMON and \
             CAP_SYS_PTRACE): run `sudo -E cargo xtask run`"
        );
    }
    let binary = workspace_root().join("target/release/lineage-sensor");
    let default_args = ["run".to_owned()];
    let args = if args.is_empty() {
        &default_args[..]
    } else {
        args
    };
    cmd::run(Command::new(binary).args(args))
}
