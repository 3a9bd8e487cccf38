//! Who sent the request: the client connection a server's process holds, as far as the host
//! shows it.
//!
//! A worker that accepts connections itself (Apache prefork with mod_php, a Java, Python or Node
//! server) holds the listening socket and, while it serves a request, the accepted one: its peer
//! is the client. When that peer is a front server on this host (nginx in front of php-fpm or an
//! application server over TCP), the front server's own accepted connections are looked at
//! next; a busy front holds several, and then nobody can say which one it was. Over a unix socket
//! /proc shows no peer at all. What was found, and how sure it is, goes into the alert.

use std::{fs, net::SocketAddr, path::Path};

use super::{
    snapshot::ProcessEvidence,
    sockets::{InetSocket, SocketTable, canonical, socket_fds},
};
use crate::alert::{Client, ClientSource};

/// Most /proc entries scanned for the front server's socket: the scan runs once per incident.
const MAX_SCAN: usize = 65_536;

/// The client of the request `chain` (server first, the alert's process last) was handling.
pub fn find(proc_root: &Path, chain: &[ProcessEvidence]) -> (Option<Client>, ClientSource) {
    let mut unix_only = false;
    for process in chain.iter().rev().filter(|p| p.alive) {
        let accepted = accepted(process);
        match accepted.as_slice() {
            [] => unix_only |= serves_over_unix(process),
            [conn] => return one_connection(proc_root, process, conn),
            many => {
                return (
                    None,
                    source("accepted_socket", "ambiguous", many.len(), None, None),
                );
            }
        }
    }
    if let Some(found) = from_env(chain) {
        return found;
    }
    let reason = if unix_only {
        "the request came over a unix socket, whose peer /proc does not show"
    } else {
        "no process of the server's tree held an accepted connection when /proc was read (the \
         request had ended)"
    };
    (None, source("none", "none", 0, None, Some(reason)))
}

fn source(
    method: &'static str,
    confidence: &'static str,
    candidates: usize,
    front_pid: Option<u32>,
    reason: Option<&'static str>,
) -> ClientSource {
    ClientSource {
        method,
        confidence,
        candidates: u32::try_from(candidates).unwrap_or(u32::MAX),
        front_pid,
        reason,
    }
}

/// Holds unix sockets and no listening internet socket: php-fpm behind a unix socket.
fn serves_over_unix(process: &ProcessEvidence) -> bool {
    let unix = process
        .fds
        .iter()
        .any(|f| f.socket.is_none() && f.target.starts_with("socket:"));
    unix && !process
        .fds
        .iter()
        .any(|f| f.socket.is_some_and(|s| s.is_listening()))
}

/// Established TCP connections the process holds whose local port is one it listens on: those
/// it accepted (connections it dialled out have another local port).
fn accepted(process: &ProcessEvidence) -> Vec<InetSocket> {
    let sockets: Vec<InetSocket> = process.fds.iter().filter_map(|f| f.socket).collect();
    accepted_among(&sockets)
}

fn accepted_among(sockets: &[InetSocket]) -> Vec<InetSocket> {
    let listening: Vec<SocketAddr> = sockets
        .iter()
        .filter(|s| s.is_listening())
        .map(|s| s.local)
        .collect();
    let mut seen = Vec::new();
    sockets
        .iter()
        .filter(|s| s.transport == "tcp" && s.is_held_connection())
        // dup() and fork() put one socket in several fds: it is one connection.
        .filter(|s| {
            let first = !seen.contains(&s.inode);
            seen.push(s.inode);
            first
        })
        .filter(|s| {
            listening.iter().any(|l| {
                l.port() == s.local.port()
                    && (l.ip().is_unspecified() || canonical(l.ip()) == canonical(s.local.ip()))
            })
        })
        .copied()
        .collect()
}

