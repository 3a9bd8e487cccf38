//! Internet sockets as /proc shows them: `/proc/PID/net/{tcp,tcp6,udp,udp6}` (the tables of the
//! process's network namespace) joined to the socket inodes of its fd table.

use std::{
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::Path,
};

use rustc_hash::FxHashMap;
use serde::Serialize;

/// One socket of a namespace's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InetSocket {
    pub transport: &'static str,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// TCP state name (`established`, `listen`, ...); `udp` sockets say `bound` or `connected`.
    pub state: &'static str,
    #[serde(skip)]
    pub inode: u64,
}

impl InetSocket {
    pub fn is_listening(&self) -> bool {
        self.state == "listen"
    }
    pub fn is_established(&self) -> bool {
        self.state == "established"
    }
    /// A connection still held by its process, perhaps half closed: a server that answered and
    /// shut its side down still holds the client's address.
    pub fn is_held_connection(&self) -> bool {
        matches!(
            self.state,
            "established" | "fin_wait1" | "fin_wait2" | "close_wait" | "closing" | "last_ack"
        )
    }
}

/// The tables of the network namespace of `/proc/PID`, by socket inode.
#[derive(Debug, Default)]
pub struct SocketTable {
    by_inode: FxHashMap<u64, InetSocket>,
}

impl SocketTable {
    /// Reads the four tables as `proc_pid` sees them; unreadable ones count as empty.
    pub fn read(proc_pid: &Path) -> SocketTable {
        let mut table = SocketTable::default();
        for (file, transport) in [
            ("net/tcp", "tcp"),
            ("net/tcp6", "tcp"),
            ("net/udp", "udp"),
            ("net/udp6", "udp"),
        ] {
            if let Ok(text) = fs::read_to_string(proc_pid.join(file)) {
                table.add(&text, transport);
            }
        }
        table
    }

    fn add(&mut self, text: &str, transport: &'static str) {
        for line in text.lines().skip(1) {
            if let Some(socket) = parse_line(line, transport) {
                self.by_inode.insert(socket.inode, socket);
            }
        }
    }

    pub fn get(&self, inode: u64) -> Option<&InetSocket> {
        self.by_inode.get(&inode)
    }

    /// The TCP socket whose local and remote addresses are `local` and `remote`.
    pub fn find(&self, local: SocketAddr, remote: SocketAddr) -> Option<&InetSocket> {
        self.by_inode
            .values()
            .find(|s| s.transport == "tcp" && same(s.local, local) && same(s.remote, remote))
    }
}

/// An IPv4 peer of a dual-stack socket shows as `::ffff:a.b.c.d`: the same endpoint.
fn same(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && canonical(a.ip()) == canonical(b.ip())
}

pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The socket inode an fd link (`socket:[123]`) names.
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The socket inodes of `/proc/PID/fd`, in fd order, with their fd numbers.
pub fn socket_fds(proc_pid: &Path) -> Vec<(u32, u64)> {
    let Ok(dir) = fs::read_dir(proc_pid.join("fd")) else {
        return Vec::new();
    };
    let mut out: Vec<(u32, u64)> = dir
        .flatten()
        .filter_map(|fd| {
            let n = fd.file_name().to_str()?.parse().ok()?;
            let link = fs::read_link(fd.path()).ok()?;
            Some((n, socket_inode(link.to_str()?)?))
        })
        .collect();
    out.sort_unstable();
    out
}

fn parse_line(line: &str, transport: &'static str) -> Option<InetSocket> {
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    let fields: Vec<&str> = line.split_whitespace().take(10).collect();
    let [_, local, remote, state, _, _, _, _, _, inode] = fields[..] else {
        return None;
    };
    let inode = inode.parse().ok().filter(|&i| i != 0)?;
    let state = u8::from_str_radix(state, 16).ok()?;
    let remote = parse_addr(remote)?;
    Some(InetSocket {
        transport,
        local: parse_addr(local)?,
        remote,
        state: if transport == "udp" {
            if remote.port() == 0 {
                "bound"
            } else {
                "connected"
            }
        } else {
            tcp_state(state)
        },
        inode,
    })
}

fn tcp_state(state: u8) -> &'static str {
    match state {
        1 => "established",
        2 => "syn_sent",
        3 => "syn_recv",
        4 => "fin_wait1",
        5 => "fin_wait2",
        6 => "time_wait",
        7 => "close",
        8 => "close_wait",
        9 => "last_ack",
        10 => "listen",
        11 => "closing",
        _ => "unknown",
    }
}

/// `0100007F:1F90` (IPv4) or 32 hex digits (IPv6), each 32-bit word in host byte order.
fn parse_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.rsplit_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(ip, 16).ok()?.to_ne_bytes(),
        )),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                let word = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0200007F:A000 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 20 4 30 10 -1
   2: garbage
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0000000000000000FFFF00000100007F:0050 0000000000000000FFFF00000300007F:D431 01 00000000:00000000 00:00000000 00000000    33        0 77 1 0000000000000000 20 4 0 10 -1
";

    #[test]
    fn tables_parse_to_addresses_states_and_inodes() {
        let mut table = SocketTable::default();
        table.add(TCP, "tcp");
        table.add(TCP6, "tcp");
        let listen = table.get(4242).expect("listen");
        assert!(listen.is_listening());
        assert_eq!(listen.local, "127.0.0.1:8080".parse().expect("addr"));
        let conn = table.get(4343).expect("conn");
        assert!(conn.is_established());
        assert_eq!(conn.remote, "127.0.0.2:40960".parse().expect("addr"));
        let v6 = table.get(77).expect("v6");
        assert_eq!(
            canonical(v6.remote.ip()),
            "127.0.0.3".parse::<IpAddr>().expect("ip")
        );
        assert!(
            table
                .find(
                    "127.0.0.1:80".parse().expect("a"),
                    "127.0.0.3:54321".parse().expect("b")
                )
                .is_some()
        );
        assert_eq!(table.by_inode.len(), 3);
    }

    #[test]
    fn this_process_sees_its_own_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = std::net::TcpStream::connect(addr).expect("connect");
        let (_server_side, peer) = listener.accept().expect("accept");
        let me = Path::new("/proc/self");
        let table = SocketTable::read(me);
        let fds = socket_fds(me);
        let accepted = fds
            .iter()
            .filter_map(|(_, inode)| table.get(*inode))
            .find(|s| s.is_established() && s.local == addr)
            .expect("the accepted socket is in the fd table");
        assert_eq!(accepted.remote, peer);
        drop(client);
    }
}
