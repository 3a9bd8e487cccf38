//! The typed events that both the live kernel reader and `replay` produce.
//!
//! Serialised with serde, one JSON object per line, these are also the `record` format documented
//! in docs/events.md: a stable interface. Fields may be added (readers ignore unknown ones, and
//! every later addition has a default); none is renamed or removed.
//!
//! Text fields (`comm`, `exe`, `argv`) are in the lossless form of [`crate::escape`].

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One kernel event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Event {
    Exec(Exec),
    Fork(Fork),
    Exit(Exit),
    Connect(Connect),
    File(File),
    Listen(Listen),
}

impl Event {
    /// Nanoseconds since boot (CLOCK_BOOTTIME) when the event happened.
    pub fn ts_ns(&self) -> u64 {
        match self {
            Event::Exec(e) => e.ts_ns,
            Event::Fork(e) => e.ts_ns,
            Event::Exit(e) => e.ts_ns,
            Event::Connect(e) => e.ts_ns,
            Event::File(e) => e.ts_ns,
            Event::Listen(e) => e.ts_ns,
        }
    }

    /// The process (thread-group id) the event is about.
    pub fn pid(&self) -> u32 {
        match self {
            Event::Exec(e) => e.pid,
            Event::Fork(e) => e.pid,
            Event::Exit(e) => e.pid,
            Event::Connect(e) => e.pid,
            Event::File(e) => e.pid,
            Event::Listen(e) => e.pid,
        }
    }

    /// The `type` tag, also used as the `type` label of the events metric.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Exec(_) => EventKind::Exec,
            Event::Fork(_) => EventKind::Fork,
            Event::Exit(_) => EventKind::Exit,
            Event::Connect(_) => EventKind::Connect,
            Event::File(_) => EventKind::File,
            Event::Listen(_) => EventKind::Listen,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Exec,
    Fork,
    Exit,
    Connect,
    File,
    Listen,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::Exec,
        EventKind::Fork,
        EventKind::Exit,
        EventKind::Connect,
        EventKind::File,
        EventKind::Listen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Exec => "exec",
            EventKind::Fork => "fork",
            EventKind::Exit => "exit",
            EventKind::Connect => "connect",
            EventKind::File => "file",
            EventKind::Listen => "listen",
        }
    }
}

/// A process replaced its image (execve/execveat succeeded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exec {
    pub ts_ns: u64,
    /// The process (tgid) after exec.
    pub pid: u32,
    /// The thread that called exec; equal to `pid` unless a non-leader thread exec'd.
    #[serde(default)]
    pub tid: u32,
    /// Parent tgid as the kernel had it at exec time.
    pub ppid: u32,
    /// Process start, nanoseconds since boot; `(pid, start_ns)` identifies the process.
    pub start_ns: u64,
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub euid: u32,
    /// The kernel's 16-byte task name after exec.
    pub comm: String,
    /// The path passed to exec, as the kernel saw it (the script for `#!` files).
    pub exe: String,
    pub argv: Vec<String>,
    /// The argument block was longer than the kernel side keeps (4 KiB); `argv` holds its start.
    pub argv_truncated: bool,
    /// Size in bytes of the whole argument block in the process.
    #[serde(default)]
    pub argv_bytes: u64,
    pub cgroup_id: u64,
    /// The executed file (for a `#!` script its interpreter): device as stat(2) gives `st_dev`,
    /// inode number and link count (0: unlinked before or while it ran), read by the kernel from
    /// the file exec opened. Absent in records made before they existed and on kernels whose BTF
    /// lacks a member on the way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe_dev: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe_ino: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe_nlink: Option<u32>,
    /// Execution prevention's kernel half (`[prevention]`): this exec was held, or would have
    /// been; left out otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<ExecHold>,
}

/// What execution prevention's kernel half did at an [`Exec`] in a confirmed server tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecHold {
    /// dry-run: enforce would have held it.
    WouldHold,
    /// enforce: stopped (SIGSTOP) until userspace kills or continues it.
    Held,
}

impl Exec {
    /// The executed file's identity, when the kernel gave it.
    pub fn exe_id(&self) -> Option<FileId> {
        Some(FileId {
            dev: self.exe_dev?,
            ino: self.exe_ino?,
        })
    }
}

/// A file as the kernel knows it whatever its names: device (stat(2)'s `st_dev` encoding) and
/// inode number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// A new process (threads never appear).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fork {
    pub ts_ns: u64,
    /// The child's pid.
    pub pid: u32,
    /// The thread that forked.
    #[serde(default)]
    pub tid: u32,
    /// The child's parent as the kernel has it (`real_parent`).
    pub ppid: u32,
    /// The child's start, nanoseconds since boot.
    pub start_ns: u64,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    /// The parent's name, which the child inherits until it execs.
    #[serde(default)]
    pub comm: String,
    #[serde(default)]
    pub cgroup_id: u64,
}

/// A process ended (its thread-group leader exited).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub ts_ns: u64,
    pub pid: u32,
    #[serde(default)]
    pub start_ns: u64,
    /// The status passed to exit(); 0 when a signal ended the process.
    pub exit_code: i32,
    /// The signal that ended the process, 0 if it exited.
    #[serde(default)]
    pub signal: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Inet,
    Inet6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    Unknown,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Unknown => "unknown",
        }
    }
}

/// How the destination of a [`Connect`] was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectCall {
    /// connect(2).
    #[default]
    Connect,
    /// sendto/sendmsg with a destination on an unconnected UDP socket (first datagram from that
    /// socket to that destination).
    Sendmsg,
}

impl ConnectCall {
    fn is_connect(&self) -> bool {
        *self == ConnectCall::Connect
    }
}

