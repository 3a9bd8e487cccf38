//! Kernel event times are nanoseconds since boot (CLOCK_BOOTTIME, which counts suspend). Wall
//! clock time is boot time plus the wall clock time of boot, which this module measures once.

/// Wall clock time of boot in nanoseconds since the Unix epoch: CLOCK_REALTIME - CLOCK_BOOTTIME.
pub fn boot_wall_ns() -> u64 {
    let realtime = now_ns(libc::CLOCK_REALTIME);
    let boottime = now_ns(libc::CLOCK_BOOTTIME);
    realtime.saturating_sub(boottime)
}

/// Nanoseconds since boot, in the clock of kernel events' `ts_ns`.
pub fn boottime_ns() -> u64 {
    now_ns(libc::CLOCK_BOOTTIME)
}

fn now_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec pointer; both clocks exist on every kernel the sensor supports.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

/// This host's name, for alerts and record headers.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer and its length match.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::from("unknown");
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    crate::escape::escape_bytes(&buf[..end])
}

#[cfg(test)]
mod tests {
    #[test]
    fn boot_is_in_the_past_and_after_2020() {
        let boot = super::boot_wall_ns();
        assert!(boot > 1_577_836_800_000_000_000, "boot {boot} before 2020");
        assert!(super::boottime_ns() > 0);
    }
}
