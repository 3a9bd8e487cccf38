//! The ownership chain: every directory from / down to the state file, the spool and a file sink
//! must be writable only by root or the sensor's user; a directory others can write two levels
//! up makes `run` and `check-config` exit 2 naming it, before anything is loaded. Needs no eBPF
//! (the refusal comes first), but root to own the files as a real deployment does.

use std::{os::unix::fs::PermissionsExt as _, path::Path, process::Command};

use integration_tests::{require_root, sensor_binary, temp_dir};

fn sensor(args: &[&str], config: &Path) -> (Option<i32>, String) {
    let out = Command::new(sensor_binary())
        .args(args)
        .arg(config)
        .output()
        .expect("run lineage-sensor");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_directory_others_can_write_two_levels_up_is_named_and_refused() {
    require_root();
    let dir = temp_dir("lineage-ownership-");
    let open = dir.path().join("open");
    let below = open.join("lib/lineage");
    std::fs::create_dir_all(&below).expect("mkdir");
    let locations = [
        format!(
            "[incidents]\nstate_file = \"{}/incidents.json\"\n",
            below.display()
        ),
        format!(
            "[incidents]\nstate_file = \"\"\n[output]\nspool_dir = \"{}/spool\"\n\n\
             [[output.sinks]]\ntype = \"syslog\"\naddress = \"127.0.0.1:9\"\n",
            below.display()
        ),
        format!(
            "[incidents]\nstate_file = \"\"\n[[output.sinks]]\ntype = \"file\"\n\
             path = \"{}/alerts.ndjson\"\nspool_max_bytes = 0\n",
            below.display()
        ),
    ];
    for (i, text) in locations.iter().enumerate() {
        let config = dir.path().join(format!("c{i}.toml"));
        std::fs::write(&config, text).expect("config");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let (code, stderr) = sensor(&["check-config"], &config);
        assert_eq!(
            code,
            Some(0),
            "case {i} with a private chain passes: {stderr}"
        );

        // 0757: other users may write the directory two levels above the state.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o757)).expect("chmod");
        for args in [
            &["check-config"][..],
            &["run", "--metrics-listen", "127.0.0.1:0", "--config"],
        ] {
            let (code, stderr) = sensor(args, &config);
            assert_eq!(code, Some(2), "case {i} {args:?}: {stderr}");
            assert!(
                stderr.contains(&format!("{}:", open.display())) && stderr.contains("go-w"),
                "case {i} {args:?} must name {}: {stderr}",
                open.display()
            );
        }
    }
    // Nothing was created below the unsafe directory.
    assert!(!below.join("spool").exists());
    assert!(!below.join("incidents.json").exists());
}
