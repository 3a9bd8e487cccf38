//! Outbound connections: syscalls sys_enter_connect / sys_exit_connect.
//!
//! The destination is read from the caller's sockaddr at entry and parked per thread; the event
//! is sent at exit with the syscall's result. Only AF_INET and AF_INET6 go further than the first
//! read, so the many AF_UNIX connects of a busy host cost almost nothing.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_probe_read_user},
    macros::tracepoint,
    programs::TracePointContext,
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
