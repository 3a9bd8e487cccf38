//! Application servers known by their title or command line and by listening, each started
//! before the sensor (so the sensor meets it in /proc, process title and all): puma with a Rack
//! app, starman with a PSGI app, uWSGI with the WSGI app and a Node express app, Debian's
//! packages all. Each runs a command-injection endpoint as www-data. A helper the application
//! runs during the baseline's learning window stays quiet after it; a web shell's command still
//! alerts, shell and recon, rooted at the server.

use std::{
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use integration_tests::RunningSensor;

use super::{
    check::{self, Target},
    copy_fixtures,
    daemon::{Daemon, free_ports, user, workdir},
    http,
    report::Report,
    sensor_config,
};

/// The learning window the test gives the baseline (the shipped config learns for a week).
const LEARNING: Duration = Duration::from_secs(20);

pub struct AppServer {
    /// The row name in docs/validation.md.
    pub report: &'static str,
    /// `lineage.server.family` expected.
    pub family: &'static str,
    pub fixture: &'static str,
    /// The server's command line, serving the fixture copied to `app` on `port`.
    pub command: fn(app: &Path, port: u16) -> Command,
    /// Requests are served by a forked worker (the master is the root), not by the root itself.
    pub forks_worker: bool,
}

pub const PUMA: AppServer = AppServer {
    report: "puma",
    family: "ruby-web",
    fixture: "rack",
    command: |app, port| {
        let mut cmd = Command::new("/usr/bin/puma");
        cmd.args(["--bind", &format!("tcp://127.0.0.1:{port}")])
            .args(["--threads", "1:2", "--environment", "production"])
            .arg(app.join("config.ru"))
            .current_dir(app);
        cmd
    },
    forks_worker: false,
};

pub const STARMAN: AppServer = AppServer {
    report: "starman",
    family: "perl-web",
    fixture: "psgi",
    command: |app, port| {
        let mut cmd = Command::new("/usr/bin/starman");
        cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--workers", "1"])
            .arg(app.join("app.psgi"));
        cmd
    },
    forks_worker: true,
};

pub const UWSGI: AppServer = AppServer {
    report: "uwsgi",
    family: "python-web",
    fixture: "wsgi",
    command: |app, port| {
        let mut cmd = Command::new("/usr/bin/uwsgi");
        cmd.args(["--plugin", "python3", "--master", "--processes", "1"])
            .args(["--http-socket", &format!("127.0.0.1:{port}")])
            .args(["--need-app", "--die-on-term", "--wsgi-file"])
            .arg(app.join("shellapp.py"))
            .env("PYTHONDONTWRITEBYTECODE", "1");
        cmd
    },
    forks_worker: true,
};

pub const EXPRESS: AppServer = AppServer {
    report: "node express",
    family: "node-web",
    fixture: "express",
    command: |app, port| {
        let mut cmd = Command::new("/usr/bin/node");
        cmd.arg(app.join("app.js"))
            .arg(port.to_string())
            // Debian's node-express lives there; a nodejs from elsewhere does not look there.
            .env("NODE_PATH", "/usr/share/nodejs");
        cmd
    },
    forks_worker: false,
};

/// The shipped configuration with a short learning window.
fn learning_config(dir: &Path) -> PathBuf {
    let config = sensor_config(dir);
    let text = std::fs::read_to_string(&config).expect("read sensor config");
    let shipped = "learning_secs = 604800";
    assert!(
        text.contains(shipped),
        "deploy/lineage-sensor.toml no longer says {shipped:?}"
    );
    let text = text.replacen(
        shipped,
        &format!("learning_secs = {}", LEARNING.as_secs()),
        1,
    );
    std::fs::write(&config, text).expect("write sensor config");
    config
}

pub fn run(spec: &AppServer) {
    let dir = workdir(spec.fixture);
    let d = dir.path();
    let app = d.join("app");
    copy_fixtures(spec.fixture, &app);
    let [port] = free_ports();
    let config = learning_config(d);
    let mut report = Report::new(spec.report);

    let (www_uid, www_gid) = user("www-data");
    let mut command = (spec.command)(&app, port);
    let mut server = Daemon::spawn(
        spec.report,
        command.uid(www_uid).gid(www_gid),
        &d.join("server.out"),
        libc::SIGTERM,
    );
    server.wait_port(port, Duration::from_secs(60));
    let sensor = RunningSensor::start(&config);
    let learning_ends = Instant::now() + LEARNING;

    let base = format!("http://127.0.0.1:{port}");
    let shell = |cmd: &str| http::get_ok(&format!("{base}/run"), &[("cmd", cmd)]);
    let t = Target {
        sensor: &sensor,
        family: spec.family,
        technique: "T1505.003",
        root: server.pid(),
        worker_uid: spec.forks_worker.then_some(www_uid),
        shell: &shell,
    };
    // An export the application compresses under a fresh temporary name each time.
    let export = |id: &str| format!("gzip -c /etc/hostname > /tmp/export-{id}.gz");
    let cleanup = |id: &str| {
        let _ = std::fs::remove_file(format!("/tmp/export-{id}.gz"));
    };

    for id in ["7f3a9c2e", "b41d09aa"] {
        let cmd = export(id);
        report.record(
            &format!("while learning: the application runs {cmd:?}"),
            "server-spawned-shell (learning: alerts as before)",
            check::while_learning(&t, &cmd, || shell(&cmd)),
        );
        cleanup(id);
    }
    std::thread::sleep(
        learning_ends.saturating_duration_since(Instant::now()) + Duration::from_secs(1),
    );
    let cmd = export("e0c5d2f1");
    report.record(
        &format!("after learning: the same helper under another name, {cmd:?}"),
        "no alert (known to the learned baseline)",
        check::benign(&t, || shell(&cmd).map(drop)),
    );
    cleanup("e0c5d2f1");
    report.record(
        "web shell: sh -c 'id'",
        "shell (a new template) + recon, one incident",
        check::web_shell(&t, "id", "id", "uid=", || shell("id")),
    );
    report.record(
        "web shell: sh -c 'uname -a'",
        "shell + recon, one incident",
        check::web_shell(&t, "uname -a", "uname", "Linux", || shell("uname -a")),
    );
    let metrics = sensor.metrics();
    report.record(
        "the baselined helper is counted",
        "lineage_sensor_alerts_baselined_total{rule=\"server-spawned-shell\"} >= 1",
        baselined(&metrics),
    );
    drop(server);
    drop(sensor);
    report.finish();
}

fn baselined(metrics: &str) -> Result<Option<Duration>, String> {
    let counted = metrics
        .lines()
        .filter(|l| {
            l.starts_with("lineage_sensor_alerts_baselined_total")
                && l.contains("rule=\"server-spawned-shell\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    if counted >= 1.0 {
        Ok(None)
    } else {
        Err(format!("not counted: {counted}"))
    }
}
