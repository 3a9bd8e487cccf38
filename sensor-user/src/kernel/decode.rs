//! Ring buffer records to typed events.
//!
//! Records come from our own programs, but a decoder that trusts its input turns one layout
//! mistake into a crash of the sensor, so every length is checked and a bad record is an error
//! value, counted and logged by the caller.

use std::{
    mem::{offset_of, size_of},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use sensor_ebpf::{
    ARGV_MAX, ConnectEvent, EventHeader, ExecEvent, ExitEvent, FILENAME_MAX, FileEvent, ForkEvent,
    ListenEvent, PATH_MAX, SOURCE_MAX, connect_call, exec_flags, file_op, kind, path_flags, proto,
};

use crate::{
    escape::{escape_bytes, split_argv},
    event::{
        Connect, ConnectCall, Event, Exec, ExecHold, Exit, Family, File, FileOp, Fork, Listen,
        PreventAction, Proto,
    },
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than an event header")]
    NoHeader { len: usize },
    #[error("record of unknown kind {0}")]
    UnknownKind(u32),
    #[error("{kind} record of {len} bytes is shorter than {need}")]
    TooShort {
        kind: &'static str,
        len: usize,
        need: usize,
    },
    #[error("exec record claims {claimed} {what} bytes, more than it can hold")]
    BadLength { what: &'static str, claimed: u32 },
    #[error("connect record has address family {0}, not AF_INET or AF_INET6")]
    BadFamily(u32),
    #[error("file record has unknown operation {0}")]
    UnknownFileOp(u32),
    #[error("connect record has unknown call {0}")]
    UnknownCall(u32),
}

const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;

/// Decodes one ring buffer record.
pub fn decode(record: &[u8]) -> Result<Event, DecodeError> {
    let header: EventHeader =
        read_prefix(record, "header").map_err(|_| DecodeError::NoHeader { len: record.len() })?;
    match header.kind {
        kind::EXEC => decode_exec(record),
        kind::FORK => {
            let e: ForkEvent = read_prefix(record, "fork")?;
            Ok(Event::Fork(Fork {
                ts_ns: e.header.ts_ns,
                pid: e.header.pid,
                tid: e.header.tid,
                ppid: e.ppid,
                start_ns: e.start_ns,
                uid: e.uid,
                gid: e.gid,
                comm: c_string(&e.comm),
                cgroup_id: e.cgroup_id,
            }))
        }
        kind::EXIT => {
            let e: ExitEvent = read_prefix(record, "exit")?;
            // wait(2) status: low 7 bits a terminating signal, else bits 8..16 the exit code.
            let signal = (e.exit_code & 0x7f) as i32;
            let exit_code = if signal == 0 {
                ((e.exit_code >> 8) & 0xff) as i32
            } else {
                0
            };
            Ok(Event::Exit(Exit {
                ts_ns: e.header.ts_ns,
                pid: e.header.pid,
                start_ns: e.start_ns,
                exit_code,
                signal,
            }))
        }
        kind::CONNECT => decode_connect(read_prefix(record, "connect")?),
        kind::FILE => decode_file(record),
        kind::LISTEN => decode_listen(read_prefix(record, "listen")?),
        other => Err(DecodeError::UnknownKind(other)),
    }
}

fn decode_exec(record: &[u8]) -> Result<Event, DecodeError> {
    let fixed = offset_of!(ExecEvent, argv);
    if record.len() < fixed {
        return Err(DecodeError::TooShort {
            kind: "exec",
            len: record.len(),
            need: fixed,
        });
    }
    // The kernel sends only the used part of `argv`; read the fixed part field by field.
    let u32_at = |off: usize| read_at::<u32>(record, off);
    let u64_at = |off: usize| read_at::<u64>(record, off);
    let header: EventHeader = read_at(record, 0);
    let flags = u32_at(offset_of!(ExecEvent, flags));
    let filename_len = u32_at(offset_of!(ExecEvent, filename_len));
    let argv_len = u32_at(offset_of!(ExecEvent, argv_len));
    if filename_len as usize > FILENAME_MAX {
        return Err(DecodeError::BadLength {
            what: "filename",
            claimed: filename_len,
        });
    }
    if argv_len as usize > ARGV_MAX || fixed + argv_len as usize > record.len() {
        return Err(DecodeError::BadLength {
            what: "argv",
            claimed: argv_len,
        });
    }
    let comm_at = offset_of!(ExecEvent, comm);
    let filename_at = offset_of!(ExecEvent, filename);
    let identity = flags & exec_flags::EXE_IDENTITY != 0;
    Ok(Event::Exec(Exec {
        ts_ns: header.ts_ns,
        pid: header.pid,
        tid: u32_at(offset_of!(ExecEvent, old_tid)),
        ppid: u32_at(offset_of!(ExecEvent, ppid)),
        start_ns: u64_at(offset_of!(ExecEvent, start_ns)),
        uid: u32_at(offset_of!(ExecEvent, uid)),
        gid: u32_at(offset_of!(ExecEvent, gid)),
        euid: u32_at(offset_of!(ExecEvent, euid)),
        comm: c_string(&record[comm_at..comm_at + sensor_ebpf::COMM_LEN]),
        exe: escape_bytes(&record[filename_at..filename_at + filename_len as usize]),
        argv: split_argv(&record[fixed..fixed + argv_len as usize]),
        argv_truncated: flags & exec_flags::ARGV_TRUNCATED != 0,
        argv_bytes: u64_at(offset_of!(ExecEvent, argv_total_len)),
        cgroup_id: u64_at(offset_of!(ExecEvent, cgroup_id)),
        exe_dev: identity.then(|| user_dev(u32_at(offset_of!(ExecEvent, exe_dev)))),
        exe_ino: identity.then(|| u64_at(offset_of!(ExecEvent, exe_ino))),
        exe_nlink: identity.then(|| u32_at(offset_of!(ExecEvent, exe_nlink))),
        hold: if flags & exec_flags::HELD != 0 {
            Some(ExecHold::Held)
        } else if flags & exec_flags::WOULD_HOLD != 0 {
            Some(ExecHold::WouldHold)
        } else {
            None
        },
    }))
}

/// A device number in the kernel's internal encoding (`super_block.s_dev`: 12 bits of major
/// above 20 of minor) as stat(2) reports it (`st_dev`), so that it compares with lstat's.
fn user_dev(kernel: u32) -> u64 {
    libc::makedev(kernel >> 20, kernel & 0xf_ffff)
}

fn decode_file(record: &[u8]) -> Result<Event, DecodeError> {
    let fixed = offset_of!(FileEvent, path);
    if record.len() < fixed {
        return Err(DecodeError::TooShort {
            kind: "file",
            len: record.len(),
            need: fixed,
        });
    }
    let u32_at = |off: usize| read_at::<u32>(record, off);
    let header: EventHeader = read_at(record, 0);
    let path_len = u32_at(offset_of!(FileEvent, path_len));
    let source_len = u32_at(offset_of!(FileEvent, source_len));
    if path_len as usize >= PATH_MAX || fixed + path_len as usize > record.len() {
        return Err(DecodeError::BadLength {
            what: "path",
            claimed: path_len,
        });
    }
    if source_len as usize >= SOURCE_MAX {
        return Err(DecodeError::BadLength {
            what: "source",
            claimed: source_len,
        });
    }
    let op = match u32_at(offset_of!(FileEvent, op)) {
        file_op::OPEN_WRITE => FileOp::Open,
        file_op::RENAME => FileOp::Rename,
        file_op::LINK => FileOp::Link,
        file_op::SYMLINK => FileOp::Symlink,
        other => return Err(DecodeError::UnknownFileOp(other)),
    };
    let source_at = offset_of!(FileEvent, source);
    let source =
        (source_len > 0).then(|| escape_bytes(&record[source_at..source_at + source_len as usize]));
    Ok(Event::File(File {
        ts_ns: header.ts_ns,
        pid: header.pid,
        tid: header.tid,
        uid: u32_at(offset_of!(FileEvent, uid)),
        op,
        path: escape_bytes(&record[fixed..fixed + path_len as usize]),
        path_truncated: u32_at(offset_of!(FileEvent, path_flags)) & path_flags::TRUNCATED != 0,
        source,
        flags: u32_at(offset_of!(FileEvent, flags)),
        ret: read_at::<i32>(record, offset_of!(FileEvent, ret)),
        // Stamped by the reader (`file_id`), which may look at the file; decoding does not.
        dev: None,
        ino: None,
    }))
}

/// An address as the programs send it: IPv4 in the first four bytes, or IPv6; an IPv4-mapped
/// IPv6 address (`::ffff:a.b.c.d`, an IPv4 peer of an IPv6 socket) as IPv4.
fn address(family: u32, bytes: [u8; 16]) -> Result<(Family, IpAddr), DecodeError> {
    Ok(match family {
        AF_INET => {
            let [a, b, c, d, ..] = bytes;
            (Family::Inet, IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
        }
        AF_INET6 => {
            let v6 = Ipv6Addr::from(bytes);
            // ::ffff:a.b.c.d is an IPv4 destination reached through an IPv6 socket.
            match v6.to_ipv4_mapped() {
                Some(v4) => (Family::Inet, IpAddr::V4(v4)),
                None => (Family::Inet6, IpAddr::V6(v6)),
            }
        }
        other => return Err(DecodeError::BadFamily(other)),
    })
}

fn decode_listen(e: ListenEvent) -> Result<Event, DecodeError> {
    let (family, addr) = match address(e.family, e.addr)? {
        // A listener on an IPv6 socket stays inet6 even for a mapped (or the any) address.
        (Family::Inet, _) if e.family == AF_INET6 => {
            (Family::Inet6, IpAddr::V6(Ipv6Addr::from(e.addr)))
        }
        other => other,
    };
    Ok(Event::Listen(Listen {
        ts_ns: e.header.ts_ns,
        pid: e.header.pid,
        tid: e.header.tid,
        uid: e.uid,
        family,
        addr,
        port: e.port as u16,
        proto: Proto::Tcp,
    }))
}

fn decode_connect(e: ConnectEvent) -> Result<Event, DecodeError> {
    let (family, daddr) = address(e.family, e.daddr)?;
    let call = match e.call & connect_call::CALL_MASK {
        connect_call::CONNECT => ConnectCall::Connect,
        connect_call::SENDMSG => ConnectCall::Sendmsg,
        other => return Err(DecodeError::UnknownCall(other)),
    };
    let prevention = if e.call & connect_call::BLOCKED != 0 {
        Some(PreventAction::Blocked)
    } else if e.call & connect_call::WOULD_BLOCK != 0 {
        Some(PreventAction::WouldBlock)
    } else {
        None
    };
    Ok(Event::Connect(Connect {
        ts_ns: e.header.ts_ns,
        pid: e.header.pid,
        tid: e.header.tid,
        uid: e.uid,
        family,
        daddr,
        dport: e.dport as u16,
        proto: match e.proto {
            proto::TCP => Proto::Tcp,
            proto::UDP => Proto::Udp,
            _ => Proto::Unknown,
        },
        ret: e.ret,
        call,
        prevention,
    }))
}

/// A `T` from the start of the record, if the record is long enough.
fn read_prefix<T: aya::Pod>(record: &[u8], kind: &'static str) -> Result<T, DecodeError> {
    if record.len() < size_of::<T>() {
        return Err(DecodeError::TooShort {
            kind,
            len: record.len(),
            need: size_of::<T>(),
        });
    }
    Ok(read_at(record, 0))
}

/// Reads a plain-data value at `offset`; callers have checked the length.
fn read_at<T: aya::Pod>(record: &[u8], offset: usize) -> T {
    let bytes = &record[offset..offset + size_of::<T>()];
    // SAFETY: `bytes` holds size_of::<T>() bytes, and T is Pod: any bit pattern is a valid T.
    unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) }
}

/// A NUL-terminated (or full) C string buffer as lossless text.
fn c_string(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    escape_bytes(&buf[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of<T: aya::Pod>(value: &T) -> Vec<u8> {
        // SAFETY: T is Pod and has no padding, so all its bytes are initialised.
        unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
            .to_vec()
    }

    fn exec_record(argv: &[u8], flags: u32) -> Vec<u8> {
        // SAFETY: all-zero is a valid ExecEvent (integers and byte arrays).
        let mut e: ExecEvent = unsafe { std::mem::zeroed() };
        e.header = EventHeader {
            kind: kind::EXEC,
            pid: 42,
            tid: 42,
            cpu: 0,
            ts_ns: 1000,
        };
        e.ppid = 7;
        e.uid = 33;
        e.start_ns = 999;
        e.flags = flags;
        e.comm[..2].copy_from_slice(b"sh");
        e.filename[..7].copy_from_slice(b"/bin/sh");
        e.filename_len = 7;
        e.argv[..argv.len()].copy_from_slice(argv);
        e.argv_len = argv.len() as u32;
        let mut bytes = bytes_of(&e);
        bytes.truncate(offset_of!(ExecEvent, argv) + argv.len());
        bytes
    }

    #[test]
    fn exec_record_decodes() {
        let Ok(Event::Exec(e)) = decode(&exec_record(b"sh\0-c\0\xffid\0", 0)) else {
            panic!("not an exec");
        };
        assert_eq!((e.pid, e.ppid, e.uid, e.start_ns), (42, 7, 33, 999));
        assert_eq!(e.exe, "/bin/sh");
        assert_eq!(e.comm, "sh");
        assert_eq!(e.argv, ["sh", "-c", "\\xffid"]);
        assert!(!e.argv_truncated);
        assert_eq!(e.exe_id(), None, "no identity without its flag");
    }

    #[test]
    fn execution_prevention_marks_decode_and_stay_out_of_unmarked_records() {
        let hold = |flags| match decode(&exec_record(b"sh\0", flags)) {
            Ok(Event::Exec(e)) => e.hold,
            other => panic!("not an exec: {other:?}"),
        };
        assert_eq!(hold(0), None);
        assert_eq!(hold(exec_flags::WOULD_HOLD), Some(ExecHold::WouldHold));
        assert_eq!(
            hold(exec_flags::HELD | exec_flags::WOULD_HOLD),
            Some(ExecHold::Held)
        );
        let Ok(unmarked) = decode(&exec_record(b"sh\0", 0)) else {
            panic!("not decoded");
        };
        let line = serde_json::to_string(&unmarked).expect("json");
        assert!(!line.contains("hold"), "{line}");
    }

    #[test]
    fn exe_identity_decodes_with_the_device_as_stat_gives_it() {
        let mut record = exec_record(b"sh\0", exec_flags::EXE_IDENTITY);
        let put = |r: &mut Vec<u8>, at: usize, v: &[u8]| r[at..at + v.len()].copy_from_slice(v);
        // /dev/sda1 in the kernel's encoding (8 << 20 | 1), and a minor above 255 (259:300).
        put(
            &mut record,
            offset_of!(ExecEvent, exe_dev),
            &((8u32 << 20) | 1).to_ne_bytes(),
        );
        put(
            &mut record,
            offset_of!(ExecEvent, exe_ino),
            &4242u64.to_ne_bytes(),
        );
        put(
            &mut record,
            offset_of!(ExecEvent, exe_nlink),
            &0u32.to_ne_bytes(),
        );
        let Ok(Event::Exec(e)) = decode(&record) else {
            panic!("not an exec");
        };
        assert_eq!(e.exe_dev, Some(0x801));
        assert_eq!((e.exe_ino, e.exe_nlink), (Some(4242), Some(0)));
        assert_eq!(user_dev((259 << 20) | 300), libc::makedev(259, 300));
        assert_eq!(libc::major(user_dev((259 << 20) | 300)), 259);
        assert_eq!(libc::minor(user_dev((259 << 20) | 300)), 300);
    }

    #[test]
    fn truncated_flag_survives() {
        let Ok(Event::Exec(e)) = decode(&exec_record(b"x\0yy", exec_flags::ARGV_TRUNCATED)) else {
            panic!("not an exec");
        };
        assert!(e.argv_truncated);
        assert_eq!(e.argv, ["x", "yy"]);
    }

    #[test]
    fn lying_lengths_are_errors_not_panics() {
        let mut record = exec_record(b"sh\0", 0);
        let at = offset_of!(ExecEvent, argv_len);
        record[at..at + 4].copy_from_slice(&5000u32.to_ne_bytes());
        assert!(matches!(
            decode(&record),
            Err(DecodeError::BadLength { .. })
        ));
        let mut record = exec_record(b"sh\0", 0);
        record.truncate(100);
        assert!(matches!(decode(&record), Err(DecodeError::TooShort { .. })));
        assert!(matches!(
            decode(&[1, 2, 3]),
            Err(DecodeError::NoHeader { .. })
        ));
        let mut header = bytes_of(&EventHeader::default());
        header[0] = 99;
        assert_eq!(decode(&header), Err(DecodeError::UnknownKind(99)));
        // Every prefix of a valid record decodes or fails cleanly.
        let full = exec_record(b"sh\0-c\0id\0", 0);
        for len in 0..full.len() {
            let _ = decode(&full[..len]);
        }
    }

    #[test]
    fn mapped_ipv6_is_reported_as_ipv4() {
        let mut c = ConnectEvent {
            header: EventHeader {
                kind: kind::CONNECT,
                ..EventHeader::default()
            },
            family: AF_INET6,
            proto: proto::TCP,
            dport: 8080,
            ret: -115,
            ..ConnectEvent::default()
        };
        c.daddr[10] = 0xff;
        c.daddr[11] = 0xff;
        c.daddr[12..].copy_from_slice(&[203, 0, 113, 9]);
        let Ok(Event::Connect(e)) = decode(&bytes_of(&c)) else {
            panic!("not a connect");
        };
        assert_eq!(e.family, Family::Inet);
        assert_eq!(e.daddr.to_string(), "203.0.113.9");
        assert!(e.attempted());
    }

    #[test]
    fn listen_and_udp_send_records_decode() {
        let mut l = ListenEvent {
            header: EventHeader {
                kind: kind::LISTEN,
                pid: 7,
                ..EventHeader::default()
            },
            family: AF_INET,
            port: 8080,
            uid: 33,
            ..ListenEvent::default()
        };
        l.addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        let Ok(Event::Listen(e)) = decode(&bytes_of(&l)) else {
            panic!("not a listen");
        };
        assert_eq!((e.pid, e.port, e.uid), (7, 8080, 33));
        assert_eq!(e.addr.to_string(), "127.0.0.1");
        // An IPv6 socket stays inet6, even listening on the any address.
        l.family = AF_INET6;
        l.addr = [0; 16];
        let Ok(Event::Listen(e)) = decode(&bytes_of(&l)) else {
            panic!("not a listen");
        };
        assert_eq!((e.family, e.addr.to_string()), (Family::Inet6, "::".into()));
        assert!(matches!(
            decode(&bytes_of(&l)[..30]),
            Err(DecodeError::TooShort { .. })
        ));

        let mut c = ConnectEvent {
            header: EventHeader {
                kind: kind::CONNECT,
                ..EventHeader::default()
            },
            family: AF_INET,
            proto: proto::UDP,
            dport: 53,
            call: connect_call::SENDMSG,
            ..ConnectEvent::default()
        };
        let Ok(Event::Connect(e)) = decode(&bytes_of(&c)) else {
            panic!("not a connect");
        };
        assert_eq!(e.call, ConnectCall::Sendmsg);
        let line = serde_json::to_string(&Event::Connect(e)).expect("json");
        assert!(line.ends_with(r#""ret":0,"call":"sendmsg"}"#), "{line}");
        c.call = connect_call::SENDMSG | connect_call::WOULD_BLOCK | connect_call::BLOCKED;
        let Ok(Event::Connect(e)) = decode(&bytes_of(&c)) else {
            panic!("not a connect");
        };
        assert_eq!(
            (e.call, e.prevention),
            (ConnectCall::Sendmsg, Some(PreventAction::Blocked))
        );
        let line = serde_json::to_string(&Event::Connect(e)).expect("json");
        assert!(
            line.ends_with(r#""call":"sendmsg","prevention":"blocked"}"#),
            "{line}"
        );
        c.call = connect_call::CONNECT | connect_call::WOULD_BLOCK;
        let Ok(Event::Connect(e)) = decode(&bytes_of(&c)) else {
            panic!("not a connect");
        };
        assert_eq!(e.prevention, Some(PreventAction::WouldBlock));
        c.call = 9;
        assert_eq!(decode(&bytes_of(&c)), Err(DecodeError::UnknownCall(9)));
    }

    #[test]
    fn exit_status_is_split_into_code_and_signal() {
        let exit = |status| ExitEvent {
            header: EventHeader {
                kind: kind::EXIT,
                ..EventHeader::default()
            },
            exit_code: status,
            ..ExitEvent::default()
        };
        let Ok(Event::Exit(e)) = decode(&bytes_of(&exit(3 << 8))) else {
            panic!()
        };
        assert_eq!((e.exit_code, e.signal), (3, 0));
        let Ok(Event::Exit(e)) = decode(&bytes_of(&exit(9))) else {
            panic!()
        };
        assert_eq!((e.exit_code, e.signal), (0, 9));
    }
}
