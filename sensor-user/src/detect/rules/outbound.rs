//! server-outbound-unknown: a connect from a server process or from below it to a destination
//! outside the allowlist. Sources: Falco's outbound macro (loopback + RFC 1918) and its
//! "Unexpected outbound connection destination" template, Sigma
//! net_connection_lnx_susp_malware_callback_port, Elastic's deprecated
//! persistence_web_server_sus_destination_port, Falco/Elastic IMDS rules for the never-allowed
//! metadata addresses. The documentation ranges are not special (detection-content 7.5).

use std::net::IpAddr;

use ipnet::IpNet;

use super::{
    super::{
        DetectError,
        annotation::Annotation,
        family::{Families, FamilyId},
        learned::Learned,
    },
    RuleCommon,
};
use crate::{config::OutboundRuleConfig, event::Connect, lineage::Process};

impl super::RuleUnit for OutboundRule {
    /// What alerts and metrics say about this rule.
    const META: super::RuleMeta = super::RuleMeta {
        id: "server-outbound-unknown",
        name: "Server process connected to a destination outside its allowlist",
        description: "A server process, or a process below it, connected to an address outside the \
        configured allowlist (or to a cloud metadata service): a reverse shell, a \
        download, exfiltration or credential theft.",
        category: &["network"],
        event_type: &["connection", "start"],
        server_optional: false,
    };

    fn compile(config: &crate::config::Config, families: &Families) -> Result<Self, DetectError> {
        Self::new(&config.rules.server_outbound_unknown, families)
    }

    fn common(&self) -> &RuleCommon {
        &self.common
    }

    fn wants_connect(&self, c: &Connect) -> bool {
        self.wants(c)
    }

    fn on_connect<'e>(
        &mut self,
        cx: &super::ConnectContext<'_, 'e>,
        out: &mut Vec<super::Finding<'e>>,
    ) {
        let (p, c) = (cx.process, cx.connect);
        if self.fires(p, cx.families, c, cx.boot_wall_ns) {
            out.push(super::Finding {
                connect: Some(c),
                ..super::Finding::new(super::RuleId::ServerOutboundUnknown, p.id, c.ts_ns)
            });
        }
    }
}

super::rule_section!(OutboundRuleConfig);

struct Allow {
    net: IpNet,
    ports: Vec<u16>,
    families: Vec<FamilyId>,
}

pub struct OutboundRule {
    pub common: RuleCommon,
    pub include_failed: bool,
    allow: Vec<Allow>,
    never: Vec<IpNet>,
    pub learned: Learned,
}

const FIELD: &str = "rules.server_outbound_unknown";

fn parse_net(text: &str, field: &str) -> Result<IpNet, DetectError> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            DetectError::invalid(
                field,
                format!("{text:?} is not a CIDR (e.g. 10.0.0.0/8) or an address"),
            )
        })
}

