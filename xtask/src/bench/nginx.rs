//! A private nginx on a free loopback port (own config, pid file, logs and root in a temp dir),
//! loaded by wrk: the "realistic" workload, whose requests/s and p99 latency are measured.

use std::{
    os::unix::fs::PermissionsExt as _,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::results::Sample;

/// wrk's connections: a handful of keep-alive clients, as behind a reverse proxy.
const CONNECTIONS: u32 = 8;
const FILE_BYTES: usize = 612;

pub struct Nginx {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl Nginx {
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("lineage-bench-nginx-")
            .tempdir()?;
        // The workers run as nobody and must reach the document root.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let root = dir.path().join("www");
        std::fs::create_dir_all(&root)?;
        std::fs::write(root.join("index.html"), "x".repeat(FILE_BYTES))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let d = dir.path().display();
        let conf = format!(
            "worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
daemon off;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {d}/www;
    }}
}}
"
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let child = Command::new("nginx")
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx")?;
        let mut nginx = Nginx { dir, child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || matches!(nginx.child.try_wait(), Ok(Some(_))) {
                let log =
                    std::fs::read_to_string(nginx.dir.path().join("error.log")).unwrap_or_default();
                bail!("nginx did not come up on 127.0.0.1:{port}: {log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(nginx)
    }

    /// One wrk run of `secs` seconds against the static file.
    pub fn load(&self, secs: u32) -> anyhow::Result<Sample> {
        let out = Command::new("wrk")
            .args([
                "-t1",
                &format!("-c{CONNECTIONS}"),
                &format!("-d{secs}s"),
                "--latency",
                &format!("http://127.0.0.1:{}/index.html", self.port),
            ])
            .stderr(Stdio::inherit())
            .output()
            .context("running wrk")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || text.contains("Non-2xx") {
            bail!("wrk failed or got errors: {text}");
        }
        let rps = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .with_context(|| format!("no Requests/sec in wrk's output: {text}"))?;
        let p99_ms = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("99%"))
            .and_then(|v| duration_ms(v.trim()))
            .with_context(|| format!("no 99% latency in wrk's output: {text}"))?;
        Ok(Sample {
            rps: Some(rps),
            p99_ms: Some(p99_ms),
            ..Sample::default()
        })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: nginx's graceful shutdown, which removes its pid file.
        // SAFETY: signalling our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGQUIT) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// wrk's durations: `812.00us`, `1.23ms`, `2.01s`.
fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (value, unit) = text.split_at(split);
    let value: f64 = value.parse().ok()?;
    Some(match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn wrk_durations() {
        assert_eq!(super::duration_ms("812.00us"), Some(0.812));
        assert_eq!(super::duration_ms("1.50ms"), Some(1.5));
        assert_eq!(super::duration_ms("2.00s"), Some(2000.0));
    }
}
