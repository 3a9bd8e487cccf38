//! Prevention's kernel side: `[prevention]` and `rules.server_outbound_unknown` compiled into the
//! tries the connect hooks judge by (sensor-ebpf probes/prevent.rs).
//!
//! The rule's verdict is "alert unless an `allow` entry covers the destination (its CIDR, its
//! ports, its families) and no `never_allow` CIDR does". The kernel sees neither the family nor
//! the excluded processes, so every allowance is widened towards letting through: an entry
//! restricted to some families allows for all; a prefix with more than
//! [`PREVENT_PORTS_MAX`] ports allows every port. Exclusions and a learning window cannot be
//! widened per destination at all: with either, egress prevention stays disarmed (a warning
//! says so) rather than refuse what detection would let through.

use std::{collections::BTreeSet, net::IpAddr};

use aya::{
    Ebpf,
    maps::{
        MapData,
        lpm_trie::{Key, LpmTrie},
    },
};
use ipnet::IpNet;
use sensor_ebpf::{PREVENT_PORTS_MAX, PreventAllow, capture_flags, maps, prevent_allow};

use crate::config::{Config, PreventionMode};

#[derive(Debug, thiserror::Error)]
pub enum PreventError {
    #[error(
        "rules.server_outbound_unknown.{field}: {text:?} is not a CIDR (e.g. 10.0.0.0/8) or \
         an address"
    )]
    BadNet { field: String, text: String },
    #[error(
        "rules.server_outbound_unknown: {count} distinct prefixes, more than the kernel's \
         prevention tries hold ({max} per address family)"
    )]
    TooMany { count: usize, max: u32 },
}

/// What the loader puts in the kernel for `[prevention]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreventPlan {
    pub mode: PreventionMode,
    /// `None`: the hooks decide nothing, with the reason (prevention off or disarmed).
    pub entries: Option<Vec<(IpNet, PreventAllow)>>,
    pub disarmed: Option<&'static str>,
    /// Execution prevention: `prevention.hold_timeout_ms`.
    pub hold_timeout_ms: u64,
    /// `prevention.hold_execs`.
    pub hold_execs: bool,
}

