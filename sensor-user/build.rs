//! Builds the kernel programs (sensor-ebpf's bin target) with the nightly toolchain and
//! bpf-linker, and puts the object in OUT_DIR for `include_bytes_aligned!`.
//! `cargo xtask setup` installs what this needs.

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?;
    let root = std::path::Path::new(&manifest)
        .parent()
        .ok_or_else(|| anyhow!("sensor-user has no parent directory"))?
        .join("sensor-ebpf");
    let root = root
        .to_str()
        .ok_or_else(|| anyhow!("path of sensor-ebpf is not UTF-8"))?;
    aya_build::build_ebpf(
        [Package {
            name: "sensor-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        Toolchain::default(),
    )
    .context("building the eBPF programs failed; run `cargo xtask setup` to install the nightly rust-src and bpf-linker")
}
