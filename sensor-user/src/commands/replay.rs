//! `lineage-sensor replay FILE`: the detection engine over a `record` file. Deterministic: the
//! only clock is the events' own time, the host comes from the record's header, and /proc is read
//! only when asked.

use std::{
    fs::File,
    io::{BufRead, BufReader, Write},
    path::Path,
};

use crate::{
    alert::Alert,
    config::Config,
    detect::{
        DetectError, Engine, EngineTotals, HostInfo,
        baseline::{self, Habits, ServerKey},
    },
    lineage::{LineageError, clock_ticks_per_sec, read_proc},
    record::{RecordError, read_events},
};

/// A learned baseline: per server, its habits.
pub type Learned = std::collections::BTreeMap<ServerKey, Habits>;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot open record file {path}: {source}")]
    Open {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Record {
        path: std::path::PathBuf,
        source: RecordError,
    },
    #[error(transparent)]
    Detect(#[from] DetectError),
    #[error(transparent)]
    Lineage(#[from] LineageError),
    #[error("writing alerts: {0}")]
    Write(#[from] std::io::Error),
    #[error("serialising an alert: {0}")]
    Serialise(#[from] serde_json::Error),
}

/// Replays `path` (`-` for stdin) through `engine` (built from `config`), writing alerts as
/// NDJSON to `out`.
pub fn replay_file(
    engine: Engine,
    config: &Config,
    path: &Path,
    seed_proc: bool,
    out: &mut dyn Write,
) -> Result<EngineTotals, ReplayError> {
    let input: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(BufReader::with_capacity(1 << 16, std::io::stdin()))
    } else {
        Box::new(BufReader::with_capacity(
            1 << 16,
            File::open(path).map_err(|source| ReplayError::Open {
                path: path.to_owned(),
                source,
            })?,
        ))
    };
    let mut engine = engine;
    replay_with(&mut engine, config, input, seed_proc, out).map_err(|err| match err {
        ReplayError::Record { source, .. } => ReplayError::Record {
            path: path.to_owned(),
            source,
        },
        other => other,
    })
}

/// Replays a record read from `input`; alerts go to `out`, one JSON object per line.
pub fn replay(
    config: &Config,
    input: impl BufRead,
    seed_proc: bool,
    out: &mut dyn Write,
) -> Result<EngineTotals, ReplayError> {
    replay_with(
        &mut Engine::new(config, HostInfo::default())?,
        config,
        input,
        seed_proc,
        out,
    )
}

/// The learned baseline of a record (its alerts discarded), as if each server's learning
/// window had passed over it: `replay --baseline LEARN TEST`'s first half.
pub fn learn_record(config: &Config, learn: impl BufRead) -> Result<Learned, ReplayError> {
    let mut learner = Engine::new(config, HostInfo::default())?;
    replay_with(&mut learner, config, learn, false, &mut std::io::sink())?;
    let mut servers = learner.baseline().take_servers();
    for habits in servers.values_mut() {
        habits.learning_ends_wall_ns = None;
    }
    Ok(servers)
}

/// A baseline file (an export, a fleet's merge) read for `replay --baseline FILE.toml`; its
/// learning is taken as over.
pub fn learn_file(path: &Path) -> Result<Learned, ReplayError> {
    let mut servers = baseline::read(path).map_err(DetectError::from)?;
    for habits in servers.values_mut() {
        habits.learning_ends_wall_ns = None;
    }
    Ok(servers)
}

/// The config the test record of `replay --baseline` is detected with: learning is over, so a
/// server the baseline does not know is judged against no habits, as the test of a tuning
/// wants.
pub fn learning_over(config: &Config) -> Config {
    let mut over = config.clone();
    over.baseline.learning_secs = 0;
    over
}

/// Detects on the `test` record with `engine` (fresh: the records' pids and clocks are their
/// own; built from [`learning_over`] when there is a learned baseline) and the `learned`
/// baseline; without one the record is learned as `run` would. `save`, if given, receives the
/// baseline afterwards (an export).
pub fn replay_with_baseline(
    mut engine: Engine,
    config: &Config,
    learned: Option<Learned>,
    test: impl BufRead,
    out: &mut dyn Write,
    save: Option<&Path>,
) -> Result<EngineTotals, ReplayError> {
    engine.baseline().merge(learned.unwrap_or_default());
    let totals = replay_with(&mut engine, config, test, false, out)?;
    if let Some(path) = save {
        let text = engine.baseline().render(path).map_err(DetectError::from)?;
        std::fs::write(path, text)?;
    }
    Ok(totals)
}

fn replay_with(
    engine: &mut Engine,
    config: &Config,
    input: impl BufRead,
    seed_proc: bool,
    out: &mut dyn Write,
) -> Result<EngineTotals, ReplayError> {
    if seed_proc {
        engine.seed(read_proc(&config.lineage.proc_root, clock_ticks_per_sec())?);
    }
    let mut reader = read_events(input);
    let mut host_set = false;
    let mut alerts: Vec<Alert> = Vec::new();
    let mut line = Vec::with_capacity(4096);
    while let Some(event) = reader.next() {
        let event = event.map_err(|source| ReplayError::Record {
            path: std::path::PathBuf::new(),
            source,
        })?;
        if !host_set {
            // The header, when there is one, is the line before the first event.
            if let Some(h) = reader.header() {
                engine.set_host(HostInfo {
                    hostname: h.hostname.clone(),
                    boot_wall_ns: h.boot_wall_ns,
                });
            }
            host_set = true;
        }
        // What `record` learned of containers before this event, as `run` learned it then.
        for container in reader.take_containers() {
            engine.add_container(container.cgroup_id, container.container());
            if let Some(names) = container.names() {
                engine.set_container_names(&container.id, names);
            }
        }
        engine.process(event, &mut alerts);
        for alert in alerts.drain(..) {
            line.clear();
            alert.write_json(&mut line)?;
            line.push(b'\n');
            out.write_all(&line)?;
        }
    }
    out.flush()?;
    Ok(engine.totals())
}

/// Opens a record file (`-` for stdin).
pub fn open_record(path: &Path) -> Result<Box<dyn BufRead>, ReplayError> {
    if path == Path::new("-") {
        return Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            std::io::stdin(),
        )));
    }
    let file = File::open(path).map_err(|source| ReplayError::Open {
        path: path.to_owned(),
        source,
    })?;
    Ok(Box::new(BufReader::with_capacity(1 << 16, file)))
}
