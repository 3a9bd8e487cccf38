//! Outbound connections: the destination at entry, parked per thread, and the event sent at
//! sys_exit_connect with the syscall's result.
//!
//! Entry is, by preference, the cgroup connect4/connect6 hooks on the root cgroup: they run
//! inside connect() only for AF_INET and AF_INET6 sockets, after the kernel has copied and
//! checked the sockaddr, and hand the destination and socket type over as plain fields. That
//! measured 1.3 us less per connect than sys_enter_connect, which reads the user's sockaddr and
//! walks the fd table to the socket. Where the loader cannot attach them (no cgroup v2, a cgroup
//! namespace), sys_enter_connect does the same job; only AF_INET and AF_INET6 go further than
//! its first read, so the many AF_UNIX connects of a busy host cost almost nothing.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_probe_read_user},
    macros::{cgroup_sock_addr, tracepoint},
    programs::{SockAddrContext, TracePointContext},
};
use sensor_ebpf::{ConnectEvent, kind, proto};

use crate::{
    EVENTS, PENDING_CONNECT, count_lost,
    kernel::{fd_file, header, offset, read},
    wake_later,
};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const SOCK_STREAM: u16 = 1;
const SOCK_DGRAM: u16 = 2;

/// What a cgroup sock_addr program returns to let the call go on; the sensor never blocks one.
const ALLOW: i32 = 1;

#[cgroup_sock_addr(connect4)]
pub fn cgroup_connect4(ctx: SockAddrContext) -> i32 {
    let _ = park_cgroup_connect(&ctx, AF_INET);
    ALLOW
}

#[cgroup_sock_addr(connect6)]
pub fn cgroup_connect6(ctx: SockAddrContext) -> i32 {
    let _ = park_cgroup_connect(&ctx, AF_INET6);
    ALLOW
}

fn park_cgroup_connect(ctx: &SockAddrContext, family: u16) -> Result<(), i32> {
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
    PENDING_CONNECT.insert(bpf_get_current_pid_tgid(), event, 0)
}

/// Only attached where the cgroup hooks cannot be.
#[tracepoint(category = "syscalls", name = "sys_enter_connect")]
pub fn sys_enter_connect(ctx: TracePointContext) -> i32 {
    match try_sys_enter_connect(&ctx) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

fn try_sys_enter_connect(ctx: &TracePointContext) -> Result<(), i32> {
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

#[tracepoint(category = "syscalls", name = "sys_exit_connect")]
pub fn sys_exit_connect(ctx: TracePointContext) -> i32 {
    match try_sys_exit_connect(&ctx) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

fn try_sys_exit_connect(ctx: &TracePointContext) -> Result<(), i32> {
    let key = bpf_get_current_pid_tgid();
    let Some(pending) = PENDING_CONNECT.get_ptr(key) else {
        return Ok(()); // not an inet connect
    };
    // SAFETY: a valid map value pointer; copied out before the entry is removed.
    let mut event = unsafe { *pending };
    let _ = PENDING_CONNECT.remove(key);
    let ret_at = offset!(tp_exit_ret);
    // SAFETY: the offset comes from this tracepoint's format file; read_at checks the address.
    let ret: i64 = unsafe { ctx.read_at(ret_at)? };
    event.ret = ret as i32;
    match EVENTS.reserve::<ConnectEvent>(0) {
        Some(mut entry) => {
            entry.write(event);
            entry.submit(wake_later());
        }
        None => count_lost(kind::CONNECT),
    }
    Ok(())
}
