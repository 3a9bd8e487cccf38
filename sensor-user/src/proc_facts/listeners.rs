//! Which TCP ports a process listens on: the LISTEN sockets of its network namespace
//! (`/proc/PID/net/tcp{,6}`) that its fd table holds (`/proc/PID/fd`). Workers forked from a
//! master hold the master's listening sockets too, which is what makes them servers.
//!
//! For servers by role, UDP too: an unconnected datagram socket bound to a fixed port
//! (`/proc/PID/net/udp{,6}`). /proc cannot tell an explicit bind from autobind (a client's
//! first send takes an ephemeral port), so a port inside `ip_local_port_range` is taken for a
//! client's; the bind hooks (probes/bind.rs) see servers there as they start.

use std::{
    fs,
    path::Path,
    time::{Duration, Instant},
};

use rustc_hash::FxHashMap;

use crate::event::Proto;

/// `st` of a socket in LISTEN state in /proc/net/tcp.
const TCP_LISTEN: &str = "0A";
/// `st` of an unconnected UDP socket in /proc/net/udp (TCP_CLOSE; a connected one shows 01).
const UDP_UNCONNECTED: &str = "07";
/// The kernel's default `net.ipv4.ip_local_port_range`, where the sysctl cannot be read.
const EPHEMERAL_DEFAULT: (u16, u16) = (32768, 60999);

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

/// Socket inode -> (port, protocol) of a namespace's serving sockets.
type Serving = FxHashMap<u64, (u16, Proto)>;

/// The serving sockets (TCP LISTEN, UDP bound to a fixed port) of each network namespace, read
/// once and kept a short while: seeding asks about every process on the host, most of them in
/// the same namespace, and a busy server's /proc/net/tcp holds thousands of lines.
#[derive(Default)]
pub struct ListenTables {
    /// Network namespace inode -> (when read, socket inode -> (port, protocol)).
    by_netns: FxHashMap<u64, (Instant, Serving)>,
    /// `net.ipv4.ip_local_port_range` as the sensor sees it, read at first use.
    ephemeral: Option<(u16, u16)>,
}

/// How long a namespace's table is trusted: a seeding pass, not the sensor's lifetime.
const TABLE_TTL: Duration = Duration::from_secs(2);
/// Bound on the namespaces kept (one per container); the map starts over past it.
const MAX_NETNS: usize = 4096;

