//! A network namespace joined to the host by a veth pair, with private addresses the test
//! chooses (10.231.x.0/30), and TCP listeners inside it that count what reaches them.
//! Removed on drop (deleting the namespace deletes the veth pair).

use std::{
    net::{Ipv4Addr, SocketAddrV4, TcpListener},
    os::fd::AsRawFd as _,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

pub struct NetNs {
    name: String,
    /// The namespace side's address.
    pub addr: Ipv4Addr,
}

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("ip {args:?}: {e} (iproute2 is needed)"));
    assert!(status.success(), "ip {args:?}: {status}");
}

impl NetNs {
    /// `net` picks the /30: host side 10.231.`net`.1, namespace side 10.231.`net`.2.
    pub fn create(net: u8) -> NetNs {
        let name = format!("lsprev{}-{net}", std::process::id());
        let host_if = format!("lsh{}{net}", std::process::id() % 10_000);
        let ns_if = format!("lsn{}{net}", std::process::id() % 10_000);
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        ip(&["netns", "add", &name]);
        let ns = NetNs {
            name: name.clone(),
            addr: Ipv4Addr::new(10, 231, net, 2),
        };
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", &name]);
        ip(&[
            "addr",
            "add",
            &format!("10.231.{net}.1/30"),
            "dev",
            &host_if,
        ]);
        ip(&["link", "set", &host_if, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &name, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&["addr", "add", &format!("10.231.{net}.2/30"), "dev", &ns_if]);
        inside(&["link", "set", &ns_if, "up"]);
        inside(&["link", "set", "lo", "up"]);
        ns
    }

    /// A listener on the namespace's address, accepting in a thread of its own that joined
    /// the namespace; returns its port and the count of connections it accepted.
    pub fn listen(&self) -> (u16, Counter) {
        let path = format!("/var/run/netns/{}", self.name);
        let addr = self.addr;
        let counter = Counter::default();
        let accepted = counter.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("open the namespace");
            // SAFETY: a valid namespace fd; only this thread moves into it.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let listener =
                TcpListener::bind(SocketAddrV4::new(addr, 0)).expect("listen in the namespace");
            listener.set_nonblocking(true).expect("nonblocking");
            let port = listener.local_addr().expect("addr").port();
            tx.send(port).expect("send port");
            while !accepted.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok(_) => {
                        accepted.count.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        let port = rx.recv().expect("listener port");
        (port, counter)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Connections a listener accepted; dropping the last clone stops its thread.
#[derive(Clone, Default)]
pub struct Counter {
    count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Counter {
    /// Accepted so far.
    pub fn now(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits until `n` connections were accepted (a completed connect may still sit in the
    /// accept queue for a poll round); returns the count at the end.
    pub fn wait_for(&self, n: usize, within: Duration) -> usize {
        let deadline = std::time::Instant::now() + within;
        while self.now() < n && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.now()
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
