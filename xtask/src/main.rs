//! `cargo xtask`: the project's own commands. `setup` installs what the build needs and is run
//! by every other command, so a fresh machine needs nothing by hand.

mod apt;
mod bench;
mod churn;
mod cmd;
mod deploy_check;
mod doc_figures;
mod fuzz;
mod guest_kernel;
mod run;
mod servers;
mod setup;
mod test;
mod vm;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install the eBPF toolchain: the nightly's rust-src and a bpf-linker built against the
    /// nightly's own LLVM. Idempotent; changes nothing that is already in place.
    Setup,
    /// Build the sensor in release mode and run it (as root): `cargo xtask run -- record -o x`.
    Run {
        /// Arguments for lineage-sensor; `run` when none are given.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run every test: unit tests, then the privileged integration tests (root).
    Test,
    /// Validate deploy/ (Kubernetes schemas, systemd-analyze verify), installing the tools.
    DeployCheck,
    /// Fuzz the ring buffer decoder, the record reader and the config parser (cargo-fuzz).
    Fuzz {
        /// Targets to run (decode, record, config); all when none are given.
        targets: Vec<String>,
        /// How long each target runs.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Boot other kernels in QEMU and run the guest tests inside (the pinned Debian 6.1 kernel
    /// by default; KVM when it works, software emulation otherwise).
    VmTest {
        /// A vmlinuz path, a Debian kernel package name, or `pinned`; repeatable.
        #[arg(long = "kernel")]
        kernels: Vec<String>,
    },
    /// Measure overhead against auditd and bpftrace, replay throughput, latency and memory (root).
    Bench(bench::Options),
    /// A million short-lived processes and 100,000 threads against `run`: RSS and table sizes.
    Churn(churn::Options),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Setup => setup::setup(),
        Command::Run { args } => run::run(&args),
        Command::Test => test::test(),
        Command::DeployCheck => deploy_check::deploy_check(),
        Command::VmTest { kernels } => vm::vm_test(&kernels),
        Command::Bench(options) => bench::bench(options),
        Command::Churn(options) => churn::churn(options),
        Command::Fuzz { targets, seconds } => fuzz::fuzz(&targets, seconds),
    }
}
