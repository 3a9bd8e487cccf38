//! The prevention verdict of the connect and sendmsg hooks: a process of a confirmed server tree
//! (`server_tree::CONFIRMED`) sending to a destination that no allowed prefix covers, or that is
//! in `never_allow`. The tries hold what `server-outbound-unknown` allows, widened where the
//! kernel cannot check a condition (a family, an excluded process), so the verdict is never
//! "refuse" where detection would not alert. The same verdict marks the event in dry-run and
//! refuses the call in enforce: what dry-run reports is what enforce does.

use aya_ebpf::maps::lpm_trie::Key;
use sensor_ebpf::{
    ConnectEvent, PREVENT_PORTS_MAX, PreventAllow, capture_flags, connect_call, prevent_allow,
    server_tree,
};

use crate::{PREVENT_ALLOW_V4, PREVENT_ALLOW_V6, SERVER_TREE, kernel::offset};

/// What a cgroup sock_addr program returns to let the call go on.
pub const ALLOW: i32 = 1;
/// What refuses it: the syscall fails with EPERM.
pub const DENY: i32 = 0;

const AF_INET: u32 = 2;
const EPERM: i32 = 1;

/// Marks `event` with the verdict and returns what the hook returns.
#[inline(always)]
pub fn judge(event: &mut ConnectEvent) -> i32 {
    let flags = offset!(capture_flags) as u32;
    if flags & capture_flags::PREVENT == 0 {
        return ALLOW;
    }
    // SAFETY: a plain u32 copied out of the map.
    let confirmed = match unsafe { SERVER_TREE.get(&event.header.pid) } {
        Some(&mark) => mark & server_tree::CONFIRMED != 0,
        None => false,
    };
    if !confirmed || !unknown(event) {
        return ALLOW;
    }
    event.call |= connect_call::WOULD_BLOCK;
    if flags & capture_flags::ENFORCE == 0 {
        return ALLOW;
    }
    event.call |= connect_call::BLOCKED;
    event.ret = -EPERM;
    DENY
}

/// Whether the destination is one the rule alerts on.
#[inline(always)]
fn unknown(event: &ConnectEvent) -> bool {
    let a = &event.daddr;
    let mapped = a[..10] == [0; 10] && a[10] == 0xff && a[11] == 0xff;
    let allow: Option<PreventAllow> = if event.family == AF_INET || mapped {
        // Userspace shows an IPv4-mapped destination as IPv4, and the rule judges it so.
        let start = if mapped { 12 } else { 0 };
        let v4 = [a[start], a[start + 1], a[start + 2], a[start + 3]];
        if v4 == [0; 4] {
            return false; // not a destination (the rule ignores unspecified addresses)
        }
        PREVENT_ALLOW_V4.get(Key::new(32, v4)).copied()
    } else {
        if *a == [0; 16] {
            return false;
        }
        PREVENT_ALLOW_V6.get(Key::new(128, *a)).copied()
    };
    let Some(allow) = allow else {
        return true;
    };
    if allow.flags & prevent_allow::NEVER != 0 {
        return true;
    }
    if allow.flags & prevent_allow::ANY_PORT != 0 {
        return false;
    }
    for i in 0..PREVENT_PORTS_MAX {
        if (i as u32) < allow.nports && u32::from(allow.ports[i]) == event.dport {
            return false;
        }
    }
    true
}
