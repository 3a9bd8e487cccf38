//! The machine a run happened on, so that numbers are never read without their context.

use std::process::Command;

use serde::Serialize;

use super::proc_stat;
use crate::cmd::output;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub date: String,
    pub cpu: String,
    pub cores: usize,
    pub memory_kib: u64,
    pub kernel: String,
    pub rustc: String,
    pub load_1m_at_start: f64,
}

pub fn describe() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    Machine {
        date: output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])).unwrap_or_default(),
        cpu: cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
            .map_or_else(|| "unknown CPU".into(), |(_, m)| m.trim().to_owned()),
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        memory_kib: meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0),
        kernel: output(Command::new("uname").arg("-r")).unwrap_or_default(),
        rustc: output(Command::new("rustc").arg("--version")).unwrap_or_default(),
        load_1m_at_start: proc_stat::load_average_1m(),
    }
}