impl PreventPlan {
    pub fn from_config(config: &Config) -> Result<Self, PreventError> {
        let mode = config.prevention.mode;
        let rule = &config.rules.server_outbound_unknown;
        let disarmed = match mode {
            PreventionMode::Off => None,
            _ if !rule.enabled => Some("rules.server_outbound_unknown is disabled"),
            _ if !rule.exclude.is_empty() => Some(
                "rules.server_outbound_unknown has exclusions, which match processes the kernel \
                 cannot tell apart",
            ),
            _ if rule.learning_secs > 0 => Some(
                "rules.server_outbound_unknown learns destinations (learning_secs > 0), which \
                 the kernel does not know",
            ),
            _ => None,
        };
        if mode == PreventionMode::Off || disarmed.is_some() {
            return Ok(Self {
                mode,
                entries: None,
                disarmed,
                hold_timeout_ms: config.prevention.hold_timeout_ms,
                hold_execs: config.prevention.hold_execs,
            });
        }
        let allow = rule
            .allow
            .iter()
            .enumerate()
            .map(|(i, a)| Ok((parse(&a.cidr, &format!("allow[{i}].cidr"))?, &a.ports)))
            .collect::<Result<Vec<_>, PreventError>>()?;
        let never = rule
            .never_allow
            .iter()
            .enumerate()
            .map(|(i, c)| parse(c, &format!("never_allow[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let prefixes: BTreeSet<IpNet> =
            allow.iter().map(|(n, _)| *n).chain(never.clone()).collect();
        let entries: Vec<(IpNet, PreventAllow)> = prefixes
            .into_iter()
            .map(|p| (p, value(p, &allow, &never)))
            .collect();
        for v6 in [false, true] {
            let count = entries
                .iter()
                .filter(|(n, _)| matches!(n, IpNet::V6(_)) == v6)
                .count();
            if count > sensor_ebpf::PREVENT_ALLOW_ENTRIES as usize {
                return Err(PreventError::TooMany {
                    count,
                    max: sensor_ebpf::PREVENT_ALLOW_ENTRIES,
                });
            }
        }
        Ok(Self {
            mode,
            entries: Some(entries),
            disarmed: None,
            hold_timeout_ms: config.prevention.hold_timeout_ms,
            hold_execs: config.prevention.hold_execs,
        })
    }

    /// Says at start what prevention does, above all when it was asked for and does nothing.
    pub fn log(&self) {
        match (self.mode, self.disarmed, &self.entries) {
            (PreventionMode::Off, _, _) => log::debug!("prevention off"),
            (mode, Some(why), _) => log::warn!(
                "prevention.mode = {mode:?} but egress prevention is disarmed: {why}; \
                 nothing is refused or marked"
            ),
            (mode, None, entries) => log::info!(
                "prevention {mode:?}: egress from server trees judged in the kernel against {} \
                 allowed or never-allowed prefixes",
                entries.as_ref().map_or(0, Vec::len)
            ),
        }
    }

    /// The bits of `KernelOffsets::capture_flags` execution prevention sets: it needs no
    /// allowlist (userspace judges), so it is never disarmed.
    pub fn exec_capture_flags(&self) -> u32 {
        match self.mode {
            _ if !self.hold_execs => 0,
            PreventionMode::Off => 0,
            PreventionMode::DryRun => capture_flags::EXEC_PREVENT,
            PreventionMode::Enforce => capture_flags::EXEC_PREVENT | capture_flags::EXEC_ENFORCE,
        }
    }

    /// The bits of `KernelOffsets::capture_flags` egress prevention sets.
    pub fn capture_flags(&self) -> u32 {
        match (&self.entries, self.mode) {
            (Some(_), PreventionMode::Enforce) => capture_flags::PREVENT | capture_flags::ENFORCE,
            (Some(_), PreventionMode::DryRun) => capture_flags::PREVENT,
            _ => 0,
        }
    }

    /// Fills the tries (before the hooks are attached, so no call is judged on a partial one).
    pub fn fill(&self, ebpf: &mut Ebpf) -> Result<(), super::LoadError> {
        let Some(entries) = &self.entries else {
            return Ok(());
        };
        for (net, allow) in entries {
            let result = match net {
                IpNet::V4(n) => trie::<[u8; 4]>(ebpf, maps::PREVENT_ALLOW_V4)?.insert(
                    &Key::new(u32::from(n.prefix_len()), n.network().octets()),
                    allow,
                    0,
                ),
                IpNet::V6(n) => trie::<[u8; 16]>(ebpf, maps::PREVENT_ALLOW_V6)?.insert(
                    &Key::new(u32::from(n.prefix_len()), n.network().octets()),
                    allow,
                    0,
                ),
            };
            result.map_err(|source| super::LoadError::Map {
                name: maps::PREVENT_ALLOW_V4,
                source,
            })?;
        }
        Ok(())
    }
}

/// SIGHUP with a changed `rules.server_outbound_unknown` (the mode, fixed at load, needs a
/// restart): the tries take the new allowances. New entries go in before stale ones go out, so
/// that no destination is refused meanwhile for lack of its entry; a plan disarmed by the new
/// rule allows everything (`/0` on every port), as the kernel's flags cannot change.
pub fn refill(plan: &PreventPlan, ebpf: &mut Ebpf) -> Result<(), super::LoadError> {
    let everything = || {
        let any = PreventAllow {
            flags: prevent_allow::ANY_PORT,
            ..PreventAllow::default()
        };
        [
            (IpNet::V4(ipnet::Ipv4Net::default()), any),
            (IpNet::V6(ipnet::Ipv6Net::default()), any),
        ]
        .to_vec()
    };
    let wanted = plan.entries.clone().unwrap_or_else(everything);
    let armed = PreventPlan {
        entries: Some(wanted.clone()),
        ..plan.clone()
    };
    armed.fill(ebpf)?;
    let keep: BTreeSet<IpNet> = wanted.iter().map(|(n, _)| *n).collect();
    prune::<[u8; 4]>(ebpf, maps::PREVENT_ALLOW_V4, &keep, |k| {
        ipnet::Ipv4Net::new(k.data().into(), k.prefix_len() as u8)
            .ok()
            .map(IpNet::V4)
    })?;
    prune::<[u8; 16]>(ebpf, maps::PREVENT_ALLOW_V6, &keep, |k| {
        ipnet::Ipv6Net::new(k.data().into(), k.prefix_len() as u8)
            .ok()
            .map(IpNet::V6)
    })
}

fn prune<K: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    keep: &BTreeSet<IpNet>,
    net: impl Fn(&Key<K>) -> Option<IpNet>,
) -> Result<(), super::LoadError> {
    let mut map = trie::<K>(ebpf, name)?;
    let stale: Vec<Key<K>> = map
        .keys()
        .filter_map(Result::ok)
        .filter(|k| net(k).is_none_or(|n| !keep.contains(&n)))
        .collect();
    for key in &stale {
        map.remove(key)
            .map_err(|source| super::LoadError::Map { name, source })?;
    }
    Ok(())
}

fn trie<'a, K: aya::Pod>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<LpmTrie<&'a mut MapData, K, PreventAllow>, super::LoadError> {
    let map = ebpf
        .map_mut(name)
        .ok_or(super::LoadError::MissingMap(name))?;
    LpmTrie::try_from(map).map_err(|source| super::LoadError::Map { name, source })
}

fn parse(text: &str, field: &str) -> Result<IpNet, PreventError> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| PreventError::BadNet {
            field: field.to_owned(),
            text: text.to_owned(),
        })
}

