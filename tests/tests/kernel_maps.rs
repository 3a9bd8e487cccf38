//! The kernel side's maps, seen from outside: the per-thread pending maps are visible in the
//! metrics and empty once calls finish (a write-open blocked inside the kernel on a FIFO with no
//! reader shows as one pending_file entry, and none once it returns); the server tree decides
//! which execs wake the reader.

use std::time::Duration;

use integration_tests::{RunningSensor, metric, require_root, temp_dir};

/// The sensor refreshes the gauge on its 10 s housekeeping tick.
const REFRESH: Duration = Duration::from_secs(12);

/// One series of the sensor's metrics, scraped now.
fn series(sensor: &RunningSensor, series: &str) -> Option<u64> {
    let (status, body) = sensor.http_get("/metrics").expect("scrape");
    assert_eq!(status, 200);
    metric(&body, series).map(|v| v as u64)
}

fn pending_files(sensor: &RunningSensor) -> Option<u64> {
    series(
        sensor,
        "lineage_sensor_kernel_map_entries{map=\"pending_file\"}",
    )
}

#[test]
fn a_blocked_write_open_is_a_pending_entry_until_it_returns() {
    require_root();
    let dir = temp_dir("lineage-maps-");
    let fifo = dir.path().join("fifo");
    let path = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("cstring");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let config = dir.path().join("sensor.toml");
    // pending_file is the syscall tracepoints' map: pinned, since fanotify would be chosen.
    std::fs::write(&config, "[capture]\nfile_hooks = \"tracepoint\"\n").expect("write config");
    let sensor = RunningSensor::start(&config);

    // Opening a FIFO for writing blocks until a reader comes: the entry is parked meanwhile.
    let writer_path = fifo.clone();
    let writer = std::thread::spawn(move || {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&writer_path)
            .map(drop)
    });
    std::thread::sleep(REFRESH);
    let blocked = pending_files(&sensor);
    let reader = std::fs::File::open(&fifo).expect("open the reader end");
    writer
        .join()
        .expect("writer thread")
        .expect("the write-open returns once a reader is there");
    drop(reader);
    assert!(
        blocked.is_some_and(|n| n >= 1),
        "a blocked write-open is pending: {blocked:?}"
    );
    std::thread::sleep(REFRESH);
    // Relative, not zero: another process on the host may be inside a write-open too.
    let after = pending_files(&sensor);
    assert!(
        after.zip(blocked).is_some_and(|(a, b)| a < b),
        "the entry leaves once the call returned: {after:?} after, {blocked:?} while blocked"
    );
    let (status, log) = sensor.stop();
    assert!(status.success(), "{log:#?}");
}

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");

fn wakeup_reads(sensor: &RunningSensor) -> u64 {
    series(
        sensor,
        "lineage_sensor_ring_reads_total{trigger=\"wakeup\"}",
    )
    .expect("the ring_reads_total metric")
}

/// Wakeups are spent on what detection waits for: an exec below a server wakes the reader at
/// once (the kernel follows the server's forks in its server tree); an exec anywhere else waits
/// for the flush tick, here a second.
#[test]
fn only_execs_below_a_server_wake_the_reader() {
    require_root();
    let dir = temp_dir("lineage-wake-");
    let config = dir.path().join("sensor.toml");
    std::fs::write(&config, "[capture]\nflush_interval_ms = 1000\n").expect("write config");
    let sensor = RunningSensor::start(&config);
    let server = dir.path().join("nginx");
    std::fs::copy(WORKLOAD, &server).expect("copy workload as nginx");
    // 20 execs, 25 ms apart: more than the kernel's 5 ms between two wakeups of one CPU.
    let paced = |program: &std::path::Path, delay_ms: &str| {
        let out = std::process::Command::new(program)
            .args(["paced", delay_ms, "20", "25", "/bin/true"])
            .output()
            .expect("run the paced workload");
        assert!(out.status.success(), "{out:?}");
    };

    let start = wakeup_reads(&sensor);
    paced(std::path::Path::new(WORKLOAD), "0");
    let plain = wakeup_reads(&sensor) - start;
    // The server waits out a flush tick first, so that the sensor has classified it.
    paced(&server, "1500");
    let below_server = wakeup_reads(&sensor) - start - plain;
    assert!(
        below_server >= 15,
        "20 execs below a server woke the reader {below_server} times"
    );
    assert!(
        plain < 10,
        "20 execs below no server woke the reader {plain} times"
    );
    let (status, log) = sensor.stop();
    assert!(status.success(), "{log:#?}");
}
