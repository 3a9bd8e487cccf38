//! The guest kernel of `cargo xtask test`, pinned: one exact Debian package version, its .deb
//! checked against the SHA-256 recorded here, and the release the booted guest must report
//! (`uname -r`). A metapackage such as linux-image-cloud-amd64 follows whatever the host's
//! sources hold today (6.1 on Debian 12, 6.12 on the next release), and "passes on 6.1" would
//! change under the suite unnoticed. The run writes its result into docs/kernels.md, so the
//! document names the kernel that was booted, not the one someone remembers.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use sha2::{Digest as _, Sha256};

use crate::cmd::{self, workspace_root};

pub struct Pin {
    pub package: &'static str,
    pub version: &'static str,
    /// Of the .deb, as Debian's Packages index lists it (`apt-cache show PACKAGE=VERSION`).
    pub sha256: &'static str,
    /// What `uname -r` says in the guest.
    pub release: &'static str,
}

/// Debian 12's cloud kernel of the 6.1 line (bookworm-security). To move the pin: the new
/// package's Version and SHA256 from `apt-cache show`, its release from the package name.
pub const GUEST: Pin = Pin {
    package: "linux-image-6.1.0-57-cloud-amd64",
    version: "6.1.192-3",
    sha256: "4fdd0172a8c3f41a97e92465b2ac1867e1c10d82d7aeed3d26ee7a5d14df1754",
    release: "6.1.0-57-cloud-amd64",
};

const DOC: &str = "docs/kernels.md";
const BEGIN: &str = "<!-- guest: written by cargo xtask vm-test -->";
const END: &str = "<!-- end of guest -->";

/// The pinned kernel's vmlinuz, downloaded once into `work/kernels/` and checked.
pub fn vmlinuz(work: &Path) -> anyhow::Result<PathBuf> {
    let dir = work
        .join("kernels")
        .join(format!("{}_{}", GUEST.package, GUEST.version));
    if let Some(found) = find_vmlinuz(&dir) {
        return Ok(found);
    }
    std::fs::create_dir_all(&dir)?;
    let wanted = format!("{}={}", GUEST.package, GUEST.version);
    eprintln!("vm-test: downloading {wanted}");
    let download = |dir: &Path| {
        Command::new("apt-get")
            .args(["download", &wanted])
            .current_dir(dir)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !download(&dir) {
        cmd::run(Command::new("apt-get").args(["update", "-qq"]))?;
        if !download(&dir) {
            bail!(
                "apt-get download {wanted} failed: the mirror is unreachable (see apt's message \
                 above), or the pinned guest kernel is no longer in the package sources (then \
                 move the pin in xtask/src/guest_kernel.rs)"
            );
        }
    }
    let deb = std::fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb")?;
    let bytes = std::fs::read(&deb).with_context(|| format!("reading {}", deb.display()))?;
    let sum: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if sum != GUEST.sha256 {
        let _ = std::fs::remove_file(&deb);
        bail!(
            "{} has SHA-256 {sum}, not the pinned {}",
            deb.display(),
            GUEST.sha256
        );
    }
    cmd::run(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(dir.join("extracted")),
    )?;
    let _ = std::fs::remove_file(&deb);
    find_vmlinuz(&dir).with_context(|| format!("no boot/vmlinuz-* in {wanted}"))
}

pub fn find_vmlinuz(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir.join("extracted/boot"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
}

/// The booted guest must be the pinned kernel.
pub fn check_release(booted: &str) -> anyhow::Result<()> {
    if booted != GUEST.release {
        bail!(
            "the guest booted {booted:?}, not the pinned {} ({}={})",
            GUEST.release,
            GUEST.package,
            GUEST.version
        );
    }
    Ok(())
}

/// The guest row of docs/kernels.md, from a run of the pinned kernel.
pub fn row(accel: &str, secs: u64, outcome: &str, date: &str) -> String {
    format!(
        "| {release} (Debian 12, `{package}={version}`, pinned) | QEMU, {accel}, {secs} s | {outcome} ({date}) |",
        release = GUEST.release,
        package = GUEST.package,
        version = GUEST.version,
    )
}

/// Replaces the generated guest row of docs/kernels.md.
pub fn write_doc(row: &str) -> anyhow::Result<()> {
    let path = workspace_root().join(DOC);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {DOC}"))?;
    let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        bail!("{DOC} has no {BEGIN} ... {END} section");
    };
    let updated = format!("{}{BEGIN}\n{row}\n{}", &text[..begin], &text[end..]);
    std::fs::write(&path, updated).with_context(|| format!("writing {DOC}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated guest row as the document holds it now.
    pub fn doc_row(text: &str) -> Option<&str> {
        let begin = text.find(BEGIN)? + BEGIN.len();
        let end = text.find(END)?;
        text.get(begin..end).map(str::trim)
    }

    /// docs/kernels.md names the kernel the suite boots: a pin moved without a run (or a
    /// document edited by hand) fails here.
    #[test]
    fn the_documented_guest_is_the_pinned_kernel() {
        let text = std::fs::read_to_string(workspace_root().join(DOC)).expect("docs/kernels.md");
        let row = doc_row(&text).expect("a generated guest row in docs/kernels.md");
        let pinned = format!(
            "| {} (Debian 12, `{}={}`, pinned) |",
            GUEST.release, GUEST.package, GUEST.version
        );
        assert!(
            row.starts_with(&pinned),
            "docs/kernels.md's guest row is not from a run of the pinned kernel: {row}"
        );
        assert!(
            GUEST.package.ends_with(GUEST.release),
            "the release is the package's"
        );
    }

    #[test]
    fn a_guest_of_another_release_is_refused() {
        assert!(check_release(GUEST.release).is_ok());
        assert!(check_release("6.12.57-cloud-amd64").is_err());
    }
}