impl OutboundRule {
    pub fn new(config: &OutboundRuleConfig, families: &Families) -> Result<Self, DetectError> {
        let mut allow = Vec::with_capacity(config.allow.len());
        for (i, a) in config.allow.iter().enumerate() {
            let field = format!("{FIELD}.allow[{i}]");
            let net = parse_net(&a.cidr, &format!("{field}.cidr"))?;
            let fams = a
                .families
                .iter()
                .map(|name| {
                    families.id(name).ok_or_else(|| {
                        DetectError::invalid(
                            &format!("{field}.families"),
                            format!("no family named {name:?}"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
            allow.push(Allow {
                net: net.trunc(),
                ports: a.ports.clone(),
                families: fams,
            });
        }
        let never = config
            .never_allow
            .iter()
            .enumerate()
            .map(|(i, c)| parse_net(c, &format!("{FIELD}.never_allow[{i}]")).map(|n| n.trunc()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            common: RuleCommon::compile(config, FIELD, families)?,
            include_failed: config.include_failed,
            allow,
            never,
            learned: Learned::new(config.learning_secs, config.max_learned),
        })
    }

    /// Whether a connect concerns the rule at all (checked before the lineage is touched).
    pub fn wants(&self, c: &Connect) -> bool {
        // A connect refused by prevention failed because of the rule: always its business.
        self.common.enabled && (self.include_failed || c.attempted() || c.prevention.is_some())
    }

    /// A connect by a server or a process below one, to a destination it may not reach.
    pub fn fires(
        &mut self,
        p: &Process<Annotation>,
        families: &Families,
        c: &Connect,
        boot_wall_ns: u64,
    ) -> bool {
        let family = match (&p.annotation.family, &p.annotation.server) {
            (Some(f), _) => *f,
            (None, Some(s)) => s.family,
            (None, None) => return false,
        };
        let wall = boot_wall_ns.saturating_add(c.ts_ns);
        self.is_unknown(family, families.name(family), c.daddr, c.dport, wall)
    }

    /// Whether a connect to `ip:port` by a process below a server of `family` should alert.
    pub fn is_unknown(
        &mut self,
        family: FamilyId,
        family_name: &str,
        ip: IpAddr,
        port: u16,
        wall_ns: u64,
    ) -> bool {
        if ip.is_unspecified() {
            // connect(AF_UNSPEC)-style dissolves and 0.0.0.0 are not destinations.
            return false;
        }
        if self.never.iter().any(|n| n.contains(&ip)) {
            return true;
        }
        let allowed = self.allow.iter().any(|a| {
            a.net.contains(&ip)
                && (a.ports.is_empty() || a.ports.contains(&port))
                && (a.families.is_empty() || a.families.contains(&family))
        });
        if allowed {
            return false;
        }
        !self.learned.check(family_name, ip, port, wall_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AllowedDestination, DetectConfig};
    use crate::event::{Connect, Event, Family as NetFamily};
    use crate::{
        config::Config,
        detect::{Engine, HostInfo, test_support::*},
    };

    #[test]
    fn default_allowlist_metadata_and_documentation_ranges() {
        let families = Families::new(&DetectConfig::default()).expect("families");
        let mut config = OutboundRuleConfig::default();
        config.allow.push(AllowedDestination {
            cidr: "198.51.100.10".into(),
            ports: vec![443],
            families: vec!["nginx".into()],
        });
        let mut rule = OutboundRule::new(&config, &families).expect("rule");
        let php = families.id("php").expect("php");
        let nginx = families.id("nginx").expect("nginx");
        let mut unknown =
            |f, ip: &str, port| rule.is_unknown(f, "x", ip.parse().expect("ip"), port, 0);
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.31.255.1",
            "192.168.1.1",
            "::1",
            "fd12::1",
        ] {
            assert!(!unknown(php, ip, 5432), "{ip}");
        }
        for ip in [
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "8.8.8.8",
            "172.32.0.1",
            "2001:db8::1",
        ] {
            assert!(unknown(php, ip, 443), "{ip}");
        }
        assert!(unknown(php, "169.254.169.254", 80));
        assert!(
            unknown(php, "fd00:ec2::254", 80),
            "inside fc00::/7 but never allowed"
        );
        assert!(!unknown(nginx, "198.51.100.10", 443));
        assert!(unknown(nginx, "198.51.100.10", 80), "port not listed");
        assert!(unknown(php, "198.51.100.10", 443), "family not listed");
        assert!(!unknown(php, "0.0.0.0", 0));
    }

    #[test]
    fn bad_cidr_names_the_field() {
        let families = Families::new(&DetectConfig::default()).expect("families");
        let mut config = OutboundRuleConfig::default();
        config.allow[2].cidr = "10.0.0.0/33".into();
        let err = OutboundRule::new(&config, &families)
            .err()
            .expect("bad")
            .to_string();
        assert!(
            err.contains("rules.server_outbound_unknown.allow[2].cidr"),
            "{err}"
        );
    }

    #[test]
    fn a_renamed_server_dialing_out_is_found_by_its_listening_port() {
        let mut config = Config::default();
        config.detect.families[1].listen_ports = vec![8080];
        let host = FakeHost {
            listeners: vec![(10, 8080)],
            ..FakeHost::default()
        };
        let mut engine = Engine::new(&config, HostInfo::default())
            .expect("engine")
            .with_host_facts(Box::new(host));
        let mut alerts = Vec::new();
        let connect = |ts: u64, pid: u32| {
            Event::Connect(Connect {
                ts_ns: ts,
                pid,
                tid: pid,
                uid: 33,
                family: NetFamily::Inet,
                daddr: std::net::IpAddr::from([198, 51, 100, 7]),
                dport: 4444,
                proto: crate::event::Proto::Tcp,
                ret: 0,
                call: crate::event::ConnectCall::Connect,
                prevention: None,
            })
        };
        engine.process(
            exec(1, 10, 1, "/opt/app/bin/httpd-x", &["httpd-x"]),
            &mut alerts,
        );
        engine.process(exec(2, 20, 1, "/usr/bin/curl", &["curl"]), &mut alerts);
        engine.process(connect(3, 20), &mut alerts);
        assert!(alerts.is_empty(), "not a server: {alerts:?}");
        engine.process(connect(4, 10), &mut alerts);
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        let v = serde_json::to_value(&alerts[0]).expect("json");
        assert_eq!(v["rule"]["id"], "server-outbound-unknown");
        assert_eq!(v["lineage"]["server"]["listen_port"], 8080);
        assert_eq!(v["destination"]["port"], 4444);
    }
}
