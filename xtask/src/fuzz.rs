//! `cargo xtask fuzz`: the cargo-fuzz targets under tests/fuzz, each for a bounded time.
//!
//! `cargo xtask test` runs every target for a few seconds; longer runs are `cargo xtask fuzz
//! --seconds 600`. The targets assert properties (an accepted event round-trips through the
//! record format), not only "no panic". An input that crashes a target or times out is copied
//! from tests/fuzz/artifacts/<target>/ into tests/fuzz/regressions/<target>/ by the failing run
//! itself, and sensor-user's fuzz_regressions test replays it from then on: commit it with the
//! fix.

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
        let run = cmd::run(
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
        );
        if let Err(err) = run {
            let kept = keep_findings(&fuzz_dir, target)?;
            return Err(err).with_context(|| {
                format!(
                    "fuzz target {target} failed; its findings are kept in \
                     tests/fuzz/regressions/{target}/ ({kept:?}) and replayed by the suite: \
                     fix the bug and commit them"
                )
            });
        }
    }
    Ok(())
}

/// Copies the crash, timeout and out-of-memory inputs libFuzzer left for `target` into the
/// regressions folder; returns their names.
fn keep_findings(fuzz_dir: &std::path::Path, target: &str) -> anyhow::Result<Vec<String>> {
    let artifacts = fuzz_dir.join("artifacts").join(target);
    let regressions = fuzz_dir.join("regressions").join(target);
    std::fs::create_dir_all(&regressions)
        .with_context(|| format!("creating {}", regressions.display()))?;
    let mut kept = Vec::new();
    for entry in std::fs::read_dir(&artifacts)
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if ["crash-", "timeout-", "oom-", "leak-"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            std::fs::copy(entry.path(), regressions.join(&name))
                .with_context(|| format!("keeping {name}"))?;
            kept.push(name);
        }
    }
    Ok(kept)
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
