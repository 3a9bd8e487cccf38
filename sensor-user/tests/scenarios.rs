//! Replays every scenario of tests/scenarios through the real engine (the default config, or
//! NAME.config.toml where a scenario has one) and compares the alerts with NAME.expect.json; see
//! tests/scenarios/generate.py for the format. A scenario with NAME.learn.ndjson is replayed as
//! `replay --baseline NAME.learn.ndjson NAME.ndjson` is (see tests/scenarios/generate_habits.py).

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use lineage_sensor::{
    commands::replay::{learn_record, learning_over, replay, replay_with_baseline},
    config::Config,
    detect::{Engine, HostInfo},
};
use serde_json::Value;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios")
}

/// The comparable view of an emitted alert, in the expectation's shape (incident as the raw id).
fn view(alert: &Value) -> BTreeMap<&'static str, Value> {
    let mut v = BTreeMap::new();
    v.insert("rule", alert["rule"]["id"].clone());
    v.insert("server", alert["lineage"]["server"]["executable"].clone());
    v.insert("process", alert["process"]["executable"].clone());
    v.insert("incident", alert["lineage"]["incident"]["id"].clone());
    let ancestry: Vec<Value> = alert["lineage"]["ancestry"]
        .as_array()
        .map(|a| a.iter().map(|p| p["executable"].clone()).collect())
        .unwrap_or_default();
    v.insert("ancestry", Value::Array(ancestry));
    let users: Vec<Value> = alert["lineage"]["ancestry"]
        .as_array()
        .map(|a| a.iter().map(|p| p["user"]["id"].clone()).collect())
        .unwrap_or_default();
    v.insert("ancestry_users", Value::Array(users));
    if let (Some(ip), Some(port)) = (
        alert["destination"]["ip"].as_str(),
        alert["destination"]["port"].as_u64(),
    ) {
        v.insert("destination", Value::String(format!("{ip}:{port}")));
    }
    v.insert("suppressed", alert["lineage"]["suppressed_count"].clone());
    v.insert("file", alert["file"]["path"].clone());
    v.insert("action", alert["event"]["action"].clone());
    v.insert("severity", alert["lineage"]["severity"].clone());
    v.insert("family", alert["lineage"]["server"]["family"].clone());
    v.insert(
        "listen_port",
        alert["lineage"]["server"]["listen_port"].clone(),
    );
    v.insert("indicators", alert["lineage"]["indicators"].clone());
    v.insert("commands", alert["lineage"]["shell"]["commands"].clone());
    v.insert("baseline_new", alert["lineage"]["baseline"]["new"].clone());
    v
}

/// The scenario's own config, if it has one.
fn config_for(name: &str) -> Result<Config, String> {
    let path = corpus().join(format!("{name}.config.toml"));
    if !path.exists() {
        return Ok(Config::default());
    }
    let text = fs::read_to_string(&path).map_err(|e| format!("{name}: {e}"))?;
    Config::parse(&text, Path::new(&path)).map_err(|e| format!("{name}: {e}"))
}

