//! TCP socket state changes: the raw tracepoint inet_sock_set_state (sk, oldstate, newstate).
//! It is outside the syscalls category, so attaching it costs nothing to syscalls that do not
//! change a socket's state; and raw, so no record is formatted for the many transitions of a
//! busy server's accepted connections, which the first comparison drops.
//!
//! Three transitions matter:
//! - CLOSE -> SYN_SENT happens inside connect(), on the calling thread: the destination that the
//!   entry hook parked for this thread is re-keyed by socket address.
//! - SYN_SENT -> ESTABLISHED (success) or SYN_SENT -> CLOSE (failure, with the error the kernel
//!   left in `sk_err`) happen wherever the answer is processed (often a softirq): the parked
//!   connect leaves with its outcome, under the pid, tid and time of the call.
//! - -> LISTEN happens inside listen(), on the calling thread: a listener event, and the process
//!   joins the server tree (a process that listens is a server by role, whatever its name).

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_uid_gid},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use sensor_ebpf::{ConnectEvent, ListenEvent, kind};

use crate::diag::degraded;
use crate::{
    CONNECTING, EVENTS, PENDING_CONNECT, SERVER_TREE, count_lost,
    kernel::{header, offset, read},
    wake_later,
};

const TCP_ESTABLISHED: i32 = 1;
const TCP_SYN_SENT: i32 = 2;
const TCP_LISTEN: i32 = 10;
const IPPROTO_TCP: u16 = 6;
const AF_INET: u16 = 2;
/// Reported when a handshake ended without an error on the socket: the caller closed it before
/// the answer came, or connect() itself gave up after moving to SYN_SENT (no local port left).
const ECONNABORTED: i32 = 103;

#[raw_tracepoint(tracepoint = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: RawTracePointContext) -> i32 {
    match try_inet_sock_set_state(&ctx) {
        Ok(()) => 0,
        Err(err) => {
            degraded!(
                "hook=inet_sock_set_state pid={} comm={} reason=probe_failed err={}",
                err
            );
            1
        }
    }
}

fn try_inet_sock_set_state(ctx: &RawTracePointContext) -> Result<(), i32> {
    // TP_PROTO(const struct sock *sk, const int oldstate, const int newstate)
    let old = ctx.arg::<u64>(1) as i32;
    let new = ctx.arg::<u64>(2) as i32;
    // The common case on a server (accepted connections going through their states) ends here.
    if new != TCP_SYN_SENT && old != TCP_SYN_SENT && new != TCP_LISTEN {
        return Ok(());
    }
    let sk: *const u8 = ctx.arg(0);
    let protocol: u16 = read(sk, offset!(sk_protocol))?;
    if protocol != IPPROTO_TCP {
        return Ok(());
    }
    if new == TCP_SYN_SENT {
        syn_sent(sk)
    } else if old == TCP_SYN_SENT {
        handshake_ended(sk, new)
    } else {
        listening(sk)
    }
}

/// Inside connect(): the entry that sys_enter_connect (the fallback) parked for this thread
/// becomes the socket's. The cgroup hook keys its entry by socket already: a miss here.
fn syn_sent(sk: *const u8) -> Result<(), i32> {
    let key = bpf_get_current_pid_tgid();
    let Some(pending) = PENDING_CONNECT.get_ptr(key) else {
        return Ok(()); // not wanted at entry (run: outside the server tree)
    };
    // SAFETY: a valid map value pointer, copied before the entry is removed.
    let event = unsafe { *pending };
    let _ = PENDING_CONNECT.remove(&key);
    // An entry the hooks parked for a connect that never reached here (io_uring, a call that
    // failed early) must not be taken for this one.
    let dport: u16 = read(sk, offset!(sk_dport))?;
    if u32::from(u16::from_be(dport)) != event.dport {
        return Ok(());
    }
    CONNECTING.insert(&(sk as u64), &event, 0)
}

fn handshake_ended(sk: *const u8, new: i32) -> Result<(), i32> {
    let key = sk as u64;
    let Some(pending) = CONNECTING.get_ptr(&key) else {
        return Ok(());
    };
    // SAFETY: as above.
    let mut event: ConnectEvent = unsafe { *pending };
    let _ = CONNECTING.remove(&key);
    // An entry left by a connect that failed before its SYN, on a socket since freed and
    // reused at the same address, must not be reported for this one.
    let dport: u16 = read(sk, offset!(sk_dport))?;
    if u32::from(u16::from_be(dport)) != event.dport {
        return Ok(());
    }
    event.ret = if new == TCP_ESTABLISHED {
        0
    } else {
        match read::<i32>(sk, offset!(sock_sk_err)) {
            Ok(err) if err > 0 => -err,
            _ => -ECONNABORTED,
        }
    };
    match EVENTS.reserve::<ConnectEvent>(0) {
        Some(mut entry) => {
            entry.write(event);
            entry.submit(wake_later());
        }
        None => count_lost(kind::CONNECT),
    }
    Ok(())
}

/// Inside listen(): who listens where.
fn listening(sk: *const u8) -> Result<(), i32> {
    let family: u16 = read(sk, offset!(sk_family))?;
    let port: u16 = read(sk, offset!(sk_num))?;
    let mut event = ListenEvent {
        header: header(kind::LISTEN),
        family: u32::from(family),
        port: u32::from(port),
        uid: bpf_get_current_uid_gid() as u32,
        reserved: 0,
        addr: [0; 16],
    };
    if family == AF_INET {
        let v4: [u8; 4] = read(sk, offset!(sk_rcv_saddr))?;
        event.addr[..4].copy_from_slice(&v4);
    } else {
        event.addr = read(sk, offset!(sk_v6_rcv_saddr))?;
    }
    // A full map evicts its least recently used entry; nothing to do on failure. BPF_NOEXIST:
    // a listening server keeps the confirmation userspace gave it.
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
    Ok(())
}
