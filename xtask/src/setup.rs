//! Installing the eBPF toolchain.
//!
//! aya-build compiles sensor-ebpf with the nightly toolchain and `-Z build-std=core`, which needs
//! the nightly's rust-src, and links it with bpf-linker. bpf-linker's default build wants a system
//! LLVM of its own version; instead it is built against the nightly's own libLLVM (the same major
//! version the nightly emits), reached through a stable prefix under the user's cache directory.

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, bail};

use crate::cmd::{self, output};

const BPF_LINKER_VERSION: &str = "0.13.0";

pub fn setup() -> anyhow::Result<()> {
    ensure_rust_src()?;
    ensure_bpf_linker()?;
    Ok(())
}

fn nightly_sysroot() -> anyhow::Result<PathBuf> {
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"])).context(
        "no nightly toolchain: lineage-sensor's eBPF programs are built with nightly Rust \
             (`rustup toolchain install nightly`)",
    )?;
    Ok(PathBuf::from(sysroot))
}

fn ensure_rust_src() -> anyhow::Result<()> {
    let core_src = nightly_sysroot()?.join("lib/rustlib/src/rust/library/core");
    if core_src.is_dir() {
        return Ok(());
    }
    eprintln!("setup: adding rust-src to the nightly toolchain");
    cmd::run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))
}

fn ensure_bpf_linker() -> anyhow::Result<()> {
    if let Some(version) = output(Command::new("bpf-linker").arg("--version")) {
        if version.contains(BPF_LINKER_VERSION) {
            return Ok(());
        }
        eprintln!("setup: found {version}, installing {BPF_LINKER_VERSION}");
    }
    let lib = nightly_sysroot()?.join("lib");
    let libllvm = std::fs::read_dir(&lib)
        .with_context(|| format!("reading {}", lib.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so.") && n.ends_with("-nightly"))
        })
        .with_context(|| format!("no libLLVM.so.*-nightly in {}", lib.display()))?;
    let file_name = libllvm
        .file_name()
        .and_then(|n| n.to_str())
        .context("libLLVM file name is not UTF-8")?
        .to_owned();
    // libLLVM.so.22.1-rust-1.97.0-nightly -> 22
    let major = file_name
        .trim_start_matches("libLLVM.so.")
        .split(['.', '-'])
        .next()
        .filter(|m| m.chars().all(|c| c.is_ascii_digit()))
        .with_context(|| format!("cannot read the LLVM version from {file_name}"))?
        .to_owned();

    let prefix = cache_dir()?.join("lineage-sensor/llvm");
    let prefix_lib = prefix.join("lib");
    std::fs::create_dir_all(&prefix_lib)
        .with_context(|| format!("creating {}", prefix_lib.display()))?;
    for link in [prefix_lib.join("libLLVM.so"), prefix_lib.join(&file_name)] {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&libllvm, &link)
            .with_context(|| format!("linking {} to {}", link.display(), libllvm.display()))?;
    }
    eprintln!(
        "setup: building bpf-linker {BPF_LINKER_VERSION} against LLVM {major} (about a minute)"
    );
    cmd::run(
        Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--locked",
                "--no-default-features",
                "--features",
                &format!("llvm-{major}"),
            ])
            .env("LLVM_PREFIX", &prefix),
    )?;
    if output(Command::new("bpf-linker").arg("--version")).is_none() {
        bail!("bpf-linker was installed but does not run; is ~/.cargo/bin on PATH?");
    }
    Ok(())
}

fn cache_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME").context("neither XDG_CACHE_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache"))
}
