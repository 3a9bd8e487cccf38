//! Servers by role, live (issue 17): a `java -jar` application built here with the JDK's own
//! HTTP server and a command endpoint, started BEFORE the sensor (so it is known from its
//! listening socket in /proc, its argv naming no server), and a server of no known name started
//! after it (known from its `listen` event). A command sent to either alerts rooted at that
//! server, with its family (java-appserver, its runtime's; listener) and port.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{NO_RATE_LIMIT, RunningSensor, require_root, temp_dir};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_workload");
const WITHIN: Duration = Duration::from_secs(30);

/// The application: GET /run?cmd=URL-ENCODED runs it through `sh -c`, as many real apps'
/// "diagnostics" endpoints do, and answers with its output. Writes its port to args[0].
const APP: &str = r#"
import com.sun.net.httpserver.HttpServer;
import java.net.InetSocketAddress;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

public class App {
    public static void main(String[] args) throws Exception {
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/run", exchange -> {
            String query = exchange.getRequestURI().getRawQuery();
            String cmd = URLDecoder.decode(query.substring("cmd=".length()), StandardCharsets.UTF_8);
            Process p = new ProcessBuilder("/bin/sh", "-c", cmd).redirectErrorStream(true).start();
            byte[] out = p.getInputStream().readAllBytes();
            try { p.waitFor(); } catch (InterruptedException e) { Thread.currentThread().interrupt(); }
            exchange.sendResponseHeaders(200, out.length);
            exchange.getResponseBody().write(out);
            exchange.close();
        });
        server.start();
        Path tmp = Path.of(args[0] + ".tmp");
        Files.writeString(tmp, Integer.toString(server.getAddress().getPort()));
        Files.move(tmp, Path.of(args[0]));
    }
}
"#;

fn run_ok(program: &str, args: &[&str], cwd: &Path) {
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (the JDK comes with default-jdk-headless)"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds app.jar (Main-Class App) in `dir`.
fn build_jar(dir: &Path) -> std::path::PathBuf {
    std::fs::write(dir.join("App.java"), APP).expect("App.java");
    run_ok("javac", &["App.java"], dir);
    run_ok(
        "jar",
        &[
            "--create",
            "--file",
            "app.jar",
            "--main-class",
            "App",
            "App.class",
        ],
        dir,
    );
    dir.join("app.jar")
}

/// Kills the child when the test ends, whatever happens.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(file: &Path) -> u16 {
    let deadline = Instant::now() + WITHIN;
    while Instant::now() < deadline {
        if let Some(port) = std::fs::read_to_string(file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return port;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the application did not start within {WITHIN:?}");
}

/// GET /run?cmd=… on the application; its answer.
fn run_command(port: u16, cmd: &str) -> String {
    let encoded: String = cmd
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the app");
    write!(
        stream,
        "GET /run?cmd={encoded} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .expect("request");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[test]
fn listening_servers_without_a_known_name_are_servers() {
    require_root();
    let dir = temp_dir("lineage-listener-role-");
    let jar = build_jar(dir.path());
    let port_file = dir.path().join("port");
    let java = Command::new("java")
        .args([
            "-Xmx64m",
            "-jar",
            jar.to_str().expect("utf-8"),
            port_file.to_str().expect("utf-8"),
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("java -jar app.jar");
    let java_pid = java.id();
    let _java = Killed(java);
    let port = wait_for_port(&port_file);

    // The sensor starts after the application listens: only /proc can tell it is a server.
    let config = dir.path().join("sensor.toml");
    std::fs::write(
        &config,
        format!("{NO_RATE_LIMIT}[incidents]\nstate_file = \"\"\n"),
    )
    .expect("config");
    let sensor = RunningSensor::start(&config);
    sensor.own_pid(java_pid);

    let marker = format!("lineage-role-{}", std::process::id());
    let answer = run_command(port, &format!("id; echo {marker}"));
    assert!(
        answer.contains(&marker),
        "the endpoint ran the command: {answer}"
    );
    let (shell, before) = sensor
        .expect_alert(WITHIN, "the java app's shell alert", |a| {
            a.rule() == "server-spawned-shell" && a.has_marker(&marker)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let doc = &shell.doc;
    assert_eq!(
        doc["lineage"]["server"]["family"], "java-appserver",
        "{doc}"
    );
    assert_eq!(doc["lineage"]["server"]["pid"], java_pid, "{doc}");
    assert_eq!(doc["lineage"]["server"]["listen_port"], port, "{doc}");
    assert_eq!(
        doc["lineage"]["ancestry"][0]["pid"], java_pid,
        "rooted at the app: {doc}"
    );
    assert_eq!(doc["lineage"]["shell"]["commands"][0], "id", "{doc}");
    let (recon, _) = sensor
        .expect_alert(WITHIN, "the recon alert for id", |a| {
            a.rule() == "server-spawned-recon" && a.executable().ends_with("/id")
        })
        .unwrap_or_else(|e| panic!("{e} (before the shell: {before:?})"));
    assert_eq!(recon.incident(), shell.incident());

    // A server of no known name that starts listening now: its listen event makes it one.
    let server = dir.path().join("edge-gw");
    std::fs::copy(WORKLOAD, &server).expect("copy the workload as edge-gw");
    sensor.own_dir(dir.path());
    let gw_port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        probe.local_addr().expect("addr").port()
    };
    let inner = format!("echo {marker}-gw");
    // The shell that alerts starts a moment after the listen, as a request would.
    let outer = format!("sleep 1; sh -c '{inner}'");
    let mut gw = Command::new(&server)
        .args([
            "listen-spawn",
            &gw_port.to_string(),
            "/bin/sh",
            "-c",
            &outer,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("edge-gw");
    let gw_pid = gw.id();
    let (alert, _) = sensor
        .expect_alert(WITHIN, "the listener's shell alert", |a| {
            a.rule() == "server-spawned-shell" && a.args().last() == Some(&inner)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    drop(gw.stdin.take());
    let _ = gw.wait();
    let doc = &alert.doc;
    assert_eq!(doc["lineage"]["server"]["family"], "listener", "{doc}");
    assert_eq!(doc["lineage"]["server"]["pid"], gw_pid, "{doc}");
    assert_eq!(doc["lineage"]["server"]["listen_port"], gw_port, "{doc}");
    let (status, log) = sensor.stop();
    assert!(status.success(), "{log:#?}");
}
