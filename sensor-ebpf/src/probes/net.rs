//! Outbound connections and unconnected UDP sends: the destination at entry, from the cgroup
//! connect4/connect6 and sendmsg4/sendmsg6 hooks on the root cgroup.
//!
//! The hooks run inside connect() and sendmsg() only for AF_INET and AF_INET6 sockets, after the
//! kernel has copied and checked the sockaddr, and hand over the destination and socket type as
//! plain fields. None of them is a syscall tracepoint, so nothing here puts the other syscalls of
//! the host on the tracing slow path. With `[prevention]` on, each hook also judges the call
//! (prevent.rs) and in enforce refuses it. A UDP connect has no handshake and is reported here; a TCP
//! connect is parked under its socket until the handshake ends (sock.rs reports the outcome). In `run` a process outside the server tree is
//! dropped by the first map lookup ([`capture_flags::SERVER_TREE_CONNECTS`]).
//!
//! Where the loader cannot attach the hooks (no cgroup v2, a cgroup namespace),
//! sys_enter_connect and sys_exit_connect do the connect part (and unconnected UDP is not seen).

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_get_socket_cookie,
        bpf_ktime_get_boot_ns, bpf_probe_read_user,
    },
    macros::{cgroup_sock_addr, tracepoint},
    programs::{SockAddrContext, TracePointContext},
};
use sensor_ebpf::{ConnectEvent, UdpSeenKey, capture_flags, connect_call, kind, proto};

use super::prevent::{ALLOW, DENY, judge};
use crate::diag::degraded;
use crate::{
    CONNECTING, EVENTS, PENDING_CONNECT, RECENT_EXEC, SERVER_TREE, UDP_SEEN, count_lost,
    kernel::{fd_file, header, offset, read},
    wake_later,
};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const SOCK_STREAM: u16 = 1;
const SOCK_DGRAM: u16 = 2;

// Every hook lets the call go on unless prevention refuses it (`prevent::judge`); a failure
// to read the destination lets it go on too (fail open).

#[cgroup_sock_addr(connect4)]
pub fn cgroup_connect4(ctx: SockAddrContext) -> i32 {
    if !wanted() {
        return ALLOW;
    }
    verdict(on_cgroup_connect(&ctx, AF_INET))
}

#[cgroup_sock_addr(connect6)]
pub fn cgroup_connect6(ctx: SockAddrContext) -> i32 {
    if !wanted() {
        return ALLOW;
    }
    verdict(on_cgroup_connect(&ctx, AF_INET6))
}

#[cgroup_sock_addr(sendmsg4)]
pub fn cgroup_sendmsg4(ctx: SockAddrContext) -> i32 {
    if !wanted() {
        return ALLOW;
    }
    verdict(on_cgroup_sendmsg(&ctx, AF_INET))
}

#[cgroup_sock_addr(sendmsg6)]
pub fn cgroup_sendmsg6(ctx: SockAddrContext) -> i32 {
    if !wanted() {
        return ALLOW;
    }
    verdict(on_cgroup_sendmsg(&ctx, AF_INET6))
}

/// The hook's return value: a failure lets the call go on. Spelled as constants so that the
/// verifier sees a value in [0, 1] (a verdict returned through the stack was rejected).
#[inline(always)]
fn verdict(judged: Result<i32, i32>) -> i32 {
    match judged {
        Ok(DENY) => DENY,
        _ => ALLOW,
    }
}

