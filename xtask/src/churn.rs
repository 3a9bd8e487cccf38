//! `cargo xtask churn`: a million short-lived processes and a hundred thousand threads against
//! the release `lineage-sensor run`, with the sensor's RSS and process-table size before, at the
//! peak and after the exit grace. Not part of `cargo xtask test`: it takes many minutes.

use std::{
    io::{BufRead as _, BufReader},
    net::{Ipv4Addr, TcpListener},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::cmd;

#[derive(clap::Args)]
pub struct Options {
    /// Short-lived processes (fork + exec of /bin/true).
    #[arg(long, default_value_t = 1_000_000)]
    processes: usize,
    /// Threads, started and joined in batches.
    #[arg(long, default_value_t = 100_000)]
    threads: usize,
    /// Concurrent spawners.
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// `lineage.exit_grace_secs` of the sensor under test: how long exited processes stay.
    #[arg(long, default_value_t = 5)]
    exit_grace_secs: u64,
}

/// Kills the sensor if the churn fails half-way.
struct Sensor(Child);
impl Drop for Sensor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn churn(options: Options) -> anyhow::Result<()> {
    crate::setup::setup()?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("churn loads eBPF programs: run it as root");
    }
    cmd::run(cmd::cargo().args([
        "build",
        "--release",
        "-p",
        "sensor-user",
        "--bin",
        "lineage-sensor",
    ]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| cmd::workspace_root().join("target"), Into::into);
    let binary = target.join("release/lineage-sensor");
    let dir = tempfile::tempdir().context("temp dir")?;
    let config = dir.path().join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "[lineage]\nexit_grace_secs = {}\n[incidents]\nstate_file = \"\"\n",
            options.exit_grace_secs
        ),
    )?;
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port();
    let mut child = Command::new(&binary)
        .args(["run", "--config"])
        .arg(&config)
        .args(["--metrics-listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let stderr = child.stderr.take().context("stderr")?;
    let sensor = Sensor(child);
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        let line = line?;
        if line.contains("ready") {
            break;
        }
    }
    // The rest of the log is drained so that the sensor never blocks on a full pipe.
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let pid = sensor.0.id();
    let before = sample(pid, port)?;
    println!("before: {before}");

    let started = Instant::now();
    spawn_processes(options.processes, options.workers)?;
    let processes_secs = started.elapsed().as_secs_f64();
    let peak_processes = sample(pid, port)?;
    println!(
        "after {} processes ({processes_secs:.0} s, {:.0}/s): {peak_processes}",
        options.processes,
        options.processes as f64 / processes_secs.max(0.001)
    );
    let started = Instant::now();
    spawn_threads(options.threads);
    println!(
        "after {} threads ({:.0} s): {}",
        options.threads,
        started.elapsed().as_secs_f64(),
        sample(pid, port)?
    );

    // Exited entries go after the grace, swept on the sensor's 10 s housekeeping tick (its
    // clock runs a second behind), which also refreshes the gauge read here.
    std::thread::sleep(Duration::from_secs(options.exit_grace_secs + 23));
    let after = sample(pid, port)?;
    println!("after the exit grace: {after}");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    drop(sensor);
    let log = log.join().unwrap_or_default();
    for line in log
        .iter()
        .filter(|l| l.contains("lost") || l.contains("stopped"))
    {
        println!("sensor: {line}");
    }
    Ok(())
}

struct Sample {
    rss_kib: u64,
    processes: String,
    lost: String,
    /// Entries of the kernel's pending maps (all labels summed).
    kernel_maps: String,
}

impl std::fmt::Display for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RSS {} KiB, processes_tracked {}, kernel_map_entries {}, events_lost_total {}",
            self.rss_kib, self.processes, self.kernel_maps, self.lost
        )
    }
}

fn sample(pid: u32, port: u16) -> anyhow::Result<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("VmRSS")?;
    let body = ureq::get(format!("http://127.0.0.1:{port}/metrics"))
        .call()?
        .body_mut()
        .read_to_string()?;
    let metric = |name: &str| -> String {
        let values: Vec<f64> = body
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        if values.is_empty() {
            "?".into()
        } else {
            format!("{}", values.iter().sum::<f64>())
        }
    };
    Ok(Sample {
        rss_kib,
        processes: metric("lineage_sensor_processes_tracked"),
        lost: metric("lineage_sensor_events_lost_total"),
        kernel_maps: metric("lineage_sensor_kernel_map_entries"),
    })
}

fn spawn_processes(n: usize, workers: usize) -> anyhow::Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..workers.max(1))
        .map(|_| {
            let next = next.clone();
            std::thread::spawn(move || -> std::io::Result<()> {
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    Command::new("/bin/true").status()?;
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("spawner panicked"))?
            .context("spawning /bin/true")?;
    }
    Ok(())
}

fn spawn_threads(n: usize) {
    const BATCH: usize = 500;
    let mut left = n;
    while left > 0 {
        let batch = left.min(BATCH);
        // Each thread opens a file for writing and connects a UDP socket before it ends, so
        // that both per-thread pending maps of the kernel side see the churn.
        let handles: Vec<_> = (0..batch)
            .map(|_| {
                std::thread::spawn(|| {
                    let _ = std::fs::OpenOptions::new().write(true).open("/dev/null");
                    if let Ok(socket) =
                        std::net::UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0))
                    {
                        let _ = socket.connect((std::net::Ipv4Addr::LOCALHOST, 9));
                    }
                })
            })
            .collect();
        for h in handles {
            let _ = h.join();
        }
        left -= batch;
    }
}
