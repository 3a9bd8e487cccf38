//! lineage-sensor: parse the command line, load the config, hand over to the command.

mod cli;

use std::{path::Path, process::ExitCode};

use anyhow::Context as _;
use clap::Parser as _;
use lineage_sensor::{
    commands,
    config::{Config, ConfigError},
    detect::HostInfo,
};

/// Exit code for a configuration that cannot be used.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    env_logger::Builder::new()
        .parse_filters(&cli.log_level)
        .format_target(false)
        .init();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(err) => {
            let code = if err.chain().any(|cause| cause.is::<ConfigError>()) {
                EXIT_CONFIG
            } else {
                1
            };
            eprintln!("lineage-sensor: {err:#}");
            ExitCode::from(code)
        }
    }
}

fn dispatch(command: cli::Command) -> anyhow::Result<ExitCode> {
    match command {
        cli::Command::Record { config, output } => {
            let config = load_config(config.as_deref())?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let stop = stop_on_signal(&runtime)?;
            let totals =
                runtime.block_on(commands::record::record(&config, output.as_deref(), stop))?;
            log::info!("stopped; {totals}");
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Run {
            config: config_path,
            metrics_listen,
        } => {
            let config = load_config(config_path.as_deref())?;
            let engine =
                commands::build_engine(&config, config_path.as_deref(), commands::run::host())?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let options = commands::run::RunOptions {
                config_path,
                metrics_listen,
            };
            let stop = stop_on_signal(&runtime)?;
            let totals = runtime.block_on(commands::run::run(&config, engine, &options, stop))?;
            log::info!("stopped; {totals}");
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Replay {
            file,
            config,
            seed_proc,
            baseline,
            save_baseline,
        } => {
            let config_path = config;
            let config = load_config(config_path.as_deref())?;
            // The test record of `--baseline` is detected with learning over.
            let test_config = match &baseline {
                Some(_) => commands::replay::learning_over(&config),
                None => config.clone(),
            };
            let engine =
                commands::build_engine(&test_config, config_path.as_deref(), HostInfo::default())?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
            let totals = if baseline.is_some() || save_baseline.is_some() {
                use commands::replay::{learn_file, learn_record, open_record};
                let learned = match &baseline {
                    Some(p) if p.extension().is_some_and(|e| e == "toml") => Some(learn_file(p)?),
                    Some(p) => Some(learn_record(&config, open_record(p)?)?),
                    None => None,
                };
                commands::replay::replay_with_baseline(
                    engine,
                    &test_config,
                    learned,
                    open_record(&file)?,
                    &mut out,
                    save_baseline.as_deref(),
                )?
            } else {
                commands::replay::replay_file(engine, &config, &file, seed_proc, &mut out)?
            };
            log::info!("replayed {}; {totals}", file.display());
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Baseline {
            command: cli::BaselineCommand::Merge { files, close },
        } => {
            let text = lineage_sensor::detect::baseline::merge_files(&files, close)?;
            std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::HoldWatchdog {
            sensor_pid,
            held_fd,
            stuck_ms,
        } => {
            commands::hold_watchdog::watch(
                sensor_pid,
                held_fd,
                std::time::Duration::from_millis(stuck_ms),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::CheckConfig { file } => {
            let config = Config::load(&file)?;
            commands::build_engine(&config, Some(&file), HostInfo::default())?;
            // As `run` would refuse them: state below a directory others can write.
            lineage_sensor::config::check_state_locations(&config)?;
            // As `run` would refuse to start: a fleet baseline it cannot read.
            for path in &config.baseline.load {
                lineage_sensor::detect::baseline::read(path)?;
            }
            println!("{}: valid", file.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// SIGINT/SIGTERM handling, installed before the command starts (see `shutdown_signal`).
fn stop_on_signal(
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let _inside = runtime.enter();
    commands::shutdown_signal().context("watching for SIGINT and SIGTERM")
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(path) => Ok(Config::load(path)?),
        None => Ok(Config::default()),
    }
}
