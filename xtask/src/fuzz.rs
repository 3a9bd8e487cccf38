//! `cargo xtask fuzz`: the cargo-fuzz targets under tests/fuzz, each for a bounded time.
//!
//! `cargo xtask test` runs every target for a few seconds; longer runs are `cargo xtask fuzz
//! --seconds 600`. An input that crashes a target is left in tests/fuzz/artifacts/<target>/;
//! copied into tests/fuzz/regressions/<target>/, it is replayed by sensor-user's
//! fuzz_regressions test from then on.

use std::process::Command;

use anyhow::Context as _;

use crate::{
    cmd::{self, output, workspace_root},
    setup,
};

pub const TARGETS: [&str; 5] = ["decode", "record", "config", "spool", "state"];
const CARGO_FUZZ_VERSION: &str = "0.13.2";

pub fn fuzz(targets: &[String], seconds: u64) -> anyhow::Result<()> {
    setup::setup()?;
    ensure_cargo_fuzz()?;
    let fuzz_dir = workspace_root().join("tests/fuzz");
    let all: Vec<String> = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    let targets = if targets.is_empty() {
        &all[..]
    } else {
        targets
    };
    for target in targets {
        let corpus = fuzz_dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)
            .with_context(|| format!("creating {}", corpus.display()))?;
        eprintln!("xtask: fuzzing {target} for {seconds} s");
        cmd::run(
            Command::new("cargo")
                .args(["+nightly", "fuzz", "run", "--fuzz-dir"])
                .arg(&fuzz_dir)
                .arg(target)
                .arg(&corpus)
                .arg(fuzz_dir.join("seeds").join(target))
                .arg("--")
                .arg(format!("-max_total_time={seconds}"))
                .arg("-rss_limit_mb=4096")
                .current_dir(workspace_root()),
        )
        .with_context(|| {
            format!(
                "fuzz target {target} failed: the crashing input is in tests/fuzz/artifacts/{target}/; \
                 fix the bug and copy the input into tests/fuzz/regressions/{target}/"
            )
        })?;
    }
    Ok(())
}

fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    if output(Command::new("cargo").args(["fuzz", "--version"]))
        .is_some_and(|v| v.contains(CARGO_FUZZ_VERSION))
    {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz {CARGO_FUZZ_VERSION}");
    cmd::run(Command::new("cargo").args([
        "install",
        "cargo-fuzz",
        "--version",
        CARGO_FUZZ_VERSION,
        "--locked",
    ]))
}
