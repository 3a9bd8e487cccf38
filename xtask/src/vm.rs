//! `cargo xtask vm-test`: the release test binaries on other kernels, booted in QEMU.
//!
//! The guest's root is an initramfs holding this host's own userspace pieces that the tests use
//! (dash, id, true and their libraries, at their usual paths) and the release test binaries, with
//! a static busybox only for /init. So the guest differs from the host in its kernel alone: every
//! struct offset and tracepoint layout the sensor reads comes from that kernel's BTF and tracefs.

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{
    apt,
    cmd::{self, cargo, cargo_executables, output, workspace_root},
    guest_kernel, setup,
};

/// `--kernel` value meaning the pinned guest kernel (xtask/src/guest_kernel.rs).
pub const PINNED: &str = "pinned";
/// Integration test targets that run in the guest with no cgroup v2 mounted, so that
/// `connect_entry = "auto"` takes the `sys_enter_connect` fallback there.
const GUEST_TESTS: &[&str] = &[
    "capture",
    "capture_net",
    "files",
    "detection",
    "written_exec_id",
];
/// Integration test targets that need a cgroup v2 group of their own: they run after the
/// others, once the guest has mounted the hierarchy.
const GUEST_CGROUP_TESTS: &[&str] = &["lost_per_cgroup"];
/// Where the release sensor binary sits in the guest.
const GUEST_SENSOR: &str = "/usr/bin/lineage-sensor";
/// Host programs the tests start, copied with their libraries (bpftool reads the kernel's
/// lost-event counters for the capture tests).
const HOST_PROGRAMS: &[&str] = &[
    "/usr/bin/dash",
    "/usr/bin/id",
    "/usr/bin/true",
    "/usr/sbin/bpftool",
];
const BOOT_MARKER: &str = "lineage-vm: init";
const EXIT_MARKER: &str = "lineage-vm: exit=";

pub fn vm_test(kernels: &[String]) -> anyhow::Result<()> {
    setup::setup()?;
    apt::ensure(&["qemu-system-x86", "busybox-static", "cpio", "bpftool"]).context(
        "the guest suite needs QEMU: `apt-get install qemu-system-x86 busybox-static cpio \
         bpftool` (as root), then run again",
    )?;
    let work = workspace_root().join("target/vm");
    let tests = build_guest_tests()?;
    cmd::run(cargo().args([
        "build",
        "--release",
        "--package",
        "sensor-user",
        "--bin",
        "lineage-sensor",
    ]))?;
    let sensor = workspace_root().join("target/release/lineage-sensor");
    let initramfs = build_initramfs(&work, &tests, &sensor)?;

    let default = [PINNED.to_owned()];
    let kernels = if kernels.is_empty() {
        &default[..]
    } else {
        kernels
    };
    let mut results = Vec::new();
    for kernel in kernels {
        let pinned = kernel == PINNED;
        let vmlinuz = if pinned {
            guest_kernel::vmlinuz(&work)?
        } else {
            resolve_kernel(&work, kernel)?
        };
        let started = Instant::now();
        let outcome = boot_and_test(&vmlinuz, &initramfs).and_then(|(release, accel)| {
            if pinned {
                guest_kernel::check_release(&release)?;
            }
            Ok((release, accel))
        });
        let secs = started.elapsed().as_secs();
        match &outcome {
            Ok((release, accel)) => {
                eprintln!("vm-test: {kernel}: PASS on {release} ({accel}, {secs} s)");
                results.push((kernel.clone(), true));
            }
            Err(err) => {
                eprintln!("vm-test: {kernel}: FAIL ({secs} s): {err:#}");
                results.push((kernel.clone(), false));
            }
        }
        if pinned {
            // The document says what this run booted and how it went, pass or fail.
            let accel = outcome.as_ref().map_or("no result", |(_, a)| *a);
            let result = match &outcome {
                Ok(_) => format!(
                    "the {} guest tests pass",
                    [GUEST_TESTS, GUEST_CGROUP_TESTS].concat().join(", ")
                ),
                Err(err) => format!("FAIL: {err:#}"),
            };
            guest_kernel::write_doc(&guest_kernel::row(accel, secs, &result, &today()))?;
        }
    }
    let failed: Vec<_> = results
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(k, _)| k)
        .collect();
    if !failed.is_empty() {
        bail!("vm-test failed on: {failed:?}");
    }
    Ok(())
}