/// Whether the current process's connects matter: always in `record`; in `run` only below a
/// server (or a listener), the one map lookup a busy non-server process pays.
#[inline(always)]
fn wanted() -> bool {
    let flags = offset!(capture_flags) as u32;
    if flags & capture_flags::SERVER_TREE_CONNECTS == 0 {
        return true;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: the value is not read, only whether there is one.
    if unsafe { SERVER_TREE.get(&tgid) }.is_some() {
        return true;
    }
    // A process that exec'd a moment ago may be a server userspace has not classified yet.
    // SAFETY: a plain u64 copied out of the map.
    match unsafe { RECENT_EXEC.get(&tgid) } {
        Some(&exec_ns) => {
            // SAFETY: helper without arguments.
            let now = unsafe { bpf_ktime_get_boot_ns() };
            now.wrapping_sub(exec_ns) < offset!(recent_exec_ms) as u64 * 1_000_000
        }
        None => false,
    }
}

/// Returns the hook's verdict.
#[inline(always)]
fn on_cgroup_connect(ctx: &SockAddrContext, family: u16) -> Result<i32, i32> {
    let mut event = cgroup_event(ctx, family)?;
    let verdict = judge(&mut event);
    if verdict == ALLOW && event.proto == proto::TCP {
        // The outcome comes from the handshake (sock.rs), keyed by the socket: the context's
        // `sk` is the kernel's `struct sock`, the pointer the state-change tracepoint gets.
        // SAFETY: a context field, read as the verifier requires (one plain load).
        let sk =
            unsafe { core::ptr::read_volatile(&raw const (*ctx.sock_addr).__bindgen_anon_1.sk) };
        CONNECTING.insert(&(sk as u64), &event, 0)?;
        return Ok(ALLOW);
    }
    // No handshake to wait for (a UDP connect, or one refused here): reported at once.
    send(&event);
    Ok(verdict)
}

/// An unconnected UDP send with a destination: reported once per socket and destination, so
/// that a resolver or a chatty client costs one event, not one per datagram. Every send is
/// judged; the verdict is the hook's.
#[inline(always)]
fn on_cgroup_sendmsg(ctx: &SockAddrContext, family: u16) -> Result<i32, i32> {
    let mut event = cgroup_event(ctx, family)?;
    event.call = connect_call::SENDMSG;
    let verdict = judge(&mut event);
    let key = UdpSeenKey {
        // SAFETY: the program's own context, as the helper requires.
        cookie: unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) },
        family: event.family,
        port: event.dport,
        addr: event.daddr,
    };
    // BPF_NOEXIST: fails when this socket already sent there, the common case.
    if UDP_SEEN.insert(&key, &0, 1).is_ok() {
        send(&event);
    }
    Ok(verdict)
}

#[inline(always)]
fn send(event: &ConnectEvent) {
    match EVENTS.reserve::<ConnectEvent>(0) {
        Some(mut entry) => {
            entry.write(*event);
            entry.submit(wake_later());
        }
        None => count_lost(kind::CONNECT),
    }
}