impl ListenTables {
    /// The lowest TCP port on which the process at `proc_pid` holds a listening socket, else
    /// the lowest fixed UDP port it has bound. Its fd table is read first: most processes hold
    /// no socket, and then no table is read.
    pub fn lowest_port(&mut self, proc_pid: &Path) -> Option<(u16, Proto)> {
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
            let ephemeral = *self.ephemeral.get_or_insert_with(|| {
                fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
                    .ok()
                    .and_then(|t| port_range(&t))
                    .unwrap_or(EPHEMERAL_DEFAULT)
            });
            let mut tcp = FxHashMap::default();
            for name in ["net/tcp", "net/tcp6"] {
                if let Ok(text) = fs::read_to_string(proc_pid.join(name)) {
                    listen_inodes(&text, &|_| true, &mut tcp);
                }
            }
            let mut udp = FxHashMap::default();
            for name in ["net/udp", "net/udp6"] {
                if let Ok(text) = fs::read_to_string(proc_pid.join(name)) {
                    udp_bound_inodes(&text, ephemeral, &mut udp);
                }
            }
            let table: Serving = udp
                .into_iter()
                .map(|(i, port)| (i, (port, Proto::Udp)))
                .chain(tcp.into_iter().map(|(i, port)| (i, (port, Proto::Tcp))))
                .collect();
            self.by_netns.insert(netns, (Instant::now(), table));
        }
        let (_, table) = self.by_netns.get(&netns)?;
        // TCP first: a server that also binds UDP (DNS on both) is named by its listener.
        sockets
            .iter()
            .filter_map(|i| table.get(i))
            .copied()
            .min_by_key(|&(port, proto)| (proto != Proto::Tcp, port))
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

/// `low high` from `ip_local_port_range`.
fn port_range(text: &str) -> Option<(u16, u16)> {
    let mut words = text.split_whitespace();
    Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
}

/// Adds the inode -> port of each UDP socket in a /proc/net/udp{,6} table that waits for
/// requests: unconnected (no remote port), bound to a non-zero port outside the ephemeral
/// range `(low, high)` (which autobind hands to clients).
fn udp_bound_inodes(text: &str, (low, high): (u16, u16), out: &mut FxHashMap<u64, u16>) {
    for line in text.lines().skip(1) {
        // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
        let fields: Vec<&str> = line.split_whitespace().take(10).collect();
        let [_, local, remote, state, _, _, _, _, _, inode] = fields[..] else {
            continue;
        };
        let port_of = |addr: &str| {
            addr.rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
        };
        if state != UDP_UNCONNECTED || port_of(remote) != Some(0) {
            continue;
        }
        let (Some(port), Ok(inode)) = (port_of(local), inode.parse::<u64>()) else {
            continue;
        };
        if port != 0 && !(low..=high).contains(&port) && inode != 0 {
            out.insert(inode, port);
        }
    }
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

    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 5353 2 0000000000000000 0
  101: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 6868 2 0000000000000000 0
  102: 0100007F:9C40 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 4000 2 0000000000000000 0
  103: 0100007F:1F90 0100007F:0035 01 00000000:00000000 00:00000000 00000000  1000        0 4001 2 0000000000000000 0
  104: 00000000:0000 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 4002 2 0000000000000000 0
  105: short line
";

    #[test]
    fn udp_sockets_bound_to_fixed_ports_count() {
        let mut out = FxHashMap::default();
        udp_bound_inodes(UDP, (32768, 60999), &mut out);
        // 53 and 68 count; 40000 (ephemeral: a client's autobind), a connected socket and an
        // unbound one do not.
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!((out.get(&5353), out.get(&6868)), (Some(&53), Some(&68)));
        out.clear();
        udp_bound_inodes(UDP, (50000, 60000), &mut out);
        assert_eq!(out.get(&4000), Some(&40000), "outside this host's range");
        assert_eq!(port_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(port_range("32768"), None);
    }

    #[test]
    fn a_real_bound_udp_socket_is_found() {
        use std::os::unix::{fs::MetadataExt, io::AsRawFd};
        // A fixed port below the default ephemeral range; another process may hold one.
        let socket = (20_000..20_200)
            .find_map(|p| std::net::UdpSocket::bind(("127.0.0.1", p)).ok())
            .expect("a free UDP port");
        let port = socket.local_addr().expect("addr").port();
        let inode = fs::metadata(format!("/proc/self/fd/{}", socket.as_raw_fd()))
            .expect("fd")
            .ino();
        let text = fs::read_to_string("/proc/self/net/udp").expect("/proc/self/net/udp");
        let mut out = FxHashMap::default();
        udp_bound_inodes(&text, EPHEMERAL_DEFAULT, &mut out);
        assert_eq!(out.get(&inode), Some(&port), "{text}");
        // Port 0 takes an ephemeral port: a client, not a server.
        let client = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let client_inode = fs::metadata(format!("/proc/self/fd/{}", client.as_raw_fd()))
            .expect("fd")
            .ino();
        let text = fs::read_to_string("/proc/self/net/udp").expect("/proc/self/net/udp");
        let (low, high) = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|t| port_range(&t))
            .unwrap_or(EPHEMERAL_DEFAULT);
        out.clear();
        udp_bound_inodes(&text, (low, high), &mut out);
        assert_eq!(out.get(&client_inode), None);
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
        assert_eq!(
            lowest.1,
            Proto::Tcp,
            "a listener names the server before UDP"
        );
        assert!(lowest.0 <= port);
        drop(listener);
        assert!(listening_ports(me, &|p| p == port).is_empty());
        assert_eq!(
            ListenTables::default().lowest_port(Path::new("/proc/1/none")),
            None
        );
    }
}
