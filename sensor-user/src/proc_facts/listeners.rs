//! Which TCP ports a process listens on: the LISTEN sockets of its network namespace
//! (`/proc/PID/net/tcp{,6}`) that its fd table holds (`/proc/PID/fd`). Workers forked from a
//! master hold the master's listening sockets too, which is what makes them servers.

use std::{
    fs,
    path::Path,
    time::{Duration, Instant},
};

use rustc_hash::FxHashMap;

/// `st` of a socket in LISTEN state in /proc/net/tcp.
const TCP_LISTEN: &str = "0A";

/// The ports among `wanted` that the process at `proc_pid` (`/proc/PID`) listens on, sorted and
/// without repeats. Unreadable files count as no sockets: the process may be gone already.
pub fn listening_ports(proc_pid: &Path, wanted: &dyn Fn(u16) -> bool) -> Vec<u16> {
    let mut by_inode = FxHashMap::default();
    for table in ["net/tcp", "net/tcp6"] {
        if let Ok(text) = fs::read_to_string(proc_pid.join(table)) {
            listen_inodes(&text, wanted, &mut by_inode);
        }
    }
    if by_inode.is_empty() {
        return Vec::new();
    }
    let mut ports = Vec::new();
    let Ok(fds) = fs::read_dir(proc_pid.join("fd")) else {
        return ports;
    };
    for fd in fds.flatten() {
        let Ok(target) = fs::read_link(fd.path()) else {
            continue;
        };
        let inode = target
            .to_str()
            .and_then(|t| t.strip_prefix("socket:["))
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.parse::<u64>().ok());
        if let Some(port) = inode.and_then(|i| by_inode.get(&i)) {
            ports.push(*port);
        }
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// The LISTEN sockets of each network namespace, read once and kept a short while: seeding
/// asks about every process on the host, most of them in the same namespace, and a busy
/// server's /proc/net/tcp holds thousands of lines.
#[derive(Default)]
pub struct ListenTables {
    /// Network namespace inode -> (when read, LISTEN socket inode -> port).
    by_netns: FxHashMap<u64, (Instant, FxHashMap<u64, u16>)>,
}

/// How long a namespace's table is trusted: a seeding pass, not the sensor's lifetime.
const TABLE_TTL: Duration = Duration::from_secs(2);
/// Bound on the namespaces kept (one per container); the map starts over past it.
const MAX_NETNS: usize = 4096;

impl ListenTables {
    /// The lowest TCP port on which the process at `proc_pid` holds a listening socket. Its fd
    /// table is read first: most processes hold no socket, and then no table is read.
    pub fn lowest_port(&mut self, proc_pid: &Path) -> Option<u16> {
        let sockets = socket_inodes(proc_pid);
        if sockets.is_empty() {
            return None;
        }
        let netns = fs::read_link(proc_pid.join("ns/net"))
            .ok()
            .and_then(|t| bracketed_inode(t.to_str()?, "net:["))?;
        let fresh = self
            .by_netns
            .get(&netns)
            .is_some_and(|(read, _)| read.elapsed() < TABLE_TTL);
        if !fresh {
            if self.by_netns.len() >= MAX_NETNS {
                self.by_netns.clear();
            }
            let mut table = FxHashMap::default();
            for name in ["net/tcp", "net/tcp6"] {
                if let Ok(text) = fs::read_to_string(proc_pid.join(name)) {
                    listen_inodes(&text, &|_| true, &mut table);
                }
            }
            self.by_netns.insert(netns, (Instant::now(), table));
        }
        let (_, table) = self.by_netns.get(&netns)?;
        sockets.iter().filter_map(|i| table.get(i)).copied().min()
    }
}

/// The socket inodes in a process's fd table.
fn socket_inodes(proc_pid: &Path) -> Vec<u64> {
    let Ok(fds) = fs::read_dir(proc_pid.join("fd")) else {
        return Vec::new();
    };
    fds.flatten()
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .filter_map(|t| bracketed_inode(t.to_str()?, "socket:["))
        .collect()
}

/// `N` from a link target `PREFIXN]` (`socket:[N]`, `net:[N]`).
fn bracketed_inode(target: &str, prefix: &str) -> Option<u64> {
    target.strip_prefix(prefix)?.strip_suffix(']')?.parse().ok()
}

/// Adds the inode -> port of each wanted LISTEN socket in a /proc/net/tcp{,6} table.
fn listen_inodes(text: &str, wanted: &dyn Fn(u16) -> bool, out: &mut FxHashMap<u64, u16>) {
    for line in text.lines().skip(1) {
        // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
        let fields: Vec<&str> = line.split_whitespace().take(10).collect();
        let [_, local, _, state, _, _, _, _, _, inode] = fields[..] else {
            continue;
        };
        if state != TCP_LISTEN {
            continue;
        }
        let port = local
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        let (Some(port), Ok(inode)) = (port, inode.parse::<u64>()) else {
            continue;
        };
        if inode != 0 && wanted(port) {
            out.insert(inode, port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F91 0100007F:A000 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 20 4 30 10 -1
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0000000000000000 100 0 0 10 0
   3: garbage
";

    #[test]
    fn only_wanted_listening_sockets_count() {
        let mut out = FxHashMap::default();
        listen_inodes(TCP, &|p| p == 8080 || p == 8081, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out.get(&4242), Some(&8080));
    }

    #[test]
    fn the_real_fd_table_is_read() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let me = Path::new("/proc/self");
        assert_eq!(listening_ports(me, &|p| p == port), vec![port]);
        assert!(
            listening_ports(me, &|p| p != port)
                .iter()
                .all(|&p| p != port)
        );
        let mut tables = ListenTables::default();
        let lowest = tables.lowest_port(me).expect("this process listens");
        assert!(lowest <= port);
        drop(listener);
        assert!(listening_ports(me, &|p| p == port).is_empty());
        assert_eq!(
            ListenTables::default().lowest_port(Path::new("/proc/1/none")),
            None
        );
    }
}
