//! The kernel's lost-record counters read from outside the sensor: the `LOST` per-CPU array of
//! one process's loaded programs, found through that process's own file descriptors (so another
//! sensor on the host, another test run among them, is never read) and dumped with bpftool. The
//! sensor's metric is checked against this, not against the sum it computed itself.

use std::process::Command;

use serde_json::Value;

/// Per event kind (indexed by `sensor_ebpf::kind`), the sum over CPUs of records that could not
/// be reserved in the ring, as the kernel holds them now in the `LOST` map that process `pid`
/// has open. `cargo xtask test` installs bpftool.
pub fn lost_by_kind(pid: u32) -> Result<Vec<u64>, String> {
    let id = map_named(pid, sensor_ebpf::maps::LOST)?;
    let dump = bpftool(&["map", "dump", "id", &id.to_string()])?;
    let entries = dump
        .as_array()
        .ok_or_else(|| format!("bpftool map dump is not a list: {dump}"))?;
    let mut by_kind = vec![0u64; sensor_ebpf::kind::COUNT as usize];
    for entry in entries {
        let key = number(&entry["key"]).ok_or_else(|| format!("bad key in {entry}"))?;
        let values = entry["values"]
            .as_array()
            .ok_or_else(|| format!("no per-CPU values in {entry}"))?;
        let mut sum = 0u64;
        for v in values {
            sum += number(&v["value"]).ok_or_else(|| format!("bad value in {entry}"))?;
        }
        let slot = by_kind
            .get_mut(key as usize)
            .ok_or_else(|| format!("key {key} out of range"))?;
        *slot = sum;
    }
    Ok(by_kind)
}

/// Per event kind, the sum over CPUs of records that could not be reserved while a task of
/// cgroup `cgroup` (a cgroup v2 id) was current, from the `LOST_BY_CGROUP` map that process
/// `pid` has open; all zero when the group lost nothing.
pub fn lost_in_cgroup(pid: u32, cgroup: u64) -> Result<Vec<u64>, String> {
    let id = map_named(pid, sensor_ebpf::maps::LOST_BY_CGROUP)?;
    let dump = bpftool(&["map", "dump", "id", &id.to_string()])?;
    let entries = dump
        .as_array()
        .ok_or_else(|| format!("bpftool map dump is not a list: {dump}"))?;
    let mut by_kind = vec![0u64; sensor_ebpf::kind::COUNT as usize];
    for entry in entries {
        let key = number(&entry["key"]).ok_or_else(|| format!("bad key in {entry}"))?;
        if key != cgroup {
            continue;
        }
        let values = entry["values"]
            .as_array()
            .ok_or_else(|| format!("no per-CPU values in {entry}"))?;
        for v in values {
            let counts = counts(&v["value"]).ok_or_else(|| format!("bad value in {entry}"))?;
            if counts.len() != by_kind.len() {
                return Err(format!(
                    "{} counts, not {}: {entry}",
                    counts.len(),
                    by_kind.len()
                ));
            }
            for (sum, n) in by_kind.iter_mut().zip(counts) {
                *sum += n;
            }
        }
    }
    Ok(by_kind)
}

/// The id of the one map named `name` among those process `pid` has open.
fn map_named(pid: u32, name: &str) -> Result<u32, String> {
    let mut found = Vec::new();
    for id in map_ids(pid)? {
        let show = bpftool(&["map", "show", "id", &id.to_string()])?;
        if show["name"] == name {
            found.push(id);
        }
    }
    match found[..] {
        [id] => Ok(id),
        _ => Err(format!(
            "process {pid} holds {} maps named {name}, not one",
            found.len()
        )),
    }
}

/// The ids of the BPF maps among the open file descriptors of `pid`.
fn map_ids(pid: u32) -> Result<Vec<u32>, String> {
    let dir = format!("/proc/{pid}/fdinfo");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))?;
    let mut ids = Vec::new();
    for entry in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue; // closed meanwhile
        };
        if let Some(id) = text
            .lines()
            .find_map(|l| l.strip_prefix("map_id:"))
            .and_then(|v| v.trim().parse().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

fn bpftool(args: &[&str]) -> Result<Value, String> {
    let out = Command::new("bpftool")
        .arg("-j")
        .args(args)
        .output()
        .map_err(|e| format!("bpftool (cargo xtask test installs it): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "bpftool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("bpftool {args:?} output: {e}"))
}

/// A [`sensor_ebpf::LostCounts`] as bpftool prints it: the struct when the map has BTF, else
/// its little-endian bytes in hex.
fn counts(v: &Value) -> Option<Vec<u64>> {
    if let Some(by_kind) = v["by_kind"].as_array() {
        return by_kind.iter().map(number).collect();
    }
    let bytes = v.as_array()?;
    bytes
        .chunks(8)
        .map(|chunk| number(&Value::Array(chunk.to_vec())))
        .collect()
}

/// A number as bpftool prints it: plain when the map has BTF, else little-endian hex bytes.
fn number(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let bytes = v.as_array()?;
    let mut n = 0u64;
    for (i, b) in bytes.iter().enumerate().take(8) {
        let b = u64::from_str_radix(b.as_str()?.trim_start_matches("0x"), 16).ok()?;
        n |= b << (8 * i);
    }
    Some(n)
}