/// A connect() on an IPv4 or IPv6 socket with its result, or the first datagram an unconnected
/// UDP socket sent to a destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connect {
    /// When connect() (or the send) was called.
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    #[serde(default)]
    pub uid: u32,
    /// `inet` for IPv4, including IPv4-mapped IPv6 destinations, which are shown as IPv4.
    pub family: Family,
    pub daddr: IpAddr,
    pub dport: u16,
    pub proto: Proto,
    /// 0 on success, else -errno (for TCP, how the handshake ended; -115, EINPROGRESS, only in
    /// recordings made before the outcome was tracked).
    pub ret: i32,
    /// Left out for connect(), the only call older recordings know.
    #[serde(default, skip_serializing_if = "ConnectCall::is_connect")]
    pub call: ConnectCall,
    /// The kernel's prevention verdict (`[prevention]`); left out when it took none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prevention: Option<PreventAction>,
}

/// What prevention did to a [`Connect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PreventAction {
    /// dry-run: enforce would have refused it.
    WouldBlock,
    /// enforce: refused with EPERM before any packet left.
    Blocked,
}

impl PreventAction {
    /// `event.action` of an alert, and the metric's `action` label.
    pub fn as_str(self) -> &'static str {
        match self {
            PreventAction::WouldBlock => "would-block",
            PreventAction::Blocked => "blocked",
        }
    }
}

impl Connect {
    /// EINPROGRESS: a non-blocking connect under way counts as an attempt.
    pub const EINPROGRESS: i32 = -115;

    /// The connection was made or is being made.
    pub fn attempted(&self) -> bool {
        self.ret == 0 || self.ret == Self::EINPROGRESS
    }
}

/// A TCP socket put into the LISTEN state by listen(2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listen {
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    /// `inet` or `inet6` (an IPv6 socket, even when it also accepts IPv4).
    pub family: Family,
    /// The local address: `0.0.0.0` or `::` for every address.
    pub addr: IpAddr,
    pub port: u16,
    pub proto: Proto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileOp {
    /// open/openat/openat2/creat with O_CREAT, O_WRONLY, O_RDWR or O_TRUNC.
    Open,
    /// rename/renameat/renameat2: `path` is the new name.
    Rename,
    /// link/linkat: `path` is the new link.
    Link,
    /// symlink/symlinkat: `path` is the new symbolic link, `source` what it points to.
    Symlink,
}

/// A file created or opened for writing, renamed or linked, under a watched path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    pub op: FileOp,
    /// Absolute path as the kernel resolved it (symlinks, cwd and dirfd resolved; in a container,
    /// the host's view of the path).
    pub path: String,
    /// The path lacks its beginning: it was deeper or longer than the kernel side resolves.
    #[serde(default)]
    pub path_truncated: bool,
    /// For a rename the old name, for a link the existing file, as the caller gave them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// open(2) flags for `open`; renameat2/linkat flags otherwise.
    pub flags: u32,
    /// The syscall's result: a file descriptor or 0 on success, else -errno.
    pub ret: i32,
    /// The file at `path` when the sensor read the event (lstat(2), so a symlink's own
    /// identity): `st_dev` and `st_ino`. Absent when it failed (the file was already gone, the
    /// path truncated), in `replay` of records without it, and for failed syscalls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ino: Option<u64>,
}

impl File {
    pub const O_CREAT: u32 = 0o100;
    pub const O_TRUNC: u32 = 0o1000;

    pub fn succeeded(&self) -> bool {
        self.ret >= 0
    }

    /// The written file's identity, when the sensor could read it.
    pub fn id(&self) -> Option<FileId> {
        Some(FileId {
            dev: self.dev?,
            ino: self.ino?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lines_carry_the_documented_fields() {
        let exec = Event::Exec(Exec {
            ts_ns: 5,
            pid: 10,
            tid: 10,
            ppid: 1,
            start_ns: 4,
            uid: 33,
            gid: 33,
            euid: 33,
            comm: "sh".into(),
            exe: "/bin/sh".into(),
            argv: vec!["sh".into(), "-c".into(), "id".into()],
            argv_truncated: false,
            argv_bytes: 9,
            cgroup_id: 77,
            exe_dev: Some(2049),
            exe_ino: Some(131),
            exe_nlink: Some(1),
            hold: None,
        });
        let line = serde_json::to_string(&exec).expect("serialise");
        let value: serde_json::Value = serde_json::from_str(&line).expect("parse");
        for key in [
            "type",
            "ts_ns",
            "pid",
            "ppid",
            "start_ns",
            "uid",
            "gid",
            "comm",
            "exe",
            "argv",
            "argv_truncated",
            "cgroup_id",
            "exe_dev",
            "exe_ino",
            "exe_nlink",
        ] {
            assert!(value.get(key).is_some(), "{key} missing from {line}");
        }
        assert_eq!(value["type"], "exec");
        assert_eq!(serde_json::from_str::<Event>(&line).expect("back"), exec);
    }

    #[test]
    fn connect_line_round_trips_and_minimal_lines_parse() {
        let line = r#"{"type":"connect","ts_ns":1,"pid":2,"tid":3,"family":"inet6","daddr":"::1","dport":443,"proto":"tcp","ret":-111}"#;
        let Event::Connect(c) = serde_json::from_str::<Event>(line).expect("parse") else {
            panic!("not a connect");
        };
        assert_eq!(c.daddr.to_string(), "::1");
        assert!(!c.attempted());
        let fork = r#"{"type":"fork","ts_ns":1,"pid":2,"ppid":1,"start_ns":1,"future_field":true}"#;
        assert!(matches!(
            serde_json::from_str::<Event>(fork),
            Ok(Event::Fork(_))
        ));
    }
}
