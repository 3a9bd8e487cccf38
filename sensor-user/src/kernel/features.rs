//! What the programs need from the kernel, probed before loading (never inferred from the
//! version number): a kernel without it gets one clear sentence instead of a verifier log.

use aya::{
    maps::MapType,
    programs::ProgramType,
    sys::{BpfHelper, is_helper_supported, is_map_supported, is_program_supported},
};

#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error(
        "this kernel lacks {what} (added in Linux {since}); lineage-sensor needs Linux 5.8 or newer \
         with BTF"
    )]
    Missing {
        what: &'static str,
        since: &'static str,
    },
    #[error(
        "cannot probe the kernel's BPF features ({detail}): lineage-sensor must run as root or with \
         CAP_BPF and CAP_PERFMON"
    )]
    Probe { detail: String },
}

/// Checks every kernel feature the programs use.
pub fn probe() -> Result<(), FeatureError> {
    let probe_err = |e: &dyn std::error::Error| {
        let mut detail = e.to_string();
        let mut source = e.source();
        while let Some(cause) = source {
            detail.push_str(": ");
            detail.push_str(&cause.to_string());
            source = cause.source();
        }
        FeatureError::Probe { detail }
    };
    let require = |supported: bool, what, since| {
        if supported {
            Ok(())
        } else {
            Err(FeatureError::Missing { what, since })
        }
    };
    require(
        is_map_supported(MapType::RingBuf).map_err(|e| probe_err(&e))?,
        "BPF ring buffers",
        "5.8",
    )?;
    require(
        is_program_supported(ProgramType::RawTracePoint).map_err(|e| probe_err(&e))?,
        "raw tracepoint programs",
        "4.17",
    )?;
    for (helper, what, since) in [
        (
            BpfHelper::BPF_FUNC_ktime_get_boot_ns,
            "the bpf_ktime_get_boot_ns helper",
            "5.8",
        ),
        (
            BpfHelper::BPF_FUNC_probe_read_kernel,
            "the bpf_probe_read_kernel helper",
            "5.5",
        ),
        (
            BpfHelper::BPF_FUNC_ringbuf_output,
            "the bpf_ringbuf_output helper",
            "5.8",
        ),
        (
            BpfHelper::BPF_FUNC_get_current_cgroup_id,
            "the bpf_get_current_cgroup_id helper",
            "4.18",
        ),
    ] {
        require(
            is_helper_supported(ProgramType::TracePoint, helper).map_err(|e| probe_err(&e))?,
            what,
            since,
        )?;
    }
    Ok(())
}