/// The destination and transport the hook was handed, as an event about the current task.
#[inline(always)]
fn cgroup_event(ctx: &SockAddrContext, family: u16) -> Result<ConnectEvent, i32> {
    let addr = ctx.sock_addr;
    // The verifier rewrites context loads field by field: each must be a plain 4-byte load at a
    // constant offset, hence volatile reads and no loop over user_ip6.
    let field = |f: *const u32| unsafe { core::ptr::read_volatile(f) };
    // SAFETY: `addr` is the context pointer the kernel passed; only its fields are read.
    let (port, kind_of_socket) = unsafe {
        (
            field(&raw const (*addr).user_port),
            field(&raw const (*addr).type_),
        )
    };
    let mut event = ConnectEvent {
        header: header(kind::CONNECT),
        family: u32::from(family),
        uid: bpf_get_current_uid_gid() as u32,
        // Network byte order in the low 16 bits.
        dport: u32::from(u16::from_be(port as u16)),
        proto: match kind_of_socket as u16 {
            SOCK_STREAM => proto::TCP,
            SOCK_DGRAM => proto::UDP,
            _ => proto::UNKNOWN,
        },
        ..ConnectEvent::default()
    };
    // SAFETY: as above.
    unsafe {
        if family == AF_INET {
            event.daddr[..4].copy_from_slice(&field(&raw const (*addr).user_ip4).to_ne_bytes());
        } else {
            let words: [u32; 4] = [
                field(&raw const (*addr).user_ip6[0]),
                field(&raw const (*addr).user_ip6[1]),
                field(&raw const (*addr).user_ip6[2]),
                field(&raw const (*addr).user_ip6[3]),
            ];
            for (i, word) in words.iter().enumerate() {
                event.daddr[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
            }
        }
    }
    Ok(event)
}

/// Only attached where the cgroup hooks cannot be.
#[tracepoint(category = "syscalls", name = "sys_enter_connect")]
pub fn sys_enter_connect(ctx: TracePointContext) -> i32 {
    match try_sys_enter_connect(&ctx) {
        Ok(()) => 0,
        Err(err) => {
            degraded!(
                "hook=sys_enter_connect pid={} comm={} reason=probe_failed err={}",
                err
            );
            1
        }
    }
}

fn try_sys_enter_connect(ctx: &TracePointContext) -> Result<(), i32> {
    if !wanted() {
        return Ok(());
    }
    // SAFETY: offsets come from this tracepoint's format file; read_at checks the address.
    let (fd_at, addr_at, addrlen_at) = (
        offset!(tp_connect_fd),
        offset!(tp_connect_addr),
        offset!(tp_connect_addrlen),
    );
    let fd: u64 = unsafe { ctx.read_at(fd_at)? };
    let addr: u64 = unsafe { ctx.read_at(addr_at)? };
    let addrlen: u64 = unsafe { ctx.read_at(addrlen_at)? };
    let uaddr = addr as *const u8;

    // SAFETY: bpf_probe_read_user validates the user pointer.
    let family: u16 = unsafe { bpf_probe_read_user(uaddr.cast::<u16>())? };
    let mut event = ConnectEvent {
        header: header(kind::CONNECT),
        family: u32::from(family),
        uid: bpf_get_current_uid_gid() as u32,
        ..ConnectEvent::default()
    };
    // sockaddr_in and sockaddr_in6 both keep the port, big-endian, right after the family.
    let port: u16 = unsafe { bpf_probe_read_user(uaddr.wrapping_add(2).cast::<u16>())? };
    event.dport = u32::from(u16::from_be(port));
    match family {
        AF_INET if addrlen >= 8 => {
            let v4: [u8; 4] = unsafe { bpf_probe_read_user(uaddr.wrapping_add(4).cast())? };
            event.daddr[..4].copy_from_slice(&v4);
        }
        AF_INET6 if addrlen >= 24 => {
            let v6: [u8; 16] = unsafe { bpf_probe_read_user(uaddr.wrapping_add(8).cast())? };
            event.daddr = v6;
        }
        _ => return Ok(()),
    }
    event.proto = socket_proto(fd);

    PENDING_CONNECT.insert(bpf_get_current_pid_tgid(), event, 0)?;
    Ok(())
}

/// TCP or UDP from the socket's type, reached through the fd table:
/// task->files->fdt->fd[fd]->private_data (struct socket)->type.
#[inline(always)]
fn socket_proto(fd: u64) -> u32 {
    let lookup = || -> Result<u16, i32> {
        let file = fd_file(fd)?;
        let socket: *const u8 = read(file, offset!(file_private_data))?;
        read(socket, offset!(socket_type))
    };
    match lookup() {
        Ok(SOCK_STREAM) => proto::TCP,
        Ok(SOCK_DGRAM) => proto::UDP,
        _ => proto::UNKNOWN,
    }
}

/// Only attached with sys_enter_connect. A TCP connect that sent its SYN has moved on to sock.rs
/// by now; what is left here is a UDP connect, or a connect that failed before any packet.
#[tracepoint(category = "syscalls", name = "sys_exit_connect")]
pub fn sys_exit_connect(ctx: TracePointContext) -> i32 {
    match try_sys_exit_connect(&ctx) {
        Ok(()) => 0,
        Err(err) => {
            degraded!(
                "hook=sys_exit_connect pid={} comm={} reason=probe_failed err={}",
                err
            );
            1
        }
    }
}

fn try_sys_exit_connect(ctx: &TracePointContext) -> Result<(), i32> {
    let key = bpf_get_current_pid_tgid();
    let Some(pending) = PENDING_CONNECT.get_ptr(key) else {
        return Ok(()); // not an inet connect, or a TCP one waiting for its handshake
    };
    // SAFETY: a valid map value pointer; copied out before the entry is removed.
    let mut event = unsafe { *pending };
    let _ = PENDING_CONNECT.remove(key);
    let ret_at = offset!(tp_exit_ret);
    // SAFETY: the offset comes from this tracepoint's format file; read_at checks the address.
    let ret: i64 = unsafe { ctx.read_at(ret_at)? };
    event.ret = ret as i32;
    send(&event);
    Ok(())
}
