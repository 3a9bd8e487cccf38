//! Servers by role: a process that listens is a server whatever its name (engine level, with
//! `listen` events as `replay` reads them and with /proc seeding as `run` does).

use crate::{
    alert::Alert,
    config::Config,
    detect::{Engine, HostInfo, test_support::*},
    lineage::SeedProcess,
};

fn families_of(alerts: &[Alert]) -> Vec<(&str, &str, String, Option<u16>)> {
    alerts
        .iter()
        .map(|a| {
            let s = a.lineage.server.as_ref();
            (
                a.rule.id,
                a.process.executable.as_str(),
                s.map_or(String::new(), |s| s.family.clone()),
                s.and_then(|s| s.listen_port),
            )
        })
        .collect()
}

#[test]
fn a_listening_binary_and_its_forks_are_servers_named_listener() {
    let mut engine = Engine::new(&Config::default(), HostInfo::default()).expect("engine");
    let mut alerts = Vec::new();
    engine.process(
        exec(1, 10, 1, "/opt/shop/bin/shopd", &["shopd"]),
        &mut alerts,
    );
    // Before it listens it is nobody: its helper shell is not below a server.
    engine.process(
        exec(2, 11, 10, "/bin/sh", &["sh", "-c", "migrate"]),
        &mut alerts,
    );
    engine.process(listen(3, 10, 8080), &mut alerts);
    engine.process(fork(4, 12, 10), &mut alerts);
    engine.process(
        exec(5, 13, 12, "/bin/sh", &["sh", "-c", "--", "id; uname -a"]),
        &mut alerts,
    );
    engine.process(exec(6, 14, 13, "/usr/bin/id", &["id"]), &mut alerts);
    assert_eq!(
        families_of(&alerts),
        [
            (
                "server-spawned-shell",
                "/bin/sh",
                "listener".into(),
                Some(8080)
            ),
            (
                "server-spawned-recon",
                "/usr/bin/id",
                "listener".into(),
                Some(8080)
            ),
        ]
    );
    let v = serde_json::to_value(&alerts[0]).expect("json");
    assert_eq!(v["lineage"]["shell"]["commands"][0], "id");
    assert_eq!(v["lineage"]["shell"]["commands"][1], "uname -a");
    assert_eq!(
        v["lineage"]["ancestry"][0]["executable"],
        "/opt/shop/bin/shopd"
    );
}

#[test]
fn shell_givers_and_named_servers_keep_their_meaning() {
    let mut engine = Engine::new(&Config::default(), HostInfo::default()).expect("engine");
    let mut alerts = Vec::new();
    engine.process(
        exec(1, 10, 1, "/usr/sbin/sshd", &["sshd", "-D"]),
        &mut alerts,
    );
    engine.process(listen(2, 10, 22), &mut alerts);
    engine.process(fork(3, 11, 10), &mut alerts);
    engine.process(exec(4, 12, 11, "/bin/bash", &["-bash"]), &mut alerts);
    engine.process(exec(5, 13, 12, "/usr/bin/id", &["id"]), &mut alerts);
    let kernel = &[
        "python3",
        "-m",
        "ipykernel_launcher",
        "-f",
        "/run/user/1000/jupyter/kernel-1.json",
    ];
    engine.process(exec(6, 20, 1, "/usr/bin/python3.11", kernel), &mut alerts);
    engine.process(listen(7, 20, 41234), &mut alerts);
    engine.process(exec(8, 21, 20, "/bin/sh", &["sh", "-c", "ls"]), &mut alerts);
    // init holds socket-activated ports.
    engine.process(listen(9, 1, 631), &mut alerts);
    engine.process(exec(10, 30, 1, "/bin/sh", &["sh", "-c", "x"]), &mut alerts);
    assert!(alerts.is_empty(), "{alerts:#?}");

    engine.process(exec(11, 40, 1, "/usr/sbin/nginx", &["nginx"]), &mut alerts);
    engine.process(listen(12, 40, 8081), &mut alerts);
    engine.process(
        exec(13, 41, 40, "/bin/sh", &["sh", "-c", "id"]),
        &mut alerts,
    );
    assert_eq!(
        families_of(&alerts),
        [("server-spawned-shell", "/bin/sh", "nginx".into(), None)]
    );
}

#[test]
fn a_listening_runtime_takes_its_family_and_ports_pin_theirs() {
    let mut config = Config::default();
    let python = config
        .detect
        .families
        .iter()
        .position(|f| f.name == "python-web")
        .expect("python-web");
    config.detect.families[python].listen_ports = vec![9000];
    let mut engine = Engine::new(&config, HostInfo::default()).expect("engine");
    let mut alerts = Vec::new();
    let jar = &["java", "-Xmx512m", "-jar", "/srv/shop/app.jar"];
    engine.process(
        exec(1, 10, 1, "/usr/lib/jvm/java-17/bin/java", jar),
        &mut alerts,
    );
    engine.process(listen(2, 10, 8080), &mut alerts);
    engine.process(exec(3, 11, 10, "/bin/sh", &["sh", "-c", "id"]), &mut alerts);
    engine.process(exec(4, 20, 1, "/opt/relay", &["relay"]), &mut alerts);
    engine.process(listen(5, 20, 9000), &mut alerts);
    engine.process(exec(6, 21, 20, "/bin/sh", &["sh", "-c", "id"]), &mut alerts);
    assert_eq!(
        families_of(&alerts),
        [
            (
                "server-spawned-shell",
                "/bin/sh",
                "java-appserver".into(),
                Some(8080)
            ),
            (
                "server-spawned-shell",
                "/bin/sh",
                "python-web".into(),
                Some(9000)
            ),
        ]
    );
}

