//! What each hook family runs on in this session, and why a cheaper mechanism was not used: said
//! once in the start-up log and kept as metrics, so that an operator sees at a glance whether the
//! kernel forced the expensive path (a syscall tracepoint makes every syscall of every task on
//! the host go through the tracing slow path).

use prometheus::{IntGauge, IntGaugeVec, Opts, Registry};

use super::connect_entry::ConnectEntry;

/// Why the file family never runs on fentry or BPF LSM: the cheaper mechanisms the issue names,
/// which this build does not carry (this project's build host refuses both at load anyway).
const NO_BPF_FILE_PROGRAMS: &str =
    "fentry and BPF LSM: this build has no file programs of those types";

/// One hook family and the mechanism chosen for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookChoice {
    /// `process`, `connect`, `connect_outcome`, `listen`, `udp_send` or `file`.
    pub family: &'static str,
    /// `raw_tracepoint`, `cgroup_sock_addr`, `fanotify`, `syscall_tracepoint` or `none`.
    pub mechanism: &'static str,
    /// Why the cheaper mechanisms were not used; empty when this is the cheapest.
    pub refused: Vec<String>,
}

/// How file writes are seen in this session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileHook {
    /// fanotify filesystem marks; `rename`: FAN_RENAME (both names) rather than FAN_MOVED_TO.
    Fanotify { rename: bool },
    /// The file syscalls' tracepoints, and why fanotify was not used.
    SyscallTracepoints(String),
    /// Not at all, and why.
    Off(&'static str),
}

/// Every family's choice, and how many syscall tracepoints are attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hooks {
    pub choices: Vec<HookChoice>,
    pub syscall_tracepoints: usize,
}

impl Hooks {
    /// The session's choices, given how connect entry was attached.
    pub fn chosen(connect: &ConnectEntry, files: &FileHook, syscall_tracepoints: usize) -> Self {
        let choice = |family, mechanism, refused: Vec<String>| HookChoice {
            family,
            mechanism,
            refused,
        };
        let (connect, udp_send) = match connect {
            ConnectEntry::Cgroup(_) => (
                choice("connect", "cgroup_sock_addr", Vec::new()),
                choice("udp_send", "cgroup_sock_addr", Vec::new()),
            ),
            ConnectEntry::Syscall(why) => (
                choice(
                    "connect",
                    "syscall_tracepoint",
                    vec![format!("cgroup hooks: {why}")],
                ),
                choice("udp_send", "none", vec![format!("cgroup hooks: {why}")]),
            ),
        };
        Self {
            choices: vec![
                choice("process", "raw_tracepoint", Vec::new()),
                connect,
                choice("connect_outcome", "raw_tracepoint", Vec::new()),
                choice("listen", "raw_tracepoint", Vec::new()),
                udp_send,
                match files {
                    FileHook::Fanotify { rename } => choice(
                        "file",
                        "fanotify",
                        std::iter::once(NO_BPF_FILE_PROGRAMS.to_owned())
                            .chain((!rename).then(|| {
                                "fanotify: no FAN_RENAME on this kernel, so a rename's old name \
                                 is not reported"
                                    .to_owned()
                            }))
                            .collect(),
                    ),
                    FileHook::SyscallTracepoints(why) => choice(
                        "file",
                        "syscall_tracepoint",
                        vec![NO_BPF_FILE_PROGRAMS.to_owned(), format!("fanotify: {why}")],
                    ),
                    FileHook::Off(why) => choice("file", "none", vec![(*why).to_owned()]),
                },
            ],
            syscall_tracepoints,
        }
    }

    /// One line per family; a warning when syscall tracepoints are attached.
    pub fn log(&self) {
        for c in &self.choices {
            if c.mechanism == "none" {
                log::info!("hooks: {} off ({})", c.family, c.refused.join("; "));
            } else if c.refused.is_empty() {
                log::info!("hooks: {} on {}", c.family, c.mechanism);
            } else {
                log::info!(
                    "hooks: {} on {} (not cheaper because {})",
                    c.family,
                    c.mechanism,
                    c.refused.join("; ")
                );
            }
        }
        if self.syscall_tracepoints > 0 {
            let families: Vec<&str> = self
                .choices
                .iter()
                .filter(|c| c.mechanism == "syscall_tracepoint")
                .map(|c| c.family)
                .collect();
            log::warn!(
                "{} syscall tracepoints attached (for {}): every syscall of every process on this \
                 host now takes the kernel's tracing slow path (see capture.connect_entry and \
                 capture.file_hooks)",
                self.syscall_tracepoints,
                families.join(", ")
            );
        }
    }

    /// `lineage_sensor_hook_info{family,mechanism} 1` per family, and
    /// `lineage_sensor_syscall_tracepoints_attached`.
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        let info = IntGaugeVec::new(
            Opts::new(
                "hook_info",
                "The mechanism each hook family runs on in this session (value 1).",
            ),
            &["family", "mechanism"],
        )?;
        for c in &self.choices {
            info.with_label_values(&[c.family, c.mechanism]).set(1);
        }
        let attached = IntGauge::new(
            "syscall_tracepoints_attached",
            "Syscall tracepoints the sensor attached; above zero, every syscall on the host \
             pays the tracing slow path.",
        )?;
        attached.set(self.syscall_tracepoints as i64);
        registry.register(Box::new(info))?;
        registry.register(Box::new(attached))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_names_what_it_costs() {
        let cheap = Hooks::chosen(
            &ConnectEntry::Cgroup("/sys/fs/cgroup".into()),
            &FileHook::Off("no path is watched"),
            0,
        );
        let connect = &cheap.choices[1];
        assert_eq!(
            (connect.family, connect.mechanism),
            ("connect", "cgroup_sock_addr")
        );
        let forced = Hooks::chosen(
            &ConnectEntry::Syscall("no cgroup v2".into()),
            &FileHook::SyscallTracepoints("EPERM".into()),
            24,
        );
        let udp = forced
            .choices
            .iter()
            .find(|c| c.family == "udp_send")
            .expect("udp_send");
        assert_eq!(udp.mechanism, "none");
        assert!(udp.refused[0].contains("no cgroup v2"));

        let registry = Registry::new_custom(Some("lineage_sensor".into()), None).expect("registry");
        forced.register(&registry).expect("register");
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .expect("encode");
        assert!(
            text.contains(
                r#"lineage_sensor_hook_info{family="connect",mechanism="syscall_tracepoint"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains("lineage_sensor_syscall_tracepoints_attached 2"),
            "{text}"
        );
    }

    #[test]
    fn fanotify_is_named_and_a_missing_rename_said() {
        let hooks = Hooks::chosen(
            &ConnectEntry::Cgroup("/sys/fs/cgroup".into()),
            &FileHook::Fanotify { rename: false },
            0,
        );
        let file = hooks
            .choices
            .iter()
            .find(|c| c.family == "file")
            .expect("file");
        assert_eq!(file.mechanism, "fanotify");
        assert!(
            file.refused.iter().any(|r| r.contains("FAN_RENAME")),
            "{file:?}"
        );
        let fallback = Hooks::chosen(
            &ConnectEntry::Cgroup("/sys/fs/cgroup".into()),
            &FileHook::SyscallTracepoints("fanotify_init: EPERM".into()),
            22,
        );
        let file = fallback
            .choices
            .iter()
            .find(|c| c.family == "file")
            .expect("file");
        assert_eq!(file.mechanism, "syscall_tracepoint");
        assert!(file.refused.iter().any(|r| r.contains("EPERM")), "{file:?}");
    }
}
