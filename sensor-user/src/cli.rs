//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Process lineage and outbound connections from the kernel, to catch servers turned into
/// footholds (MITRE ATT&CK T1505).
#[derive(Debug, Parser)]
#[command(name = "lineage-sensor", version)]
pub struct Cli {
    /// Log filter (error, warn, info, debug, trace), as in RUST_LOG; logs go to stderr.
    #[arg(
        long,
        global = true,
        default_value = "info",
        env = "LINEAGE_SENSOR_LOG"
    )]
    pub log_level: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Merge baseline files (exports of several hosts) into one, sorted, on stdout: templates
    /// add up, and each server's learning ends when the earliest file says.
    Merge {
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// End every server's learning: for a file reviewed as the fleet's normal.
        #[arg(long)]
        close: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write every kernel event (exec, fork, exit, connect) as one JSON line; see docs/events.md.
    Record {
        /// Configuration file (TOML); defaults apply without one.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Detect live: kernel events through the detection engine, alerts to the configured sinks
    /// (stdout by default) as one ECS JSON object per line (see docs/detection.md,
    /// docs/outputs.md). SIGHUP reloads the configuration file.
    Run {
        /// Configuration file (TOML); defaults apply without one.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Serve /metrics, /healthz and /readyz here instead of at `metrics.listen`
        /// (default 127.0.0.1:9727).
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<std::net::SocketAddr>,
    },
    /// Run the detection engine over a `record` file (`-` for stdin): the same alerts as live,
    /// deterministically and without the kernel.
    Replay {
        /// The record file.
        file: PathBuf,
        /// Configuration file (TOML); defaults apply without one.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Seed the process table from this host's /proc first (off by default: a replay
        /// depends on the record alone).
        #[arg(long)]
        seed_proc: bool,
        /// Learn the baseline from this record first, as if each server's learning window had
        /// passed over it, then detect on FILE with it (a `.toml` file is read as a baseline
        /// file instead: an export or a fleet's merge).
        #[arg(long, value_name = "LEARN")]
        baseline: Option<PathBuf>,
        /// Write the baseline as it stands after the replay to this file (an export).
        #[arg(long, value_name = "OUT")]
        save_baseline: Option<PathBuf>,
    },
    /// Learned baseline files (see docs/detection.md, "Learned baseline").
    Baseline {
        #[command(subcommand)]
        command: BaselineCommand,
    },
    /// Validate a configuration file; exit code 2 and a message naming file, line and field if it
    /// is not valid.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Started by `run` under execution prevention: continues every process held at exec
    /// when the sensor exits (docs/prevention.md). Not for people.
    #[command(hide = true)]
    HoldWatchdog {
        #[arg(long)]
        sensor_pid: u32,
        /// The inherited fd of the HELD map.
        #[arg(long)]
        held_fd: i32,
        /// Continue a process held this long (the sensor is alive but not judging).
        #[arg(long)]
        stuck_ms: u64,
    },
}