/// Builds the integration tests in release mode; returns `(target name, executable)` for the
/// guest tests, plus the helper binaries they run, found from cargo's own report.
fn build_guest_tests() -> anyhow::Result<Vec<(String, PathBuf)>> {
    let found: Vec<(String, PathBuf)> = cargo_executables(
        &[
            "test",
            "--release",
            "--package",
            "integration-tests",
            "--no-run",
        ],
        "the release test binaries",
    )?
    .into_iter()
    .filter(|(name, _)| {
        GUEST_TESTS.contains(&name.as_str())
            || GUEST_CGROUP_TESTS.contains(&name.as_str())
            || name == "workload"
    })
    .collect();
    for wanted in GUEST_TESTS
        .iter()
        .chain(GUEST_CGROUP_TESTS)
        .chain(&["workload"])
    {
        if !found.iter().any(|(n, _)| n == wanted) {
            bail!("cargo built no executable for {wanted}");
        }
    }
    Ok(found)
}

fn build_initramfs(
    work: &Path,
    tests: &[(String, PathBuf)],
    sensor: &Path,
) -> anyhow::Result<PathBuf> {
    let root = work.join("root");
    let _ = std::fs::remove_dir_all(&root);
    for dir in [
        "usr/bin",
        "usr/lib",
        "usr/lib64",
        "proc",
        "sys",
        "dev",
        "tmp",
        "tests",
    ] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    // /tmp stays part of the initramfs (already in memory and writable): a tmpfs mounted over it
    // would hide binaries copied to build paths under /tmp, where a checkout may live.
    // Debian 12's merged /usr.
    for (link, target) in [
        ("bin", "usr/bin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
        ("sbin", "usr/bin"),
    ] {
        std::os::unix::fs::symlink(target, root.join(link))?;
    }
    copy_into(
        &root,
        Path::new("/bin/busybox"),
        Path::new("/usr/bin/busybox"),
    )?;

    copy_into(&root, sensor, Path::new(GUEST_SENSOR))?;
    let mut elves: Vec<PathBuf> = HOST_PROGRAMS.iter().map(PathBuf::from).collect();
    elves.push(sensor.to_owned());
    for program in HOST_PROGRAMS {
        copy_into(&root, Path::new(program), Path::new(program))?;
    }
    std::os::unix::fs::symlink("dash", root.join("usr/bin/sh"))?;
    for (name, exe) in tests {
        // The workload keeps its build path: tests find it through a path compiled into them.
        let dest = if name == "workload" {
            exe.clone()
        } else {
            PathBuf::from("/tests").join(name)
        };
        copy_into(&root, exe, &dest)?;
        elves.push(exe.clone());
    }
    for lib in shared_libraries(&elves)? {
        copy_into(&root, &lib, &lib)?;
    }

    let in_guest = |names: &[&str]| -> Vec<String> {
        tests
            .iter()
            .filter(|(n, _)| names.contains(&n.as_str()))
            .map(|(n, _)| format!("/tests/{n}"))
            .collect()
    };
    let (tests_to_run, cgroup_tests) = (in_guest(GUEST_TESTS), in_guest(GUEST_CGROUP_TESTS));
    let init = format!(
        r#"#!/usr/bin/busybox sh
export PATH=/usr/sbin:/usr/bin:/bin
export LINEAGE_SENSOR_BIN={GUEST_SENSOR}
/usr/bin/busybox mount -t proc proc /proc
/usr/bin/busybox mount -t sysfs sysfs /sys
/usr/bin/busybox mount -t devtmpfs dev /dev
/usr/bin/busybox ip link set lo up
echo "{BOOT_MARKER} $(/usr/bin/busybox uname -r)"
rc=0
for t in {tests}; do
  echo "lineage-vm: running $t"
  $t --test-threads=1 || rc=1
done
/usr/bin/busybox mount -t cgroup2 cgroup2 /sys/fs/cgroup || rc=1
for t in {cgroup_tests}; do
  echo "lineage-vm: running $t"
  $t --test-threads=1 || rc=1
done
echo "{EXIT_MARKER}$rc"
/usr/bin/busybox poweroff -f
"#,
        tests = tests_to_run.join(" "),
        cgroup_tests = cgroup_tests.join(" ")
    );
    let init_path = root.join("init");
    std::fs::write(&init_path, init)?;
    std::fs::set_permissions(
        &init_path,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )?;

    let image = work.join("initramfs.cpio");
    cmd::run(Command::new("sh").arg("-c").arg(format!(
        "cd '{}' && find . | cpio --quiet -o -H newc > '{}'",
        root.display(),
        image.display()
    )))?;
    Ok(image)
}

/// Copies `src` (following links) to `dest` inside `root`.
fn copy_into(root: &Path, src: &Path, dest: &Path) -> anyhow::Result<()> {
    let target = root.join(dest.strip_prefix("/").unwrap_or(dest));
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(src, &target)
        .with_context(|| format!("copying {} into the guest root", src.display()))?;
    Ok(())
}

/// Every shared library the binaries load, as `ldd` resolves them on this host.
fn shared_libraries(binaries: &[PathBuf]) -> anyhow::Result<BTreeSet<PathBuf>> {
    let mut libs = BTreeSet::new();
    for binary in binaries {
        let Some(listing) = output(Command::new("ldd").arg(binary)) else {
            continue; // static
        };
        for line in listing.lines() {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
            let path = line
                .split("=>")
                .last()
                .and_then(|rest| rest.split_whitespace().next())
                .filter(|p| p.starts_with('/'));
            if let Some(path) = path {
                libs.insert(PathBuf::from(path));
            }
        }
    }
    Ok(libs)
}

/// A vmlinuz path as it is, or a Debian kernel package downloaded once into target/vm/kernels.
fn resolve_kernel(work: &Path, kernel: &str) -> anyhow::Result<PathBuf> {
    let as_path = Path::new(kernel);
    if as_path.is_file() {
        return Ok(as_path.to_owned());
    }
    let package = exact_package(kernel)?;
    let dir = work.join("kernels").join(&package);
    if let Some(found) = guest_kernel::find_vmlinuz(&dir) {
        return Ok(found);
    }
    std::fs::create_dir_all(&dir)?;
    eprintln!("vm-test: downloading {package}");
    let download = |dir: &Path| {
        Command::new("apt-get")
            .args(["download", &package])
            .current_dir(dir)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !download(&dir) {
        cmd::run(Command::new("apt-get").args(["update", "-qq"]))?;
        if !download(&dir) {
            bail!("apt-get download {package} failed");
        }
    }
    let deb = std::fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb")?;
    cmd::run(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(dir.join("extracted")),
    )?;
    let _ = std::fs::remove_file(&deb);
    guest_kernel::find_vmlinuz(&dir).with_context(|| format!("no boot/vmlinuz-* in {package}"))
}

/// A metapackage such as linux-image-cloud-amd64 names the exact image it depends on; an exact
/// image package depends on no other image.
fn exact_package(name: &str) -> anyhow::Result<String> {
    let deps = output(Command::new("apt-cache").args(["depends", name]))
        .with_context(|| format!("apt-cache knows no package {name} (apt-get update?)"))?;
    Ok(deps
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|d| d.starts_with("linux-image-"))
        .map_or_else(|| name.to_owned(), str::to_owned))
}

/// Boots with KVM when it works, else with TCG (KVM is present but unusable inside some VMs);
/// returns the guest's kernel release and the accelerator used.
fn boot_and_test(vmlinuz: &Path, initramfs: &Path) -> anyhow::Result<(String, &'static str)> {
    if kvm_device() {
        match boot(vmlinuz, initramfs, "kvm", Duration::from_secs(30)) {
            Ok(release) => return Ok((release, "kvm")),
            Err(BootError::NoBoot(why)) => {
                eprintln!("vm-test: KVM did not boot the guest ({why}); using TCG emulation");
            }
            Err(BootError::Failed(err)) => return Err(err),
        }
    }
    boot(vmlinuz, initramfs, "tcg", Duration::from_secs(120))
        .map(|release| (release, "tcg"))
        .map_err(|e| match e {
            BootError::NoBoot(why) => anyhow::anyhow!("the guest did not boot: {why}"),
            BootError::Failed(err) => err,
        })
}

/// Whether /dev/kvm is a character device (a run that hides it, e.g. by binding a plain file
/// over it, gets TCG).
fn kvm_device() -> bool {
    use std::os::unix::fs::FileTypeExt as _;
    std::fs::metadata("/dev/kvm").is_ok_and(|m| m.file_type().is_char_device())
}

/// Today's date (UTC), for the document.
fn today() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    )
}

