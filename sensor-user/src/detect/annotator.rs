//! Lineage annotation: each process's [`Annotation`] from its image and its parent's (at exec,
//! at seeding, and inherited at fork), and the discovery of servers by their listening ports.

use rustc_hash::FxHashMap;

use super::{
    annotation::{Annotation, Table, server_above},
    family::Families,
    host_facts::HostFacts,
    rules::Rules,
};
use crate::lineage::EntityId;

/// How long a process found listening on none of the `listen_ports` is not asked again.
const LISTEN_RECHECK_NS: u64 = 10_000_000_000;
/// Bound on [`Annotator::listen_checked`]; it is simply cleared when full.
const LISTEN_CHECKED_MAX: usize = 16_384;
/// Ancestors asked for listening sockets, nearest first.
const LISTEN_ANCESTORS_MAX: usize = 32;

#[derive(Default)]
pub struct Annotator {
    /// Only in `run`: see [`HostFacts`].
    facts: Option<Box<dyn HostFacts>>,
    /// When each process's listening sockets were last read (event time), so that a busy shell
    /// script below an unknown parent does not read /proc for every command.
    listen_checked: FxHashMap<EntityId, u64>,
    /// Only in `run`: processes found to be servers or below one since the last
    /// [`Annotator::take_server_pids`], for the kernel's server tree.
    collect_server_pids: bool,
    server_pids: Vec<u32>,
    scratch: Vec<usize>,
    owners: Vec<usize>,
}

impl Annotator {
    pub fn set_host_facts(&mut self, facts: Box<dyn HostFacts>) {
        self.facts = Some(facts);
    }

    pub fn collect_server_pids(&mut self) {
        self.collect_server_pids = true;
    }

