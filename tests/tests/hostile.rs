//! Hostile argv and paths through the real `lineage-sensor run`: a server-spawned shell whose
//! arguments are 128 KiB of junk, control characters and JSON look-alikes, run from a path with
//! spaces and non-ASCII letters. Every stdout line must stay one valid JSON object, no field can be
//! forged, the bytes come back exactly (escape.rs), and truncation is said, not hidden.

use std::{
    ffi::OsString,
    os::unix::ffi::{OsStrExt as _, OsStringExt as _},
    process::{Command, Stdio},
    time::Duration,
};

use integration_tests::{RunningSensor, require_root, temp_dir};
use lineage_sensor::escape::unescape;
use serde_json::Value;

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");
/// Generous: nothing here measures time.
const WITHIN: Duration = Duration::from_secs(30);

fn hostile_args() -> Vec<Vec<u8>> {
    let junk: Vec<u8> = (1..=255u8).collect();
    let mut args: Vec<Vec<u8>> = vec![
        b"line one\nline two\r\n".to_vec(),
        b"\x1b[31mred\x1b[0m\x1b]0;title\x07".to_vec(),
        br#"","rule":{"id":"x"},"process":{"pid":1}}"#.to_vec(),
        "caf\u{e9} \u{1f600} \u{202e}txt.php".as_bytes().to_vec(),
        b"back\\slash \\x41 not an escape".to_vec(),
        junk.clone(),
        b"\xff\xfe\xc3(".to_vec(),
    ];
    // 128 KiB in 16 KiB arguments: one argument may not exceed 128 KiB (MAX_ARG_STRLEN).
    for i in 0..8u8 {
        args.push(
            junk.iter()
                .cycle()
                .skip(usize::from(i))
                .take(16 * 1024)
                .copied()
                .collect(),
        );
    }
    args
}

#[test]
fn hostile_argv_and_paths_give_single_line_json_with_every_byte_kept() {
    require_root();
    let dir = temp_dir("lineage-hostile-");
    // Spaces, non-ASCII and a newline-free but odd directory name for both server and shell.
    let odd = dir.path().join("odd dir \u{e9}\u{4e2d} $(x)");
    std::fs::create_dir_all(&odd).expect("temp dir");
    let server = odd.join("nginx");
    std::fs::copy(WORKLOAD, &server).expect("copy workload as nginx");
    let shell = odd.join("sh");
    std::fs::copy("/bin/sh", &shell).expect("copy /bin/sh");
    let config = dir.path().join("sensor.toml");
    std::fs::write(&config, "").expect("write config");

    let sensor = RunningSensor::start(&config);

    let args = hostile_args();
    let mut argv: Vec<OsString> = vec![
        OsString::from("spawn"),
        shell.clone().into_os_string(),
        OsString::from("-c"),
        OsString::from("true"),
    ];
    argv.extend(args.iter().cloned().map(OsString::from_vec));
    let status = Command::new(&server)
        .args(&argv)
        .stdout(Stdio::null())
        .status()
        .expect("run the fake server");
    assert!(status.success(), "workload spawn failed: {status}");

    let shell_text = shell.to_str().expect("utf-8 path").to_owned();
    // Every stdout line is parsed as one JSON object by the harness (a line that is not fails
    // the test), the alerts of other process trees included.
    let (found, before) = sensor.alert_until(WITHIN, |a| {
        a.rule() == "server-spawned-shell" && a.executable() == shell_text
    });
    let alert = found.unwrap_or_else(|| {
        panic!(
            "no server-spawned-shell alert for the hostile shell: {}",
            integration_tests::briefs(&before)
        )
    });
    for line in before.iter().chain([&alert]).map(|a| &a.line) {
        assert!(
            !line.contains('\r') && !line.contains('\x1b'),
            "raw control characters on stdout: {line:?}"
        );
    }
    let alert: Value = alert.doc;
    assert_eq!(
        alert["rule"]["id"], "server-spawned-shell",
        "rule id forged?"
    );
    assert_eq!(alert["process"]["executable"], shell_text.as_str());
    assert_eq!(
        alert["process"]["parent"]["executable"],
        server.to_str().expect("utf-8 path")
    );
    assert_ne!(alert["process"]["pid"], 1);

    let kept: Vec<Vec<u8>> = alert["process"]["args"]
        .as_array()
        .expect("process.args")
        .iter()
        .map(|a| unescape(a.as_str().expect("string arg")).expect("lossless escape"))
        .collect();
    let mut sent: Vec<Vec<u8>> = vec![
        shell.as_os_str().as_bytes().to_vec(),
        b"-c".to_vec(),
        b"true".to_vec(),
    ];
    sent.extend(args);
    let total: usize = sent.iter().map(|a| a.len() + 1).sum();
    assert!(total > 128 * 1024, "the test must send more than 128 KiB");
    // What is kept is an exact prefix of what was sent, argument by argument.
    assert!(!kept.is_empty() && kept.len() <= sent.len());
    for (i, k) in kept.iter().enumerate() {
        if i + 1 < kept.len() {
            assert_eq!(k, &sent[i], "argument {i} changed");
        } else {
            assert!(
                sent[i].starts_with(k),
                "last kept argument {i} is not a prefix"
            );
        }
    }
    // The kernel keeps less than 128 KiB, and says so.
    let kept_total: usize = kept.iter().map(|a| a.len() + 1).sum();
    assert!(kept_total < total);
    assert_eq!(
        alert["lineage"]["args_truncated"], true,
        "truncation must be visible"
    );
    // The forged-looking argument is kept (the 4 KiB the kernel keeps reach well past it),
    // as a string inside args, not a field.
    // sent = [sh, -c, true, newlines, escapes, json-like, ...]
    assert!(
        kept.len() > 5,
        "the forged-looking argument was not kept: {} arguments",
        kept.len()
    );
    assert_eq!(
        kept[5],
        br#"","rule":{"id":"x"},"process":{"pid":1}}"#.to_vec()
    );
    assert!(
        alert.get("x").is_none() && alert["process"]["pid"] != 1,
        "a field was forged: {alert}"
    );
    let command_line = alert["process"]["command_line"]
        .as_str()
        .expect("command_line");
    assert!(command_line.contains("line one\nline two"));

    let (status, log) = sensor.stop();
    assert!(status.success(), "clean exit: {status}; {log:#?}");
    // The hostile bytes were decoded, not dropped as a malformed record.
    assert!(
        !log.iter().any(|l| l.contains("undecodable")),
        "a hostile record was dropped: {log:#?}"
    );
}