#[test]
fn role_can_be_turned_off_and_exclusions_name_the_listener_family() {
    let mut config = Config::default();
    config.detect.servers_by_role = false;
    let mut engine = Engine::new(&config, HostInfo::default()).expect("engine");
    let mut alerts = Vec::new();
    engine.process(
        exec(1, 10, 1, "/opt/shop/bin/shopd", &["shopd"]),
        &mut alerts,
    );
    engine.process(listen(2, 10, 8080), &mut alerts);
    engine.process(exec(3, 11, 10, "/bin/sh", &["sh", "-c", "id"]), &mut alerts);
    assert!(alerts.is_empty(), "{alerts:#?}");

    let mut config = Config::default();
    config
        .rules
        .server_spawned_shell
        .exclude
        .push(crate::config::Exclusion {
            comment: "shopd's own start-up hook".into(),
            family: Some("listener".into()),
            args: Some(vec!["sh".into(), "-c".into(), "/opt/shop/hook".into()]),
            ..crate::config::Exclusion::default()
        });
    let mut engine = Engine::new(&config, HostInfo::default()).expect("engine");
    engine.process(
        exec(1, 10, 1, "/opt/shop/bin/shopd", &["shopd"]),
        &mut alerts,
    );
    engine.process(listen(2, 10, 8080), &mut alerts);
    engine.process(
        exec(3, 11, 10, "/bin/sh", &["sh", "-c", "--", "/opt/shop/hook"]),
        &mut alerts,
    );
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn servers_seeded_from_proc_are_known_by_their_sockets_and_titles() {
    let seeded = |pid, ppid, exe: &str, argv: &[&str]| SeedProcess {
        pid,
        ppid,
        start_ns: u64::from(pid),
        uid: 0,
        comm: "x".into(),
        exe: exe.into(),
        argv: argv.iter().map(|a| (*a).to_owned()).collect(),
        container: None,
    };
    let host = FakeHost {
        listeners: vec![(10, 8080), (11, 8080), (1, 80)],
        ..FakeHost::default()
    };
    let mut engine = Engine::new(&Config::default(), HostInfo::default())
        .expect("engine")
        .with_host_facts(Box::new(host));
    engine.seed(vec![
        seeded(1, 0, "/sbin/init", &["/sbin/init"]),
        seeded(
            10,
            1,
            "/usr/local/bin/api",
            &["/usr/local/bin/api", "--port", "8080"],
        ),
        seeded(
            11,
            10,
            "/usr/local/bin/api",
            &["/usr/local/bin/api", "--port", "8080"],
        ),
        seeded(
            20,
            1,
            "/usr/bin/ruby3.1",
            &["puma: cluster worker 0: 17 [shop]"],
        ),
        seeded(
            30,
            1,
            "/usr/bin/python3.11",
            &["gunicorn: worker [app:app]"],
        ),
        seeded(
            40,
            1,
            "/usr/sbin/nginx (deleted)",
            &["nginx: worker process"],
        ),
    ]);
    let mut alerts = Vec::new();
    for (i, parent) in [11u32, 20, 30, 40].into_iter().enumerate() {
        let ts = 100 + i as u64;
        let pid = 100 + parent;
        engine.process(exec(ts, pid, parent, "/bin/sh", &["sh", "-i"]), &mut alerts);
    }
    let got: Vec<String> = families_of(&alerts)
        .into_iter()
        .map(|(_, _, f, port)| format!("{f}:{port:?}"))
        .collect();
    assert_eq!(
        got,
        [
            "listener:Some(8080)",
            "ruby-web:None",
            "python-web:None",
            "nginx:None"
        ]
    );
    let v = serde_json::to_value(&alerts[0]).expect("json");
    assert_eq!(v["lineage"]["indicators"][0], "interactive-shell");
}

/// A listener that starts a named server (a supervisor with an admin port, a CI runner) does
/// not take over the named server's incidents: they stay rooted at the server one recognises.
#[test]
fn a_named_server_below_a_listener_roots_its_own_incidents() {
    let mut engine = Engine::new(&Config::default(), HostInfo::default()).expect("engine");
    let mut alerts = Vec::new();
    let sup = &["python3", "/usr/bin/supervisord", "-n"];
    engine.process(exec(1, 10, 1, "/usr/bin/python3.11", sup), &mut alerts);
    engine.process(listen(2, 10, 9001), &mut alerts);
    engine.process(exec(3, 11, 10, "/usr/sbin/nginx", &["nginx"]), &mut alerts);
    engine.process(exec(4, 12, 11, "/bin/sh", &["sh", "-c", "id"]), &mut alerts);
    engine.process(exec(5, 13, 10, "/bin/sh", &["sh", "-c", "id"]), &mut alerts);
    let roots: Vec<(u64, &str)> = alerts
        .iter()
        .map(|a| {
            let first = a.lineage.ancestry.first();
            (
                first.map_or(0, |p| u64::from(p.pid)),
                a.lineage.server.as_ref().map_or("", |s| s.family.as_str()),
            )
        })
        .collect();
    assert_eq!(roots, [(11, "nginx"), (10, "python-web")]);
    assert_ne!(alerts[0].lineage.incident.id, alerts[1].lineage.incident.id);
}