    pub fn take_server_pids(&mut self) -> std::vec::Drain<'_, u32> {
        self.server_pids.drain(..)
    }

    pub fn shrink_to_fit(&mut self) {
        self.listen_checked.shrink_to_fit();
    }

    /// A process read from /proc, annotated as if it had just exec'd. In `run`, one that holds
    /// a listening socket is a server by role, like one whose `listen` event was seen.
    pub fn seeded(&mut self, table: &mut Table, families: &Families, rules: &Rules, id: EntityId) {
        let port = self
            .facts
            .as_mut()
            .filter(|_| families.by_role_enabled() && id.pid > 2)
            .and_then(|facts| facts.any_listening_port(id.pid));
        if let Some(port) = port {
            self.mark_listening(table, families, id, port);
        }
        self.annotate(table, families, rules, id, true);
        // Forked before the programs were attached: the kernel cannot have followed them.
        if self.collect_server_pids
            && let Some(p) = table.get(id)
            && p.annotation.family.is_none()
            && p.annotation.server.is_some()
        {
            self.server_pids.push(id.pid);
        }
    }

    /// A forked child: same image and family as its parent, whose server link now runs through
    /// the parent.
    pub fn inherit(&self, table: &mut Table, id: EntityId) {
        let server = server_above(table.parent(id));
        let below = table
            .parent(id)
            .is_some_and(|pp| pp.annotation.below_shell || pp.annotation.shell_below_server);
        if let Some(p) = table.get_mut(id) {
            p.annotation.server = server;
            p.annotation.below_shell = below;
        }
    }

    /// Recomputes a process's annotation from its image and its parent's annotation.
    pub fn annotate(
        &mut self,
        table: &mut Table,
        families: &Families,
        rules: &Rules,
        id: EntityId,
        evaluate_shell: bool,
    ) -> Option<()> {
        let p = table.get(id)?;
        let image = p.image.clone();
        let listening = p.annotation.listening;
        let parent = table.parent(id);
        let mut server = server_above(parent);
        let below_shell =
            parent.is_some_and(|pp| pp.annotation.below_shell || pp.annotation.shell_below_server);
        let family = families
            .classify(&image, &mut self.scratch, &mut self.owners)
            .or(listening.map(|(f, _)| f));
        let transparent = families.is_transparent(&image);
        let mut copy_of = None;
        let mut shell = false;
        // Nothing to evaluate for the common exec: no server above and no way to find one.
        let can_discover = server.is_none() && self.can_discover(families);
        if evaluate_shell && family.is_none() && (server.is_some() || can_discover) {
            let by_name = rules
                .units
                .shell
                .is_shell(&image, &mut self.scratch, &mut self.owners);
            if can_discover
                && (by_name
                    || rules
                        .units
                        .recon
                        .is_tool(&image, &mut self.scratch, &mut self.owners))
                && self.discover_listeners(table, families, rules, id, false)
            {
                server = server_above(table.parent(id));
            }
            if server.is_some() {
                shell = by_name;
                if !shell && let Some(facts) = self.facts.as_mut() {
                    copy_of = facts.shell_copied_to(id.pid, &image.exe);
                    shell = copy_of.is_some();
                }
            }
        }
        // Servers only: their children join the kernel's tree at fork, and a short-lived child
        // added from here could already be gone, leaving a stale entry.
        if self.collect_server_pids && family.is_some() {
            self.server_pids.push(id.pid);
        }
        let p = table.get_mut(id)?;
        p.annotation = Annotation {
            family,
            transparent,
            shell_below_server: shell,
            below_shell,
            server,
            listening,
            copy_of,
        };
        Some(())
    }

    /// `id` put a socket into LISTEN on `port` (a `listen` event): a server by role, whose
    /// annotation is recomputed so that its later forks and children are below a server.
    pub fn listening(
        &mut self,
        table: &mut Table,
        families: &Families,
        rules: &Rules,
        id: EntityId,
        port: u16,
    ) {
        if self.mark_listening(table, families, id, port) {
            self.annotate(table, families, rules, id, false);
        }
    }

    /// Records the role family of a listening process that is not a server yet (init never is:
    /// socket activation makes it hold ports); true if it became one.
    fn mark_listening(
        &mut self,
        table: &mut Table,
        families: &Families,
        id: EntityId,
        port: u16,
    ) -> bool {
        let Some(p) = table.get(id) else {
            return false;
        };
        let known = p.annotation.family.is_some() || p.annotation.listening.is_some();
        if known || id.pid <= 1 || p.annotation.shell_below_server {
            return false;
        }
        if families
            .classify(&p.image, &mut self.scratch, &mut self.owners)
            .is_some()
        {
            return false;
        }
        let Some(family) = families.by_role(&p.image, port) else {
            return false;
        };
        match table.get_mut(id) {
            Some(p) => {
                p.annotation.listening = Some((family, port));
                true
            }
            None => false,
        }
    }

    /// Whether servers can be found by listening port: in `run`, with some family listing ports.
    pub fn can_discover(&self, families: &Families) -> bool {
        self.facts.is_some() && families.has_listen_ports()
    }

    /// A shell or recon tool (or, with `include_self`, a connect) with no known server above:
    /// asks the host whether an ancestor (or the process itself) listens on a family's
    /// `listen_ports` (a server renamed or run from an unusual path). Marks every such process
    /// and re-annotates the chain from the top; true if any was found.
    pub fn discover_listeners(
        &mut self,
        table: &mut Table,
        families: &Families,
        rules: &Rules,
        id: EntityId,
        include_self: bool,
    ) -> bool {
        if !self.can_discover(families) {
            return false;
        }
        let now = table.get(id).map_or(0, |p| p.last_seen_ns);
        // init holds the sockets of socket-activated services: it is never a server.
        let chain: Vec<EntityId> = table
            .get(id)
            .filter(|_| include_self)
            .into_iter()
            .chain(table.ancestors(id).take(LISTEN_ANCESTORS_MAX))
            .filter(|a| a.exited_ns.is_none() && a.id.pid > 2)
            .map(|a| a.id)
            .collect();
        if self.listen_checked.len() >= LISTEN_CHECKED_MAX {
            self.listen_checked.clear();
        }
        let mut found = false;
        for &a in &chain {
            if table.get(a).is_some_and(|p| p.annotation.family.is_some()) {
                continue;
            }
            if self
                .listen_checked
                .get(&a)
                .is_some_and(|&t| now.saturating_sub(t) < LISTEN_RECHECK_NS)
            {
                continue;
            }
            self.listen_checked.insert(a, now);
            let Some(facts) = self.facts.as_mut() else {
                return false;
            };
            let ports =
                facts.listening_ports(a.pid, &|port| families.by_listen_port(port).is_some());
            let hit = ports
                .iter()
                .find_map(|&port| families.by_listen_port(port).map(|f| (f, port)));
            if let Some(hit) = hit
                && let Some(p) = table.get_mut(a)
            {
                p.annotation.listening = Some(hit);
                found = true;
            }
        }
        if found {
            for &a in chain.iter().rev() {
                self.annotate(table, families, rules, a, false);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use crate::{
        config::Config,
        detect::{Engine, HostInfo, test_support::*},
    };

    #[test]
    fn server_pids_are_servers_and_what_was_below_them_at_seed() {
        let seeded = |pid, ppid, exe: &str| crate::lineage::SeedProcess {
            pid,
            ppid,
            start_ns: u64::from(pid),
            uid: 0,
            comm: "x".into(),
            exe: exe.into(),
            argv: vec![exe.into()],
            container: None,
        };
        let mut engine = Engine::new(&Config::default(), HostInfo::default())
            .expect("engine")
            .with_server_pids();
        engine.seed(vec![
            seeded(1, 0, "/sbin/init"),
            seeded(10, 1, "/usr/sbin/apache2"),
            seeded(11, 10, "/bin/sh"),
            seeded(12, 1, "/usr/sbin/cron"),
        ]);
        let mut pids: Vec<u32> = engine.take_server_pids().collect();
        pids.sort_unstable();
        assert_eq!(pids, [10, 11], "the server and the shell already below it");
        assert_eq!(engine.take_server_pids().count(), 0, "taken once");

        let mut alerts = Vec::new();
        engine.process(exec(20, 30, 1, "/usr/sbin/nginx", &["nginx"]), &mut alerts);
        engine.process(fork(21, 31, 30), &mut alerts);
        engine.process(
            exec(22, 31, 30, "/bin/sh", &["sh", "-c", "id"]),
            &mut alerts,
        );
        engine.process(
            exec(23, 32, 12, "/bin/sh", &["sh", "-c", "backup"]),
            &mut alerts,
        );
        // The kernel follows nginx's forks itself: only the server is handed over.
        assert_eq!(engine.take_server_pids().collect::<Vec<_>>(), [30]);

        let mut plain = Engine::new(&Config::default(), HostInfo::default()).expect("engine");
        plain.process(exec(1, 30, 1, "/usr/sbin/nginx", &["nginx"]), &mut alerts);
        assert_eq!(
            plain.take_server_pids().count(),
            0,
            "only collected when asked for"
        );
    }

    #[test]
    fn a_renamed_server_is_found_by_its_listening_port() {
        let mut config = Config::default();
        config.detect.families[1].listen_ports = vec![8080];
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let host = FakeHost {
            // The master and its forked worker both hold the socket; init holds one too.
            listeners: vec![(10, 8080), (11, 8080), (1, 8080)],
            asked: asked.clone(),
            ..FakeHost::default()
        };
        let mut engine = Engine::new(&config, HostInfo::default())
            .expect("engine")
            .with_host_facts(Box::new(host));
        let mut alerts = Vec::new();
        engine.process(
            exec(1, 10, 1, "/opt/app/bin/httpd-x", &["httpd-x"]),
            &mut alerts,
        );
        engine.process(fork(2, 11, 10), &mut alerts);
        engine.process(exec(3, 20, 11, "/bin/sh", &["sh", "-c", "id"]), &mut alerts);
        engine.process(exec(4, 21, 20, "/usr/bin/id", &["id"]), &mut alerts);
        // A shell from an unrelated daemon: init's socket does not make init a server.
        engine.process(exec(5, 30, 1, "/usr/sbin/cron", &["cron"]), &mut alerts);
        engine.process(
            exec(6, 31, 30, "/bin/sh", &["sh", "-c", "backup"]),
            &mut alerts,
        );
        engine.process(
            exec(7, 32, 30, "/bin/sh", &["sh", "-c", "backup"]),
            &mut alerts,
        );
        let rules: Vec<&str> = alerts.iter().map(|a| a.rule.id).collect();
        assert_eq!(
            rules,
            ["server-spawned-shell", "server-spawned-recon"],
            "{alerts:#?}"
        );
        let v = serde_json::to_value(&alerts[0]).expect("json");
        let family = config.detect.families[1].name.clone();
        assert_eq!(v["lineage"]["server"]["family"], family.as_str());
        assert_eq!(v["lineage"]["server"]["listen_port"], 8080);
        assert_eq!(
            v["lineage"]["ancestry"][0]["executable"],
            "/opt/app/bin/httpd-x"
        );
        assert_eq!(alerts[0].lineage.incident, alerts[1].lineage.incident);
        // cron was asked once; the second backup shell within 10 s did not ask again.
        let before = asked.load(std::sync::atomic::Ordering::Relaxed);
        engine.process(
            exec(8, 33, 30, "/bin/sh", &["sh", "-c", "backup"]),
            &mut alerts,
        );
        assert_eq!(asked.load(std::sync::atomic::Ordering::Relaxed), before);
    }

    #[test]
    fn listen_ports_are_not_asked_for_without_host_facts_or_ports() {
        let mut config = Config::default();
        config.detect.families[1].listen_ports = vec![8080];
        let mut engine = Engine::new(&config, HostInfo::default()).expect("engine");
        let mut alerts = Vec::new();
        engine.process(
            exec(1, 10, 1, "/opt/app/bin/httpd-x", &["httpd-x"]),
            &mut alerts,
        );
        engine.process(exec(2, 20, 10, "/bin/sh", &["sh", "-c", "id"]), &mut alerts);
        assert!(alerts.is_empty(), "replay has no host to ask: {alerts:?}");
        config.detect.families[0].listen_ports = vec![8080];
        let err = Engine::new(&config, HostInfo::default())
            .err()
            .expect("port twice");
        assert!(
            err.to_string()
                .contains("detect.families[1].listen_ports[0]"),
            "{err}"
        );
    }
}
