//! What the engine remembers about each process in the lineage table (its [`Annotation`]):
//! computed at exec (or seeding) from the parent's, and inherited by forked children with the
//! image. Also the narrow queries rules and the alert builder make of the annotated table.

use std::sync::Arc;

use super::family::FamilyId;
use crate::lineage::{EntityId, Image, Process, ProcessTable};

/// The lineage table as the engine keeps it.
pub type Table = ProcessTable<Annotation>;

#[derive(Debug, Clone, Default)]
pub struct Annotation {
    /// This process's image is a server of this family.
    pub family: Option<FamilyId>,
    /// Skipped when walking up (jspawnhelper).
    pub transparent: bool,
    /// A shell (by the shell rule's definition) below a server.
    pub shell_below_server: bool,
    /// Some ancestor below the server is a shell that the server started.
    pub below_shell: bool,
    /// The nearest server strictly above; kept here so that a process whose ancestors were
    /// evicted still knows it.
    pub server: Option<Arc<ServerRef>>,
    /// Found to listen on a family's `listen_ports` (family, port); kept by forked children,
    /// dropped at exec since a new image listens on nothing yet.
    pub listening: Option<(FamilyId, u16)>,
    /// A shell by content: the executed file is a copy of this shell.
    pub copy_of: Option<Arc<str>>,
}

/// A server process, as remembered by its descendants.
#[derive(Debug)]
pub struct ServerRef {
    pub id: EntityId,
    pub family: FamilyId,
    pub image: Arc<Image>,
    /// The outermost server above (or this one): the root of the incident's tree.
    pub root: EntityId,
    /// Recognised by this listening port rather than by its executable.
    pub listen_port: Option<u16>,
    /// The outermost server above (or this one) recognised by its executable or command line,
    /// not by a port: see [`nearest_server`].
    pub named_root: Option<EntityId>,
}

impl crate::lineage::Annotation for Annotation {
    fn pinned(&self) -> bool {
        self.family.is_some() || self.listening.is_some()
    }
}

/// The process itself, then its ancestors, nearest first.
pub fn self_and_ancestors(
    table: &Table,
    id: EntityId,
) -> impl Iterator<Item = &Process<Annotation>> {
    table.get(id).into_iter().chain(table.ancestors(id))
}

/// The server link a child of `parent` gets: the parent itself if it is a server, else the
/// parent's own link.
pub fn server_above(parent: Option<&Process<Annotation>>) -> Option<Arc<ServerRef>> {
    parent.and_then(nearest_server)
}

/// The port a server was recognised by, when it was not recognised by its executable.
fn listen_port(p: &Process<Annotation>, family: FamilyId) -> Option<u16> {
    p.annotation
        .listening
        .filter(|(f, _)| *f == family)
        .map(|(_, port)| port)
}

/// The server an alert is about: the process itself when it is one, else the nearest above.
pub fn nearest_server(p: &Process<Annotation>) -> Option<Arc<ServerRef>> {
    match p.annotation.family {
        Some(family) => {
            let above = p.annotation.server.as_ref();
            let listen_port = listen_port(p, family);
            // A process known only by listening (a supervisor with an admin port, a test
            // harness, a CI runner) may start named servers: their incidents stay rooted at the
            // named server, the one an analyst recognises.
            let named_root = match listen_port {
                Some(_) => above.and_then(|s| s.named_root),
                None => Some(above.and_then(|s| s.named_root).unwrap_or(p.id)),
            };
            let root = match listen_port {
                Some(_) => above.map_or(p.id, |s| s.root),
                None => named_root.unwrap_or(p.id),
            };
            Some(Arc::new(ServerRef {
                id: p.id,
                family,
                image: p.image.clone(),
                root,
                listen_port,
                named_root,
            }))
        }
        None => p.annotation.server.clone(),
    }
}

/// The parent, skipping transparent launchers (jspawnhelper).
pub fn effective_parent(table: &Table, id: EntityId) -> Option<&Process<Annotation>> {
    table.ancestors(id).find(|a| !a.annotation.transparent)
}

/// The process's outermost known ancestor below init (pid 1), or the process itself.
pub fn top_below_init(table: &Table, p: &Process<Annotation>) -> EntityId {
    table
        .ancestors(p.id)
        .take_while(|a| a.id.pid != 1)
        .last()
        .map_or(p.id, |a| a.id)
}

/// From the incident's root server down to `p` (or, with no root, from the top ancestor below
/// init), transparent launchers left out; stops early if an ancestor was evicted.
pub fn ancestry<'a>(
    table: &'a Table,
    p: &'a Process<Annotation>,
    root: Option<EntityId>,
) -> Vec<&'a Process<Annotation>> {
    let mut chain = vec![p];
    match root {
        Some(root) if p.id != root => {
            for a in table.ancestors(p.id) {
                if !a.annotation.transparent {
                    chain.push(a);
                }
                if a.id == root {
                    break;
                }
            }
        }
        Some(_) => {}
        None => chain.extend(
            table
                .ancestors(p.id)
                .take_while(|a| a.id.pid != 1)
                .filter(|a| !a.annotation.transparent),
        ),
    }
    chain.reverse();
    chain
}
