//! The kernel side's per-thread pending maps are visible in the metrics and empty once calls
//! finish: a write-open blocked inside the kernel (a FIFO with no reader) shows as one
//! pending_file entry, and none once it returns.

use std::time::Duration;

use integration_tests::{RunningSensor, require_root};

/// The sensor refreshes the gauge on its 10 s housekeeping tick.
const REFRESH: Duration = Duration::from_secs(12);

fn pending_files(sensor: &RunningSensor) -> Option<u64> {
    let (status, body) = sensor.http_get("/metrics").expect("scrape");
    assert_eq!(status, 200);
    body.lines()
        .find(|l| l.starts_with("lineage_sensor_kernel_map_entries{map=\"pending_file\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn a_blocked_write_open_is_a_pending_entry_until_it_returns() {
    require_root();
    let dir = tempfile::Builder::new()
        .prefix("lineage-maps-")
        .tempdir()
        .expect("temp dir");
    let fifo = dir.path().join("fifo");
    let path = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("cstring");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let config = dir.path().join("sensor.toml");
    std::fs::write(&config, "").expect("write config");
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
