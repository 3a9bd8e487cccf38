//! `cargo xtask test`: everything CI runs, in the order a failure is cheapest to find.

use anyhow::bail;

use crate::{
    apt,
    cmd::{self, cargo, is_root},
    deploy_check, fuzz, servers, setup, vm,
};

/// Per fuzz target, in every test run.
const FUZZ_SECONDS: u64 = 10;

/// What the integration tests run on the host as the guest has it: every launcher the evasion
/// test names (busybox included), and bpftool, with which the tests read the kernel's own
/// lost-event counters.
const HOST_TEST_PACKAGES: &[&str] = &[
    "busybox-static",
    "coreutils",
    "util-linux",
    "bash",
    "bpftool",
    // javac and jar: tests/tests/listener_role.rs builds a `java -jar` application.
    "default-jdk-headless",
    // tests/tests/workload.rs: a real containerd (CRI plugin) and runc run a pod, driven over
    // the CRI API by tests/fixtures/cri/cri_pod.py with Debian's grpcio.
    "containerd",
    "runc",
    "python3-grpcio",
    // tests/tests/workload.rs: a plain Podman container.
    "podman",
];

pub fn test() -> anyhow::Result<()> {
    setup::setup()?;
    // The integration tests run the real binary; build it first.
    cmd::run(cargo().args([
        "build",
        "--package",
        "sensor-user",
        "--bin",
        "lineage-sensor",
    ]))?;
    // Unit tests and replay scenarios: no privileges needed.
    cmd::run(cargo().args([
        "test",
        "--workspace",
        "--exclude",
        "sensor-ebpf",
        "--exclude",
        "integration-tests",
    ]))?;
    // Each fuzz target for a few seconds: a smoke run that catches a decoder or parser panic
    // early; `cargo xtask fuzz --seconds N` runs them for longer.
    fuzz::fuzz(&[], FUZZ_SECONDS)?;
    if !is_root() {
        bail!(
            "the integration tests load the real eBPF programs and must run as root: \
             `sudo -E cargo xtask test`"
        );
    }
    apt::ensure(HOST_TEST_PACKAGES)?;
    servers::install()?;
    deploy_check::deploy_check()?;
    // One test thread: the tests share the kernel's tracepoints and count events system-wide.
    cmd::run(cargo().args([
        "test",
        "--package",
        "integration-tests",
        "--",
        "--test-threads=1",
    ]))?;
    // The same tests on the pinned guest kernel, with KVM when it works and TCG emulation
    // otherwise; never skipped: a machine that cannot run QEMU fails here, saying how to fix it.
    vm::vm_test(&[])
}
