//! Evidence bundles and the client of the request, live: a web shell server of the test's own
//! (tests/src/bin/webshell.rs, under a server's name) takes a request from a distinct loopback
//! source address and runs it with `sh -c`. The alert names the client and its bundle; the
//! bundle holds the server, the shell with its command line, and stays private and capped.

use std::{
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddrV4, TcpStream},
    os::{fd::FromRawFd as _, unix::fs::PermissionsExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{NO_RATE_LIMIT, RunningSensor, require_root, scratch};
use serde_json::Value;

const WEBSHELL: &str = env!("CARGO_BIN_EXE_webshell");
const WITHIN: Duration = Duration::from_secs(30);

/// A server copy named `name` in `dir`, started with `args`, and the port it listens on.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    // The child is reaped by `Drop for Server` once it is returned, and here when it fails.
    #[allow(clippy::zombie_processes)]
    fn start(dir: &Path, name: &str, args: &[&str]) -> Server {
        let exe = dir.join(name);
        std::fs::copy(WEBSHELL, &exe).expect("copy webshell");
        let port_file = dir.join(format!("{name}.port"));
        let mut child = Command::new(&exe)
            .args(
                args.iter()
                    .map(|a| a.replace("PORT_FILE", &port_file.to_string_lossy())),
            )
            .stdin(Stdio::null())
            .spawn()
            .expect("start server");
        let deadline = Instant::now() + WITHIN;
        loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|p| p.trim().parse().ok())
            {
                return Server { child, port };
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{name} did not listen");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `line` to 127.0.0.1:`port` from source address `from` (a loopback address of the
/// test's own, so that the client is told apart from the server) and returns the answer.
fn request_from(from: Ipv4Addr, port: u16, line: &str) -> (String, u16, TcpStream) {
    // SAFETY: plain socket calls on a descriptor this function owns; addresses are initialised
    // sockaddr_in values of the right length.
    let stream = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = TcpStream::from_raw_fd(fd);
        let sockaddr = |addr: Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(addr).to_be(),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let src = sockaddr(from, 0);
        let rc = libc::bind(fd, (&raw const src).cast(), len);
        assert_eq!(rc, 0, "bind {from}: {}", std::io::Error::last_os_error());
        let dst = sockaddr(Ipv4Addr::LOCALHOST, port);
        let rc = libc::connect(fd, (&raw const dst).cast(), len);
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        stream
    };
    let local = stream.local_addr().expect("local").port();
    (&stream)
        .write_all(format!("{line}\n").as_bytes())
        .expect("send");
    let mut answer = String::new();
    (&stream).read_to_string(&mut answer).expect("answer");
    // Kept open by the caller, as a browser keeps its connection alive.
    (answer, local, stream)
}

fn config(dir: &Path, evidence: &Path, extra: &str) -> PathBuf {
    let path = dir.join("sensor.toml");
    std::fs::write(
        &path,
        format!(
            "{NO_RATE_LIMIT}[incidents]\nstate_file = \"\"\n\n[evidence]\ndir = \"{}\"\n{extra}",
            evidence.display()
        ),
    )
    .expect("config");
    path
}

fn shell_alert(sensor: &RunningSensor, marker: &str) -> Value {
    let (found, seen) = sensor.alert_until(WITHIN, |a| {
        a.rule() == "server-spawned-shell" && a.has_marker(marker)
    });
    found
        .unwrap_or_else(|| panic!("no shell alert for {marker}; saw {seen:?}"))
        .doc
}

fn bundle_of(alert: &Value) -> Value {
    let path = alert["lineage"]["evidence"]["path"]
        .as_str()
        .unwrap_or_else(|| panic!("no bundle named: {alert}"));
    assert_eq!(alert["lineage"]["evidence"]["status"], "written", "{alert}");
    let meta = std::fs::metadata(path).expect("bundle exists");
    assert_eq!(
        meta.permissions().mode() & 0o077,
        0,
        "bundle readable by others"
    );
    serde_json::from_slice(&std::fs::read(path).expect("read bundle")).expect("bundle is JSON")
}

#[test]
fn a_web_shell_request_names_its_client_and_keeps_the_processes() {
    require_root();
    let dir = scratch("evidence-direct");
    let evidence = dir.join("evidence");
    let sensor = RunningSensor::start(&config(&dir, &evidence, ""));
    // Apache prefork with mod_php: the worker itself accepted the connection.
    let server = Server::start(&dir, "apache2", &["serve", "PORT_FILE"]);
    let client = Ipv4Addr::new(127, 0, 0, 23);
    let marker = format!("evidence-direct-{}", std::process::id());
    let (answer, client_port, conn) =
        request_from(client, server.port, &format!("echo {marker}; id"));
    assert!(answer.contains(&marker), "the shell ran: {answer:?}");

    let alert = shell_alert(&sensor, &marker);
    assert_eq!(alert["client"]["ip"], client.to_string(), "{alert}");
    assert_eq!(alert["client"]["port"], client_port, "{alert}");
    assert_eq!(alert["lineage"]["client"]["method"], "accepted_socket");
    assert_eq!(alert["lineage"]["client"]["confidence"], "exact");

    let bundle = bundle_of(&alert);
    assert_eq!(bundle["incident"], alert["lineage"]["incident"]["id"]);
    let processes = bundle["processes"].as_array().expect("processes");
    let server_pid = u64::from(server.child.id());
    let worker = processes
        .iter()
        .find(|p| p["pid"] == server_pid)
        .unwrap_or_else(|| panic!("the server is in the bundle: {bundle}"));
    assert_eq!(worker["alive"], true);
    assert!(
        worker["executable_sha256"]
            .as_str()
            .is_some_and(|h| h.len() == 64)
    );
    // The worker's connection to the client, with both addresses.
    let held = worker["fds"]
        .as_array()
        .expect("fds")
        .iter()
        .find(|f| f["socket"]["remote"] == format!("{client}:{client_port}"))
        .unwrap_or_else(|| panic!("the client connection is among the worker's fds: {worker}"));
    // Held, perhaps half closed once the answer was sent.
    let state = held["socket"]["state"].as_str().expect("state");
    assert!(
        ["established", "fin_wait1", "fin_wait2"].contains(&state),
        "{held}"
    );
    let shell = processes.last().expect("the shell");
    assert_eq!(shell["role"], "process");
    let args = shell["args"].to_string();
    assert!(args.contains(&marker), "the shell's command line: {shell}");
    // Values only for the allowlisted request variables; the rest by name.
    let names = worker["env_names"].as_array().expect("env names");
    assert!(names.iter().any(|n| n == "PATH"), "{worker}");
    assert!(worker["env_values"].get("PATH").is_none(), "{worker}");
    let meta = std::fs::metadata(&evidence).expect("evidence dir");
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);

    // A second request of the same incident points at the same bundle.
    drop(conn);
    let marker2 = format!("{marker}-again");
    let _conn = request_from(client, server.port, &format!("echo {marker2}"));
    let again = shell_alert(&sensor, &marker2);
    if again["lineage"]["incident"]["id"] == alert["lineage"]["incident"]["id"] {
        assert_eq!(again["lineage"]["evidence"]["status"], "earlier", "{again}");
        assert_eq!(
            again["lineage"]["evidence"]["id"],
            alert["lineage"]["evidence"]["id"]
        );
    }
    let metrics = sensor.metrics();
    assert!(
        integration_tests::metric(
            &metrics,
            "lineage_sensor_evidence_bundles_total{outcome=\"written\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    drop(server);
    sensor.stop_clean();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_proxied_request_is_followed_to_the_front_servers_client() {
    require_root();
    let dir = scratch("evidence-proxied");
    let evidence = dir.join("evidence");
    let sensor = RunningSensor::start(&config(&dir, &evidence, ""));
    // php-fpm over TCP behind nginx: the worker's peer is nginx, on this host.
    let backend = Server::start(&dir, "php-fpm8.2", &["serve", "PORT_FILE"]);
    let backend_port = backend.port.to_string();
    let front = Server::start(&dir, "nginx", &["proxy", "PORT_FILE", &backend_port]);
    let client = Ipv4Addr::new(127, 0, 0, 24);
    let marker = format!("evidence-proxied-{}", std::process::id());
    let (answer, client_port, _conn) = request_from(client, front.port, &format!("echo {marker}"));
    assert!(answer.contains(&marker), "the shell ran: {answer:?}");

    let alert = shell_alert(&sensor, &marker);
    assert_eq!(
        alert["lineage"]["client"]["method"], "proxied_tcp",
        "{alert}"
    );
    assert_eq!(
        alert["lineage"]["client"]["confidence"], "likely",
        "{alert}"
    );
    assert_eq!(
        alert["lineage"]["client"]["front_pid"],
        u64::from(front.child.id())
    );
    assert_eq!(alert["client"]["ip"], client.to_string(), "{alert}");
    assert_eq!(alert["client"]["port"], client_port);
    let _ = SocketAddrV4::new(client, client_port);
    drop((front, backend));
    sensor.stop_clean();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bundles_are_capped_expire_and_a_readable_directory_is_refused() {
    require_root();
    let dir = scratch("evidence-limits");
    let evidence = dir.join("evidence");
    std::fs::create_dir_all(&evidence).expect("evidence dir");
    std::fs::set_permissions(&evidence, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = config(&dir, &evidence, "");
    let refused = RunningSensor::start_with(&path, &[]);
    let (status, log) = match refused {
        Ok(sensor) => panic!("started with a readable evidence dir: {:?}", sensor.stop()),
        Err(failed) => failed,
    };
    assert_eq!(status.code(), Some(2), "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.contains(&evidence.display().to_string()) && l.contains("0700")),
        "the error names the directory and the fix: {log:#?}"
    );

    // Private now; a stale bundle older than the retention, and room for about one bundle.
    std::fs::set_permissions(&evidence, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let stale = evidence.join("stale.json");
    std::fs::write(&stale, b"{}").expect("stale bundle");
    let old = std::time::SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .and_then(|f| f.set_modified(old))
        .expect("age the stale bundle");
    let path = config(
        &dir,
        &evidence,
        "retention_secs = 3600\nmax_bundle_bytes = 4096\nmax_total_bytes = 9000\n",
    );
    let sensor = RunningSensor::start(&path);
    let (mut ids, mut sizes) = (Vec::new(), Vec::new());
    for i in 0..4 {
        // A new server process each time: a new incident, so a new bundle.
        let own = dir.join(format!("server-{i}"));
        std::fs::create_dir_all(&own).expect("server dir");
        let server = Server::start(&own, "apache2", &["serve", "PORT_FILE"]);
        let marker = format!("evidence-limits-{i}-{}", std::process::id());
        let _conn = request_from(
            Ipv4Addr::new(127, 0, 0, 25),
            server.port,
            &format!("echo {marker}"),
        );
        let alert = shell_alert(&sensor, &marker);
        let bundle = bundle_of(&alert);
        let size = std::fs::metadata(alert["lineage"]["evidence"]["path"].as_str().expect("p"))
            .expect("size")
            .len();
        assert!(size <= 4096, "capped: {size} bytes");
        if size > 0 && bundle["truncated"] == true {
            assert!(!bundle["cut"].as_array().expect("cut").is_empty());
        }
        ids.push(
            alert["lineage"]["evidence"]["path"]
                .as_str()
                .expect("p")
                .to_owned(),
        );
        sizes.push(size);
    }
    assert!(!stale.exists(), "the bundle past its retention was deleted");
    let total: u64 = std::fs::read_dir(&evidence)
        .expect("dir")
        .flatten()
        .map(|e| e.metadata().expect("meta").len())
        .sum();
    assert!(total <= 9000, "within max_total_bytes: {total}");
    assert!(
        Path::new(ids.last().expect("last")).exists(),
        "the newest is kept"
    );
    assert!(
        sizes.iter().sum::<u64>() > 9000,
        "the bundles together exceed the budget, so one had to go: {sizes:?}"
    );
    assert!(
        !Path::new(&ids[0]).exists(),
        "the oldest made room: {sizes:?}"
    );
    sensor.stop_clean();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_full_disk_keeps_no_bundle_but_the_alert_still_leaves() {
    require_root();
    let dir = scratch("evidence-full");
    let evidence = dir.join("evidence");
    std::fs::create_dir_all(&evidence).expect("evidence dir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"])
        .arg(&evidence)
        .status()
        .expect("mount");
    assert!(mounted.success(), "mount a 64 KiB tmpfs");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&evidence);
    // Fill it: not a bundle, so nothing the sensor may delete frees room.
    let mut filler = std::fs::File::create(evidence.join("filler")).expect("filler");
    let chunk = vec![b'x'; 4096];
    while filler.write_all(&chunk).is_ok() {}
    drop(filler);

    let sensor = RunningSensor::start(&config(&dir, &evidence, ""));
    let server = Server::start(&dir, "apache2", &["serve", "PORT_FILE"]);
    let marker = format!("evidence-full-{}", std::process::id());
    let _conn = request_from(
        Ipv4Addr::new(127, 0, 0, 26),
        server.port,
        &format!("echo {marker}"),
    );
    let alert = shell_alert(&sensor, &marker);
    assert_eq!(
        alert["lineage"]["evidence"]["status"], "disk_full",
        "{alert}"
    );
    assert_eq!(
        alert["client"]["ip"], "127.0.0.26",
        "the client is named anyway"
    );
    let metrics = sensor.metrics();
    assert_eq!(
        integration_tests::metric(
            &metrics,
            "lineage_sensor_evidence_bundles_total{outcome=\"disk_full\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    let names: Vec<String> = std::fs::read_dir(&evidence)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["filler"], "no partial bundle left behind");
    drop(server);
    let log = sensor.stop_clean();
    assert!(
        log.iter()
            .any(|l| l.contains("evidence bundle not kept (disk_full)")),
        "logged: {log:#?}"
    );
    drop(_unmount);
    let _ = std::fs::remove_dir_all(&dir);
}
