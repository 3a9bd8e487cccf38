//! A sink's spool on a full 64 KiB tmpfs. With the receiver up every alert still arrives (from
//! memory); with it down, what memory can hold is kept and the rest counted as
//! `reason="spool_error"`; once space returns and the receiver is back, what was kept arrives as
//! whole JSON records (never one torn into another) and the spool drains.

use std::{
    collections::HashSet,
    io::{BufRead as _, BufReader, Read as _},
    net::TcpListener,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use integration_tests::{RunningSensor, metric, require_root, temp_dir};
use serde_json::Value;

const WITHIN: Duration = Duration::from_secs(30);
/// The sink's memory bound (`queue_max_events`).
const MEMORY: usize = 20;

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(PathBuf);
impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mount point");
        let status = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .expect("mount");
        assert!(status.success(), "mount tmpfs");
        Tmpfs(at.to_owned())
    }
}
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A syslog receiver (TCP, octet counting) that can be taken down and brought back on its port.
/// Every message is kept as the text after the RFC 5424 header.
struct Receiver {
    port: u16,
    stop: Arc<Mutex<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start(port: u16, got: Arc<Mutex<Vec<String>>>) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind receiver");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(Mutex::new(false));
        let thread = std::thread::spawn({
            let (got, stop) = (got.clone(), stop.clone());
            move || {
                while !*stop.lock().expect("lock") {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            stream.set_nonblocking(false).expect("blocking");
                            stream
                                .set_read_timeout(Some(Duration::from_millis(100)))
                                .expect("timeout");
                            read_frames(stream, &got, &stop);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            }
        });
        Receiver {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn down(mut self) -> u16 {
        *self.stop.lock().expect("lock") = true;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.port
    }
}

fn read_frames(stream: std::net::TcpStream, got: &Mutex<Vec<String>>, stop: &Mutex<bool>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut len = Vec::new();
        match reader.read_until(b' ', &mut len) {
            Ok(0) => return,
            Ok(_) => {}
            Err(_) if !*stop.lock().expect("lock") => continue,
            Err(_) => return,
        }
        let Ok(n) = String::from_utf8_lossy(&len).trim().parse::<usize>() else {
            panic!("bad octet count {len:?}");
        };
        let mut message = vec![0; n];
        let mut filled = 0;
        while filled < n {
            match reader.read(&mut message[filled..]) {
                Ok(0) => return,
                Ok(k) => filled += k,
                Err(_) if !*stop.lock().expect("lock") => {}
                Err(_) => return,
            }
        }
        let text = String::from_utf8_lossy(&message).into_owned();
        let json = text
            .find('{')
            .map_or(String::new(), |i| text[i..].to_owned());
        got.lock().expect("lock").push(json);
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WITHIN;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Paths of our alerts received so far; every message must be one whole JSON alert.
fn received(got: &Mutex<Vec<String>>) -> Vec<String> {
    got.lock()
        .expect("lock")
        .iter()
        .map(|m| {
            let v: Value = serde_json::from_str(m)
                .unwrap_or_else(|e| panic!("torn or garbled record received ({e}): {m:?}"));
            v["file"]["path"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

/// Alerts of the sink given up on for any reason (the queue may overflow too while the delivery
/// thread waits on a connect).
fn dropped_all(sensor: &RunningSensor) -> f64 {
    ["spool_error", "queue_full", "backlog_full"]
        .iter()
        .map(|r| {
            scrape(
                sensor,
                &format!("lineage_sensor_sink_dropped_total{{reason=\"{r}\",sink=\"siem\"}}"),
            )
        })
        .sum()
}

fn scrape(sensor: &RunningSensor, series: &str) -> f64 {
    let (_, body) = sensor.http_get("/metrics").expect("metrics");
    metric(&body, series).unwrap_or(0.0)
}

/// Fills the file system at `dir` to the last byte.
fn fill(path: &Path) {
    use std::io::Write as _;
    let mut file = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 4096];
    while file.write_all(&chunk).is_ok() {}
    while file.write_all(&chunk[..1]).is_ok() {}
}

#[test]
fn a_full_spool_disk_never_stops_delivery_nor_tears_a_record() {
    require_root();
    let dir = temp_dir("lineage-spool-full-");
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).expect("web root");
    let spool_dir = dir.path().join("spool");
    let _tmpfs = Tmpfs::mount(&spool_dir, "64k");
    let filler = spool_dir.join("filler");
    let port = integration_tests::free_port();
    let config = dir.path().join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "[rules.webroot_script_write]\nweb_roots = [\"{www}\"]\nhash_max_bytes = 0\n\
             [rate_limit]\nwindow_secs = 0\n[incidents]\nstate_file = \"\"\n\
             [output]\nspool_dir = \"{spool}\"\n\n[[output.sinks]]\ntype = \"syslog\"\n\
             name = \"siem\"\naddress = \"127.0.0.1:{port}\"\nprotocol = \"tcp\"\n\
             queue_max_events = {MEMORY}\nspool_max_bytes = 65536\nretry_max_secs = 1\n\
             timeout_secs = 2\n",
            www = www.display(),
            spool = spool_dir.display(),
        ),
    )
    .expect("config");
    let got = Arc::new(Mutex::new(Vec::new()));
    let receiver = Receiver::start(port, got.clone());
    let mut sensor = RunningSensor::start(&config);
    fill(&filler);
    let write = |name: &str| {
        let path = www.join(name);
        std::fs::write(&path, b"<?php ?>").expect("write script");
        path.to_str().expect("utf-8").to_owned()
    };
    let dropped = r#"lineage_sensor_sink_dropped_total{reason="spool_error",sink="siem"}"#;

    // 1. Disk full, receiver up: every alert arrives, from memory, in small steps so that the
    // memory bound is never the limit.
    let mut up: HashSet<String> = HashSet::new();
    for i in 0..60 {
        up.insert(write(&format!("up{i}.php")));
        if i % 10 == 9 {
            let want = up.clone();
            wait_until("alerts with the disk full", || {
                let have: HashSet<String> = received(&got).into_iter().collect();
                want.is_subset(&have)
            });
        }
    }
    assert_eq!(
        scrape(&sensor, dropped),
        0.0,
        "nothing dropped while the receiver is up"
    );
    assert!(
        sensor.wait_log(Duration::from_secs(5), |l| l
            .contains("delivering from memory")),
        "{:#?}",
        sensor.log_seen
    );

    // 2. Disk full, receiver down: memory keeps the newest, the rest is counted.
    let port = receiver.down();
    let down: Vec<String> = (0..100).map(|i| write(&format!("down{i}.php"))).collect();
    let spooled = r#"lineage_sensor_sink_spooled_alerts{sink="siem"}"#;
    let mut seen = (0.0, 0.0);
    let deadline = Instant::now() + WITHIN;
    while seen.0 + seen.1 < 100.0 {
        seen = (dropped_all(&sensor), scrape(&sensor, spooled));
        let (_, body) = sensor.http_get("/metrics").expect("metrics");
        assert!(
            Instant::now() < deadline,
            "the outage's alerts neither kept nor counted: dropped {}, kept {}; {}",
            seen.0,
            seen.1,
            body.lines()
                .filter(|l| l.contains("sink"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let lost = dropped_all(&sensor);
    assert!(lost >= (100 - MEMORY) as f64, "dropped {lost}");
    assert!(
        scrape(&sensor, dropped) > 0.0,
        "the disk's share counted as spool_error"
    );

    // 3. Space returns, one more alert moves memory back to disk; then the receiver is back.
    std::fs::remove_file(&filler).expect("free space");
    let last = write("after-space.php");
    let spool_bytes = r#"lineage_sensor_sink_spool_bytes{sink="siem"}"#;
    wait_until("alerts back on disk once space returned", || {
        scrape(&sensor, spool_bytes) > 0.0
    });
    let before = received(&got).len();
    let _receiver = Receiver::start(port, got.clone());
    wait_until("the kept alerts and the last one", || {
        received(&got).contains(&last)
    });
    wait_until("the spool drained", || scrape(&sensor, spooled) == 0.0);
    let after: Vec<String> = received(&got)[before..].to_vec();
    let outage: HashSet<&String> = down.iter().collect();
    let kept: Vec<&String> = after.iter().filter(|p| outage.contains(p)).collect();
    let unique: HashSet<&&String> = kept.iter().collect();
    assert_eq!(
        unique.len() as f64 + dropped_all(&sensor),
        100.0,
        "each outage alert arrived once or was counted as dropped; got {kept:#?}"
    );
    assert!(kept.len() >= MEMORY / 2, "kept {}", kept.len());
    // The newest of the outage are the ones kept, in order.
    let last_down = down.last().expect("some");
    assert!(kept.contains(&last_down), "{kept:#?}");
    let (status, log) = sensor.stop();
    assert!(status.success(), "{log:#?}");
    let episodes = log
        .iter()
        .filter(|l| l.contains("delivering from memory"))
        .count();
    assert_eq!(episodes, 1, "one log line per episode: {log:#?}");
}