fn check(name: &str) -> Result<usize, String> {
    let dir = corpus();
    let record =
        fs::read(dir.join(format!("{name}.ndjson"))).map_err(|e| format!("{name}: {e}"))?;
    let expect: Value = serde_json::from_slice(
        &fs::read(dir.join(format!("{name}.expect.json"))).map_err(|e| format!("{name}: {e}"))?,
    )
    .map_err(|e| format!("{name}.expect.json: {e}"))?;
    if expect["source"].as_str().is_none_or(str::is_empty) {
        return Err(format!("{name}: expectation names no source"));
    }
    let mut out = Vec::new();
    let config = config_for(name)?;
    let learn_path = dir.join(format!("{name}.learn.ndjson"));
    if learn_path.exists() {
        let learn = fs::read(&learn_path).map_err(|e| format!("{name}: {e}"))?;
        let learned = learn_record(&config, &learn[..]).map_err(|e| format!("{name}: {e}"))?;
        let over = learning_over(&config);
        let engine = Engine::new(&over, HostInfo::default()).map_err(|e| format!("{name}: {e}"))?;
        replay_with_baseline(engine, &over, Some(learned), &record[..], &mut out, None)
            .map_err(|e| format!("{name}: {e}"))?;
        // A habit is silenced by the baseline, not by anything else: without it, it alerts.
        let mut plain = Vec::new();
        replay(&config, &record[..], false, &mut plain).map_err(|e| format!("{name}: {e}"))?;
        if name.starts_with("benign-") && plain.is_empty() {
            return Err(format!("{name}: quiet even without the learned baseline"));
        }
    } else {
        replay(&config, &record[..], false, &mut out).map_err(|e| format!("{name}: {e}"))?;
    }
    let text = String::from_utf8(out).map_err(|e| format!("{name}: output not UTF-8: {e}"))?;
    let got: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{name}: bad alert line {l:?}: {e}")))
        .collect::<Result<_, _>>()?;
    let want = expect["alerts"].as_array().cloned().unwrap_or_default();
    let got_views: Vec<_> = got.iter().map(view).collect();

    let mut problems = Vec::new();
    if got.len() != want.len() {
        problems.push(format!("expected {} alerts, got {}", want.len(), got.len()));
    }
    // Incident labels must map one-to-one onto incident ids.
    let mut label_to_id: BTreeMap<String, Value> = BTreeMap::new();
    let mut id_to_label: BTreeMap<String, String> = BTreeMap::new();
    for (i, (g, w)) in got_views.iter().zip(&want).enumerate() {
        for key in [
            "rule",
            "server",
            "process",
            "ancestry",
            "destination",
            "baseline_new",
        ] {
            if w.get(key).unwrap_or(&Value::Null) != g.get(key).unwrap_or(&Value::Null) {
                problems.push(format!(
                    "alert {i}: {key}: expected {}, got {}",
                    w.get(key).unwrap_or(&Value::Null),
                    g.get(key).unwrap_or(&Value::Null)
                ));
            }
        }
        // Optional: the uid of each ancestor, where a scenario is about who a process runs as.
        if let Some(u) = w.get("ancestry_users")
            && g.get("ancestry_users") != Some(u)
        {
            problems.push(format!(
                "alert {i}: ancestry_users: expected {u}, got {:?}",
                g.get("ancestry_users")
            ));
        }
        // Optional: for the file rules, and (issue 17) the server's family and port, the
        // indicators and a shell payload's commands.
        for key in [
            "file",
            "action",
            "severity",
            "family",
            "listen_port",
            "indicators",
            "commands",
        ] {
            if let Some(x) = w.get(key)
                && g.get(key) != Some(x)
            {
                problems.push(format!(
                    "alert {i}: {key}: expected {x}, got {:?}",
                    g.get(key)
                ));
            }
        }
        if let Some(s) = w.get("suppressed")
            && g.get("suppressed") != Some(s)
        {
            problems.push(format!(
                "alert {i}: suppressed: expected {s}, got {:?}",
                g.get("suppressed")
            ));
        }
        let label = w["incident"].as_str().unwrap_or("").to_owned();
        let id = g["incident"].clone();
        let id_text = id.to_string();
        if let Some(prev) = label_to_id.get(&label)
            && *prev != id
        {
            problems.push(format!(
                "alert {i}: incident {label:?} should be {prev}, got {id}"
            ));
        }
        if let Some(prev) = id_to_label.get(&id_text)
            && *prev != label
        {
            problems.push(format!(
                "alert {i}: incident {label:?} shares id {id} with incident {prev:?}"
            ));
        }
        label_to_id.insert(label.clone(), id);
        id_to_label.insert(id_text, label);
    }
    if problems.is_empty() {
        Ok(want.len())
    } else {
        let got_pretty: Vec<String> = got_views
            .iter()
            .map(|v| serde_json::to_string(v).unwrap_or_default())
            .collect();
        Err(format!(
            "{name} ({}):\n  {}\n  got alerts:\n    {}",
            expect["description"].as_str().unwrap_or(""),
            problems.join("\n  "),
            got_pretty.join("\n    ")
        ))
    }
}

fn scenario_names() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(corpus())
        .expect("tests/scenarios exists")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".ndjson"))
                .filter(|n| !n.ends_with(".learn"))
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

#[test]
fn every_scenario_gives_its_expected_alerts() {
    let names = scenario_names();
    let alerting = names.iter().filter(|n| n.starts_with("alert-")).count();
    let benign = names.iter().filter(|n| n.starts_with("benign-")).count();
    assert!(alerting >= 30, "only {alerting} alerting scenarios");
    assert!(benign >= 15, "only {benign} benign scenarios");
    let habits = names
        .iter()
        .filter(|n| n.starts_with("benign-") && corpus().join(format!("{n}.learn.ndjson")).exists())
        .count();
    assert!(
        habits >= 20,
        "only {habits} benign scenarios with a learning record"
    );
    let mut failures = Vec::new();
    for name in &names {
        match check(name) {
            Ok(0) if name.starts_with("alert-") => {
                failures.push(format!("{name}: an alert- scenario expects no alert"))
            }
            Ok(n) if name.starts_with("benign-") && n != 0 => {
                failures.push(format!("{name}: a benign- scenario expects alerts"))
            }
            Ok(_) => {}
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n\n")
    );
}

#[test]
fn replay_is_deterministic() {
    for name in scenario_names()
        .iter()
        .filter(|n| n.starts_with("alert-"))
        .take(5)
    {
        let record = fs::read(corpus().join(format!("{name}.ndjson"))).expect("read");
        let mut a = Vec::new();
        let mut b = Vec::new();
        replay(&Config::default(), &record[..], false, &mut a).expect("replay");
        replay(&Config::default(), &record[..], false, &mut b).expect("replay");
        assert!(!a.is_empty());
        assert_eq!(a, b, "{name}");
    }
}