enum BootError {
    /// The guest never reached /init: try another accelerator.
    NoBoot(String),
    /// The guest ran the tests and they failed, or it stopped half way.
    Failed(anyhow::Error),
}

/// Whole-run limit once the guest is up (the exec storm under emulation is the long part).
const RUN_LIMIT: Duration = Duration::from_secs(25 * 60);

fn boot(
    vmlinuz: &Path,
    initramfs: &Path,
    accel: &str,
    boot_limit: Duration,
) -> Result<String, BootError> {
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args([
        "-accel",
        accel,
        "-m",
        "1024",
        "-smp",
        "2",
        "-nographic",
        "-no-reboot",
        "-nic",
        "none",
    ])
    .args(if accel == "kvm" {
        &["-cpu", "host"][..]
    } else {
        &["-cpu", "max"][..]
    })
    .arg("-kernel")
    .arg(vmlinuz)
    .arg("-initrd")
    .arg(initramfs)
    // `bpf` in the LSM list, so that BPF LSM programs can load in the guest (the build machine
    // refuses them): the guest is where the kernel paths the host cannot load get tested.
    .args([
        "-append",
        "console=ttyS0 panic=-1 quiet lsm=lockdown,capability,landlock,yama,apparmor,bpf",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = qemu.spawn().map_err(|e| {
        BootError::NoBoot(format!(
            "cannot start qemu-system-x86_64 ({e}): install it with \
                 `apt-get install qemu-system-x86` (cargo xtask test does, as root)"
        ))
    })?;
    let (tx, rx) = mpsc::channel::<String>();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    drop(tx);

    let started = Instant::now();
    let mut release = None;
    let result = loop {
        let limit = if release.is_none() {
            boot_limit
        } else {
            RUN_LIMIT
        };
        let left = limit.saturating_sub(started.elapsed());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                break Err(match release {
                    None => BootError::NoBoot(format!("no {BOOT_MARKER:?} within {limit:?}")),
                    Some(_) => {
                        BootError::Failed(anyhow::anyhow!("tests did not finish within {limit:?}"))
                    }
                });
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break Err(match release {
                    None => BootError::NoBoot("qemu exited before /init ran".into()),
                    Some(_) => BootError::Failed(anyhow::anyhow!(
                        "the guest stopped before the tests finished"
                    )),
                });
            }
        };
        let line = line.trim_end_matches('\r').to_owned();
        println!("[guest] {line}");
        // The firmware leaves terminal escapes on the console: markers can sit mid-line.
        if let Some(at) = line.find(BOOT_MARKER) {
            release = Some(line[at + BOOT_MARKER.len()..].trim().to_owned());
        }
        if let Some(code) = line
            .find(EXIT_MARKER)
            .map(|at| &line[at + EXIT_MARKER.len()..])
        {
            break if code.trim() == "0" {
                Ok(release.clone().unwrap_or_default())
            } else {
                Err(BootError::Failed(anyhow::anyhow!(
                    "tests failed in the guest"
                )))
            };
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}