/// The worker's one connection: the client itself, or a front server on this host.
fn one_connection(
    proc_root: &Path,
    worker: &ProcessEvidence,
    conn: &InetSocket,
) -> (Option<Client>, ClientSource) {
    let client = |s: &InetSocket| Client {
        ip: canonical(s.remote.ip()),
        port: s.remote.port(),
    };
    let table = SocketTable::read(&proc_root.join(worker.pid.to_string()));
    // The other end of the connection is on this host when its socket is in the same tables.
    let Some(peer) = table.find(conn.remote, conn.local) else {
        return (
            Some(client(conn)),
            source("accepted_socket", "exact", 1, None, None),
        );
    };
    let owner = owner_of(proc_root, peer.inode, worker.pid);
    let front_dir = owner.map(|pid| proc_root.join(pid.to_string()));
    let front_table = front_dir.as_deref().map(SocketTable::read);
    let front_sockets: Vec<InetSocket> = front_dir
        .as_deref()
        .zip(front_table.as_ref())
        .map(|(dir, table)| {
            socket_fds(dir)
                .iter()
                .filter_map(|(_, inode)| table.get(*inode).copied())
                .collect()
        })
        .unwrap_or_default();
    // A process of this host that listens on nothing is a client itself (curl on the host),
    // not a front server.
    if owner.is_some() && !front_sockets.iter().any(InetSocket::is_listening) {
        return (
            Some(client(conn)),
            source("accepted_socket", "exact", 1, None, None),
        );
    }
    let Some(front) = owner else {
        return (
            None,
            source(
                "proxied_tcp",
                "none",
                0,
                None,
                Some("the connection came from this host, from a process /proc no longer shows"),
            ),
        );
    };
    match accepted_among(&front_sockets).as_slice() {
        [one] => (
            Some(client(one)),
            source("proxied_tcp", "likely", 1, Some(front), None),
        ),
        [] => (
            None,
            source(
                "proxied_tcp",
                "none",
                0,
                Some(front),
                Some("the front server held no client connection when looked at"),
            ),
        ),
        many => (
            None,
            source("proxied_tcp", "ambiguous", many.len(), Some(front), None),
        ),
    }
}

/// The process (other than `not`) whose fd table holds socket `inode`.
fn owner_of(proc_root: &Path, inode: u64, not: u32) -> Option<u32> {
    let entries = fs::read_dir(proc_root).ok()?;
    entries
        .flatten()
        .take(MAX_SCAN)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != not)
        .find(|&pid| {
            socket_fds(&proc_root.join(pid.to_string()))
                .iter()
                .any(|(_, i)| *i == inode)
        })
}

/// REMOTE_ADDR and REMOTE_PORT that a server passed to a CGI child: its own word.
fn from_env(chain: &[ProcessEvidence]) -> Option<(Option<Client>, ClientSource)> {
    chain.iter().rev().find_map(|p| {
        let ip = p.env_values.get("REMOTE_ADDR")?.parse().ok()?;
        let port = p
            .env_values
            .get("REMOTE_PORT")
            .and_then(|port| port.parse().ok())
            .unwrap_or(0);
        Some((
            Some(Client {
                ip: canonical(ip),
                port,
            }),
            source("cgi_env", "reported", 1, None, None),
        ))
    })
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;
    use crate::enrich::evidence::snapshot::{self, Expected, Limits};

    fn me() -> ProcessEvidence {
        let args = [String::new()];
        let expected = Expected {
            pid: std::process::id(),
            start_ns: None,
            entity_id: "",
            role: "server",
            args: &args,
        };
        let allow = [String::from("REMOTE_ADDR")];
        let limits = Limits {
            max_fds: 65_536,
            env_values: &allow,
            ticks_per_sec: 100,
        };
        snapshot::read(Path::new("/proc"), &expected, &limits)
    }

    #[test]
    fn a_connection_accepted_on_a_listening_port_is_told_from_one_dialled_out() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).expect("connect");
        let (_conn, peer) = listener.accept().expect("accept");
        let accepted = accepted(&me());
        // The dialled-out side (`client`) is established too, but not on a listening port.
        assert_eq!(accepted.len(), 1, "{accepted:?}");
        assert_eq!(accepted[0].remote, peer);
        assert_eq!(peer, client.local_addr().expect("local"));
    }

    #[test]
    fn several_accepted_connections_are_ambiguous_and_name_nobody() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _a = TcpStream::connect(addr).expect("a");
        let _b = TcpStream::connect(addr).expect("b");
        let _ca = listener.accept().expect("accept a");
        let _cb = listener.accept().expect("accept b");
        let (client, how) = find(Path::new("/proc"), &[me()]);
        assert_eq!(client, None);
        assert_eq!(how.confidence, "ambiguous");
        assert!(how.candidates >= 2, "{how:?}");
    }

    #[test]
    fn cgi_environment_is_the_servers_word() {
        let mut p = me();
        p.fds.clear();
        p.env_values
            .insert("REMOTE_ADDR".into(), "192.0.2.9".into());
        p.env_values.insert("REMOTE_PORT".into(), "4711".into());
        let (client, how) = find(Path::new("/proc"), &[p]);
        let client = client.expect("client");
        assert_eq!(client.ip.to_string(), "192.0.2.9");
        assert_eq!(client.port, 4711);
        assert_eq!((how.method, how.confidence), ("cgi_env", "reported"));
    }
}