/// What an address whose longest listed prefix is `p` may reach. Listed prefixes are nested
/// or disjoint, and every address of `p` lies in each listed prefix that contains `p`, so
/// their allowances add up (and any `never_allow` among them wins, as in the rule).
fn value(p: IpNet, allow: &[(IpNet, &Vec<u16>)], never: &[IpNet]) -> PreventAllow {
    let mut out = PreventAllow::default();
    if never.iter().any(|n| n.contains(&p)) {
        out.flags = prevent_allow::NEVER;
        return out;
    }
    let mut ports = BTreeSet::new();
    for (_, list) in allow.iter().filter(|(n, _)| n.contains(&p)) {
        if list.is_empty() {
            out.flags |= prevent_allow::ANY_PORT;
        }
        ports.extend(list.iter().copied());
    }
    if ports.len() > PREVENT_PORTS_MAX {
        out.flags |= prevent_allow::ANY_PORT;
    }
    if out.flags & prevent_allow::ANY_PORT == 0 {
        for (slot, port) in out.ports.iter_mut().zip(&ports) {
            *slot = *port;
        }
        out.nports = ports.len() as u32;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AllowedDestination;

    fn plan(config: &Config) -> Vec<(String, PreventAllow)> {
        PreventPlan::from_config(config)
            .expect("plan")
            .entries
            .expect("armed")
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .collect()
    }

    fn enforce() -> Config {
        let mut config = Config::default();
        config.prevention.mode = PreventionMode::Enforce;
        config.rules.server_outbound_unknown.allow.clear();
        config.rules.server_outbound_unknown.never_allow.clear();
        config
    }

    fn allow(cidr: &str, ports: &[u16], families: &[&str]) -> AllowedDestination {
        AllowedDestination {
            cidr: cidr.into(),
            ports: ports.to_vec(),
            families: families.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    #[test]
    fn nested_prefixes_add_up_and_never_wins() {
        let mut config = enforce();
        let rule = &mut config.rules.server_outbound_unknown;
        rule.allow.push(allow("10.0.0.0/8", &[], &[]));
        rule.allow.push(allow("10.1.0.0/16", &[443], &["nginx"]));
        rule.allow.push(allow("198.51.100.0/24", &[25, 587], &[]));
        rule.allow.push(allow("198.51.100.7", &[443], &[]));
        rule.never_allow.push("10.9.0.0/16".into());
        rule.never_allow.push("198.51.100.7/32".into());
        let got = plan(&config);
        let find = |net: &str| got.iter().find(|(n, _)| n == net).expect(net).1;
        assert_eq!(find("10.0.0.0/8").flags, prevent_allow::ANY_PORT);
        assert_eq!(
            find("10.1.0.0/16").flags,
            prevent_allow::ANY_PORT,
            "the /8 around it allows every port"
        );
        assert_eq!(find("10.9.0.0/16").flags, prevent_allow::NEVER);
        let doc = find("198.51.100.0/24");
        assert_eq!((doc.flags, doc.nports), (0, 2));
        assert_eq!(&doc.ports[..2], &[25, 587]);
        assert_eq!(find("198.51.100.7/32").flags, prevent_allow::NEVER);
    }

    #[test]
    fn many_ports_allow_all_and_families_are_ignored() {
        let mut config = enforce();
        let ports: Vec<u16> = (1..=17).collect();
        config
            .rules
            .server_outbound_unknown
            .allow
            .push(allow("192.0.2.0/24", &ports, &["php"]));
        let got = plan(&config);
        assert_eq!(got[0].1.flags, prevent_allow::ANY_PORT);
    }

    #[test]
    fn disarmed_by_what_the_kernel_cannot_check() {
        let mut config = enforce();
        config.rules.server_outbound_unknown.learning_secs = 60;
        let p = PreventPlan::from_config(&config).expect("plan");
        assert!(p.entries.is_none() && p.disarmed.is_some());
        assert_eq!(p.capture_flags(), 0);
        let mut config = enforce();
        config.rules.server_outbound_unknown.enabled = false;
        assert_eq!(
            PreventPlan::from_config(&config)
                .expect("plan")
                .capture_flags(),
            0
        );
        let config = Config::default();
        let p = PreventPlan::from_config(&config).expect("plan");
        assert_eq!((p.capture_flags(), p.disarmed), (0, None));
    }

    #[test]
    fn default_allowlist_arms_enforce() {
        let mut config = Config::default();
        config.prevention.mode = PreventionMode::Enforce;
        let p = PreventPlan::from_config(&config).expect("plan");
        assert_eq!(
            p.capture_flags(),
            capture_flags::PREVENT | capture_flags::ENFORCE
        );
        let entries = p.entries.expect("armed");
        let metadata = entries
            .iter()
            .find(|(n, _)| n.to_string() == "169.254.169.254/32")
            .expect("metadata");
        assert_eq!(metadata.1.flags, prevent_allow::NEVER);
    }
}
