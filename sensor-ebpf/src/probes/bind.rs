//! UDP servers: the cgroup bind4/bind6 hooks on the root cgroup. A datagram socket bound to a
//! fixed port is how a UDP service (DNS, syslog, SNMP, a game server) waits for requests; it
//! never passes through LISTEN, so the state-change tracepoint (sock.rs) cannot see it. The
//! hook reports the same `ListenEvent` with `proto = udp`, and the process joins the server tree
//! as a TCP listener does.
//!
//! A bind to port 0 (an ephemeral port, a client's) and autobind (the first send of an unbound
//! socket, which takes no bind hook) are not servers. Stream sockets are left to sock.rs: their
//! bind is not yet a listen. The hook runs before the kernel checks the port, so a bind that
//! then fails (EADDRINUSE) is reported too; the process still tried to serve there.
//!
//! The hook never refuses: it returns [`ALLOW`] on every path, so the sensor cannot make a
//! bind fail on the host.

use aya_ebpf::{
    helpers::bpf_get_current_uid_gid, macros::cgroup_sock_addr, programs::SockAddrContext,
};
use sensor_ebpf::{ListenEvent, kind, proto};

use super::prevent::ALLOW;
use crate::{EVENTS, SERVER_TREE, count_lost, kernel::header, wake_later};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const SOCK_DGRAM: u32 = 2;

#[cgroup_sock_addr(bind4)]
pub fn cgroup_bind4(ctx: SockAddrContext) -> i32 {
    on_bind(&ctx, AF_INET);
    ALLOW
}

#[cgroup_sock_addr(bind6)]
pub fn cgroup_bind6(ctx: SockAddrContext) -> i32 {
    on_bind(&ctx, AF_INET6);
    ALLOW
}

#[inline(always)]
fn on_bind(ctx: &SockAddrContext, family: u16) {
    let addr = ctx.sock_addr;
    // As in net.rs: each context field must be one plain 4-byte load at a constant offset.
    let field = |f: *const u32| unsafe { core::ptr::read_volatile(f) };
    // SAFETY: `addr` is the context pointer the kernel passed; only its fields are read.
    let (port, kind_of_socket) = unsafe {
        (
            field(&raw const (*addr).user_port),
            field(&raw const (*addr).type_),
        )
    };
    // The common binds (TCP before listen, clients on port 0) end here, before any helper.
    let port = u16::from_be(port as u16);
    if kind_of_socket != SOCK_DGRAM || port == 0 {
        return;
    }
    let mut event = ListenEvent {
        header: header(kind::LISTEN),
        family: u32::from(family),
        port: u32::from(port),
        uid: bpf_get_current_uid_gid() as u32,
        proto: proto::UDP,
        addr: [0; 16],
    };
    // SAFETY: as above.
    unsafe {
        if family == AF_INET {
            event.addr[..4].copy_from_slice(&field(&raw const (*addr).user_ip4).to_ne_bytes());
        } else {
            let words: [u32; 4] = [
                field(&raw const (*addr).user_ip6[0]),
                field(&raw const (*addr).user_ip6[1]),
                field(&raw const (*addr).user_ip6[2]),
                field(&raw const (*addr).user_ip6[3]),
            ];
            for (i, word) in words.iter().enumerate() {
                event.addr[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
            }
        }
    }
    // As for a TCP listener (sock.rs): BPF_NOEXIST keeps a confirmation userspace gave; a full
    // map evicts its least recently used entry.
    let _ = SERVER_TREE.insert(
        &event.header.pid,
        &0,
        aya_ebpf::bindings::BPF_NOEXIST as u64,
    );
    match EVENTS.reserve::<ListenEvent>(0) {
        Some(mut entry) => {
            entry.write(event);
            entry.submit(wake_later());
        }
        None => count_lost(kind::LISTEN),
    }
}
