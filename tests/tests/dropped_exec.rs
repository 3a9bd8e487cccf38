//! A copy of dash dropped in /tmp that runs `uname` and deletes itself within a millisecond,
//! while two CPU hogs keep the machine busy: server-temp-file-executed is decided from the exec
//! event alone, so it alerts every time however late the sensor reads the event (issue 17).

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use integration_tests::{NO_RATE_LIMIT, RunningSensor, require_root, server_shell, temp_dir};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");
const WITHIN: Duration = Duration::from_secs(60);
const RUNS: usize = 20;

/// Stops the hogs when the test ends, whatever happens.
struct Hogs(Vec<Child>);

impl Drop for Hogs {
    fn drop(&mut self) {
        for h in &mut self.0 {
            let _ = h.kill();
            let _ = h.wait();
        }
    }
}

#[test]
fn a_self_deleting_shell_copy_alerts_every_time_on_a_busy_machine() {
    require_root();
    let dir = temp_dir("lineage-dropped-");
    let server = dir.path().join("nginx");
    std::fs::copy(WORKLOAD, &server).expect("copy workload as nginx");
    let config = dir.path().join("sensor.toml");
    std::fs::write(
        &config,
        format!("{NO_RATE_LIMIT}[incidents]\nstate_file = \"\"\n"),
    )
    .expect("config");
    let sensor = RunningSensor::start(&config);
    let _hogs = Hogs(
        (0..2)
            .map(|_| {
                Command::new("/bin/sh")
                    .args(["-c", "while :; do :; done"])
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("CPU hog")
            })
            .collect(),
    );
    let tag = std::process::id();
    let copies: Vec<String> = (0..RUNS)
        .map(|i| format!("/tmp/.lineage-d-{tag}-{i}"))
        .collect();
    for copy in &copies {
        server_shell(
            &server,
            &format!("cp /bin/dash {copy} && {copy} -c uname >/dev/null; rm -f {copy}"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!std::path::Path::new(copy).exists(), "{copy} deleted");
    }
    let mut caught = Vec::new();
    while caught.len() < RUNS {
        let (alert, _) = sensor.alert_until(WITHIN, |a| {
            a.rule() == "server-temp-file-executed" && copies.iter().any(|c| c == a.executable())
        });
        let Some(alert) = alert else { break };
        assert_eq!(
            alert.doc["lineage"]["indicators"][0], "temp-exec",
            "{}",
            alert.doc
        );
        assert_eq!(
            alert.doc["lineage"]["server"]["family"], "nginx",
            "{}",
            alert.doc
        );
        caught.push(alert.executable().to_owned());
    }
    caught.sort();
    caught.dedup();
    assert_eq!(caught.len(), RUNS, "caught {caught:?}");
    let (status, log) = sensor.stop();
    assert!(status.success(), "{log:#?}");
}
