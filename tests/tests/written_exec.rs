//! server-written-file-executed means executing the file: as the program (`./FILE`, through its
//! `#!` line), or as the script an interpreter runs (`php FILE`, `sh FILE`). Naming it to `ls`,
//! `stat`, `cat`, `chmod` or `rm` does not.

use std::{path::Path, process::Command, time::Duration};

use integration_tests::{RunningSensor, file_hooks_toml, file_mechanisms, require_root, temp_dir};
use lineage_sensor::config::FileHooks;

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");
const WITHIN: Duration = Duration::from_secs(30);
const RULE: &str = "server-written-file-executed";

fn run(program: &str, args: &[&str], cwd: &Path) {
    let status = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let _ = status;
}

#[test]
fn only_executing_a_server_written_file_alerts() {
    require_root();
    for mechanism in file_mechanisms() {
        eprintln!("file mechanism: {mechanism:?}");
        executing_written_files_alerts(mechanism);
    }
}

fn executing_written_files_alerts(mechanism: FileHooks) {
    let dir = temp_dir("lineage-written-exec-");
    let www = dir.path().join("www");
    let up = www.join("up");
    std::fs::create_dir_all(&up).expect("web root");
    let server = dir.path().join("nginx");
    std::fs::copy(WORKLOAD, &server).expect("copy workload as nginx");
    let config = dir.path().join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "{}[rules.webroot_script_write]\nweb_roots = [\"{}\"]\n[rate_limit]\nwindow_secs = 0\n\
             [incidents]\nstate_file = \"\"\n",
            file_hooks_toml(mechanism),
            www.display()
        ),
    )
    .expect("config");
    let sensor = RunningSensor::start(&config);

    // The "upload": the server's shell writes a PHP page, a shell script and a text file.
    let (php, sh, txt) = (up.join("x.php"), up.join("s.sh"), up.join("w.txt"));
    let script = format!(
        "printf '<?php echo 1;' > '{php}'; printf '#!/bin/sh\\necho hi\\n' > '{sh}'; \
         chmod 755 '{sh}'; printf 'x' > '{txt}'",
        php = php.display(),
        sh = sh.display(),
        txt = txt.display()
    );
    let out = Command::new(&server)
        .args(["shell", &script])
        .output()
        .expect("fake server");
    assert!(String::from_utf8_lossy(&out.stdout).contains("status=0"));
    let (written, _) = sensor.alert_until(WITHIN, |a| {
        a.doc["rule"]["id"] == "webroot-script-write"
            && a.doc["file"]["path"] == php.to_str().expect("utf-8")
    });
    let incident = written.expect("the upload's alert").doc["lineage"]["incident"]["id"].clone();

    // Naming the files: no execution.
    for (program, args) in [
        ("ls", vec!["-l", "x.php", "s.sh"]),
        ("stat", vec!["x.php"]),
        ("cat", vec!["x.php", "s.sh"]),
        ("chmod", vec!["+x", "x.php"]),
        ("rm", vec!["-f", "w.txt"]),
    ] {
        run(program, &args, &up);
    }
    let (p, s) = (php.to_str().expect("utf-8"), sh.to_str().expect("utf-8"));
    for (program, args) in [
        ("ls", vec!["-l", p, s]),
        ("stat", vec![p]),
        ("cat", vec![s]),
        ("chmod", vec!["+x", s]),
        ("rm", vec!["-f", txt.to_str().expect("utf-8")]),
    ] {
        run(program, &args, dir.path());
    }
    // Executing them: each must alert, in the upload's incident.
    run("php", &[p], dir.path());
    run("sh", &[s], dir.path());
    run("./s.sh", &[], &up);
    let mut seen: Vec<serde_json::Value> = Vec::new();
    let mut others: Vec<integration_tests::Alert> = Vec::new();
    while seen.len() < 3 {
        let (alert, before) = sensor.alert_until(WITHIN, |a| a.doc["rule"]["id"] == RULE);
        others.extend(before);
        let Some(alert) = alert else {
            panic!("only {} executions alerted: {seen:#?}", seen.len());
        };
        seen.push(alert.doc);
    }
    let names: Vec<&str> = seen
        .iter()
        .map(|a| a["process"]["name"].as_str().unwrap_or_default())
        .collect();
    for a in &seen {
        assert_eq!(a["lineage"]["incident"]["id"], incident, "{a}");
        let exe = a["process"]["executable"].as_str().unwrap_or_default();
        for tool in ["/ls", "/stat", "/cat", "/chmod", "/rm"] {
            assert!(
                !exe.ends_with(tool),
                "{tool} does not execute the file: {a}"
            );
        }
    }
    // Three processes, each alerted once; their alerts need not leave in the order they ran
    // (an interpreter's script is known only once it has opened it).
    let mut got: Vec<(String, String)> = seen
        .iter()
        .map(|a| {
            (
                a["process"]["name"].as_str().unwrap_or_default().to_owned(),
                a["file"]["path"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = [("php", p), ("s.sh", s), ("sh", s)]
        .iter()
        .map(|(n, f)| ((*n).to_owned(), (*f).to_owned()))
        .collect();
    want.sort();
    assert_eq!(got, want, "php FILE, sh FILE and ./FILE: {names:?}");
    let (status, log) = sensor.stop();
    assert!(status.success(), "{log:#?}");
}
