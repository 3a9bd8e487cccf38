//! Kernel-side diagnostics (aya-log) on the paths where a probe cannot do all it should: a
//! failed kernel read, a full map or ring, a truncated argument block or path. Each line names
//! the hook, the pid, the comm and the reason; userspace forwards them to the sensor's log at
//! debug level. The counters (LOST, the flags on the record) stay the record of what happened;
//! these lines only say which process and why.
//!
//! Every statement is at debug level and sits behind aya-log's level check, which reads
//! `AYA_LOG_LEVEL`: a read-only global the loader sets before load, so that at any level above
//! debug the verifier sees a constant, drops the branch, and the statement costs nothing
//! (figures in docs/events.md).

/// Logs a degraded path at debug level. The format string starts with `hook=NAME pid={}
/// comm={}` and goes on with `reason=...` and the extra arguments. pid and comm are read only
/// when the level lets the statement run.
macro_rules! degraded {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {
        if aya_log_ebpf::macro_support::level_enabled(aya_log_ebpf::macro_support::Level::Debug) {
            let pid = (aya_ebpf::helpers::bpf_get_current_pid_tgid() >> 32) as u32;
            let comm = aya_ebpf::helpers::bpf_get_current_comm().unwrap_or_default();
            // SAFETY: only handed to aya-log, whose reader checks UTF-8 (a comm that is not
            // is logged without it); trailing NULs are dropped by userspace.
            let comm = unsafe { core::str::from_utf8_unchecked(&comm) };
            aya_log_ebpf::debug!(&(), $fmt, pid, comm $(, $arg)*);
        }
    };
}
pub(crate) use degraded;
