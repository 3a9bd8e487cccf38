//! Events and a fake host for the engine-level tests of the rules, the annotator and the gate.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use super::HostFacts;
use crate::event::{Event, Exec, Family, File, FileOp, Fork, Listen, Proto};

pub fn exec(ts: u64, pid: u32, ppid: u32, exe: &str, argv: &[&str]) -> Event {
    Event::Exec(Exec {
        ts_ns: ts,
        pid,
        tid: pid,
        ppid,
        start_ns: ts,
        uid: 33,
        gid: 33,
        euid: 33,
        comm: "x".into(),
        exe: exe.into(),
        argv: argv.iter().map(|s| (*s).to_owned()).collect(),
        argv_truncated: false,
        argv_bytes: 0,
        cgroup_id: 0,
        exe_dev: None,
        exe_ino: None,
        exe_nlink: None,
        hold: None,
    })
}

pub fn fork(ts: u64, pid: u32, ppid: u32) -> Event {
    Event::Fork(Fork {
        ts_ns: ts,
        pid,
        tid: ppid,
        ppid,
        start_ns: ts,
        uid: 33,
        gid: 33,
        comm: "x".into(),
        cgroup_id: 0,
    })
}

/// `pid` puts a TCP socket on `port` into LISTEN.
pub fn listen(ts: u64, pid: u32, port: u16) -> Event {
    Event::Listen(Listen {
        ts_ns: ts,
        pid,
        tid: pid,
        uid: 33,
        family: Family::Inet6,
        addr: std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        port,
        proto: Proto::Tcp,
    })
}

/// A successful `open(O_CREAT)` by `pid`.
pub fn write(ts: u64, pid: u32, path: &str) -> Event {
    Event::File(File {
        ts_ns: ts,
        pid,
        tid: pid,
        uid: 33,
        op: FileOp::Open,
        path: path.into(),
        path_truncated: false,
        source: None,
        flags: 0o1101,
        ret: 3,
        dev: None,
        ino: None,
    })
}

/// Answers as a host would: `listeners` pid -> ports, `copies` exe -> shell; counts the
/// questions about listening sockets in `asked`.
#[derive(Default)]
pub struct FakeHost {
    pub listeners: Vec<(u32, u16)>,
    pub copies: Vec<(&'static str, &'static str)>,
    pub asked: Arc<AtomicUsize>,
}

impl HostFacts for FakeHost {
    fn listening_ports(&mut self, pid: u32, wanted: &dyn Fn(u16) -> bool) -> Vec<u16> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        self.listeners
            .iter()
            .filter(|(p, port)| *p == pid && wanted(*port))
            .map(|(_, port)| *port)
            .collect()
    }

    fn any_listening_port(&mut self, pid: u32) -> Option<u16> {
        self.listeners
            .iter()
            .filter(|(p, _)| *p == pid)
            .map(|(_, port)| *port)
            .min()
    }

    fn shell_copied_to(&mut self, _pid: u32, exe: &str) -> Option<Arc<str>> {
        self.copies
            .iter()
            .find(|(e, _)| *e == exe)
            .map(|(_, shell)| Arc::from(*shell))
    }
}
