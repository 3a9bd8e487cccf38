//! PostgreSQL's `COPY ... FROM PROGRAM` (T1505.001): a cluster of the test's own, initialised
//! and run as the postgres user, its backend popen()ing the attacker's command.

use std::{os::unix::process::CommandExt as _, path::PathBuf, process::Command, time::Duration};

use integration_tests::RunningSensor;

use super::{
    check::{self, Target},
    daemon::{Daemon, chown_r, free_ports, run as run_cmd, user, workdir},
    report::Report,
    sensor_config,
};

/// The newest installed server's bin directory (/usr/lib/postgresql/15/bin on bookworm).
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("read /usr/lib/postgresql: is postgresql installed?")
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("no /usr/lib/postgresql/*/bin/postgres")
}

pub fn run() {
    let dir = workdir("postgres");
    let d = dir.path();
    let (uid, gid) = user("postgres");
    let data = d.join("data");
    let sockets = d.join("run");
    std::fs::create_dir_all(&sockets).expect("socket dir");
    chown_r(d, uid, gid);
    let bin = bin_dir();
    let [port] = free_ports();
    let config = sensor_config(d);
    let mut report = Report::new("postgresql");

    run_cmd(
        Command::new(bin.join("initdb"))
            .args(["--auth=trust", "--username=postgres", "--no-sync", "-D"])
            .arg(&data)
            .current_dir(d)
            .uid(uid)
            .gid(gid),
    )
    .unwrap_or_else(|e| panic!("initdb: {e}"));
    let sensor = RunningSensor::start(&config);
    let mut server = Daemon::spawn(
        "postgres",
        Command::new(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args([
                "-p",
                &port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-k",
            ])
            .arg(&sockets)
            .current_dir(d)
            .uid(uid)
            .gid(gid),
        &d.join("postgres.out"),
        // Fast shutdown: sessions are not waited for.
        libc::SIGINT,
    );
    server.wait_port(port, Duration::from_secs(60));
    let sql = |statement: &str| {
        run_cmd(
            Command::new(bin.join("psql"))
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
                .arg(&sockets)
                .args(["-p", &port.to_string(), "-U", "postgres", "-c", statement])
                .current_dir(d)
                .uid(uid)
                .gid(gid),
        )
    };
    let copy = |cmd: &str| {
        sql(&format!(
            "CREATE TEMP TABLE out (line text); COPY out FROM PROGRAM '{cmd}'; \
             SELECT string_agg(line, E'\\n') FROM out;"
        ))
    };
    let t = Target {
        sensor: &sensor,
        family: "database",
        technique: "T1505.001",
        root: server.pid(),
        worker_uid: Some(uid),
        shell: &copy,
    };

    report.record(
        "start-up (postmaster, checkpointer, walwriter, autovacuum...)",
        "no alert",
        // The port opens before recovery ends ("the database system is starting up"): the
        // start-up is over once a query is answered.
        check::benign(&t, || {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                match sql("SELECT 1") {
                    Ok(_) => return Ok(()),
                    Err(e) if std::time::Instant::now() > deadline => return Err(e),
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        }),
    );
    report.record(
        "ordinary queries by a SQL client",
        "no alert",
        check::benign(&t, || {
            sql("CREATE TABLE notes (body text); INSERT INTO notes VALUES ('hi'); SELECT count(*) FROM notes;")
                .map(drop)
        }),
    );
    report.record(
        "COPY ... FROM PROGRAM 'id'",
        "shell + recon, one incident (T1505.001)",
        check::web_shell(&t, "id", "id", "uid=", || copy("id")),
    );
    report.record(
        "COPY ... FROM PROGRAM 'uname -a'",
        "shell + recon, one incident (T1505.001)",
        check::web_shell(&t, "uname -a", "uname", "Linux", || copy("uname -a")),
    );
    report.record(
        "COPY ... FROM PROGRAM 'cat /etc/passwd'",
        "shell + recon, one incident (T1505.001)",
        check::web_shell(&t, "cat /etc/passwd", "cat", "root:x:0:0", || {
            copy("cat /etc/passwd")
        }),
    );
    drop(server);
    drop(sensor);
    report.finish();
}
