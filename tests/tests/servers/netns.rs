//! "The internet" for outbound scenarios: a network namespace behind a veth pair, holding
//! addresses from 203.0.113.0/24 (TEST-NET-3, never routed outside) with a TCP listener on
//! them. Nothing leaves the host; the guard removes the namespace whatever happens.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::daemon::run;

/// On the allowlist of the test config (an "upstream API").
pub const UPSTREAM: &str = "203.0.113.20";
pub const UPSTREAM_PORT: u16 = 80;
/// Not on it (an attacker's listener).
pub const UNKNOWN: &str = "203.0.113.66";
pub const UNKNOWN_PORT: u16 = 4444;

const HOST_SIDE: &str = "203.0.113.1";

pub struct Netns {
    name: String,
    host_if: String,
    listener: Option<Child>,
}

impl Netns {
    pub fn create() -> Result<Netns, String> {
        let id = std::process::id() % 100_000;
        let name = format!("lineage-srv-{id}");
        let host_if = format!("lsrvh{id}");
        let ns_if = format!("lsrvn{id}");
        // Leftovers of an aborted run with the same pid would make `add` fail.
        let _ = run(Command::new("ip").args(["netns", "del", &name]));
        let mut ns = Netns {
            name,
            host_if,
            listener: None,
        };
        let n = ns.name.clone();
        let h = ns.host_if.clone();
        for args in [
            vec!["netns", "add", &n],
            vec![
                "link", "add", &h, "type", "veth", "peer", "name", &ns_if, "netns", &n,
            ],
            vec!["addr", "add", &format!("{HOST_SIDE}/24"), "dev", &h],
            vec!["link", "set", &h, "up"],
        ] {
            run(Command::new("ip").args(&args))?;
        }
        for args in [
            vec!["addr", "add", &format!("{UPSTREAM}/24"), "dev", &ns_if],
            vec!["addr", "add", &format!("{UNKNOWN}/24"), "dev", &ns_if],
            vec!["link", "set", &ns_if, "up"],
            vec!["link", "set", "lo", "up"],
        ] {
            run(Command::new("ip")
                .args(["netns", "exec", &n, "ip"])
                .args(&args))?;
        }
        // Accepts and answers one line, so the callers see a working connection.
        let script = format!(
            "import socket, threading\n\
             def serve(addr, port):\n\
             \x20   s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             \x20   s.bind((addr, port)); s.listen(16)\n\
             \x20   while True:\n\
             \x20       c, _ = s.accept(); c.sendall(b'hello\\n'); c.close()\n\
             for a, p in (('{UPSTREAM}', {UPSTREAM_PORT}), ('{UNKNOWN}', {UNKNOWN_PORT})):\n\
             \x20   threading.Thread(target=serve, args=(a, p), daemon=True).start()\n\
             print('listening', flush=True)\n\
             threading.Event().wait()\n"
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", &n, "python3", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("start the listener: {e}"))?;
        let stdout = child.stdout.take();
        ns.listener = Some(child);
        let mut line = String::new();
        if let Some(out) = stdout {
            use std::io::BufRead as _;
            let _ = std::io::BufReader::new(out).read_line(&mut line);
        }
        if !line.starts_with("listening") {
            return Err("the namespace's listener did not start".into());
        }
        // The veth needs a moment before the first SYN goes through.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect_timeout(
            &format!("{UPSTREAM}:{UPSTREAM_PORT}")
                .parse()
                .map_err(|e| format!("{e}"))?,
            Duration::from_millis(500),
        )
        .is_err()
        {
            if Instant::now() > deadline {
                return Err("203.0.113.20:80 in the namespace is unreachable".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(mut child) = self.listener.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Deleting the namespace deletes the peer and with it the pair; the host side is
        // deleted by name in case the namespace was never populated.
        let _ = run(Command::new("ip").args(["netns", "del", &self.name]));
        let _ = run(Command::new("ip").args(["link", "del", &self.host_if]));
    }
}
